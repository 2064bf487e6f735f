// BenchWorkflow(arg): echo("arg|0") -> echo("arg|0|1") -> echo("arg|0|1|2"), start_to_close 30s,
// then a 0-duration durable timer; returns "arg|0|1|2". Bundled by the worker at start-up.
const { proxyActivities, sleep } = require('@temporalio/workflow');

const { echo } = proxyActivities({ startToCloseTimeout: '30s' });

const ACTIVITIES = 3;

async function BenchWorkflow(arg) {
  let s = arg;
  for (let i = 0; i < ACTIVITIES; i++) {
    s = await echo(`${s}|${i}`);
  }
  await sleep(0); // StartTimer (the SDK rounds 0 up to 1 ms)
  return s;
}

module.exports = { BenchWorkflow };

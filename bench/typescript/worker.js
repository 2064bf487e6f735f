// The TypeScript SDK worker for bench/run (issue 4). Usage: node worker.js TASK_QUEUE HOST:PORT
// Prints READY once polling; SIGINT/SIGTERM shut it down gracefully (then prints STOPPED).
// Settings match the core-floor: 1000 cached workflows, 100 workflow-task / 100 activity slots,
// 5 + 5 pollers, 10s sticky schedule-to-start.
const { NativeConnection, Runtime, Worker, DefaultLogger } = require('@temporalio/worker');

async function echo(s) {
  return s;
}

async function main() {
  const [taskQueue, address] = process.argv.slice(2);
  Runtime.install({ logger: new DefaultLogger('WARN') });
  const connection = await NativeConnection.connect({ address });
  const worker = await Worker.create({
    connection,
    namespace: 'default',
    taskQueue,
    workflowsPath: require.resolve('./workflows'),
    activities: { echo },
    maxCachedWorkflows: 1000,
    maxConcurrentWorkflowTaskExecutions: 100,
    maxConcurrentActivityTaskExecutions: 100,
    maxConcurrentLocalActivityExecutions: 100,
    maxConcurrentWorkflowTaskPolls: 5,
    maxConcurrentActivityTaskPolls: 5,
    stickyQueueScheduleToStartTimeout: '10s',
    shutdownGraceTime: '2s',
  });
  const running = worker.run(); // Runtime's default shutdownSignals include SIGINT and SIGTERM
  console.log('READY');
  await running;
  await connection.close();
  console.log('STOPPED');
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

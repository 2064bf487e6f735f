//! Test harness for Tempest's integration tests: a real Temporal dev server (the `temporal` CLI,
//! installed by `scripts/setup-temporal`), one per test binary, plus the small tools tests need
//! around it. A missing `temporal` binary fails loudly; nothing here skips a test.
//!
//! ```no_run
//! let queue = tempest_testkit::unique_task_queue("orders");
//! let address = tempest_testkit::address(); // starts the shared server on first use
//! tempest_testkit::temporal_cli(["workflow", "list"]).expect_success();
//! ```
//!
//! Unix only: the server is tied to the test process with process groups and `/bin/sh`.

mod cli;
mod dev_server;
mod locate;
mod output_tail;
mod process_guard;
mod task_queue;
mod wait;

use std::ffi::OsString;
use std::sync::OnceLock;

pub use cli::{CliError, CliOutput, DEFAULT_CLI_TIMEOUT};
pub use dev_server::{DEFAULT_STARTUP_TIMEOUT, DevServer, DevServerError, DevServerOptions};
pub use locate::{INSTALL_HINT, LocateError, TEMPORAL_CLI_ENV, temporal_binary, workspace_root};
pub use task_queue::unique_task_queue;
pub use wait::{WaitTimedOut, wait_until, wait_until_async};

/// The plain dev server shared by every test in this test binary, started on first use and
/// killed when the process exits. Tests isolate themselves with [`unique_task_queue`].
///
/// Panics with the reason (and the install hint, if the binary is missing) when it cannot start;
/// every later call panics with the same message rather than trying again.
///
/// Start-up blocks the calling thread for a second or two; from async tests this is harmless as
/// long as it happens before the test starts its own tasks.
#[track_caller]
pub fn dev_server() -> &'static DevServer {
    static SHARED: OnceLock<Result<DevServer, String>> = OnceLock::new();
    match SHARED.get_or_init(|| DevServer::start().map_err(|err| err.to_string())) {
        Ok(server) => server,
        Err(message) => panic!("cannot start the shared Temporal dev server: {message}"),
    }
}

/// `127.0.0.1:PORT` of the shared [`dev_server`].
#[track_caller]
pub fn address() -> String {
    dev_server().address()
}

/// Runs `temporal ARGS...` against the shared [`dev_server`] and returns what it printed,
/// whatever its exit status. Panics if it cannot run or overstays [`DEFAULT_CLI_TIMEOUT`]; use
/// [`DevServer::cli_with_timeout`] for other limits.
///
/// Blocks the calling thread: in async tests whose workers share the runtime, use
/// [`temporal_cli_async`].
#[track_caller]
pub fn temporal_cli<I, S>(args: I) -> CliOutput
where
    I: IntoIterator<Item = S>,
    S: Into<OsString>,
{
    match dev_server().cli(args) {
        Ok(output) => output,
        Err(err) => panic!("{err}"),
    }
}

/// [`temporal_cli`] on tokio's blocking pool, so the test's own tasks keep running meanwhile.
pub async fn temporal_cli_async<I, S>(args: I) -> CliOutput
where
    I: IntoIterator<Item = S>,
    S: Into<OsString>,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    match tokio::task::spawn_blocking(move || dev_server().cli(args)).await {
        Ok(Ok(output)) => output,
        Ok(Err(err)) => panic!("{err}"),
        Err(join_error) => std::panic::resume_unwind(join_error.into_panic()),
    }
}

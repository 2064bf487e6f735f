//! One in-memory `temporal server start-dev` on a free loopback port, ready when it answers
//! DescribeNamespace, gone when its owner (or the whole test process) goes.

use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::cli::{self, CliError, CliOutput, DEFAULT_CLI_TIMEOUT};
use crate::locate::{self, LocateError};
use crate::output_tail::OutputTail;
use crate::process_guard::GuardedProcess;

/// How long a server may take to answer, unless the options say otherwise.
pub const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// The free port is found by binding and releasing it, so another process can take it before
/// the server binds it; such a server exits at once and is retried on a fresh port.
const START_ATTEMPTS: u32 = 3;
const READY_POLL_INTERVAL: Duration = Duration::from_millis(50);
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Options for starting a dev server; `DevServerOptions::new().start()` is the plain server.
#[derive(Debug, Clone)]
pub struct DevServerOptions {
    extra_args: Vec<OsString>,
    startup_timeout: Duration,
}

impl Default for DevServerOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl DevServerOptions {
    pub fn new() -> Self {
        Self { extra_args: Vec::new(), startup_timeout: DEFAULT_STARTUP_TIMEOUT }
    }

    /// Registers a custom search attribute (`Text`, `Keyword`, `Int`, `Double`, `Bool`,
    /// `Datetime`, `KeywordList`); the dev server has none by default.
    pub fn search_attribute(self, name: &str, kind: &str) -> Self {
        self.arg("--search-attribute").arg(format!("{name}={kind}"))
    }

    /// Creates an extra namespace at start-up (`default` always exists).
    pub fn namespace(self, name: &str) -> Self {
        self.arg("--namespace").arg(name)
    }

    /// Sets a dynamic config value; `value` is JSON (`"\"text\""`, `"true"`, `"10"`).
    pub fn dynamic_config(self, key: &str, value: &str) -> Self {
        self.arg("--dynamic-config-value").arg(format!("{key}={value}"))
    }

    /// Passes any other `temporal server start-dev` flag through.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.extra_args.push(arg.into());
        self
    }

    /// How long to wait for the server to answer before giving up.
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }

    /// Starts a server and waits until it serves the `default` namespace.
    pub fn start(&self) -> Result<DevServer, DevServerError> {
        let binary = locate::temporal_binary()?;
        let mut attempt = 1;
        loop {
            match self.start_once(&binary) {
                Err(DevServerError::ExitedEarly { .. }) if attempt < START_ATTEMPTS => attempt += 1,
                result => return result,
            }
        }
    }

    fn start_once(&self, binary: &Path) -> Result<DevServer, DevServerError> {
        let port = free_port().map_err(DevServerError::Spawn)?;
        let mut command = cli::hermetic_command(binary, None);
        // --headless: no UI port to collide on; --http-port/--metrics-port already default to
        // random free ports in CLI 1.9.1. No --db-filename: state lives in memory.
        command
            .args(["server", "start-dev", "--headless", "--ip", "127.0.0.1", "--port"])
            .arg(port.to_string())
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut process = GuardedProcess::spawn(command).map_err(DevServerError::Spawn)?;
        let log = OutputTail::default();
        if let Some(stdout) = process.server().stdout.take() {
            log.follow(stdout);
        }
        if let Some(stderr) = process.server().stderr.take() {
            log.follow(stderr);
        }
        let server = DevServer { port, binary: binary.to_path_buf(), log, process };
        server.wait_until_ready(self.startup_timeout)
    }
}

/// A running dev server; dropping it kills the server.
pub struct DevServer {
    port: u16,
    binary: PathBuf,
    log: OutputTail,
    process: GuardedProcess,
}

impl std::fmt::Debug for DevServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevServer").field("address", &self.address()).finish_non_exhaustive()
    }
}

impl DevServer {
    /// A plain server: in memory, `default` namespace, no custom search attributes.
    pub fn start() -> Result<Self, DevServerError> {
        DevServerOptions::new().start()
    }

    /// `127.0.0.1:PORT`, the frontend gRPC address.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT`, for client libraries that want a URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.address())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The `temporal` binary this server runs.
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// The last lines the server printed.
    pub fn log_tail(&self) -> String {
        self.log.text()
    }

    /// Runs `temporal ARGS...` against this server (namespace `default` unless ARGS say
    /// otherwise), killed after [`DEFAULT_CLI_TIMEOUT`]. A non-zero exit is not an error: check
    /// [`CliOutput::success`] or call [`CliOutput::expect_success`].
    pub fn cli<I, S>(&self, args: I) -> Result<CliOutput, CliError>
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.cli_with_timeout(args, DEFAULT_CLI_TIMEOUT)
    }

    /// [`DevServer::cli`] with an explicit timeout.
    pub fn cli_with_timeout<I, S>(&self, args: I, timeout: Duration) -> Result<CliOutput, CliError>
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        cli::run(&self.binary, &self.address(), &args, timeout)
    }

    fn wait_until_ready(mut self, timeout: Duration) -> Result<Self, DevServerError> {
        let deadline = Instant::now() + timeout;
        let socket = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        loop {
            if let Some(status) = self.process.server().try_wait().map_err(DevServerError::Spawn)? {
                return Err(DevServerError::ExitedEarly { status, log: self.exit_log() });
            }
            if TcpStream::connect_timeout(&socket, READY_POLL_INTERVAL).is_ok() && self.answers() {
                return Ok(self);
            }
            if Instant::now() >= deadline {
                return Err(DevServerError::NotReady { address: self.address(), timeout, log: self.log_tail() });
            }
            std::thread::sleep(READY_POLL_INTERVAL);
        }
    }

    /// Whether the frontend serves the `default` namespace (a listening port comes earlier).
    fn answers(&self) -> bool {
        self.cli_with_timeout(["operator", "namespace", "describe", "--namespace", "default"], PROBE_TIMEOUT)
            .is_ok_and(|out| out.success())
    }

    /// The log once the reader threads have drained the dead server's pipes.
    fn exit_log(&self) -> String {
        let _ = crate::wait_until(Duration::from_secs(2), Duration::from_millis(10), || self.log.is_drained());
        self.log_tail()
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port())
}

/// The dev server could not be started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DevServerError {
    /// No `temporal` binary. Fatal: install it (the message says how).
    #[error(transparent)]
    Locate(#[from] LocateError),
    /// The binary could not be run or watched. Fatal.
    #[error("cannot run the Temporal dev server: {0}")]
    Spawn(#[source] std::io::Error),
    /// The server exited during start-up (bad flag, port taken); retried on another port before
    /// being reported.
    #[error("the Temporal dev server exited during start-up with {status}\n--- server output ---\n{log}")]
    ExitedEarly { status: ExitStatus, log: String },
    /// The server did not serve the `default` namespace in time.
    #[error("the Temporal dev server at {address} did not answer within {timeout:?}\n--- server output ---\n{log}")]
    NotReady { address: String, timeout: Duration, log: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_collect_flags_in_order() {
        let options = DevServerOptions::new()
            .search_attribute("CustomerId", "Keyword")
            .namespace("billing")
            .dynamic_config("limit.blobSize.error", "1000")
            .arg("--log-level")
            .arg("error");
        let flags: Vec<&str> = options.extra_args.iter().map(|a| a.to_str().expect("utf-8")).collect();
        assert_eq!(
            flags,
            [
                "--search-attribute",
                "CustomerId=Keyword",
                "--namespace",
                "billing",
                "--dynamic-config-value",
                "limit.blobSize.error=1000",
                "--log-level",
                "error"
            ]
        );
    }

    #[test]
    fn free_port_is_a_bindable_loopback_port() {
        let port = free_port().expect("a free port");
        assert_ne!(port, 0);
        TcpListener::bind((Ipv4Addr::LOCALHOST, port)).expect("still free right after");
    }
}

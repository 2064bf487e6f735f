//! Runs one `temporal` CLI command against a dev server, bounded by a timeout, with the caller's
//! `TEMPORAL_*` environment and config file shut out so a developer's profile cannot leak in.

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a CLI command may run unless the caller says otherwise.
pub const DEFAULT_CLI_TIMEOUT: Duration = Duration::from_secs(60);

const EXIT_POLL_INTERVAL: Duration = Duration::from_millis(20);

/// What a finished CLI command printed.
#[derive(Debug, Clone)]
pub struct CliOutput {
    /// The command line, for messages.
    pub command: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl CliOutput {
    /// Whether the command exited with status 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Returns `self` if the command succeeded; panics with everything it printed otherwise.
    #[track_caller]
    pub fn expect_success(self) -> Self {
        assert!(self.success(), "`{}` failed with {}\n{}", self.command, self.status, self.transcript());
        self
    }

    fn transcript(&self) -> String {
        format!("--- stdout ---\n{}--- stderr ---\n{}", self.stdout, self.stderr)
    }
}

/// A CLI command could not be run to completion.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// The binary could not be started. Fatal.
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    /// The command did not finish in time and was killed. Usually means the thing it waited on
    /// (a workflow, a worker) never happened.
    #[error(
        "`{command}` did not finish within {timeout:?} and was killed\n--- stdout ---\n{stdout}--- stderr ---\n{stderr}"
    )]
    TimedOut { command: String, timeout: Duration, stdout: String, stderr: String },
    /// Waiting for the process failed. Fatal.
    #[error("waiting for `{command}`: {source}")]
    Wait {
        command: String,
        #[source]
        source: std::io::Error,
    },
}

/// A `temporal` command whose environment holds no `TEMPORAL_*` variable but the address.
pub(crate) fn hermetic_command(binary: &Path, address: Option<&str>) -> Command {
    let mut command = Command::new(binary);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("TEMPORAL_") {
            command.env_remove(name);
        }
    }
    if let Some(address) = address {
        command.env("TEMPORAL_ADDRESS", address);
    }
    command
}

/// Runs `binary args...` against `address`, killing it after `timeout`.
pub(crate) fn run(binary: &Path, address: &str, args: &[OsString], timeout: Duration) -> Result<CliOutput, CliError> {
    let mut command = hermetic_command(binary, Some(address));
    // `--command-timeout` makes the CLI give up on its own too, so a command orphaned by a
    // crashed test process does not linger.
    command
        .arg("--disable-config-file")
        .arg("--command-timeout")
        .arg(format!("{}ms", timeout.as_millis()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let display = display_command(binary, args);
    let mut child = command.spawn().map_err(|source| CliError::Spawn { command: display.clone(), source })?;
    let stdout = read_to_end_in_background(child.stdout.take());
    let stderr = read_to_end_in_background(child.stderr.take());

    let status = wait_with_deadline(&mut child, Instant::now() + timeout)
        .map_err(|source| CliError::Wait { command: display.clone(), source })?;
    let (stdout, stderr) = (join_reader(stdout), join_reader(stderr));
    match status {
        Some(status) => Ok(CliOutput { command: display, status, stdout, stderr }),
        None => Err(CliError::TimedOut { command: display, timeout, stdout, stderr }),
    }
}

/// `Ok(None)` when the deadline passed; the child is then killed and reaped.
fn wait_with_deadline(child: &mut Child, deadline: Instant) -> std::io::Result<Option<ExitStatus>> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            child.kill()?;
            child.wait()?;
            return Ok(None);
        }
        std::thread::sleep(EXIT_POLL_INTERVAL);
    }
}

fn read_to_end_in_background(stream: Option<impl Read + Send + 'static>) -> Option<JoinHandle<String>> {
    stream.map(|mut stream| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            // A read error just truncates the transcript; the exit status still tells the story.
            let _ = stream.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        })
    })
}

fn join_reader(reader: Option<JoinHandle<String>>) -> String {
    reader.and_then(|handle| handle.join().ok()).unwrap_or_default()
}

fn display_command(binary: &Path, args: &[OsString]) -> String {
    let mut parts = vec![binary.display().to_string()];
    parts.extend(args.iter().map(|arg| quote(arg)));
    parts.join(" ")
}

fn quote(arg: &OsStr) -> String {
    let arg = arg.to_string_lossy();
    if !arg.is_empty() && arg.chars().all(|c| c.is_ascii_alphanumeric() || "-_=.,:/@".contains(c)) {
        arg.into_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn display_quotes_only_what_needs_it() {
        let shown =
            display_command(Path::new("/bin/temporal"), &args(&["workflow", "show", "--input", "{\"a\": 1}", "it's"]));
        assert_eq!(shown, r#"/bin/temporal workflow show --input '{"a": 1}' 'it'\''s'"#);
    }

    /// A stand-in `temporal` in a directory of its own, removed with it when dropped.
    struct FakeCli(std::path::PathBuf);

    impl FakeCli {
        fn path(&self) -> std::path::PathBuf {
            self.0.join("temporal")
        }
    }

    impl Drop for FakeCli {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A stand-in `temporal` that runs `body` as a shell script.
    fn fake_cli(name: &str, body: &str) -> FakeCli {
        use std::os::unix::fs::PermissionsExt;
        let cli = FakeCli(std::env::temp_dir().join(format!("tempest-testkit-cli-{}-{name}", std::process::id())));
        std::fs::create_dir_all(&cli.0).expect("create dir");
        std::fs::write(cli.path(), format!("#!/bin/sh\n{body}\n")).expect("write script");
        std::fs::set_permissions(cli.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
        cli
    }

    #[test]
    fn run_passes_address_and_flags_and_captures_output() {
        let cli = fake_cli(
            "capture",
            r#"echo "addr=$TEMPORAL_ADDRESS ns=${TEMPORAL_NAMESPACE-unset} args=$*"; echo oops >&2; exit 3"#,
        );
        let out = run(&cli.path(), "127.0.0.1:1", &args(&["workflow", "list"]), Duration::from_secs(10)).expect("runs");
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(
            out.stdout,
            "addr=127.0.0.1:1 ns=unset args=--disable-config-file --command-timeout 10000ms workflow list\n"
        );
        assert_eq!(out.stderr, "oops\n");
        assert!(!out.success());
    }

    #[test]
    fn run_kills_a_command_that_overstays() {
        let cli = fake_cli("overstay", "echo partial; exec sleep 30");
        let started = Instant::now();
        let err = run(&cli.path(), "x", &[], Duration::from_millis(300)).expect_err("times out");
        assert!(started.elapsed() < Duration::from_secs(10));
        match err {
            CliError::TimedOut { stdout, .. } => assert_eq!(stdout, "partial\n"),
            other => panic!("unexpected {other}"),
        }
    }
}

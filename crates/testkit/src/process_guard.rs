//! Ties a server process's life to the test process's, however the test process ends.
//!
//! Statics are never dropped, so `kill_on_drop` cannot stop a server held in a `static`, and
//! `PR_SET_PDEATHSIG` fires when the spawning *thread* exits, which for a lazily started server
//! is whichever test thread got there first. Instead a tiny `sh` "lifeline" reads a pipe whose
//! write end only this process holds (std opens pipes close-on-exec). When this process exits —
//! normally, by panic, by SIGKILL — the kernel closes the pipe, `read` returns, and the lifeline
//! SIGKILLs the server's process group. Both run in their own process groups so a Ctrl-C aimed
//! at `cargo test` cannot kill the lifeline before it does its job.

use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, Stdio};

/// A spawned server plus its lifeline; dropping it kills both.
pub(crate) struct GuardedProcess {
    server: Child,
    lifeline: Child,
    lifeline_pipe: Option<ChildStdin>,
}

/// Keeps running after `read` returns even if the group is already gone; SIGKILL because the
/// in-memory dev server has nothing to save and takes seconds over SIGTERM.
const LIFELINE_SCRIPT: &str = r#"read -r _ignored; kill -s KILL -- "-$1" 2>/dev/null; exit 0"#;

impl GuardedProcess {
    /// Spawns `command` as the leader of a new process group, watched by a lifeline.
    pub(crate) fn spawn(mut command: Command) -> std::io::Result<Self> {
        let mut server = command.process_group(0).spawn()?;
        let lifeline = Command::new("/bin/sh")
            .arg("-c")
            .arg(LIFELINE_SCRIPT)
            .arg("tempest-testkit-lifeline")
            .arg(server.id().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn();
        let mut lifeline = match lifeline {
            Ok(lifeline) => lifeline,
            Err(err) => {
                let _ = server.kill();
                let _ = server.wait();
                return Err(err);
            }
        };
        let lifeline_pipe = lifeline.stdin.take();
        Ok(Self { server, lifeline, lifeline_pipe })
    }

    pub(crate) fn server(&mut self) -> &mut Child {
        &mut self.server
    }
}

impl Drop for GuardedProcess {
    fn drop(&mut self) {
        // A server we already reaped no longer owns its process-group ID; make sure the lifeline
        // cannot signal whoever reuses it.
        if matches!(self.server.try_wait(), Ok(Some(_))) {
            let _ = self.lifeline.kill();
        }
        drop(self.lifeline_pipe.take());
        let _ = self.lifeline.wait();
        // Belt and braces if the lifeline was killed from outside; a no-op otherwise.
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wait_until;
    use std::time::Duration;

    /// Running and not a zombie (an orphan's zombie lingers if PID 1 does not reap).
    fn is_alive(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|stat| stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z')))
    }

    #[test]
    fn dropping_the_guard_kills_the_whole_process_group() {
        // The server forks a grandchild, as a wrapper script around the real binary would.
        let mut command = Command::new("/bin/sh");
        command.arg("-c").arg("sleep 300 & echo $!; wait").stdout(Stdio::piped());
        let mut guard = GuardedProcess::spawn(command).expect("spawn");
        let mut first_line = String::new();
        let stdout = guard.server().stdout.take().expect("piped");
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut first_line).expect("read pid");
        let grandchild: u32 = first_line.trim().parse().expect("pid");
        let server = guard.server().id();
        assert!(is_alive(server) && is_alive(grandchild));

        drop(guard);

        wait_until(Duration::from_secs(5), Duration::from_millis(10), || !is_alive(grandchild))
            .expect("grandchild killed with its group");
    }
}

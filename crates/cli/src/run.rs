//! `tempest run` and `tempest dev`: load the registry, start the workers, run until SIGINT or
//! SIGTERM, then shut down gracefully (a second signal exits at once). `dev` first starts a
//! local Temporal dev server when the client points at a loopback address nobody listens on.

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use tempest_registry::Registry;
use tokio::signal::unix::{SignalKind, signal};

use crate::{RUNTIME_FAILURE, USER_ERROR};

/// How long `dev` waits for the dev server it started to accept connections.
const DEV_SERVER_STARTUP: Duration = Duration::from_secs(60);

pub fn run(dir: &Path) -> ExitCode {
    let Some(registry) = load(dir) else { return ExitCode::from(USER_ERROR) };
    serve(&registry)
}

pub fn dev(dir: &Path) -> ExitCode {
    let Some(registry) = load(dir) else { return ExitCode::from(USER_ERROR) };
    let _server = match start_dev_server_if_needed(&registry) {
        Ok(server) => server,
        Err(message) => {
            tracing::error!("{message}");
            return ExitCode::from(RUNTIME_FAILURE);
        }
    };
    serve(&registry)
}

fn load(dir: &Path) -> Option<Registry> {
    match Registry::load(dir) {
        Ok(registry) => {
            for warning in registry.warnings() {
                tracing::warn!("{warning}");
            }
            Some(registry)
        }
        Err(errors) => {
            eprintln!("{}", errors.report);
            None
        }
    }
}

fn serve(registry: &Registry) -> ExitCode {
    // One thread runs Core, its gRPC connections and the Lua workflow engines: an activation is
    // polled, run and completed without waking another thread (bench/run: about a fifth less
    // worker CPU per workflow than a multi-thread runtime with the engine on its own thread).
    // Activities that may block run on tokio's blocking pool.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            return ExitCode::from(RUNTIME_FAILURE);
        }
    };
    // The workflow engines (Lua states are not `Send`) run as local tasks.
    tokio::task::LocalSet::new().block_on(&runtime, async {
        let started = tokio::select! {
            started = tempest_temporal::start(registry) => started,
            _ = wait_for_signal() => {
                tracing::info!("stopped while starting");
                return ExitCode::SUCCESS;
            }
        };
        let running = match started {
            Ok(running) => running,
            Err(e) => {
                tracing::error!("{e}");
                return ExitCode::from(RUNTIME_FAILURE);
            }
        };
        tracing::info!("tempest is running; stop with Ctrl-C or SIGTERM");
        if let Err(e) = signal_from_own_task().await {
            tracing::error!("cannot listen for signals: {e}");
        }
        tracing::info!("shutting down (a second signal exits immediately)");
        tokio::spawn(async {
            if wait_for_signal().await.is_ok() {
                tracing::warn!("second signal: exiting without waiting for in-flight work");
                std::process::exit(i32::from(RUNTIME_FAILURE));
            }
        });
        running.shutdown().await;
        tracing::info!("stopped");
        ExitCode::SUCCESS
    })
}

/// [`wait_for_signal`] in a task of its own. The future `LocalSet::block_on` drives is polled
/// again whenever any local task wakes (every activation), and polling two signal streams there
/// costs more than polling a channel.
async fn signal_from_own_task() -> std::io::Result<()> {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let _ = sender.send(wait_for_signal().await);
    });
    receiver.await.unwrap_or_else(|_| Err(std::io::Error::other("the signal listener stopped")))
}

async fn wait_for_signal() -> std::io::Result<()> {
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    Ok(())
}

/// A dev server `tempest dev` started; killed when dropped.
struct DevServer(Child);

impl Drop for DevServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        tracing::info!("dev server stopped");
    }
}

fn listening(address: &str) -> bool {
    address
        .to_socket_addrs()
        .map(|addrs| {
            addrs.into_iter().any(|a: SocketAddr| TcpStream::connect_timeout(&a, Duration::from_millis(300)).is_ok())
        })
        .unwrap_or(false)
}

/// The Temporal CLI: `$TEMPORAL_CLI`, the project-local `.tools/venv/bin/temporal`, or `PATH`.
fn temporal_cli() -> PathBuf {
    if let Some(path) = std::env::var_os("TEMPORAL_CLI") {
        return PathBuf::from(path);
    }
    let local = Path::new(".tools/venv/bin/temporal");
    if local.exists() {
        return local.to_path_buf();
    }
    PathBuf::from("temporal")
}

fn start_dev_server_if_needed(registry: &Registry) -> Result<Option<DevServer>, String> {
    let Some((id, client)) = registry.clients().find(|(_, c)| c.lifecycle.auto_start) else { return Ok(None) };
    let address = client.address.trim_start_matches("http://").to_owned();
    if !tempest_temporal::is_loopback(&address) || listening(&address) {
        return Ok(None);
    }
    let port = address
        .rsplit_once(':')
        .map(|(_, p)| p.to_owned())
        .ok_or_else(|| format!("client `{id}`: address `{address}` has no port"))?;
    let binary = temporal_cli();
    tracing::info!(binary = %binary.display(), port = %port, "starting a Temporal dev server for client `{id}`");
    let child = Command::new(&binary)
        .args(["server", "start-dev", "--ip", "127.0.0.1", "--port", &port, "--log-level", "error"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| {
            format!(
                "cannot start `{} server start-dev`: {e} (run scripts/setup-temporal, or set TEMPORAL_CLI)",
                binary.display()
            )
        })?;
    let server = DevServer(child);
    let deadline = Instant::now() + DEV_SERVER_STARTUP;
    while !listening(&address) {
        if Instant::now() > deadline {
            return Err(format!("the dev server did not listen on {address} within {DEV_SERVER_STARTUP:?}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // The port opens before the default namespace is ready; `start` validates the namespace and
    // would fail on a server that is still coming up.
    while !namespace_ready(&binary, &address, &client.namespace) {
        if Instant::now() > deadline {
            return Err(format!("the dev server on {address} did not become ready within {DEV_SERVER_STARTUP:?}"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    tracing::info!(address = %address, "dev server ready (Web UI on the next port up by 1000)");
    Ok(Some(server))
}

fn namespace_ready(binary: &Path, address: &str, namespace: &str) -> bool {
    Command::new(binary)
        .args(["operator", "namespace", "describe", "--namespace", namespace, "--address", address])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

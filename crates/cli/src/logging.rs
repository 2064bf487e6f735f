//! The one `tracing` subscriber of the process: stderr, filtered by `RUST_LOG`, as human-readable
//! lines or one JSON object per line.

use tracing_subscriber::EnvFilter;

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Json,
    Pretty,
}

/// What is logged when `RUST_LOG` is unset or unparsable: Tempest's own `info` events, and only
/// warnings and errors from the libraries underneath (Temporal Core traces every task at `info`
/// and `debug`; recording those spans would cost a busy worker more CPU than its Lua code).
const DEFAULT_FILTER: &str = "warn,tempest=info,tempest_temporal=info,tempest_lua=info,tempest_registry=info";

/// Installs the subscriber.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Pretty => builder.init(),
    }
}

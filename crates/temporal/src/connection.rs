//! `temporal.client` entries -> gRPC connections: address, TLS, API key, keep-alive, timeouts.

use std::net::IpAddr;

use tempest_registry::{ApiKeySource, Auth, ClientConfig, PemSource};
use temporalio_client::{
    ClientKeepAliveOptions, ClientTlsOptions, Connection, ConnectionOptions, GrpcCompression, TlsOptions, Url,
};

/// Why a client could not connect. Retryable per the client's lifecycle unless noted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The configuration cannot work (fatal until the config changes).
    #[error("client `{client}`: {message}")]
    Config { client: String, message: String },
    /// The server did not answer (retryable).
    #[error("client `{client}`: cannot connect to {address}: {cause}")]
    Unreachable { client: String, address: String, cause: String },
}

/// Whether `host:port` names this machine (`localhost`, 127.0.0.0/8, ::1).
pub fn is_loopback(address: &str) -> bool {
    let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn read_pem(client: &str, what: &str, source: &PemSource) -> Result<Vec<u8>, ConnectError> {
    match source {
        PemSource::Pem(secret) => Ok(secret.expose().as_bytes().to_vec()),
        PemSource::File(path) => std::fs::read(path).map_err(|e| ConnectError::Config {
            client: client.to_owned(),
            message: format!("cannot read {what} {}: {e}", path.display()),
        }),
    }
}

/// Builds the connection options of `config` (no I/O except reading key and certificate files).
pub fn options(client: &str, config: &ClientConfig, identity: &str) -> Result<ConnectionOptions, ConnectError> {
    let config_error = |message: String| ConnectError::Config { client: client.to_owned(), message };
    let address = config.address.trim_start_matches("http://").trim_start_matches("https://");
    let tls = if config.tls.enabled {
        if config.tls.insecure_skip_verify {
            return Err(config_error("tls.insecure_skip_verify is not supported yet".into()));
        }
        let ca = match &config.tls.ca_file {
            Some(path) => Some(
                std::fs::read(path)
                    .map_err(|e| config_error(format!("cannot read tls.ca_file {}: {e}", path.display())))?,
            ),
            None => None,
        };
        let client_tls = match &config.auth {
            Auth::Mtls { cert, key } => Some(
                ClientTlsOptions::builder()
                    .client_cert(read_pem(client, "auth.cert", cert)?)
                    .client_private_key(read_pem(client, "auth.key", key)?)
                    .build(),
            ),
            _ => None,
        };
        Some(
            TlsOptions::builder()
                .maybe_server_root_ca_cert(ca)
                .maybe_domain(config.tls.server_name.clone())
                .maybe_client_tls_options(client_tls)
                .build(),
        )
    } else {
        None
    };
    let api_key = match &config.auth {
        Auth::ApiKey(ApiKeySource::Value(secret)) => Some(secret.expose().to_owned()),
        Auth::ApiKey(source @ ApiKeySource::File(path)) => Some(
            source
                .load()
                .map_err(|e| config_error(format!("cannot read auth.api_key_file {}: {e}", path.display())))?
                .expose()
                .to_owned(),
        ),
        _ => None,
    };
    // tonic only speaks TLS to https:// URLs.
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url = Url::parse(&format!("{scheme}://{address}"))
        .map_err(|e| config_error(format!("invalid address `{}`: {e}", config.address)))?;
    let keep_alive =
        ClientKeepAliveOptions::builder().interval(config.keep_alive_time).timeout(config.keep_alive_timeout).build();
    // Compressing loopback traffic only costs CPU.
    let compression = if is_loopback(address) { GrpcCompression::None } else { GrpcCompression::Gzip };
    Ok(ConnectionOptions::new(url)
        .identity(identity.to_owned())
        .client_name("tempest")
        .client_version(env!("CARGO_PKG_VERSION"))
        .maybe_tls_options(tls)
        .maybe_api_key(api_key)
        .connect_timeout(config.connection_timeout)
        .keep_alive(Some(keep_alive))
        .grpc_compression(compression)
        .build())
}

/// Connects `config`, retrying unreachable servers with the client's lifecycle restart policy
/// (exponential backoff with jitter; `max_attempts` 0 = forever). Configuration errors fail at once.
pub async fn connect_with_retry(
    client: &str,
    config: &ClientConfig,
    identity: &str,
) -> Result<Connection, ConnectError> {
    let policy = &config.lifecycle.restart;
    let mut attempt: u32 = 0;
    loop {
        match connect(client, config, identity).await {
            Ok(connection) => return Ok(connection),
            Err(e @ ConnectError::Config { .. }) => return Err(e),
            Err(e) => {
                attempt += 1;
                if policy.max_attempts > 0 && attempt >= policy.max_attempts {
                    return Err(e);
                }
                let base = policy.initial_delay.as_secs_f64() * policy.backoff_factor.powi(attempt as i32 - 1);
                let capped = base.min(policy.max_delay.as_secs_f64());
                let jitter = 1.0 + policy.jitter * (rand_unit() * 2.0 - 1.0);
                let delay = std::time::Duration::from_secs_f64((capped * jitter).max(0.0));
                tracing::warn!("{e}; retrying in {delay:.1?} (attempt {attempt})");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// A value in [0, 1) for jitter; not security-relevant.
fn rand_unit() -> f64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    f64::from(nanos % 1_000_000) / 1_000_000.0
}

/// Connects `config`, bounded by its `connection_timeout`.
pub async fn connect(client: &str, config: &ClientConfig, identity: &str) -> Result<Connection, ConnectError> {
    let options = options(client, config, identity)?;
    let unreachable =
        |cause: String| ConnectError::Unreachable { client: client.to_owned(), address: config.address.clone(), cause };
    match tokio::time::timeout(config.connection_timeout, Connection::connect(options)).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(e)) => Err(unreachable(e.to_string())),
        Err(_) => Err(unreachable(format!("no answer within {:?}", config.connection_timeout))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_detection() {
        assert!(is_loopback("127.0.0.1:7233"));
        assert!(is_loopback("localhost:7233"));
        assert!(is_loopback("[::1]:7233"));
        assert!(!is_loopback("temporal.example.com:7233"));
    }
}

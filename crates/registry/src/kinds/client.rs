//! `temporal.client` entries (SPEC §4): connection, auth, TLS and health-check settings, with
//! every validation rule checked at load.

use std::path::PathBuf;
use std::time::Duration;

use super::lifecycle::{self, Lifecycle};
use crate::reference::References;
use crate::secret::Secret;
use crate::source::relative_path;
use crate::walk::{Fields, Position, Spanned, Walker};

/// A validated `temporal.client` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientConfig {
    /// `host:port` (an optional `http://` / `https://` scheme is kept as written).
    pub address: String,
    pub namespace: String,
    /// Prepended to every task queue of this client's workers.
    pub tq_prefix: String,
    pub connection_timeout: Duration,
    pub keep_alive_time: Duration,
    pub keep_alive_timeout: Duration,
    pub auth: Auth,
    pub tls: TlsConfig,
    pub health_check: HealthCheck,
    pub lifecycle: Lifecycle,
}

/// How the client authenticates.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Auth {
    None,
    /// Sent as `authorization: Bearer <key>`.
    ApiKey(ApiKeySource),
    Mtls {
        cert: PemSource,
        key: PemSource,
    },
}

/// Where the API key comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiKeySource {
    /// `api_key`, or `api_key_env` already resolved through the env system.
    Value(Secret),
    /// `api_key_file`: read (and trimmed) when connecting.
    File(PathBuf),
}

/// Where a PEM certificate or key comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum PemSource {
    /// `cert_pem` / `key_pem`, or `key_pem_env` already resolved through the env system.
    Pem(Secret),
    /// `cert_file` / `key_file`, read when connecting.
    File(PathBuf),
}

impl ApiKeySource {
    /// The key itself, reading and trimming the file for `File`.
    pub fn load(&self) -> std::io::Result<Secret> {
        match self {
            ApiKeySource::Value(secret) => Ok(secret.clone()),
            ApiKeySource::File(path) => Ok(Secret::new(std::fs::read_to_string(path)?.trim())),
        }
    }
}

/// TLS settings. `enabled` is already the effective value (API key and mTLS imply TLS unless
/// `tls.enabled: false` is written explicitly).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TlsConfig {
    pub enabled: bool,
    /// PEM bundle of trusted roots; `None` = system roots.
    pub ca_file: Option<PathBuf>,
    pub server_name: Option<String>,
    pub insecure_skip_verify: bool,
}

/// Periodic gRPC health checking.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheck {
    pub enabled: bool,
    pub interval: Duration,
}

const API_KEY_FIELDS: [&str; 3] = ["api_key", "api_key_env", "api_key_file"];
const CERT_FIELDS: [&str; 2] = ["cert_file", "cert_pem"];
const KEY_FIELDS: [&str; 3] = ["key_file", "key_pem", "key_pem_env"];

pub(crate) fn parse(
    walker: &mut Walker<'_>,
    fields: &mut Fields<'_>,
    references: &mut References,
) -> Option<ClientConfig> {
    let address = walker.take_string(fields, "address");
    if let Some(address) = &address {
        check_address(walker, address);
    } else if !fields.has("address") {
        walker.missing("address", "`address: host:port`, e.g. localhost:7233");
    }
    let namespace = walker.take_string(fields, "namespace").map_or_else(|| "default".to_owned(), |s| s.value);
    let tq_prefix = walker.take_string(fields, "tq_prefix").map(|s| s.value).unwrap_or_default();
    let mut duration =
        |name, default| walker.take_duration(fields, name).map_or(Duration::from_secs(default), |d| d.value);
    let connection_timeout = duration("connection_timeout", 10);
    let keep_alive_time = duration("keep_alive_time", 30);
    let keep_alive_timeout = duration("keep_alive_timeout", 10);
    let auth = match fields.take("auth") {
        Some(node) => parse_auth(walker, node),
        None => Some(Auth::None),
    };
    let tls = parse_tls(walker, fields, &auth);
    let health_check = parse_health_check(walker, fields);
    let lifecycle = lifecycle::parse(walker, fields, references);
    Some(ClientConfig {
        address: address?.value,
        namespace,
        tq_prefix,
        connection_timeout,
        keep_alive_time,
        keep_alive_timeout,
        auth: auth?,
        tls,
        health_check,
        lifecycle,
    })
}

fn check_address(walker: &mut Walker<'_>, address: &Spanned<String>) {
    let text = address.value.trim();
    let host_port = text.strip_prefix("https://").or_else(|| text.strip_prefix("http://")).unwrap_or(text);
    let valid = host_port
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
    if !valid {
        walker.error(address.at, "address", format!("`{text}` is not host:port (expected e.g. localhost:7233)"));
    }
}

/// `None` when auth is invalid (already reported).
fn parse_auth(walker: &mut Walker<'_>, node: &crate::walk::Node<'_>) -> Option<Auth> {
    let mut fields = walker.fields(node, "auth")?;
    let auth_type = walker.take_string(&mut fields, "type");
    let mut sources = |names: &[&'static str]| -> Vec<(&'static str, Spanned<String>)> {
        names
            .iter()
            .filter_map(|name| walker.take_string(&mut fields, name).map(|value| (*name, value)))
            .filter(|(_, value)| !value.value.trim().is_empty())
            .collect()
    };
    let api_key = sources(&API_KEY_FIELDS);
    let cert = sources(&CERT_FIELDS);
    let key = sources(&KEY_FIELDS);
    walker.finish(fields);

    let type_at = auth_type.as_ref().map_or(Position::of(node), |t| t.at);
    let kind = auth_type.as_ref().map_or("none", |t| t.value.as_str());
    let unused: Vec<_> = match kind {
        "none" => api_key.iter().chain(&cert).chain(&key).collect(),
        "api_key" => cert.iter().chain(&key).collect(),
        "mtls" => api_key.iter().collect(),
        other => {
            walker.error(type_at, "auth.type", format!("unknown auth type `{other}` (expected none, api_key or mtls)"));
            return None;
        }
    };
    let mut valid = true;
    for (name, value) in unused {
        let needed = if API_KEY_FIELDS.contains(name) { "api_key" } else { "mtls" };
        walker.error(
            value.at,
            &format!("auth.{name}"),
            format!("is only used with `auth.type: {needed}`, but the type is `{kind}` (expected `type: {needed}`, or remove it)"),
        );
        valid = false;
    }
    let auth = match kind {
        "api_key" => one_source(walker, &api_key, type_at, "an API key", &API_KEY_FIELDS)
            .and_then(|(name, value)| api_key_source(walker, name, value))
            .map(Auth::ApiKey),
        "mtls" => {
            let cert = one_source(walker, &cert, type_at, "a client certificate", &CERT_FIELDS)
                .and_then(|(name, value)| pem_source(walker, name, value));
            let key = one_source(walker, &key, type_at, "a private key", &KEY_FIELDS)
                .and_then(|(name, value)| pem_source(walker, name, value));
            cert.zip(key).map(|(cert, key)| Auth::Mtls { cert, key })
        }
        _ => Some(Auth::None),
    };
    auth.filter(|_| valid)
}

/// Exactly one of `names` must be set; reports none (at `auth.type`) or several (at the second).
fn one_source<'s>(
    walker: &mut Walker<'_>,
    found: &'s [(&'static str, Spanned<String>)],
    type_at: Position,
    what: &str,
    names: &[&str],
) -> Option<(&'static str, &'s Spanned<String>)> {
    let expected = names.join(", ");
    match found {
        [] => {
            walker.error(
                type_at,
                "auth.type",
                format!("{what} is required for this auth type (expected one of {expected})"),
            );
            None
        }
        [(name, value)] => Some((name, value)),
        [(first, _), (second, value), ..] => {
            walker.error(
                value.at,
                &format!("auth.{second}"),
                format!("{what} is given twice, by `{first}` and `{second}` (expected exactly one of {expected})"),
            );
            None
        }
    }
}

fn api_key_source(walker: &mut Walker<'_>, name: &str, value: &Spanned<String>) -> Option<ApiKeySource> {
    match name {
        "api_key" => Some(ApiKeySource::Value(Secret::new(value.value.clone()))),
        "api_key_file" => Some(ApiKeySource::File(relative_path(walker.file.dir(), &value.value))),
        _ => from_env(walker, name, value, "the API key").map(ApiKeySource::Value),
    }
}

fn pem_source(walker: &mut Walker<'_>, name: &str, value: &Spanned<String>) -> Option<PemSource> {
    match name {
        "cert_pem" | "key_pem" => Some(PemSource::Pem(Secret::new(value.value.clone()))),
        "cert_file" | "key_file" => Some(PemSource::File(relative_path(walker.file.dir(), &value.value))),
        _ => from_env(walker, name, value, "the PEM private key").map(PemSource::Pem),
    }
}

/// Resolves a legacy `<field>_env: NAME` through the env system.
fn from_env(walker: &mut Walker<'_>, name: &str, value: &Spanned<String>, what: &str) -> Option<Secret> {
    let variable = value.value.trim();
    match walker.env_value(variable) {
        Some(secret) => Some(Secret::new(secret)),
        None => {
            walker.error(
                value.at,
                &format!("auth.{name}"),
                format!("environment variable `{variable}` is not set (expected it to hold {what})"),
            );
            None
        }
    }
}

fn parse_tls(walker: &mut Walker<'_>, fields: &mut Fields<'_>, auth: &Option<Auth>) -> TlsConfig {
    let implied = matches!(auth, Some(Auth::ApiKey(_) | Auth::Mtls { .. }));
    let mut tls = TlsConfig { enabled: implied, ..TlsConfig::default() };
    let Some(node) = fields.take("tls") else {
        return tls;
    };
    let Some(mut fields) = walker.fields(node, "tls") else {
        return tls;
    };
    if let Some(enabled) = walker.take_bool(&mut fields, "enabled") {
        tls.enabled = enabled;
    }
    tls.ca_file = walker.take_string(&mut fields, "ca_file").map(|s| relative_path(walker.file.dir(), &s.value));
    let server_name = walker.take_string(&mut fields, "server_name").filter(|s| !s.value.is_empty());
    let skip_verify = walker.take_bool_at(&mut fields, "insecure_skip_verify");
    tls.insecure_skip_verify = skip_verify.as_ref().is_some_and(|flag| flag.value);
    if let (Some(flag), Some(name)) = (&skip_verify, &server_name)
        && flag.value
    {
        walker.error(
            flag.at,
            "tls.insecure_skip_verify",
            format!("cannot be combined with `tls.server_name: {}` (expected either skip-verify or a server name to verify)", name.value),
        );
    }
    tls.server_name = server_name.map(|s| s.value);
    walker.finish(fields);
    tls
}

fn parse_health_check(walker: &mut Walker<'_>, fields: &mut Fields<'_>) -> HealthCheck {
    let mut health = HealthCheck { enabled: false, interval: Duration::from_secs(30) };
    let Some(node) = fields.take("health_check") else {
        return health;
    };
    let Some(mut fields) = walker.fields(node, "health_check") else {
        return health;
    };
    health.enabled = walker.take_bool(&mut fields, "enabled").unwrap_or(false);
    if let Some(interval) = walker.take_duration(&mut fields, "interval") {
        health.interval = interval.value;
        if health.enabled && interval.value.is_zero() {
            walker.error(
                interval.at,
                "health_check.interval",
                "is 0 while health checks are enabled (expected a positive duration such as \"30s\")",
            );
        }
    }
    walker.finish(fields);
    health
}

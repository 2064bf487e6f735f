//! The `http_client` module (activities only, SPEC §10): `get/post/put/patch/delete/head(url,
//! opts?)` and `request(method, url, opts?)`, each returning a response table `{status_code, body,
//! headers, url}` or `nil, err`. A non-2xx status is a response, not an error.
//!
//! opts: `headers` (name → string, number or list of strings), `body` (string or bytes), `query`
//! (name → value, appended to the URL), `form` (name → value, sent urlencoded), `auth = {user,
//! pass}` (basic), `timeout` (seconds, or a Go duration string; default [`DEFAULT_TIMEOUT`]) and `tls
//! = {insecure_skip_verify, ca, ca_file}` (`ca`: PEM text, `ca_file`: a PEM file path; both add to
//! the system roots). Options the reference has and Tempest does not yet (`files`, `cookies`,
//! `stream`, ...) are Invalid rather than silently ignored. Response header names are in Go's
//! canonical form (`Content-Type`) and looked up case-insensitively; repeated headers are joined
//! with `", "`. Redirects are followed (up to 10); `url` is the final one.
//!
//! Errors: bad arguments → Invalid; a network failure, DNS failure or timeout → Internal,
//! retryable, naming method and URL; [`Cancellation`] → Canceled.
//!
//! Requests run on a current-thread tokio runtime the module owns (one per VM, made on first use),
//! through one reqwest client per TLS setting, so connections are reused across calls. Like
//! `reqwest::blocking`, the runtime must not be created or dropped inside an async context: run
//! activity VMs on plain or `spawn_blocking` threads.

use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mlua::{Lua, Table, Value};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};

use crate::convert;
use crate::failure::{self, Failure, Kind};

/// Timeout of a request whose opts give none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How often an in-flight request looks at its [`Cancellation`] flag.
const CANCEL_POLL: Duration = Duration::from_millis(20);

/// App data: once the flag is set, in-flight requests of this VM are aborted and new ones fail
/// at once, both with kind Canceled. The activity runner sets it on cancellation or shutdown.
#[derive(Debug, Clone, Default)]
pub struct Cancellation(pub Arc<AtomicBool>);

pub fn register(lua: &Lua) -> mlua::Result<Table> {
    let http = Rc::new(Http::default());
    let headers_meta = headers_metatable(lua)?;
    let module = lua.create_table()?;
    for (name, method) in [
        ("get", Method::GET),
        ("post", Method::POST),
        ("put", Method::PUT),
        ("patch", Method::PATCH),
        ("delete", Method::DELETE),
        ("head", Method::HEAD),
    ] {
        let (http, meta) = (http.clone(), headers_meta.clone());
        let function = lua.create_function(move |lua, (url, opts): (Value, Value)| {
            call(lua, &http, &meta, Ok(method.clone()), &url, &opts)
        })?;
        module.set(name, function)?;
    }
    let request = lua.create_function(move |lua, (method, url, opts): (Value, Value, Value)| {
        call(lua, &http, &headers_meta, parse_method(&method), &url, &opts)
    })?;
    module.set("request", request)?;
    Ok(module)
}

/// One module call: validate, send, and answer `response, nil` or `nil, err`.
fn call(
    lua: &Lua,
    http: &Http,
    headers_meta: &Table,
    method: Result<Method, Failure>,
    url: &Value,
    opts: &Value,
) -> mlua::Result<(Value, Value)> {
    let response =
        method.and_then(|method| Request::parse(method, url, opts)).and_then(|request| http.send(lua, request));
    match response {
        Ok(response) => failure::returned(lua, Ok(response.into_table(lua, headers_meta)?)),
        Err(failure) => failure::returned(lua, Err::<Table, _>(failure)),
    }
}

/// The module's state: the runtime and the clients, both made on first use.
#[derive(Default)]
struct Http {
    // Clients before the runtime: their pooled connections are tasks on it.
    clients: RefCell<HashMap<Tls, reqwest::Client>>,
    runtime: OnceCell<tokio::runtime::Runtime>,
}

/// The TLS settings a client is built with; requests with equal settings share a client.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
struct Tls {
    insecure_skip_verify: bool,
    ca_pem: Vec<Vec<u8>>,
}

/// A request as Lua described it, validated.
#[derive(Debug)]
struct Request {
    method: Method,
    url: Url,
    headers: HeaderMap,
    query: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    form: Option<Vec<(String, String)>>,
    auth: Option<(String, String)>,
    timeout: Duration,
    tls: Tls,
}

struct Response {
    status_code: u16,
    url: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Http {
    fn send(&self, lua: &Lua, request: Request) -> Result<Response, Failure> {
        let label = format!("http_client: {} {}", request.method, request.url);
        let cancelled = lua.app_data_ref::<Cancellation>().map(|c| c.0.clone());
        if cancelled.as_ref().is_some_and(|flag| flag.load(Ordering::SeqCst)) {
            return Err(canceled(&label));
        }
        let client = self.client(&request.tls)?;
        let runtime = self.runtime()?;
        let mut builder = client.request(request.method, request.url).timeout(request.timeout);
        if !request.query.is_empty() {
            builder = builder.query(&request.query);
        }
        if let Some(form) = &request.form {
            builder = builder.form(form);
        }
        if let Some(body) = request.body {
            builder = builder.body(body);
        }
        if let Some((user, pass)) = request.auth {
            builder = builder.basic_auth(user, Some(pass));
        }
        // Last, so the script's headers replace what form and auth set.
        builder = builder.headers(request.headers);
        let exchange = async move {
            let response = builder.send().await?;
            let status_code = response.status().as_u16();
            let url = response.url().to_string();
            let headers = response.headers().clone();
            let body = response.bytes().await?.to_vec();
            Ok::<_, reqwest::Error>(Response { status_code, url, headers, body })
        };
        runtime.block_on(async {
            tokio::select! {
                result = exchange => result.map_err(|e| network_failure(&label, &e)),
                () = wait_for(cancelled) => Err(canceled(&label)),
            }
        })
    }

    fn client(&self, tls: &Tls) -> Result<reqwest::Client, Failure> {
        if let Some(client) = self.clients.borrow().get(tls) {
            return Ok(client.clone());
        }
        // reqwest takes the process-wide provider; an error means one is installed already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder().tls_danger_accept_invalid_certs(tls.insecure_skip_verify);
        for pem in &tls.ca_pem {
            let certificates = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| Failure::invalid(format!("http_client: opts.tls.ca: {e}")))?;
            if certificates.is_empty() {
                return Err(Failure::invalid("http_client: opts.tls.ca: no PEM certificate found"));
            }
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let client = builder
            .build()
            .map_err(|e| Failure::internal(format!("http_client: cannot build the client: {}", chain(&e))))?;
        self.clients.borrow_mut().insert(tls.clone(), client.clone());
        Ok(client)
    }

    fn runtime(&self) -> Result<&tokio::runtime::Runtime, Failure> {
        if let Some(runtime) = self.runtime.get() {
            return Ok(runtime);
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Failure::internal(format!("http_client: cannot start its runtime: {e}")))?;
        Ok(self.runtime.get_or_init(|| runtime))
    }
}

/// Resolves once `flag` is set; never without one.
async fn wait_for(flag: Option<Arc<AtomicBool>>) {
    let Some(flag) = flag else {
        return std::future::pending().await;
    };
    while !flag.load(Ordering::SeqCst) {
        tokio::time::sleep(CANCEL_POLL).await;
    }
}

fn canceled(label: &str) -> Failure {
    Failure::new(Kind::CANCELED, format!("{label}: canceled")).with_retryable(Some(false))
}

fn network_failure(label: &str, error: &reqwest::Error) -> Failure {
    let mut reason = if error.is_timeout() { "timed out".to_owned() } else { chain(error) };
    if let Some(url) = error.url() {
        // The label names the URL already.
        reason = reason.replace(&format!(" for url ({url})"), "");
    }
    Failure::new(Kind::INTERNAL, format!("{label}: {reason}")).with_retryable(Some(true))
}

/// An error and its sources, `outer: inner: ...`, skipping a source whose text is already there.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(e) = next {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

fn parse_method(value: &Value) -> Result<Method, Failure> {
    let Value::String(name) = value else {
        return Err(Failure::invalid(format!(
            "http_client.request: method must be a string, got {}",
            value.type_name()
        )));
    };
    let name = name.to_string_lossy().to_ascii_uppercase();
    Method::from_bytes(name.as_bytes())
        .map_err(|_| Failure::invalid(format!("http_client.request: invalid method {name:?}")))
}

impl Request {
    fn parse(method: Method, url: &Value, opts: &Value) -> Result<Request, Failure> {
        let Value::String(url) = url else {
            return Err(Failure::invalid(format!("http_client: url must be a string, got {}", url.type_name())));
        };
        let url = url.to_string_lossy();
        let url = Url::parse(&url).map_err(|e| Failure::invalid(format!("http_client: invalid url {url:?}: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Failure::invalid(format!("http_client: unsupported url scheme {:?}", url.scheme())));
        }
        let mut request = Request {
            method,
            url,
            headers: HeaderMap::new(),
            query: Vec::new(),
            body: None,
            form: None,
            auth: None,
            timeout: DEFAULT_TIMEOUT,
            tls: Tls::default(),
        };
        let opts = match opts {
            Value::Nil => return Ok(request),
            Value::Table(opts) => opts,
            other => {
                return Err(Failure::invalid(format!("http_client: opts must be a table, got {}", other.type_name())));
            }
        };
        for pair in opts.pairs::<Value, Value>() {
            let (key, value) = pair.map_err(|e| Failure::invalid(format!("http_client: opts: {e}")))?;
            let key = match &key {
                Value::String(s) => s.to_string_lossy(),
                other => {
                    return Err(Failure::invalid(format!(
                        "http_client: opts keys must be strings, got {}",
                        other.type_name()
                    )));
                }
            };
            request.set(&key, &value)?;
        }
        if request.body.is_some() && request.form.is_some() {
            return Err(Failure::invalid("http_client: opts.body and opts.form cannot both be given"));
        }
        Ok(request)
    }

    fn set(&mut self, key: &str, value: &Value) -> Result<(), Failure> {
        let path = format!("opts.{key}");
        match key {
            "headers" => {
                for (name, values) in string_map(&path, value)? {
                    let header = HeaderName::from_bytes(name.as_bytes())
                        .map_err(|_| Failure::invalid(format!("http_client: {path}: invalid header name {name:?}")))?;
                    for v in values {
                        let v = HeaderValue::from_str(&v).map_err(|_| {
                            Failure::invalid(format!("http_client: {path}.{name}: invalid header value"))
                        })?;
                        self.headers.append(header.clone(), v);
                    }
                }
            }
            "query" => self.query = flatten(string_map(&path, value)?),
            "form" => self.form = Some(flatten(string_map(&path, value)?)),
            "body" => match value {
                Value::Nil => {}
                value => {
                    self.body = Some(convert::bytes_or_string(value).ok_or_else(|| {
                        Failure::invalid(format!(
                            "http_client: {path} must be a string or bytes, got {}",
                            value.type_name()
                        ))
                    })?);
                }
            },
            "auth" => {
                let table = table(&path, value)?;
                let user = string_field(&table, &path, "user")?.unwrap_or_default();
                let pass = string_field(&table, &path, "pass")?.unwrap_or_default();
                self.auth = Some((user, pass));
            }
            "timeout" => self.timeout = timeout(&path, value)?,
            "tls" => self.tls = tls(&path, value)?,
            other => {
                return Err(Failure::invalid(format!("http_client: option {other:?} is not supported")));
            }
        }
        Ok(())
    }
}

fn table(path: &str, value: &Value) -> Result<Table, Failure> {
    match value {
        Value::Table(t) => Ok(t.clone()),
        other => Err(Failure::invalid(format!("http_client: {path} must be a table, got {}", other.type_name()))),
    }
}

/// A scalar as text: strings, numbers and booleans.
fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.to_string_lossy()),
        Value::Integer(i) => Some(i.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `{name = value | {values...}}` sorted by name, so requests do not depend on `pairs` order.
fn string_map(path: &str, value: &Value) -> Result<Vec<(String, Vec<String>)>, Failure> {
    let mut entries = Vec::new();
    for pair in table(path, value)?.pairs::<Value, Value>() {
        let (key, value) = pair.map_err(|e| Failure::invalid(format!("http_client: {path}: {e}")))?;
        let Some(key) = scalar(&key) else {
            return Err(Failure::invalid(format!("http_client: {path} keys must be strings")));
        };
        let values = match &value {
            Value::Table(list) => {
                list.sequence_values::<Value>().map(|v| v.ok().as_ref().and_then(scalar)).collect::<Option<Vec<_>>>()
            }
            other => scalar(other).map(|v| vec![v]),
        };
        let values = values.ok_or_else(|| {
            Failure::invalid(format!("http_client: {path}.{key} must be a string, a number or a list of them"))
        })?;
        entries.push((key, values));
    }
    entries.sort();
    Ok(entries)
}

fn flatten(map: Vec<(String, Vec<String>)>) -> Vec<(String, String)> {
    map.into_iter().flat_map(|(k, vs)| vs.into_iter().map(move |v| (k.clone(), v))).collect()
}

fn string_field(table: &Table, path: &str, key: &str) -> Result<Option<String>, Failure> {
    match table.raw_get::<Value>(key).unwrap_or(Value::Nil) {
        Value::Nil => Ok(None),
        Value::String(s) => Ok(Some(s.to_string_lossy())),
        other => {
            Err(Failure::invalid(format!("http_client: {path}.{key} must be a string, got {}", other.type_name())))
        }
    }
}

/// Seconds (a number) or a Go duration string; must be positive.
fn timeout(path: &str, value: &Value) -> Result<Duration, Failure> {
    let duration = match value {
        Value::Integer(i) => u64::try_from(*i).ok().map(Duration::from_secs),
        Value::Number(n) => Duration::try_from_secs_f64(*n).ok(),
        Value::String(s) => Some(
            tempest_duration::parse(&s.to_string_lossy())
                .map_err(|e| Failure::invalid(format!("http_client: {path}: {e}")))?,
        ),
        other => {
            return Err(Failure::invalid(format!(
                "http_client: {path} must be seconds or a duration string, got {}",
                other.type_name()
            )));
        }
    };
    duration.filter(|d| !d.is_zero()).ok_or_else(|| Failure::invalid(format!("http_client: {path} must be positive")))
}

fn tls(path: &str, value: &Value) -> Result<Tls, Failure> {
    let table = table(path, value)?;
    let mut tls = Tls::default();
    for pair in table.pairs::<String, Value>() {
        let (key, value) = pair.map_err(|e| Failure::invalid(format!("http_client: {path}: {e}")))?;
        match (key.as_str(), &value) {
            ("insecure_skip_verify", Value::Boolean(b)) => tls.insecure_skip_verify = *b,
            ("ca", Value::String(pem)) => tls.ca_pem.push(pem.as_bytes().to_vec()),
            ("ca_file", Value::String(file)) => {
                let file = file.to_string_lossy();
                let pem = std::fs::read(&file)
                    .map_err(|e| Failure::invalid(format!("http_client: {path}.ca_file {file:?}: {e}")))?;
                tls.ca_pem.push(pem);
            }
            ("insecure_skip_verify" | "ca" | "ca_file", other) => {
                return Err(Failure::invalid(format!("http_client: {path}.{key}: wrong type {}", other.type_name())));
            }
            (other, _) => {
                return Err(Failure::invalid(format!("http_client: {path}.{other} is not supported")));
            }
        }
    }
    // Sorted so equal settings share a client whatever the `pairs` order.
    tls.ca_pem.sort();
    Ok(tls)
}

impl Response {
    fn into_table(self, lua: &Lua, headers_meta: &Table) -> mlua::Result<Table> {
        let headers = lua.create_table()?;
        for name in self.headers.keys() {
            let joined = self
                .headers
                .get_all(name)
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .collect::<Vec<_>>()
                .join(", ");
            headers.raw_set(canonical(name.as_str()), joined)?;
        }
        headers.set_metatable(Some(headers_meta.clone()))?;
        let response = lua.create_table()?;
        response.raw_set("status_code", self.status_code)?;
        response.raw_set("body", lua.create_string(&self.body)?)?;
        response.raw_set("headers", headers)?;
        response.raw_set("url", self.url)?;
        Ok(response)
    }
}

/// Go's canonical header form: `content-type` → `Content-Type`.
fn canonical(name: &str) -> String {
    let mut upper = true;
    name.chars()
        .map(|c| {
            let out = if upper { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() };
            upper = c == '-';
            out
        })
        .collect()
}

/// Lets `headers["content-type"]` find `Content-Type`.
fn headers_metatable(lua: &Lua) -> mlua::Result<Table> {
    let meta = lua.create_table()?;
    let index = lua.create_function(|_, (headers, key): (Table, Value)| match key {
        Value::String(name) => headers.raw_get::<Value>(canonical(&name.to_string_lossy())),
        _ => Ok(Value::Nil),
    })?;
    meta.raw_set("__index", index)?;
    Ok(meta)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::mpsc;
    use std::time::Instant;

    use super::*;

    /// A one-thread HTTP/1.1 server on an ephemeral port. `/slow` answers after 600 ms,
    /// `/missing` is a 404, `/redirect` a 302 to `/final`; every response body is the request line,
    /// and every request's raw text is sent on `requests`.
    struct Stub {
        url: String,
        requests: mpsc::Receiver<String>,
    }

    fn stub() -> Stub {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (sender, requests) = mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                if serve(stream, &sender).is_err() {
                    return;
                }
            }
        });
        Stub { url, requests }
    }

    fn serve(mut stream: TcpStream, requests: &mpsc::Sender<String>) -> std::io::Result<()> {
        let mut raw = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                return Ok(());
            }
            raw.extend_from_slice(&chunk[..n]);
            if let Some(at) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
        };
        let head = String::from_utf8_lossy(&raw[..head_end]).to_ascii_lowercase();
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse::<usize>().unwrap());
        while raw.len() < head_end + length {
            let n = stream.read(&mut chunk)?;
            raw.extend_from_slice(&chunk[..n]);
        }
        let text = String::from_utf8_lossy(&raw).into_owned();
        let request_line = text.lines().next().unwrap_or_default().to_owned();
        let _ = requests.send(text);
        let path = request_line.split(' ').nth(1).unwrap_or_default();
        let (status, extra) = match path {
            "/missing" => ("404 Not Found", ""),
            "/redirect" => ("302 Found", "Location: /final\r\n"),
            "/slow" => {
                std::thread::sleep(Duration::from_millis(600));
                ("200 OK", "")
            }
            _ => ("200 OK", ""),
        };
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\nX-Multi: a\r\nX-Multi: b\r\n{extra}\r\n{request_line}",
            request_line.len()
        );
        stream.write_all(response.as_bytes())
    }

    fn lua_with(url: &str) -> Lua {
        let lua = Lua::new();
        lua.globals().set("http", register(&lua).unwrap()).unwrap();
        lua.globals().set("base", url).unwrap();
        lua
    }

    fn check(lua: &Lua, code: &str) {
        let result: mlua::Result<()> = lua.load(code).exec();
        if let Err(e) = result {
            panic!("{e}");
        }
    }

    #[test]
    fn get_with_query_and_headers() {
        let server = stub();
        let lua = lua_with(&server.url);
        check(
            &lua,
            r#"local r, err = http.get(base .. "/hello", {
                query = {b = 2, a = {"1", "x y"}},
                headers = {["X-Token"] = "t", ["X-Two"] = {"1", "2"}},
            })
            assert(err == nil, tostring(err))
            assert(r.status_code == 200)
            assert(r.body == "GET /hello?a=1&a=x+y&b=2 HTTP/1.1", r.body)
            assert(r.url == base .. "/hello?a=1&a=x+y&b=2", r.url)
            assert(r.headers["X-Multi"] == "a, b", r.headers["X-Multi"])
            assert(r.headers["x-multi"] == "a, b" and r.headers["Content-Length"] == "33")"#,
        );
        let sent = server.requests.recv().unwrap().to_ascii_lowercase();
        assert!(sent.contains("\r\nx-token: t\r\n"), "{sent}");
        assert!(sent.contains("\r\nx-two: 1\r\nx-two: 2\r\n"), "{sent}");
    }

    #[test]
    fn post_form_and_body() {
        let server = stub();
        let lua = lua_with(&server.url);
        check(
            &lua,
            r#"local r, err = http.post(base .. "/form", {form = {name = "a b", n = 1}})
            assert(err == nil and r.status_code == 200, tostring(err))
            r, err = http.request("put", base .. "/raw", {body = "raw\0data", headers = {["Content-Type"] = "text/plain"}})
            assert(err == nil and r.body == "PUT /raw HTTP/1.1", tostring(err))"#,
        );
        let form = server.requests.recv().unwrap();
        assert!(form.to_ascii_lowercase().contains("content-type: application/x-www-form-urlencoded"), "{form}");
        assert!(form.ends_with("\r\n\r\nn=1&name=a+b"), "{form}");
        let raw = server.requests.recv().unwrap();
        assert!(raw.to_ascii_lowercase().contains("content-type: text/plain"), "{raw}");
        assert!(raw.ends_with("\r\n\r\nraw\0data"), "{raw}");
    }

    #[test]
    fn status_404_and_redirects_are_responses() {
        let server = stub();
        let lua = lua_with(&server.url);
        check(
            &lua,
            r#"local r, err = http.get(base .. "/missing")
            assert(err == nil and r.status_code == 404 and r.body == "GET /missing HTTP/1.1")
            r, err = http.head(base .. "/missing")
            assert(err == nil and r.status_code == 404 and r.body == "")
            r, err = http.get(base .. "/redirect")
            assert(err == nil and r.status_code == 200 and r.url == base .. "/final", r.url)"#,
        );
    }

    #[test]
    fn connection_refused_is_internal_and_retryable() {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let lua = lua_with(&format!("http://127.0.0.1:{port}"));
        check(
            &lua,
            r#"local r, err = http.delete(base .. "/x")
            assert(r == nil and err:kind() == "Internal" and err:retryable() == true)
            assert(err:message():find("^http_client: DELETE " .. base .. "/x: error sending request: .*Connection refused"), err:message())"#,
        );
    }

    #[test]
    fn timeout_is_internal_and_retryable() {
        let server = stub();
        let lua = lua_with(&server.url);
        let started = Instant::now();
        check(
            &lua,
            r#"for _, timeout in ipairs({"150ms", 0.15}) do
                local r, err = http.get(base .. "/slow", {timeout = timeout})
                assert(r == nil and err:kind() == "Internal" and err:retryable() == true)
                assert(err:message() == "http_client: GET " .. base .. "/slow: timed out", err:message())
            end"#,
        );
        assert!(started.elapsed() < Duration::from_millis(1000), "{:?}", started.elapsed());
    }

    #[test]
    fn basic_auth_header_is_sent() {
        let server = stub();
        let lua = lua_with(&server.url);
        check(
            &lua,
            r#"local r, err = http.get(base .. "/auth", {auth = {user = "u", pass = "p"}})
            assert(err == nil and r.status_code == 200)"#,
        );
        let sent = server.requests.recv().unwrap().to_ascii_lowercase();
        assert!(sent.contains("\r\nauthorization: basic dtpw\r\n"), "{sent}");
    }

    #[test]
    fn bad_arguments_are_invalid() {
        let lua = lua_with("http://127.0.0.1:9");
        check(
            &lua,
            r#"local function invalid(text, f, ...)
                local r, err = f(...)
                assert(r == nil and err:kind() == "Invalid" and err:retryable() == false, text .. ": " .. tostring(err))
                assert(err:message():find(text, 1, true), err:message())
            end
            invalid("url must be a string", http.get, 42)
            invalid("unsupported url scheme", http.get, "ftp://x/")
            invalid("invalid url", http.get, "not a url")
            invalid("opts must be a table", http.get, base, "x")
            invalid("opts.timeout must be positive", http.get, base, {timeout = -1})
            invalid("opts.timeout", http.get, base, {timeout = "soon"})
            invalid('option "files" is not supported', http.get, base, {files = {}})
            invalid("opts.tls.server_name is not supported", http.get, base, {tls = {server_name = "x"}})
            invalid("tls.ca", http.get, base, {tls = {ca = "not pem"}})
            invalid("cannot both be given", http.post, base, {body = "a", form = {}})
            invalid("opts.body must be a string or bytes", http.post, base, {body = {}})
            invalid("invalid header name", http.get, base, {headers = {["bad name"] = "x"}})
            invalid("invalid method", http.request, "BAD METHOD", base)"#,
        );
    }

    #[test]
    fn cancellation_fails_new_and_in_flight_requests() {
        let server = stub();
        let lua = lua_with(&server.url);
        let flag = Arc::new(AtomicBool::new(true));
        lua.set_app_data(Cancellation(flag.clone()));
        let canceled = r#"local r, err = http.get(base .. "/slow", {timeout = 5})
            assert(r == nil and err:kind() == "Canceled", tostring(err))"#;
        check(&lua, canceled);
        flag.store(false, Ordering::SeqCst);
        let setter = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            flag.store(true, Ordering::SeqCst);
        });
        let started = Instant::now();
        check(&lua, canceled);
        assert!(started.elapsed() < Duration::from_millis(500), "{:?}", started.elapsed());
        setter.join().unwrap();
    }

    #[test]
    fn activities_can_require_it() {
        use crate::activity::{ActivityVm, FunctionCatalog, FunctionCode};
        use crate::convert::Data;
        let server = stub();
        let source = r#"local http = require("http_client")
            return { run = function(base)
                local r, err = http.get(base .. "/ping")
                if err then return nil, err end
                return { status = r.status_code, body = r.body }
            end }"#;
        let mut vm = ActivityVm::new(FunctionCatalog::new([FunctionCode {
            entry_id: "app:fetch".into(),
            chunk_name: "fetch.lua".into(),
            source: source.into(),
            method: "run".into(),
            modules: vec!["http_client".into()],
        }]))
        .unwrap();
        let result = vm.call("app:fetch", &[Data::Json(serde_json::json!(server.url))], None);
        assert_eq!(result, Ok(Data::Json(serde_json::json!({"status": 200, "body": "GET /ping HTTP/1.1"}))));
    }
}

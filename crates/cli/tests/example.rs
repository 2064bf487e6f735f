//! The seed's order example, as a user runs it: `tempest run examples/orders` and
//! `temporal workflow execute`, with the payment activity calling an HTTP stub.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;

use common::{Tempest, assert_replays, cli};
use serde_json::{Value, json};

/// Answers every POST with a fixed transaction and forwards the request bodies.
fn payment_stub() -> (String, mpsc::Receiver<Value>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind stub");
    let url = format!("http://{}/charge", listener.local_addr().expect("addr"));
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let _ = sender.send(serde_json::from_slice(&body).unwrap_or(Value::Null));
            let reply = r#"{"transaction_id": "txn-stub-42"}"#;
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                reply.len()
            );
        }
    });
    (url, receiver)
}

#[test]
fn orders_example_runs_end_to_end() {
    let (url, requests) = payment_stub();
    let dir = tempest_testkit::workspace_root().join("examples/orders");
    let log = tempfile::NamedTempFile::new().expect("log");
    let _tempest = Tempest::start(&dir, log.path());
    let input = json!({"order_id": "o-7", "amount": 12.5, "payment_url": url, "confirm_after": "1s"}).to_string();
    let out = cli(&[
        "workflow",
        "execute",
        "--type",
        "app:order_workflow",
        "--task-queue",
        "orders",
        "--workflow-id",
        "orders-example-1",
        "--input",
        &input,
        "-o",
        "json",
    ])
    .expect_success();
    let result: Value = serde_json::from_str(&out.stdout).expect("json");
    let result = &result["result"];
    assert_eq!(result["order_id"], json!("o-7"));
    assert_eq!(result["status"], json!("completed"));
    assert_eq!(result["transaction_id"], json!("txn-stub-42"));
    assert_eq!(result["amount"], json!(12.5));
    assert!(result["confirmed_at"].as_str().is_some_and(|t| t.ends_with('Z')), "{result}");
    let charged = requests.recv_timeout(std::time::Duration::from_secs(5)).expect("the stub was called");
    assert_eq!(charged, json!({"order_id": "o-7", "amount": 12.5}));
    assert_replays(&dir, "orders-example-1");
}

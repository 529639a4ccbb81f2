//! The `mock-apns` process starts, hands out its team key and certificate,
//! and logs the pushes it answers (the API tests rely on all three).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn mock_apns_serves_and_logs_what_it_answers() {
    let dir = tempfile::tempdir().unwrap();
    let (key, ca, log) = (
        dir.path().join("key.p8"),
        dir.path().join("ca.pem"),
        dir.path().join("pushes.ndjson"),
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_mock-apns"))
        .args([
            "--team-id",
            "T1",
            "--key-id",
            "K1",
            "--topic",
            "com.example.app",
        ])
        .arg("--key-out")
        .arg(&key)
        .arg("--ca-out")
        .arg(&ca)
        .arg("--log")
        .arg(&log)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.trim().strip_prefix("listening ").unwrap().to_owned();
    assert!(url.starts_with("https://127.0.0.1:"), "{line}");
    let key_pem = std::fs::read_to_string(&key).unwrap();
    assert!(key_pem.contains("BEGIN PRIVATE KEY"));
    assert!(std::fs::read_to_string(&ca)
        .unwrap()
        .contains("BEGIN CERTIFICATE"));
    // A push without a provider token is refused and logged as such.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = rt.block_on(async {
        let ca = reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap();
        let client = reqwest::Client::builder()
            .add_root_certificate(ca)
            .http2_prior_knowledge()
            .build()
            .unwrap();
        client
            .post(format!("{url}/3/device/abcd"))
            .header("apns-topic", "com.example.app")
            .header("apns-push-type", "alert")
            .body(r#"{"aps":{"alert":"hi"}}"#)
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(status.as_u16(), 403);
    let mut logged = String::new();
    for _ in 0..50 {
        logged = std::fs::read_to_string(&log).unwrap_or_default();
        if !logged.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    child.kill().unwrap();
    let _ = child.wait();
    let push: serde_json::Value = serde_json::from_str(logged.lines().next().unwrap()).unwrap();
    assert_eq!(push["reason"], "MissingProviderToken");
    assert_eq!(push["device_token"], "abcd");
}

//! `mock-fcm`: the mock FCM (HTTP v1 API and its token endpoint) as a
//! process, for the API tests. Prints `listening http://127.0.0.1:PORT`
//! once it serves, writes a matching service account JSON to
//! `--service-json-out` (project `--project`), and appends every send it
//! answers to `--log` as one JSON line.
//!
//! mock-fcm --service-json-out sa.json [--project herald-test] [--listen 127.0.0.1:0] [--log sent.ndjson]

use std::io::Write;

use herald_peers::fcm::{service_json, MockFcm};

use herald_peers::arg;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let listen = arg(&args, "--listen").unwrap_or_else(|| "127.0.0.1:0".into());
    let mock = MockFcm::start(listen.parse()?).await?;
    let project = arg(&args, "--project").unwrap_or_else(|| "herald-test".into());
    if let Some(out) = arg(&args, "--service-json-out") {
        std::fs::write(out, service_json(&project, &mock.token_url()))?;
    }
    println!("listening {}", mock.url());
    std::io::stdout().flush()?;
    let log = arg(&args, "--log");
    herald_peers::append_log_forever(log, || mock.sent()).await
}

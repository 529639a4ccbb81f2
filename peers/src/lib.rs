//! Local peers for herald's tests and benchmarks, started on loopback: a
//! mock APNs (`apns`), a mock FCM with its OAuth2 token endpoint (`fcm`)
//! and an SMPP 3.4 SMSC simulator (`smsc`). Contract: each speaks the
//! provider's real protocol (HTTP/2 over TLS for APNs, SMPP over TCP for
//! the SMSC), checks requests as the provider documents and records what
//! it accepted; scripted failures are chosen by the request itself (e.g. a
//! device token's prefix, a destination number's last digits) so tests
//! stay deterministic. Never used by the herald binary.

pub mod apns;
pub mod fcm;
pub mod smsc;

/// For a peer process: appends what `records` holds beyond what was written
/// before to `path` as JSON lines, every 100 ms, for ever (or just waits
/// when there is no log).
pub async fn append_log_forever<T: serde::Serialize>(
    path: Option<String>,
    records: impl Fn() -> Vec<T>,
) -> anyhow::Result<()> {
    use std::io::Write;
    let mut written = 0;
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let Some(path) = &path else { continue };
        let all = records();
        if all.len() > written {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?;
            for r in &all[written..] {
                writeln!(f, "{}", serde_json::to_string(r)?)?;
            }
            written = all.len();
        }
    }
}

/// The value after `--name` on a peer process's command line.
pub fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

//! Local peers for herald's tests and benchmarks, started on loopback: a
//! mock APNs (`apns`) and a mock FCM with its OAuth2 token endpoint (`fcm`). Contract: each speaks the provider's real protocol
//! (HTTP/2 over TLS for APNs), checks requests as the provider documents
//! and records what it accepted; scripted failures are chosen by the
//! request itself (e.g. a device token's prefix) so tests stay
//! deterministic. Never used by the herald binary.

pub mod apns;
pub mod fcm;

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

//! APNs push throughput: herald's APNs client (HTTP/2 over TLS, token auth)
//! pushing to the mock APNs on loopback over one and four connections,
//! against h2load (Debian `nghttp2-client`) sending the same requests to the
//! same mock, with the same connections and streams, in the same run.
//!
//! The mock advertises a concurrent-stream limit as APNs does
//! (`SETTINGS_MAX_CONCURRENT_STREAMS`, 1000 here) and counts the requests
//! it has in flight: more than the limit would be a protocol violation, and
//! the run reports the most it saw. Bounded: `HERALD_BENCH_PUSHES` pushes
//! per measurement (default 100000). Goal (issue 7): >= 25,000 pushes/s
//! over <= 4 connections and >= 0.3 of h2load.

#![allow(clippy::disallowed_methods)] // benchmarks measure real time

use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use herald_channels::apns::{provider_jwt, ApnsAuth, ApnsClient, ApnsConfig, OutgoingPush};
use herald_model::push::{apns_push, ApnsMessage};
use herald_peers::apns::{MockApns, MockApnsConfig};
use ring::signature::KeyPair;

const TEAM: &str = "BENCHTEAM1";
const KEY_ID: &str = "BENCHKEY01";
const TOPIC: &str = "com.example.bench";
const STREAMS: u32 = 1000;
const DEVICE: &str = "00fe00fe00fe00fe00fe00fe00fe00fe00fe00fe00fe00fe00fe00fe00fe00fe";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64
}

fn message() -> ApnsMessage {
    ApnsMessage {
        title: Some("Your order shipped".into()),
        body: Some("Order 1234 is on its way and arrives on Tuesday.".into()),
        badge: Some(1),
        sound: Some("default".into()),
        ..Default::default()
    }
}

async fn herald_client(mock: &MockApns, key_pem: &str, connections: usize, total: usize) -> f64 {
    let mut cfg = ApnsConfig::new(&mock.url());
    cfg.ca_pem = Some(mock.ca_pem().as_bytes().to_vec());
    cfg.connections = connections;
    cfg.streams_per_connection = STREAMS as usize;
    let client = Arc::new(
        ApnsClient::new(cfg, ApnsAuth::token(key_pem, KEY_ID, TEAM).expect("key")).expect("client"),
    );
    let push = apns_push(&message(), false, now()).expect("push");
    let one = |n: usize| OutgoingPush {
        message_id: format!("{n:032x}"),
        app_id: "bench".into(),
        device_token: DEVICE.into(),
        topic: TOPIC.into(),
        push: push.clone(),
    };
    // Warm the connections up.
    for n in 0..connections * 4 {
        client.send(&one(n), now()).await.expect("warm-up push");
    }
    let in_flight = connections * STREAMS as usize;
    let started = Instant::now();
    let t = now();
    let failed = futures::stream::iter(0..total)
        .map(|n| {
            let (c, p) = (client.clone(), one(n));
            async move { c.send(&p, t).await.is_err() }
        })
        .buffer_unordered(in_flight)
        .filter(|failed| std::future::ready(*failed))
        .count()
        .await;
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(failed, 0, "pushes failed");
    total as f64 / secs
}

/// h2load's requests/s for the same push, or why it could not run.
fn h2load(
    mock: &MockApns,
    jwt: &str,
    payload: &[u8],
    connections: usize,
    total: usize,
) -> Result<f64, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let body = dir.path().join("payload.json");
    std::fs::write(&body, payload).map_err(|e| e.to_string())?;
    let out = Command::new("h2load")
        .args(["-n", &total.to_string(), "-c", &connections.to_string()])
        .args(["-m", &STREAMS.to_string(), "-t", "1"])
        .args(["-H", &format!("apns-topic: {TOPIC}")])
        .args(["-H", "apns-push-type: alert"])
        .args(["-H", "apns-priority: 10"])
        .args(["-H", &format!("authorization: bearer {jwt}")])
        .arg("-d")
        .arg(&body)
        .arg(format!("{}/3/device/{DEVICE}", mock.url()))
        .output()
        .map_err(|e| format!("h2load did not start ({e}); `make bench` installs nghttp2-client"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("finished in"))
        .ok_or_else(|| format!("h2load printed no result: {text}"))?;
    let ok = text
        .lines()
        .find(|l| l.starts_with("status codes:"))
        .is_some_and(|l| l.contains(&format!("{total} 2xx")));
    if !ok {
        return Err(format!("h2load's requests were not all accepted: {text}"));
    }
    // "finished in 1.23s, 81234.56 req/s, 12.34MB/s"
    line.split(", ")
        .nth(1)
        .and_then(|s| s.strip_suffix(" req/s"))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("unreadable h2load line: {line}"))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let total: usize = std::env::var("HERALD_BENCH_PUSHES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let key_pem = key.serialize_pem();
    let ring_key = ring::signature::EcdsaKeyPair::from_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &key.serialize_der(),
        &ring::rand::SystemRandom::new(),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    // The mock runs on its own OS thread and runtime, as a separate
    // process would: herald's client and h2load each compete with it
    // for the same two cores.
    let public = ring_key.public_key().as_ref().to_vec();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("the mock's runtime");
        rt.block_on(async move {
            let mock = MockApns::start(
                "127.0.0.1:0".parse().expect("an address"),
                MockApnsConfig {
                    max_concurrent_streams: STREAMS,
                    token: Some((TEAM.into(), KEY_ID.into(), public)),
                    topic: Some(TOPIC.into()),
                    client_ca_pem: None,
                    record: false,
                },
            )
            .await;
            let _ = tx.send(mock);
            std::future::pending::<()>().await;
        });
    });
    let mock = rx.recv()??;
    let jwt = provider_jwt(&ring_key, KEY_ID, TEAM, now()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let payload = apns_push(&message(), false, now())
        .map_err(|e| anyhow::anyhow!("{}", e.0))?
        .payload;
    println!(
        "APNs pushes of {} bytes to a mock APNs on loopback (TLS, token auth, {STREAMS} streams advertised), {total} per run",
        payload.len()
    );
    for connections in [1usize, 4] {
        let baseline = h2load(&mock, &jwt, &payload, connections, total);
        let before = mock.accepted();
        mock.reset_in_flight_max();
        let herald = herald_client(&mock, &key_pem, connections, total).await;
        let accepted = mock.accepted() - before;
        let most = mock.in_flight_max();
        match baseline {
            Ok(b) => println!(
                "{connections} connection(s): herald {herald:.0} pushes/s, h2load {b:.0} req/s, ratio {:.2}",
                herald / b
            ),
            Err(e) => println!("{connections} connection(s): herald {herald:.0} pushes/s; no baseline: {e}"),
        }
        println!(
            "  herald's most requests in flight on one connection: {most} (limit {STREAMS}); beyond the limit: {}",
            most.saturating_sub(STREAMS as usize)
        );
        assert!(
            accepted >= total as u64,
            "the mock accepted {accepted} of {total}"
        );
    }
    Ok(())
}

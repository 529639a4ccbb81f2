//! The webhook transport against a local HTTP receiver that checks the
//! signature itself, as a user's endpoint would.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald_channels::smtp::SendError;
use herald_channels::webhook::WebhookClient;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const SECRET: &[u8] = b"webhook-test-secret";

#[derive(Debug, Clone)]
struct Received {
    path: String,
    timestamp: String,
    signature: String,
    body: Vec<u8>,
}

/// Answers 204 on `/ok`, 503 on `/busy`, 410 on anything else.
async fn start_receiver() -> (u16, Arc<Mutex<Vec<Received>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let g = g.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let header = |name: &str| {
                    head.lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
                        })
                        .unwrap_or_default()
                };
                let len: usize = header("content-length").parse().unwrap_or(0);
                while buf.len() < head_end + len {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let path = head.split_whitespace().nth(1).unwrap_or("").to_owned();
                let status = match path.as_str() {
                    "/ok" => "204 No Content",
                    "/busy" => "503 Service Unavailable",
                    _ => "410 Gone",
                };
                g.lock().unwrap().push(Received {
                    path,
                    timestamp: header("x-herald-timestamp"),
                    signature: header("x-herald-signature"),
                    body: buf[head_end..].to_vec(),
                });
                let resp =
                    format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                let _ = sock.write_all(resp.as_bytes()).await;
            });
        }
    });
    (port, got)
}

fn expected_signature(timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET).unwrap();
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test]
async fn posts_are_signed_and_outcomes_classified() {
    let (port, got) = start_receiver().await;
    let c = WebhookClient::new(SECRET.to_vec(), Duration::from_secs(5), None).unwrap();
    let body = br#"{"Message":"hello","EndpointId":"ep-1"}"#.to_vec();
    let base = format!("http://127.0.0.1:{port}");

    assert_eq!(
        c.post(&format!("{base}/ok"), body.clone(), 1_764_410_400)
            .await,
        Ok(204)
    );
    match c
        .post(&format!("{base}/busy"), body.clone(), 1_764_410_401)
        .await
    {
        Err(SendError::Temporary {
            code: Some(503), ..
        }) => {}
        other => panic!("want a temporary 503, got {other:?}"),
    }
    match c
        .post(&format!("{base}/gone"), body.clone(), 1_764_410_402)
        .await
    {
        Err(SendError::Permanent { code: 410, .. }) => {}
        other => panic!("want a permanent 410, got {other:?}"),
    }

    let got = got.lock().unwrap().clone();
    assert_eq!(got.len(), 3);
    let ok = &got[0];
    assert_eq!(ok.path, "/ok");
    assert_eq!(ok.body, body);
    assert_eq!(ok.timestamp, "1764410400");
    assert_eq!(ok.signature, expected_signature(&ok.timestamp, &ok.body));
    // A body changed in transit no longer matches its signature.
    assert_ne!(ok.signature, expected_signature(&ok.timestamp, b"{}"));
}

#[tokio::test]
async fn a_receiver_that_is_down_is_a_temporary_failure() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let c = WebhookClient::new(SECRET.to_vec(), Duration::from_secs(2), None).unwrap();
    match c
        .post(&format!("http://127.0.0.1:{port}/ok"), b"{}".to_vec(), 1)
        .await
    {
        Err(SendError::Temporary { code: None, .. }) => {}
        other => panic!("want a temporary failure, got {other:?}"),
    }
    match c.post("ftp://127.0.0.1/x", b"{}".to_vec(), 1).await {
        Err(SendError::Invalid(_)) => {}
        other => panic!("want Invalid, got {other:?}"),
    }
}

#[tokio::test]
async fn https_receivers_are_verified_against_the_configured_ca() {
    let (acceptor, pem) = common::tls_identity();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let bodies = Arc::new(Mutex::new(Vec::<Vec<u8>>::new()));
    let b = bodies.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let (acceptor, b) = (acceptor.clone(), b.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(sock).await else {
                    return;
                };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.ends_with(b"}") {
                    match tls.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                b.lock().unwrap().push(buf);
                let _ = tls
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    let url = format!("https://127.0.0.1:{port}/hook");
    let trusting = WebhookClient::new(
        SECRET.to_vec(),
        Duration::from_secs(5),
        Some(pem.as_bytes()),
    )
    .unwrap();
    assert_eq!(
        trusting.post(&url, br#"{"a":1}"#.to_vec(), 1).await,
        Ok(200)
    );
    // Without the CA the receiver's certificate is refused before any body.
    let other = WebhookClient::new(SECRET.to_vec(), Duration::from_secs(5), None).unwrap();
    match other.post(&url, br#"{"b":2}"#.to_vec(), 2).await {
        Err(SendError::Temporary { code: None, .. }) | Err(SendError::Permanent { .. }) => {}
        other => panic!("want a refused certificate, got {other:?}"),
    }
    let got = bodies.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "only the verified POST arrived");
    assert!(got[0].ends_with(br#"{"a":1}"#));
}

//! The APNs client against the mock APNs (HTTP/2 over TLS on loopback):
//! what Apple receives, provider tokens and their renewal, the answers that
//! kill a device token, retryable refusals, the concurrent-stream limit and
//! certificate auth.

use std::sync::Arc;

use herald_channels::apns::{self, ApnsAuth, ApnsClient, ApnsConfig, OutgoingPush};
use herald_channels::smtp::SendError;
use herald_model::push::{apns_push, ApnsMessage};
use herald_peers::apns::{MockApns, MockApnsConfig};
use ring::signature::KeyPair;

const TEAM: &str = "TEAM123456";
const KEY_ID: &str = "KEY1234567";
const TOPIC: &str = "com.example.app";
const NOW: i64 = 1_800_000_000;

/// A P-256 key as a `.p8` PEM, and its public point.
fn team_key() -> (String, Vec<u8>) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let pem = key.serialize_pem();
    let der = key.serialize_der();
    let ring_key = ring::signature::EcdsaKeyPair::from_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &der,
        &ring::rand::SystemRandom::new(),
    )
    .unwrap();
    (pem, ring_key.public_key().as_ref().to_vec())
}

async fn mock(streams: u32, public: &[u8]) -> MockApns {
    MockApns::start(
        "127.0.0.1:0".parse().unwrap(),
        MockApnsConfig {
            max_concurrent_streams: streams,
            token: Some((TEAM.into(), KEY_ID.into(), public.to_vec())),
            topic: Some(TOPIC.into()),
            client_ca_pem: None,
            record: true,
        },
    )
    .await
    .unwrap()
}

fn client(mock: &MockApns, key_pem: &str, connections: usize) -> ApnsClient {
    let mut cfg = ApnsConfig::new(&mock.url());
    cfg.ca_pem = Some(mock.ca_pem().as_bytes().to_vec());
    cfg.connections = connections;
    ApnsClient::new(cfg, ApnsAuth::token(key_pem, KEY_ID, TEAM).unwrap()).unwrap()
}

fn push(n: u32, device_token: &str) -> OutgoingPush {
    let msg = ApnsMessage {
        title: Some("Hello".into()),
        body: Some(format!("message {n}")),
        badge: Some(1),
        time_to_live: Some(3600),
        collapse_id: Some("greeting".into()),
        ..Default::default()
    };
    OutgoingPush {
        message_id: format!("{n:032x}"),
        app_id: "app".into(),
        device_token: device_token.into(),
        topic: TOPIC.into(),
        push: apns_push(&msg, false, NOW).unwrap(),
    }
}

const DEVICE: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

#[tokio::test]
async fn a_push_reaches_apns_with_its_headers_payload_and_a_valid_token() {
    let (key, public) = team_key();
    let mock = mock(100, &public).await;
    let c = client(&mock, &key, 1);
    let answer = c.send(&push(7, DEVICE), NOW).await.unwrap();
    assert_eq!(answer, "200 apns-id 00000000-0000-0000-0000-000000000007");
    let seen = mock.pushes();
    assert_eq!(seen.len(), 1);
    let p = &seen[0];
    assert_eq!(p.status, 200);
    assert_eq!(p.device_token, DEVICE);
    assert_eq!(p.topic, TOPIC);
    assert_eq!(p.push_type, "alert");
    assert_eq!(p.priority.as_deref(), Some("10"));
    assert_eq!(p.expiration.as_deref(), Some(&*(NOW + 3600).to_string()));
    assert_eq!(p.collapse_id.as_deref(), Some("greeting"));
    assert_eq!(p.token_issued_at, Some(NOW));
    assert_eq!(p.payload["aps"]["alert"]["body"], "message 7");
    assert_eq!(p.payload["aps"]["badge"], 1);
}

#[tokio::test]
async fn the_provider_token_is_reused_then_renewed_and_renewed_when_refused_as_expired() {
    let (key, public) = team_key();
    let mock = mock(100, &public).await;
    let c = client(&mock, &key, 1);
    c.send(&push(1, DEVICE), NOW).await.unwrap();
    c.send(&push(2, DEVICE), NOW + 600).await.unwrap();
    c.send(&push(3, DEVICE), NOW + apns::TOKEN_RENEW_SECS)
        .await
        .unwrap();
    let issued: Vec<_> = mock.pushes().iter().map(|p| p.token_issued_at).collect();
    assert_eq!(
        issued,
        [Some(NOW), Some(NOW), Some(NOW + apns::TOKEN_RENEW_SECS)]
    );
    // APNs calls the cached token expired (e.g. a clock ahead of ours): the
    // push is refused as temporary and the next one carries a new token.
    let renewed_at = NOW + apns::TOKEN_RENEW_SECS;
    mock.expire_tokens_before(renewed_at + 1);
    let refused = c.send(&push(4, DEVICE), renewed_at + 60).await.unwrap_err();
    assert!(refused.is_retryable(), "{refused:?}");
    c.send(&push(4, DEVICE), renewed_at + 61).await.unwrap();
    assert_eq!(
        mock.pushes().last().unwrap().token_issued_at,
        Some(renewed_at + 61)
    );
}

#[tokio::test]
async fn dead_device_tokens_are_permanent_failures_that_name_them_dead() {
    let (key, public) = team_key();
    let mock = mock(100, &public).await;
    let c = client(&mock, &key, 1);
    for (token, code) in [("dead0001", 410), ("bad00001", 400)] {
        match c.send(&push(1, token), NOW).await {
            Err(SendError::Permanent { code: got, message }) => {
                assert_eq!(got, code);
                assert!(apns::is_dead_token(got, &message), "{message}");
            }
            other => panic!("{token}: {other:?}"),
        }
    }
    // Not hex: refused before anything is sent, as a dead token.
    match c.send(&push(1, "not-a-token"), NOW).await {
        Err(SendError::Permanent { code, message }) => assert!(apns::is_dead_token(code, &message)),
        other => panic!("{other:?}"),
    }
    assert_eq!(mock.pushes().len(), 2);
}

#[tokio::test]
async fn throttling_and_unavailability_are_temporary() {
    let (key, public) = team_key();
    let mock = mock(100, &public).await;
    let c = client(&mock, &key, 1);
    for _ in 0..2 {
        let e = c.send(&push(1, "c4290001"), NOW).await.unwrap_err();
        assert!(
            matches!(
                e,
                SendError::Temporary {
                    code: Some(429),
                    ..
                }
            ),
            "{e:?}"
        );
    }
    c.send(&push(1, "c4290001"), NOW).await.unwrap();
    let e = c.send(&push(2, "c5030001"), NOW).await.unwrap_err();
    assert!(
        matches!(
            e,
            SendError::Temporary {
                code: Some(503),
                ..
            }
        ),
        "{e:?}"
    );
    c.send(&push(2, "c5030001"), NOW).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_more_streams_than_apns_advertises_are_opened() {
    let (key, public) = team_key();
    let mock = mock(8, &public).await;
    let c = Arc::new(client(&mock, &key, 1));
    let sends: Vec<_> = (0..400u32)
        .map(|n| {
            let c = c.clone();
            tokio::spawn(async move { c.send(&push(n, DEVICE), NOW).await })
        })
        .collect();
    for s in sends {
        s.await.unwrap().unwrap();
    }
    assert_eq!(mock.accepted(), 400);
    let most = mock.in_flight_max();
    assert!(most <= 8, "{most} requests in flight over a limit of 8");
    assert!(most >= 2, "the requests did not run concurrently ({most})");
}

#[tokio::test]
async fn certificate_auth_presents_the_client_certificate() {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = params.self_signed(&ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["com.example.app".into()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    let mock = MockApns::start(
        "127.0.0.1:0".parse().unwrap(),
        MockApnsConfig {
            max_concurrent_streams: 10,
            token: None,
            topic: Some(TOPIC.into()),
            client_ca_pem: Some(ca.pem()),
            record: true,
        },
    )
    .await
    .unwrap();
    let mut cfg = ApnsConfig::new(&mock.url());
    cfg.ca_pem = Some(mock.ca_pem().as_bytes().to_vec());
    let auth = ApnsAuth::certificate(&leaf.pem(), &leaf_key.serialize_pem()).unwrap();
    let c = ApnsClient::new(cfg.clone(), auth).unwrap();
    c.send(&push(1, DEVICE), NOW).await.unwrap();
    assert_eq!(mock.accepted(), 1);
    // Without the certificate the TLS handshake is refused: nothing sent.
    let (key, _) = team_key();
    let anonymous = ApnsClient::new(cfg, ApnsAuth::token(&key, KEY_ID, TEAM).unwrap()).unwrap();
    let refused = anonymous.send(&push(2, DEVICE), NOW).await;
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(mock.accepted(), 1);
}

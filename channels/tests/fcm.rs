//! The FCM client against the mock FCM on loopback: the OAuth2 grant and
//! its reuse, what FCM receives, dead registration tokens, Retry-After on
//! throttling, and a refused access token renewed.

use herald_channels::fcm::{self, FcmClient, FcmConfig, ServiceAccount};
use herald_channels::smtp::SendError;
use herald_model::push::{fcm_body, GcmMessage};
use herald_peers::fcm::{service_json, MockFcm};

const NOW: i64 = 1_800_000_000;

async fn setup() -> (MockFcm, FcmClient) {
    let mock = MockFcm::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let account = ServiceAccount::from_json(&service_json("proj-1", &mock.token_url())).unwrap();
    let cfg = FcmConfig {
        base_url: mock.url(),
        ..FcmConfig::default()
    };
    let client = FcmClient::new(cfg, account).unwrap();
    (mock, client)
}

fn body(token: &str) -> Vec<u8> {
    let m = GcmMessage {
        title: Some("Hello".into()),
        body: Some("World".into()),
        ..Default::default()
    };
    fcm_body(&m, token).unwrap()
}

#[tokio::test]
async fn a_message_reaches_fcm_with_one_grant_reused() {
    let (mock, c) = setup().await;
    let answer = c.send(&body("tok-1"), NOW).await.unwrap();
    assert_eq!(answer, "200 projects/proj-1/messages/1");
    c.send(&body("tok-2"), NOW + 60).await.unwrap();
    assert_eq!(mock.grants(), 1, "the access token is reused");
    let sent = mock.sent();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].project, "proj-1");
    assert_eq!(sent[0].message["notification"]["title"], "Hello");
    assert_eq!(sent[0].message["token"], "tok-1");
    // Near its expiry the token is fetched anew.
    c.send(&body("tok-3"), NOW + 3600).await.unwrap();
    assert_eq!(mock.grants(), 2);
}

#[tokio::test]
async fn a_refused_access_token_is_renewed_on_the_next_try() {
    let (mock, c) = setup().await;
    c.send(&body("tok-1"), NOW).await.unwrap();
    mock.revoke_tokens();
    let e = c.send(&body("tok-1"), NOW + 1).await.unwrap_err();
    assert!(e.is_retryable(), "{e:?}");
    c.send(&body("tok-1"), NOW + 2).await.unwrap();
    assert_eq!(mock.grants(), 2);
}

#[tokio::test]
async fn unregistered_tokens_are_dead_and_throttling_says_when_to_retry() {
    let (_mock, c) = setup().await;
    match c.send(&body("dead-1"), NOW).await {
        Err(SendError::Permanent { code, message }) => {
            assert_eq!(code, 404);
            assert!(fcm::is_dead_token(code, &message), "{message}");
        }
        other => panic!("{other:?}"),
    }
    match c.send(&body("q429-1"), NOW).await {
        Err(SendError::Throttled {
            code: 429,
            after_ms,
            ..
        }) => assert_eq!(after_ms, 1000),
        other => panic!("{other:?}"),
    }
    c.send(&body("q429-1"), NOW).await.unwrap();
    let e = c.send(&body("u503-1"), NOW).await.unwrap_err();
    assert!(e.is_retryable(), "{e:?}");
    c.send(&body("u503-1"), NOW).await.unwrap();
}

#[tokio::test]
async fn a_grant_signed_with_another_key_is_refused() {
    let mock = MockFcm::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    // Same fields, a different key: the mock's signature check refuses it.
    let other = herald_peers::fcm::OTHER_KEY_PEM;
    let mut sa: serde_json::Value =
        serde_json::from_str(&service_json("proj-1", &mock.token_url())).unwrap();
    sa["private_key"] = other.into();
    let account = ServiceAccount::from_json(&sa.to_string()).unwrap();
    let c = FcmClient::new(
        FcmConfig {
            base_url: mock.url(),
            ..FcmConfig::default()
        },
        account,
    )
    .unwrap();
    let e = c.send(&body("tok-1"), NOW).await.unwrap_err();
    assert!(matches!(e, SendError::Permanent { code: 400, .. }), "{e:?}");
    assert!(mock.sent().is_empty());
}

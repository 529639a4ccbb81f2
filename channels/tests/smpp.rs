//! herald's SMPP client against the SMSC simulator (`herald_peers::smsc`),
//! which decodes what it receives with its own GSM and UCS-2 tables.

use std::time::Duration;

use herald_channels::smpp::{Inbound, OutgoingSms, SmppClient, SmppSettings};
use herald_channels::smtp::SendError;
use herald_model::sms;
use herald_peers::smsc::{Smsc, SmscConfig};
use tokio::sync::mpsc;

const FROM: &str = "+12065550100";

async fn smsc(cfg: SmscConfig) -> Smsc {
    Smsc::start("127.0.0.1:0".parse().unwrap(), cfg)
        .await
        .unwrap()
}

fn settings(smsc: &Smsc) -> SmppSettings {
    SmppSettings {
        addr: smsc.addr().to_string(),
        system_id: "herald".into(),
        password: "secret".into(),
        reconnect_min: Duration::from_millis(20),
        reconnect_max: Duration::from_millis(200),
        response_timeout: Duration::from_secs(2),
        submit_timeout: Duration::from_secs(5),
        ..Default::default()
    }
}

fn sms(to: &str, text: &str) -> OutgoingSms {
    OutgoingSms {
        message_id: format!("m-{to}"),
        app_id: "app".into(),
        source: FROM.into(),
        destination: to.into(),
        parts: sms::encode(text).unwrap(),
        reference: 42,
        receipt: true,
    }
}

fn client(s: SmppSettings) -> (SmppClient, mpsc::Receiver<Inbound>) {
    let (tx, rx) = mpsc::channel(64);
    (SmppClient::start(s, tx).unwrap(), rx)
}

async fn next(rx: &mut mpsc::Receiver<Inbound>) -> Inbound {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("an inbound message within 5 s")
        .expect("the client is running")
}

#[tokio::test]
async fn a_short_message_is_submitted_and_its_receipt_comes_back() {
    let smsc = smsc(SmscConfig::default()).await;
    let (c, mut rx) = client(settings(&smsc));
    let ids = c
        .submit(&sms("+12065550111", "Hello from herald"))
        .await
        .unwrap();
    assert_eq!(ids.len(), 1);
    let got = smsc.submits();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].text, "Hello from herald");
    assert_eq!(got[0].destination_addr, "12065550111");
    assert_eq!(got[0].source_addr, "12065550100");
    assert_eq!((got[0].data_coding, got[0].registered_delivery), (0, 1));
    assert!(got[0].udh.is_none());
    match next(&mut rx).await {
        Inbound::Receipt {
            smsc_id,
            delivered,
            stat,
            ..
        } => {
            assert_eq!(smsc_id, ids[0]);
            assert!(delivered);
            assert_eq!(stat, "DELIVRD");
        }
        other => panic!("expected a receipt, got {other:?}"),
    }
    assert_eq!(c.status().binds(), 1);
    c.stop().await;
}

#[tokio::test]
async fn a_long_gsm_message_is_concatenated_and_reads_back_whole() {
    let smsc = smsc(SmscConfig::default()).await;
    let (c, mut rx) = client(settings(&smsc));
    // 200 characters with extension-table ones (two septets each).
    let text: String = (0..20).map(|i| format!("Price {i:02}€ [ok]")).collect();
    let text = &text[..text.char_indices().nth(200).map_or(text.len(), |(i, _)| i)];
    let ids = c.submit(&sms("+12065550112", text)).await.unwrap();
    let got = smsc.submits();
    assert_eq!(ids.len(), got.len());
    assert!(got.len() >= 2, "{} parts", got.len());
    for (i, p) in got.iter().enumerate() {
        let u = p.udh.as_ref().expect("a concatenation header");
        assert_eq!(
            (u.reference, u.total as usize, u.seq as usize),
            (42, got.len(), i + 1)
        );
        assert_eq!(p.esm_class & 0x40, 0x40);
        assert_eq!(p.data_coding, 0);
    }
    let joined: String = got.iter().map(|p| p.text.as_str()).collect();
    assert_eq!(joined, text);
    // One receipt per part.
    let mut receipts = 0;
    while receipts < ids.len() {
        if let Inbound::Receipt { smsc_id, .. } = next(&mut rx).await {
            assert!(ids.contains(&smsc_id));
            receipts += 1;
        }
    }
    c.stop().await;
}

#[tokio::test]
async fn unicode_goes_as_ucs2_in_parts_of_67() {
    let smsc = smsc(SmscConfig::default()).await;
    let (c, _rx) = client(settings(&smsc));
    let text = "Привет! Ваш заказ готов 🎉 ".repeat(4);
    let ids = c.submit(&sms("+12065550113", &text)).await.unwrap();
    let got = smsc.submits();
    assert_eq!(ids.len(), got.len());
    assert!(got.len() >= 2);
    assert!(got.iter().all(|p| p.data_coding == 8));
    let joined: String = got.iter().map(|p| p.text.as_str()).collect();
    assert_eq!(joined, text);
    c.stop().await;
}

#[tokio::test]
async fn refusals_are_classified() {
    let smsc = smsc(SmscConfig::default()).await;
    let (c, _rx) = client(settings(&smsc));
    let err = c.submit(&sms("+12065550404", "x")).await.unwrap_err();
    assert!(matches!(err, SendError::Permanent { .. }), "{err:?}");
    for _ in 0..2 {
        let err = c.submit(&sms("+12065550429", "x")).await.unwrap_err();
        assert!(matches!(err, SendError::Throttled { .. }), "{err:?}");
    }
    c.submit(&sms("+12065550429", "x")).await.unwrap();
    let err = c.submit(&sms("+12065550503", "x")).await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    c.stop().await;
}

#[tokio::test]
async fn an_undelivered_receipt_says_so() {
    let smsc = smsc(SmscConfig::default()).await;
    let (c, mut rx) = client(settings(&smsc));
    let ids = c.submit(&sms("+12065550000", "x")).await.unwrap();
    match next(&mut rx).await {
        Inbound::Receipt {
            smsc_id,
            delivered,
            stat,
            ..
        } => {
            assert_eq!(smsc_id, ids[0]);
            assert!(!delivered);
            assert_eq!(stat, "UNDELIV");
        }
        other => panic!("expected a receipt, got {other:?}"),
    }
    c.stop().await;
}

#[tokio::test]
async fn mobile_originated_messages_reach_herald_in_e164() {
    let smsc = smsc(SmscConfig::default()).await;
    let (c, mut rx) = client(settings(&smsc));
    for _ in 0..100 {
        if c.status().bound() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    smsc.send_mo("+12065550150", FROM, "STOP").await.unwrap();
    smsc.send_mo("+12065550150", FROM, "Да, спасибо")
        .await
        .unwrap();
    assert_eq!(
        next(&mut rx).await,
        Inbound::Mo {
            from: "+12065550150".into(),
            to: FROM.into(),
            text: "STOP".into()
        }
    );
    assert_eq!(
        next(&mut rx).await,
        Inbound::Mo {
            from: "+12065550150".into(),
            to: FROM.into(),
            text: "Да, спасибо".into()
        }
    );
    c.stop().await;
}

#[tokio::test]
async fn no_more_submits_are_unanswered_than_the_window() {
    let smsc = smsc(SmscConfig {
        submit_resp_delay_ms: 150,
        ..Default::default()
    })
    .await;
    let (c, _rx) = client(SmppSettings {
        window: 3,
        ..settings(&smsc)
    });
    let c = std::sync::Arc::new(c);
    let sends = (0..12).map(|i| {
        let c = c.clone();
        tokio::spawn(async move {
            c.submit(&sms(&format!("+1206555{:04}", 2000 + i), "w"))
                .await
        })
    });
    for s in futures::future::join_all(sends).await {
        s.unwrap().unwrap();
    }
    assert_eq!(smsc.submits().len(), 12);
    assert_eq!(
        smsc.max_unanswered(),
        3,
        "the SMSC saw the window filled, never more"
    );
    assert_eq!(c.status().max_unanswered(), 3);
    c.stop().await;
}

#[tokio::test]
async fn a_dropped_session_is_bound_again() {
    let smsc = smsc(SmscConfig::default()).await;
    let (c, _rx) = client(settings(&smsc));
    c.submit(&sms("+12065550120", "one")).await.unwrap();
    smsc.drop_sessions();
    // The next submit waits for the new session (or fails as temporary if
    // it raced the drop); either way one more goes through.
    let mut sent = false;
    for _ in 0..20 {
        match c.submit(&sms("+12065550121", "two")).await {
            Ok(_) => {
                sent = true;
                break;
            }
            Err(e) => {
                assert!(!matches!(e, SendError::Permanent { .. }), "{e:?}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    assert!(sent);
    assert!(smsc.binds() >= 2, "binds {}", smsc.binds());
    c.stop().await;
}

#[tokio::test]
async fn a_quiet_link_is_probed_with_enquire_link() {
    let smsc = smsc(SmscConfig::default()).await;
    let (c, _rx) = client(SmppSettings {
        enquire_link_interval: Duration::from_millis(100),
        ..settings(&smsc)
    });
    for _ in 0..100 {
        if smsc.enquire_links() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(smsc.enquire_links() >= 2);
    assert_eq!(c.status().binds(), 1, "answered probes keep the session");
    c.stop().await;
}

#[tokio::test]
async fn without_an_smsc_a_submit_fails_as_temporary() {
    // A port nobody listens on.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    let (c, _rx) = client(SmppSettings {
        addr: addr.to_string(),
        submit_timeout: Duration::from_millis(300),
        reconnect_min: Duration::from_millis(20),
        reconnect_max: Duration::from_millis(50),
        ..Default::default()
    });
    let err = c.submit(&sms("+12065550130", "x")).await.unwrap_err();
    assert!(
        matches!(err, SendError::Temporary { .. }),
        "never written, so safe to retry: {err:?}"
    );
    c.stop().await;
}

#[tokio::test]
async fn a_wrong_password_never_binds() {
    let smsc = smsc(SmscConfig::default()).await;
    let (c, _rx) = client(SmppSettings {
        password: "nope".into(),
        submit_timeout: Duration::from_millis(400),
        ..settings(&smsc)
    });
    assert!(c.submit(&sms("+12065550140", "x")).await.is_err());
    assert_eq!(smsc.binds(), 0);
    assert!(smsc.submits().is_empty());
    c.stop().await;
}

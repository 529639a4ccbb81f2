//! Direct sends through the channel actors on one node with the in-memory
//! engine and a recording email transport that can be told to fail: the
//! send-once ledger, retries and their budget, unknown outcomes, and queue
//! back-pressure.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use herald_actors::clock::ManualClock;
use herald_actors::delivery::{DeliverySettings, Dispatcher};
use herald_actors::sends::RequestKeys;
use herald_actors::shard::ShardSettings;
use herald_actors::{Clock, Runtime, SeededEntropy, ServiceConfig, ServiceError};
use herald_channels::pacing::Backoff;
use herald_channels::smtp::{OutgoingEmail, SendError};
use herald_channels::transport::EmailTransport;
use herald_cluster::{HostConfig, LocalTransport};
use herald_model::message::{
    AddressConfiguration, DirectMessageConfiguration, EmailMessage, MessageRequest, SimpleEmail,
    SimpleEmailPart,
};
use herald_model::wire::{CreateApplicationRequest, EmailChannelRequest};
use herald_storage::MemEngine;

/// What the recording transport does with each message to an address.
#[derive(Clone, Copy)]
enum Plan {
    Accept,
    /// Refuse temporarily this many times, then accept.
    TemporaryThenAccept(usize),
    Permanent,
    Unknown,
    /// Hold the message until released.
    Stall,
}

#[derive(Default)]
struct Recorder {
    plans: Mutex<BTreeMap<String, Plan>>,
    attempts: Mutex<BTreeMap<String, usize>>,
    delivered: Mutex<Vec<(String, String)>>,
    release: tokio::sync::Notify,
    in_flight: AtomicUsize,
}

impl EmailTransport for Recorder {
    fn kind(&self) -> &'static str {
        "recorder"
    }

    fn send<'a>(&'a self, email: &'a OutgoingEmail) -> BoxFuture<'a, Result<String, SendError>> {
        Box::pin(async move {
            let n = {
                let mut a = self.attempts.lock().unwrap();
                let n = a.entry(email.to.clone()).or_default();
                *n += 1;
                *n
            };
            let plan = self
                .plans
                .lock()
                .unwrap()
                .get(&email.to)
                .copied()
                .unwrap_or(Plan::Accept);
            match plan {
                Plan::TemporaryThenAccept(k) if n <= k => Err(SendError::Temporary {
                    code: Some(451),
                    message: "try later".into(),
                }),
                Plan::Permanent => Err(SendError::Permanent {
                    code: 550,
                    message: "no such user".into(),
                }),
                Plan::Unknown => Err(SendError::Unknown("connection reset after DATA".into())),
                Plan::Stall => {
                    self.in_flight.fetch_add(1, Ordering::SeqCst);
                    self.release.notified().await;
                    self.in_flight.fetch_sub(1, Ordering::SeqCst);
                    self.delivered
                        .lock()
                        .unwrap()
                        .push((email.to.clone(), email.message_id.clone()));
                    Ok("250 ok".into())
                }
                _ => {
                    self.delivered
                        .lock()
                        .unwrap()
                        .push((email.to.clone(), email.message_id.clone()));
                    Ok("250 ok".into())
                }
            }
        })
    }
}

fn keys(request_id: &str) -> RequestKeys {
    RequestKeys {
        request_id: request_id.to_owned(),
        invocation_id: None,
    }
}

async fn start_with_clock(
    queue_max: usize,
) -> (Runtime<MemEngine>, Arc<Recorder>, String, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(1_764_410_400_000));
    let host = HostConfig {
        shards: 4,
        heartbeat_ms: 50,
        election_timeout_min_ms: 150,
        election_timeout_max_ms: 300,
        ..HostConfig::default()
    };
    let rt = Runtime::start(
        Arc::new(MemEngine::new()),
        host,
        Arc::new(LocalTransport::new()),
        clock.clone(),
        ServiceConfig::default(),
        ShardSettings {
            sweep_interval: Duration::from_secs(3600),
            ..ShardSettings::default()
        },
    )
    .await
    .expect("runtime starts");
    let rec = Arc::new(Recorder::default());
    let dispatcher = Dispatcher::new(
        rec.clone(),
        BTreeMap::new(),
        Arc::new(
            herald_channels::webhook::WebhookClient::new(Vec::new(), Duration::from_secs(5), None)
                .unwrap(),
        ),
        clock.clone(),
        Arc::new(SeededEntropy::new(7)),
        DeliverySettings {
            queue_max,
            admit_timeout: Duration::from_millis(200),
            backoff: Backoff {
                base_ms: 1,
                max_ms: 5,
                attempts_max: 3,
            },
            ..DeliverySettings::default()
        },
    );
    rt.herald.set_dispatcher(Arc::new(dispatcher));
    let app = rt
        .herald
        .create_app(
            "0123456789abcdef0123456789abcdef".into(),
            "us-east-1",
            CreateApplicationRequest {
                name: Some("t".into()),
                tags: None,
            },
        )
        .await
        .unwrap()
        .id;
    rt.herald
        .update_email_channel(
            &app,
            EmailChannelRequest {
                from_address: Some("news@example.com".into()),
                identity: Some("example.com".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    (rt, rec, app, clock)
}

async fn start(queue_max: usize) -> (Runtime<MemEngine>, Arc<Recorder>, String) {
    let (rt, rec, app, _) = start_with_clock(queue_max).await;
    (rt, rec, app)
}

fn request(addresses: &[&str], trace: Option<&str>) -> MessageRequest {
    MessageRequest {
        addresses: Some(
            addresses
                .iter()
                .map(|a| {
                    (
                        (*a).to_owned(),
                        AddressConfiguration {
                            channel_type: Some("EMAIL".into()),
                            ..Default::default()
                        },
                    )
                })
                .collect(),
        ),
        message_configuration: Some(DirectMessageConfiguration {
            email_message: Some(EmailMessage {
                simple_email: Some(SimpleEmail {
                    subject: Some(SimpleEmailPart {
                        data: Some("Hi {{Address}}".into()),
                        charset: None,
                    }),
                    text_part: Some(SimpleEmailPart {
                        data: Some("body".into()),
                        charset: None,
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        trace_id: trace.map(str::to_owned),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_follow_the_transport_and_retries_are_bounded() {
    let (rt, rec, app) = start(100).await;
    {
        let mut p = rec.plans.lock().unwrap();
        p.insert("busy@x.org".into(), Plan::TemporaryThenAccept(2));
        p.insert("down@x.org".into(), Plan::TemporaryThenAccept(99));
        p.insert("gone@x.org".into(), Plan::Permanent);
        p.insert("lost@x.org".into(), Plan::Unknown);
    }
    let addrs = [
        "ok@x.org",
        "busy@x.org",
        "down@x.org",
        "gone@x.org",
        "lost@x.org",
    ];
    let resp = rt
        .herald
        .send_messages(&app, request(&addrs, None), keys("req-1"))
        .await
        .unwrap();
    let result = resp.result.unwrap();
    let status = |a: &str| result[a].delivery_status.clone();
    assert_eq!(status("ok@x.org"), "SUCCESSFUL");
    assert_eq!(status("busy@x.org"), "SUCCESSFUL");
    assert_eq!(status("down@x.org"), "TEMPORARY_FAILURE");
    assert_eq!(status("gone@x.org"), "PERMANENT_FAILURE");
    assert_eq!(result["gone@x.org"].status_code, 550);
    assert_eq!(status("lost@x.org"), "UNKNOWN_FAILURE");
    let attempts = rec.attempts.lock().unwrap().clone();
    assert_eq!(attempts["busy@x.org"], 3);
    assert_eq!(attempts["down@x.org"], 3, "the attempt budget is 3");
    assert_eq!(
        attempts["gone@x.org"], 1,
        "permanent failures are not retried"
    );
    assert_eq!(
        attempts["lost@x.org"], 1,
        "unknown outcomes are not retried"
    );
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_trace_id_never_sends_twice_even_after_an_unknown_outcome() {
    let (rt, rec, app) = start(100).await;
    rec.plans
        .lock()
        .unwrap()
        .insert("lost@x.org".into(), Plan::Unknown);
    let req = request(&["a@x.org", "lost@x.org"], Some("trace-1"));
    let first = rt
        .herald
        .send_messages(&app, req.clone(), keys("r1"))
        .await
        .unwrap()
        .result
        .unwrap();
    let second = rt
        .herald
        .send_messages(&app, req, keys("r2"))
        .await
        .unwrap()
        .result
        .unwrap();
    assert_eq!(
        first["a@x.org"], second["a@x.org"],
        "the recorded result comes back"
    );
    assert_eq!(second["lost@x.org"].delivery_status, "UNKNOWN_FAILURE");
    let attempts = rec.attempts.lock().unwrap().clone();
    assert_eq!(attempts["a@x.org"], 1);
    assert_eq!(attempts["lost@x.org"], 1);
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_refuses_a_request_whole() {
    let (rt, rec, app) = start(3).await;
    rec.plans
        .lock()
        .unwrap()
        .insert("slow@x.org".into(), Plan::Stall);
    rec.plans
        .lock()
        .unwrap()
        .insert("slow2@x.org".into(), Plan::Stall);
    let herald = rt.herald.clone();
    let app2 = app.clone();
    let stalled = tokio::spawn(async move {
        herald
            .send_messages(
                &app2,
                request(&["slow@x.org", "slow2@x.org"], None),
                keys("r1"),
            )
            .await
    });
    for _ in 0..200 {
        if rec.in_flight.load(Ordering::SeqCst) == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(rec.in_flight.load(Ordering::SeqCst), 2);
    // 2 of 3 places are taken: a request for 2 more waits, then is refused.
    let refused = rt
        .herald
        .send_messages(&app, request(&["b@x.org", "c@x.org"], None), keys("r2"))
        .await;
    assert!(
        matches!(refused, Err(ServiceError::TooManyRequests(_))),
        "{refused:?}"
    );
    assert!(
        !rec.attempts.lock().unwrap().contains_key("b@x.org"),
        "nothing of it was sent"
    );
    rec.release.notify_waiters();
    let done = stalled.await.unwrap().unwrap().result.unwrap();
    assert_eq!(done["slow@x.org"].delivery_status, "SUCCESSFUL");
    // Room again.
    let ok = rt
        .herald
        .send_messages(&app, request(&["b@x.org", "c@x.org"], None), keys("r3"))
        .await
        .unwrap()
        .result
        .unwrap();
    assert_eq!(ok["b@x.org"].delivery_status, "SUCCESSFUL");
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_id_reused_a_day_later_is_a_new_send() {
    let (rt, rec, app, clock) = start_with_clock(100).await;
    let req = request(&["daily@x.org"], Some("daily-digest"));
    rt.herald
        .send_messages(&app, req.clone(), keys("r1"))
        .await
        .unwrap();
    clock.set(clock.now_ms() + 60 * 60 * 1000);
    rt.herald
        .send_messages(&app, req.clone(), keys("r2"))
        .await
        .unwrap();
    assert_eq!(
        rec.attempts.lock().unwrap()["daily@x.org"],
        1,
        "a retry within the window"
    );
    clock.set(clock.now_ms() + 24 * 60 * 60 * 1000);
    let later = rt
        .herald
        .send_messages(&app, req, keys("r3"))
        .await
        .unwrap()
        .result
        .unwrap();
    assert_eq!(later["daily@x.org"].delivery_status, "SUCCESSFUL");
    assert_eq!(
        rec.attempts.lock().unwrap()["daily@x.org"],
        2,
        "a new send after the window"
    );
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intent_left_without_outcome_is_resolved_as_unknown_by_the_sweep() {
    let (rt, rec, app, clock) = start_with_clock(100).await;
    // A node took these messages and stopped before recording an outcome.
    let key = "t:crashed-request";
    let group = rt
        .host
        .group_of(&app, &herald_storage::keys::send_shard_key(key));
    let ids: Vec<String> = ["x@x.org", "y@x.org"]
        .iter()
        .map(|a| {
            herald_model::message::message_id(
                &app,
                key,
                &herald_model::message::RecipientKey::Address(a),
            )
        })
        .collect();
    let intents = ids
        .iter()
        .zip(["x@x.org", "y@x.org"])
        .map(|(id, a)| herald_storage::SendIntent {
            message_id: id.clone(),
            recipient: a.into(),
            channel: "EMAIL".into(),
            address: a.into(),
        })
        .collect();
    rt.host
        .propose(
            group,
            herald_storage::Command::RecordSendIntents {
                app_id: app.clone(),
                at_ms: clock.now_ms(),
                dedup_window_ms: 86_400_000,
                intents,
            },
        )
        .await
        .unwrap();
    let shard = rt.shard(group).unwrap().clone();
    let outcome = |id: &str| {
        rt.host
            .reader()
            .ledger_row(group, &app, id)
            .unwrap()
            .unwrap()
            .outcome
    };
    // Young: left alone.
    clock.set(clock.now_ms() + 60_000);
    shard.cast(herald_actors::shard::ShardMsg::Sweep).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(outcome(&ids[0]), None);
    // Older than the grace: UNKNOWN_FAILURE, and a retry of the request
    // reports it without sending.
    clock.set(clock.now_ms() + 2 * 60 * 60 * 1000);
    let mut resolved = false;
    for _ in 0..50 {
        shard.cast(herald_actors::shard::ShardMsg::Sweep).unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        if outcome(&ids[1]).is_some() {
            resolved = true;
            break;
        }
    }
    assert!(resolved, "the sweep resolves open intents");
    assert_eq!(
        outcome(&ids[0]).unwrap().status,
        herald_model::message::DeliveryStatus::UnknownFailure
    );
    assert!(rt.host.reader().open_sends(group, 10).unwrap().is_empty());
    let retried = rt
        .herald
        .send_messages(
            &app,
            request(&["x@x.org"], Some("crashed-request")),
            keys("r9"),
        )
        .await;
    assert_eq!(
        retried.unwrap().result.unwrap()["x@x.org"].delivery_status,
        "UNKNOWN_FAILURE"
    );
    assert!(
        !rec.attempts.lock().unwrap().contains_key("x@x.org"),
        "never sent twice"
    );
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_rows_are_forgotten_after_retention_but_not_a_newer_send_of_the_same_id() {
    let (rt, _rec, app, clock) = start_with_clock(100).await;
    let day = 24 * 60 * 60 * 1000;
    let key = "t:weekly";
    let group = rt
        .host
        .group_of(&app, &herald_storage::keys::send_shard_key(key));
    let id = |a: &str| {
        herald_model::message::message_id(
            &app,
            key,
            &herald_model::message::RecipientKey::Address(a),
        )
    };
    let row = |a: &str| rt.host.reader().ledger_row(group, &app, &id(a)).unwrap();
    let t0 = clock.now_ms();
    rt.herald
        .send_messages(
            &app,
            request(&["a@x.org", "b@x.org"], Some("weekly")),
            keys("r1"),
        )
        .await
        .unwrap();
    // Two days later, past the dedup window, b@ is sent again under the
    // same TraceId: its row is rewritten with the new intent time.
    clock.set(t0 + 2 * day);
    rt.herald
        .send_messages(&app, request(&["b@x.org"], Some("weekly")), keys("r2"))
        .await
        .unwrap();
    let retention = herald_actors::shard::ShardSettings::default().send_retention_ms;
    // The sweep at `now` forgets intents older than `now - retention`.
    let sweep_at = |now: i64| herald_actors::sends::forget_sends(&rt.host, group, now - retention);
    // Within retention nothing goes.
    assert_eq!(sweep_at(t0 + retention - day).await.unwrap(), 0);
    assert!(row("a@x.org").is_some());
    // Past retention of the first request: a@'s row goes, b@'s newer one stays.
    let n = sweep_at(t0 + retention + 1).await.unwrap();
    assert_eq!(n, 1);
    assert!(row("a@x.org").is_none());
    assert_eq!(row("b@x.org").unwrap().intent_ms, t0 + 2 * day);
    assert_eq!(
        rt.host
            .reader()
            .expired_sends(group, i64::MAX, 10)
            .unwrap()
            .len(),
        1,
        "only b@'s newer index entry is left"
    );
    assert_eq!(sweep_at(t0 + 2 * day + retention + 1).await.unwrap(), 1);
    assert!(row("b@x.org").is_none());
    rt.shutdown().await;
}

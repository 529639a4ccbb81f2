//! The actors and the service on one node with the in-memory engine: session
//! tracking through PutEvents, the idle-session sweep, the engagement table,
//! and virtual endpoint actors under a resident cap.

use std::sync::Arc;
use std::time::Duration;

use herald_actors::clock::ManualClock;
use herald_actors::shard::{ShardMsg, ShardSettings};
use herald_actors::{Runtime, ServiceConfig, ServiceError};
use herald_cluster::{HostConfig, LocalTransport};
use herald_model::time::{format_iso8601_ms, parse_iso8601_ms};
use herald_model::wire::{
    CreateApplicationRequest, Event, EventsBatch, EventsRequest, PublicEndpoint, Session,
};
use herald_storage::MemEngine;

const T0: &str = "2026-11-29T10:00:00.000Z";

async fn start(clock: Arc<ManualClock>, endpoint_actors_max: usize) -> Runtime<MemEngine> {
    let host = HostConfig {
        shards: 4,
        heartbeat_ms: 50,
        election_timeout_min_ms: 150,
        election_timeout_max_ms: 300,
        ..HostConfig::default()
    };
    let service = ServiceConfig {
        session_idle_timeout_ms: 600_000,
        ..ServiceConfig::default()
    };
    let shard = ShardSettings {
        sweep_interval: Duration::from_secs(3600),
        endpoint_actors_max,
        ..ShardSettings::default()
    };
    Runtime::start(
        Arc::new(MemEngine::new()),
        host,
        Arc::new(LocalTransport::new()),
        clock,
        service,
        shard,
    )
    .await
    .expect("runtime starts")
}

fn ms(offset_s: i64) -> String {
    format_iso8601_ms(parse_iso8601_ms(T0).unwrap() + offset_s * 1000)
}

fn event(kind: &str, at_s: i64, session: &str) -> Event {
    Event {
        event_type: Some(kind.into()),
        timestamp: Some(ms(at_s)),
        session: Some(Session {
            id: Some(session.into()),
            start_timestamp: Some(ms(0)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn events(endpoint: &str, evs: Vec<(&str, Event)>) -> EventsRequest {
    let batch = EventsBatch {
        endpoint: Some(PublicEndpoint {
            channel_type: Some("EMAIL".into()),
            address: Some("a@example.com".into()),
            ..Default::default()
        }),
        events: Some(evs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()),
    };
    EventsRequest {
        batch_item: Some([(endpoint.to_owned(), batch)].into_iter().collect()),
    }
}

async fn new_app(rt: &Runtime<MemEngine>) -> String {
    rt.herald
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
        .id
}

/// Polls until `f` holds (bounded).
async fn eventually(mut f: impl AsyncFnMut() -> bool) {
    for _ in 0..200 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached in 2 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_resume_within_five_seconds_is_one_session() {
    let clock = Arc::new(ManualClock::new(parse_iso8601_ms(T0).unwrap()));
    let rt = start(clock, 16).await;
    let app = new_app(&rt).await;
    let req = events(
        "ep1",
        vec![
            ("1", event("_session.start", 0, "s1")),
            ("2", event("_session.pause", 10, "s1")),
            ("3", event("_session.resume", 14, "s1")),
            ("4", event("_session.stop", 60, "s1")),
            ("5", event("_session.start", 100, "s2")),
            ("6", event("_session.pause", 110, "s2")),
            ("7", event("_session.resume", 120, "s2")),
        ],
    );
    let resp = rt.herald.put_events(&app, req, "r1").await.unwrap();
    let item = &resp.results.unwrap()["ep1"];
    assert_eq!(item.events_item_response.as_ref().unwrap().len(), 7);

    let g = rt.host.group_of(&app, "ep1");
    let closed = rt.host.reader().closed_sessions(g, &app).unwrap();
    // s1 ran 0..60 s (the 4 s pause did not split it); s2 was paused for 10 s,
    // so it ended at its pause and the resume started a new session.
    assert_eq!(closed.len(), 2, "{closed:?}");
    assert_eq!(closed[0].end_ms - closed[0].start_ms, 60_000);
    assert_eq!(closed[1].end_ms - closed[1].start_ms, 10_000);
    let shard = rt.shard(g).unwrap().clone();
    let app2 = app.clone();
    eventually(async || {
        let e = ractor::call!(shard, |r| ShardMsg::Engagement {
            app_id: app2.clone(),
            endpoint_id: "ep1".into(),
            reply: r
        })
        .unwrap();
        e.is_some_and(|e| e.session_start_ms.is_some())
    })
    .await;
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sessions_are_closed_by_the_shard_sweep() {
    let start_ms = parse_iso8601_ms(T0).unwrap();
    let clock = Arc::new(ManualClock::new(start_ms));
    let rt = start(clock.clone(), 16).await;
    let app = new_app(&rt).await;
    rt.herald
        .put_events(
            &app,
            events(
                "ep1",
                vec![
                    ("1", event("_session.start", 0, "s1")),
                    ("2", event("click", 30, "s1")),
                ],
            ),
            "r1",
        )
        .await
        .unwrap();
    let g = rt.host.group_of(&app, "ep1");
    let shard = rt.shard(g).unwrap().clone();
    eventually(async || ractor::call!(shard, ShardMsg::Stats).unwrap().open_sessions == 1).await;

    // Not idle yet: the sweep changes nothing.
    clock.set(start_ms + 30_000 + 599_000);
    shard.cast(ShardMsg::Sweep).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(rt
        .host
        .reader()
        .closed_sessions(g, &app)
        .unwrap()
        .is_empty());

    clock.set(start_ms + 30_000 + 600_001);
    shard.cast(ShardMsg::Sweep).unwrap();
    eventually(async || ractor::call!(shard, ShardMsg::Stats).unwrap().open_sessions == 0).await;
    let closed = rt.host.reader().closed_sessions(g, &app).unwrap();
    assert_eq!(closed.len(), 1);
    assert_eq!(
        closed[0].end_ms,
        start_ms + 30_000,
        "closed at its last activity"
    );
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_actors_respect_the_resident_cap() {
    let clock = Arc::new(ManualClock::new(parse_iso8601_ms(T0).unwrap()));
    let rt = start(clock.clone(), 3).await;
    let shard = rt.shard(1).unwrap().clone();
    for i in 0..5 {
        clock.set(parse_iso8601_ms(T0).unwrap() + i);
        let id = format!("ep{i}");
        ractor::call!(shard, |r| ShardMsg::Activate {
            app_id: "a".into(),
            endpoint_id: id.clone(),
            reply: r
        })
        .unwrap();
    }
    let stats = ractor::call!(shard, ShardMsg::Stats).unwrap();
    assert_eq!(stats.resident_endpoint_actors, 3);
    assert_eq!(stats.activations, 5);
    assert_eq!(stats.passivations, 2);
    // Idle actors are passivated by the sweep.
    clock.set(parse_iso8601_ms(T0).unwrap() + 3_600_000);
    shard.cast(ShardMsg::Sweep).unwrap();
    eventually(async || {
        ractor::call!(shard, ShardMsg::Stats)
            .unwrap()
            .resident_endpoint_actors
            == 0
    })
    .await;
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_with_one_bad_item_changes_nothing() {
    let clock = Arc::new(ManualClock::new(parse_iso8601_ms(T0).unwrap()));
    let rt = start(clock, 16).await;
    let app = new_app(&rt).await;
    let mut items = Vec::new();
    for i in 0..10 {
        items.push(herald_model::wire::EndpointBatchItem {
            id: Some(format!("e{i}")),
            channel_type: Some(if i == 7 {
                "PIGEON".into()
            } else {
                "EMAIL".into()
            }),
            address: Some(format!("e{i}@example.com")),
            ..Default::default()
        });
    }
    let err = rt
        .herald
        .update_endpoints_batch(
            &app,
            herald_model::wire::EndpointBatchRequest { item: Some(items) },
            "r1",
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ServiceError::BadRequest(_)), "{err:?}");
    for i in 0..10 {
        assert!(matches!(
            rt.herald.endpoint(&app, &format!("e{i}")).await,
            Err(ServiceError::NotFound(_))
        ));
    }
    rt.shutdown().await;
}

fn email(address: &str) -> herald_model::wire::EndpointRequest {
    herald_model::wire::EndpointRequest {
        channel_type: Some("EMAIL".into()),
        address: Some(address.into()),
        ..Default::default()
    }
}

/// An UpdateEndpointsBatch body: one EMAIL item per id, all with `address`.
fn email_batch(address: &str, ids: &[&str]) -> herald_model::wire::EndpointBatchRequest {
    let item = |id: &&str| herald_model::wire::EndpointBatchItem {
        id: Some((*id).into()),
        channel_type: Some("EMAIL".into()),
        address: Some(address.into()),
        ..Default::default()
    };
    herald_model::wire::EndpointBatchRequest {
        item: Some(ids.iter().map(item).collect()),
    }
}

async fn status(rt: &Runtime<MemEngine>, app: &str, id: &str) -> String {
    rt.herald
        .endpoint(app, id)
        .await
        .unwrap()
        .endpoint_status
        .unwrap()
}

/// The newest endpoint written with an address holds it; the one that held it
/// before becomes INACTIVE, wherever the two live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reusing_an_address_deactivates_the_previous_holder() {
    let clock = Arc::new(ManualClock::new(parse_iso8601_ms(T0).unwrap()));
    let rt = start(clock, 16).await;
    let app = new_app(&rt).await;
    let h = &rt.herald;
    h.update_endpoint(&app, "old", email("x@example.com"), "r1")
        .await
        .unwrap();
    h.update_endpoint(&app, "new", email("x@example.com"), "r2")
        .await
        .unwrap();
    assert_eq!(status(&rt, &app, "old").await, "INACTIVE");
    assert_eq!(status(&rt, &app, "new").await, "ACTIVE");

    // Updating the old endpoint again makes it the holder once more.
    h.update_endpoint(
        &app,
        "old",
        herald_model::wire::EndpointRequest::default(),
        "r3",
    )
    .await
    .unwrap();
    assert_eq!(status(&rt, &app, "old").await, "ACTIVE");
    assert_eq!(status(&rt, &app, "new").await, "INACTIVE");

    // The same address on another channel is another address.
    let mut sms = email("x@example.com");
    sms.channel_type = Some("SMS".into());
    h.update_endpoint(&app, "other-channel", sms, "r4")
        .await
        .unwrap();
    assert_eq!(status(&rt, &app, "old").await, "ACTIVE");

    // An endpoint that moved to another address is left alone.
    h.update_endpoint(&app, "old", email("y@example.com"), "r5")
        .await
        .unwrap();
    h.update_endpoint(&app, "third", email("x@example.com"), "r6")
        .await
        .unwrap();
    assert_eq!(status(&rt, &app, "old").await, "ACTIVE");

    // Within one batch, the later item wins.
    let batch = email_batch("z@example.com", &["b1", "b2", "b3"]);
    h.update_endpoints_batch(&app, batch, "r7").await.unwrap();
    assert_eq!(status(&rt, &app, "b1").await, "INACTIVE");
    assert_eq!(status(&rt, &app, "b2").await, "INACTIVE");
    assert_eq!(status(&rt, &app, "b3").await, "ACTIVE");

    // The endpoint of a PutEvents batch claims its address too.
    h.put_events(
        &app,
        events("from-events", vec![("e1", event("custom", 1, "s1"))]),
        "r8",
    )
    .await
    .unwrap();
    h.update_endpoint(&app, "a-holder", email("a@example.com"), "r9")
        .await
        .unwrap();
    assert_eq!(status(&rt, &app, "from-events").await, "INACTIVE");
    rt.shutdown().await;
}

fn pending_claims(rt: &Runtime<MemEngine>) -> usize {
    rt.host
        .data_groups()
        .map(|g| rt.host.reader().pending_claims(g, 1000).unwrap().len())
        .sum()
}

async fn sweep_all(rt: &Runtime<MemEngine>) {
    for g in rt.host.data_groups().collect::<Vec<_>>() {
        rt.shard(g).unwrap().cast(ShardMsg::Sweep).unwrap();
    }
}

/// A hand-over that never ran (the node stopped right after the endpoint
/// write) is finished by the shard sweep; a late hand-over of an older claim
/// never takes the address from a newer endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_finishes_address_hand_overs_and_respects_their_order() {
    let t0 = parse_iso8601_ms(T0).unwrap();
    let clock = Arc::new(ManualClock::new(t0));
    let rt = start(clock.clone(), 16).await;
    let app = new_app(&rt).await;
    let h = &rt.herald;
    h.update_endpoint(&app, "old", email("x@example.com"), "r1")
        .await
        .unwrap();
    clock.set(t0 + 10_000);
    h.update_endpoint(&app, "new", email("x@example.com"), "r2")
        .await
        .unwrap();
    assert_eq!(pending_claims(&rt), 2, "claims stay pending until a sweep");

    // The sweep hands both claims over again, oldest first or not: "old"
    // (written first) must not take the address back.
    clock.set(t0 + 60_000);
    sweep_all(&rt).await;
    eventually(async || pending_claims(&rt) == 0).await;
    assert_eq!(status(&rt, &app, "old").await, "INACTIVE");
    assert_eq!(status(&rt, &app, "new").await, "ACTIVE");

    // Items of one batch share their write time; their order still decides
    // when the sweep hands them over again.
    let ids = ["b9", "b5", "b1", "b7", "b3"];
    let batch = email_batch("z@example.com", &ids);
    h.update_endpoints_batch(&app, batch, "r3").await.unwrap();
    clock.set(t0 + 90_000);
    sweep_all(&rt).await;
    eventually(async || pending_claims(&rt) == 0).await;
    for id in &ids[..4] {
        assert_eq!(status(&rt, &app, id).await, "INACTIVE", "{id}");
    }
    assert_eq!(status(&rt, &app, "b3").await, "ACTIVE");

    // An endpoint write whose hand-over never ran, as after a crash.
    let cmd = herald_storage::Command::UpsertEndpoints {
        app_id: app.clone(),
        now_iso: format_iso8601_ms(t0 + 90_000),
        limits: herald_storage::ApplyLimits {
            endpoint_bytes_max: 15 * 1024,
            endpoint_attributes_max: 250,
            session_idle_timeout_ms: 600_000,
            rollups: true,
        },
        items: vec![herald_storage::EndpointUpsert {
            endpoint_id: "newest".into(),
            request: email("x@example.com"),
            seq: 0,
        }],
    };
    rt.host
        .propose(rt.host.group_of(&app, "newest"), cmd)
        .await
        .unwrap();
    assert_eq!(
        status(&rt, &app, "new").await,
        "ACTIVE",
        "not handed over yet"
    );
    // Within the grace period the sweep leaves it to the request.
    sweep_all(&rt).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(pending_claims(&rt), 1);
    clock.set(t0 + 150_000);
    sweep_all(&rt).await;
    eventually(async || pending_claims(&rt) == 0).await;
    assert_eq!(status(&rt, &app, "new").await, "INACTIVE");
    assert_eq!(status(&rt, &app, "newest").await, "ACTIVE");
    rt.shutdown().await;
}

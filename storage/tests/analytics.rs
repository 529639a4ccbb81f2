//! Analytics rollups through the state machine, on both engines: activity
//! and first-seen bitmaps per hour, a person counted once across its
//! endpoints, delivery rollups attributed to campaigns (opens through the
//! ledger), sessions and purchases attributed to the campaign that touched
//! the endpoint last, deleted endpoints forgotten with their raw events, and
//! raw events expired while rollups stay.

use std::collections::BTreeMap;
use std::sync::Arc;

use herald_model::analytics::Kind;
use herald_model::message::{DeliveryStatus, Outcome};
use herald_model::wire::{EndpointRequest, EndpointUser, Event};
use herald_storage::keys::tag;
use herald_storage::{
    ApplyLimits, CampaignOutcome, ChargeLimits, CmdResult, Command, EventsItem, KvEngine,
    MemEngine, Reader, RocksEngine, SendIntent,
};

mod common;
use common::Sm;

const G: u32 = 3;
const H: i64 = 3_600_000;
/// 2026-11-29T00:00Z in hours since the epoch.
const DAY0: i64 = 498_864;

fn limits() -> ApplyLimits {
    ApplyLimits {
        endpoint_bytes_max: 15 * 1024,
        endpoint_attributes_max: 250,
        session_idle_timeout_ms: 1_800_000,
        rollups: true,
    }
}

fn ev(t: &str, ms: i64, attrs: &[(&str, &str)]) -> Event {
    Event {
        event_type: Some(t.into()),
        timestamp: Some(herald_model::time::format_iso8601_ms(ms)),
        attributes: (!attrs.is_empty()).then(|| {
            attrs
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect()
        }),
        ..Default::default()
    }
}

fn put(endpoint: &str, user: Option<&str>, events: Vec<Event>) -> Command {
    Command::PutEvents {
        app_id: "app".into(),
        now_iso: "2026-11-29T00:00:00.000Z".into(),
        limits: limits(),
        items: vec![EventsItem {
            endpoint_id: endpoint.into(),
            endpoint: Some(EndpointRequest {
                channel_type: Some("EMAIL".into()),
                address: Some(format!("{endpoint}@example.org")),
                user: user.map(|u| EndpointUser {
                    user_id: Some(u.into()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            events: events
                .into_iter()
                .enumerate()
                .map(|(i, e)| {
                    (
                        format!("{endpoint}-{i}-{}", e.timestamp.clone().unwrap()),
                        e,
                    )
                })
                .collect(),
        }],
    }
}

fn active<E: KvEngine>(reader: &Reader<E>, kind: Kind, hour: i64) -> Vec<u32> {
    let h = i32::try_from(hour).unwrap();
    let forgotten = reader.analytics().forgotten(G, "app", kind).unwrap();
    reader
        .analytics()
        .hour_sets(G, tag::AN_ACTIVE, "app", kind, h, h + 1)
        .unwrap()
        .into_iter()
        .flat_map(|(_, b)| (&b - &forgotten).into_iter().collect::<Vec<_>>())
        .collect()
}

async fn rollups_follow_events_deletions_and_expiry<E: KvEngine>(engine: Arc<E>) {
    let mut sm = Sm::open(engine.clone(), G);
    let reader = Reader::new(engine.clone());
    let t0 = DAY0 * H;
    // ada on two endpoints, bob on one, an anonymous endpoint; all in hour 0.
    for (ep, user) in [
        ("ada-1", Some("ada")),
        ("ada-2", Some("ada")),
        ("bob", Some("bob")),
        ("anon", None),
    ] {
        let r = sm
            .apply(put(ep, user, vec![ev("play", t0 + 60_000, &[])]))
            .await;
        assert!(matches!(r, CmdResult::Written { events: 1, .. }), "{r:?}");
    }
    assert_eq!(active(&reader, Kind::Endpoint, DAY0).len(), 4);
    assert_eq!(
        active(&reader, Kind::Person, DAY0).len(),
        3,
        "ada counts once"
    );
    // A delivery event does not make anyone active.
    sm.apply(put(
        "carl",
        None,
        vec![ev("_email.delivered", t0 + 2 * H, &[])],
    ))
    .await;
    assert!(active(&reader, Kind::Endpoint, DAY0 + 2).is_empty());
    // An event arriving late moves bob's first-seen hour back.
    sm.apply(put("bob", Some("bob"), vec![ev("play", t0 - 5 * H, &[])]))
        .await;
    let new = |hour: i64| {
        let h = i32::try_from(hour).unwrap();
        reader
            .analytics()
            .hour_sets(G, tag::AN_NEW, "app", Kind::Person, h, h + 1)
            .unwrap()
            .into_iter()
            .map(|(_, b)| b.len())
            .sum::<u64>()
    };
    assert_eq!((new(DAY0 - 5), new(DAY0)), (1, 2));

    // A campaign message and its later open, attributed through the ledger.
    sm.apply(Command::RecordCampaignIntents {
        app_id: "app".into(),
        campaign_id: "c1".into(),
        at_ms: t0,
        limits: ChargeLimits::default(),
        intents: vec![SendIntent {
            message_id: "m1".into(),
            recipient: "bob".into(),
            channel: "EMAIL".into(),
            address: "bob@example.org".into(),
        }],
    })
    .await;
    sm.apply(Command::RecordCampaignOutcomes {
        app_id: "app".into(),
        campaign_id: "c1".into(),
        activities: vec!["act-0".into()],
        at_ms: t0 + H,
        outcomes: vec![CampaignOutcome {
            message_id: "m1".into(),
            endpoint_id: "bob".into(),
            treatment: 0,
            channel: "EMAIL".into(),
            outcome: Outcome::new(DeliveryStatus::Successful, 250, "ok"),
            hard_bounce: false,
        }],
    })
    .await;
    sm.apply(put(
        "bob",
        Some("bob"),
        vec![ev("_email.open", t0 + 3 * H, &[("message_id", "m1")])],
    ))
    .await;
    let rows = reader
        .analytics()
        .deliveries(G, "app", Some("c1"), i32::MIN, i32::MAX)
        .unwrap();
    let mut seen: Vec<(String, String, u64, u64)> = rows
        .iter()
        .map(|r| {
            (
                r.activity.clone(),
                r.event_type.clone(),
                r.rollup.count,
                r.rollup.endpoints.len(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        vec![
            ("act-0".into(), "_email.delivered".into(), 1, 1),
            ("act-0".into(), "_email.open".into(), 1, 1),
            ("act-0".into(), "_email.send".into(), 1, 1),
        ]
    );
    // Sessions and purchases count for the campaign that touched the
    // endpoint last: c1's open at +3h, then c2's delivery at +5h; a late
    // report of an older open does not move the touch back.
    let session = |ms| ev("_session.start", ms, &[]);
    let buy = |ms| {
        let mut e = ev("_monetization.purchase", ms, &[("_currency", "EUR")]);
        e.metrics = Some([("_item_price".to_owned(), 2.0)].into_iter().collect());
        e
    };
    sm.apply(put("bob", Some("bob"), vec![session(t0 + 4 * H)]))
        .await;
    sm.apply(Command::RecordCampaignIntents {
        app_id: "app".into(),
        campaign_id: "c2".into(),
        at_ms: t0 + 5 * H,
        limits: ChargeLimits::default(),
        intents: vec![SendIntent {
            message_id: "m2".into(),
            recipient: "bob".into(),
            channel: "EMAIL".into(),
            address: "bob@example.org".into(),
        }],
    })
    .await;
    sm.apply(Command::RecordCampaignOutcomes {
        app_id: "app".into(),
        campaign_id: "c2".into(),
        activities: vec!["act-0".into()],
        at_ms: t0 + 5 * H,
        outcomes: vec![CampaignOutcome {
            message_id: "m2".into(),
            endpoint_id: "bob".into(),
            treatment: 0,
            channel: "EMAIL".into(),
            outcome: Outcome::new(DeliveryStatus::Successful, 250, "ok"),
            hard_bounce: false,
        }],
    })
    .await;
    sm.apply(put(
        "bob",
        Some("bob"),
        vec![
            buy(t0 + 6 * H),
            ev("_email.open", t0 + 2 * H, &[("message_id", "m1")]),
            buy(t0 + 7 * H),
        ],
    ))
    .await;
    let attributed = |campaign: &str, et: &str| -> (u64, BTreeMap<String, f64>) {
        let rows = reader
            .analytics()
            .deliveries(G, "app", Some(campaign), i32::MIN, i32::MAX)
            .unwrap();
        let mut revenue = BTreeMap::new();
        let mut n = 0;
        for r in rows.iter().filter(|r| r.event_type == et) {
            n += r.rollup.count;
            for (c, x) in &r.rollup.extra.revenue {
                *revenue.entry(c.clone()).or_default() += x;
            }
        }
        (n, revenue)
    };
    assert_eq!(attributed("c1", "_session.start"), (1, BTreeMap::new()));
    assert_eq!(attributed("c1", "_monetization.purchase").0, 0);
    assert_eq!(
        attributed("c2", "_monetization.purchase"),
        (2, BTreeMap::from([("EUR".to_owned(), 4.0)]))
    );
    assert_eq!(attributed("c2", "_session.start").0, 0);
    // Past the window nothing is attributed.
    sm.apply(put("bob", Some("bob"), vec![buy(t0 + 30 * H)]))
        .await;
    assert_eq!(attributed("c2", "_monetization.purchase").0, 2);
    // A holdout member is counted (unknown endpoints are not) and touched:
    // its purchase counts for the holdout group.
    sm.apply(Command::RecordHoldout {
        app_id: "app".into(),
        campaign_id: "c3".into(),
        activity_id: "run-0-holdout".into(),
        at_ms: t0 + 31 * H,
        endpoint_ids: vec!["bob".into(), "nobody".into()],
    })
    .await;
    sm.apply(put("bob", Some("bob"), vec![buy(t0 + 32 * H)]))
        .await;
    assert_eq!(attributed("c3", "_campaign.holdout").0, 1);
    assert_eq!(
        attributed("c3", "_monetization.purchase"),
        (1, BTreeMap::from([("EUR".to_owned(), 2.0)]))
    );
    assert_eq!(attributed("c2", "_monetization.purchase").0, 2);
    // carl's delivery is a direct send.
    let direct = reader
        .analytics()
        .deliveries(G, "app", Some(""), i32::MIN, i32::MAX)
        .unwrap();
    assert_eq!(direct.len(), 1);

    // Deleting the anonymous endpoint removes its events and its person.
    assert_eq!(
        reader
            .endpoint_events(G, "app", "anon", 100, 1000)
            .unwrap()
            .len(),
        1
    );
    sm.apply(Command::DeleteEndpoint {
        app_id: "app".into(),
        endpoint_id: "anon".into(),
    })
    .await;
    assert!(reader
        .endpoint_events(G, "app", "anon", 100, 1000)
        .unwrap()
        .is_empty());
    assert_eq!(active(&reader, Kind::Endpoint, DAY0).len(), 3);
    assert_eq!(active(&reader, Kind::Person, DAY0).len(), 2);
    assert_eq!(
        reader
            .analytics()
            .ordinal(G, "app", Kind::Endpoint, "anon")
            .unwrap(),
        None
    );
    // Deleting ada's endpoints forgets ada.
    sm.apply(Command::DeleteUserEndpoints {
        app_id: "app".into(),
        user_id: "ada".into(),
    })
    .await;
    assert_eq!(active(&reader, Kind::Person, DAY0).len(), 1);
    assert_eq!(active(&reader, Kind::Endpoint, DAY0).len(), 1);
    // The event type rollups keep what they counted.
    let play: u64 = reader
        .analytics()
        .types(G, "app", i32::MIN, i32::MAX)
        .unwrap()
        .into_iter()
        .filter(|(_, t, _)| t == "play")
        .map(|(_, _, r)| r.count)
        .sum();
    assert_eq!(play, 5);

    // Expiry: bob's early event (5 h before day 0) goes, the rest stays.
    let r = sm
        .apply(Command::ExpireEvents {
            app_id: "app".into(),
            before_ms: t0,
            max_rows: 10,
        })
        .await;
    assert_eq!(r, CmdResult::Count(1));
    let left = reader.endpoint_events(G, "app", "bob", 100, 1000).unwrap();
    assert!(
        left.iter()
            .all(|e| e.event.timestamp.as_deref() >= Some("2026-11-29")),
        "{left:?}"
    );
    // 4 from before, 7 from the attribution steps, 1 from the holdout's
    // (the holdout mark itself is no event).
    assert_eq!(left.len(), 12);
    assert!(!reader.has_events_before(G, "app", t0).unwrap());
    let occ = reader
        .analytics()
        .occurrences(G, "app", "play", i32::MIN, i32::MAX)
        .unwrap();
    assert!(
        occ.iter().all(|(_, ms)| *ms >= t0),
        "funnel rows of expired hours are gone"
    );
    assert_eq!(new(DAY0 - 5), 1, "first-seen rollups stay");
}

#[test]
fn rollups_on_both_engines() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(rollups_follow_events_deletions_and_expiry(Arc::new(
        MemEngine::new(),
    )));
    let dir = tempfile::tempdir().unwrap();
    let rocks = Arc::new(RocksEngine::open(dir.path()).unwrap());
    rt.block_on(rollups_follow_events_deletions_and_expiry(rocks));
}

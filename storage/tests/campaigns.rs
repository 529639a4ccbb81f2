//! Campaign tables through the state machine, on both engines: caps charged
//! with the intent (and only for new intents), message ids never recorded
//! twice, outcomes recorded once with their delivery events, versioned
//! definitions, and the run claim's compare-and-set.

use std::sync::Arc;

use herald_model::message::{DeliveryStatus, Outcome};
use herald_model::wire::EndpointRequest;
use herald_storage::{
    def_kind, ApplyLimits, CampaignOutcome, CampaignProgress, ChargeLimits, CmdResult, Command,
    DefWrite, EndpointUpsert, IntentVerdict, KvEngine, MemEngine, Reader, RocksEngine, RunState,
    SendIntent, META_GROUP,
};

mod common;
use common::Sm;

const DATA: u32 = 5;
const DAY_MS: i64 = 24 * 3_600_000;

fn intent(endpoint: &str, message: &str) -> SendIntent {
    SendIntent {
        message_id: message.into(),
        recipient: endpoint.into(),
        channel: "EMAIL".into(),
        address: format!("{endpoint}@example.org"),
    }
}

fn record(at_ms: i64, limits: ChargeLimits, intents: Vec<SendIntent>) -> Command {
    Command::RecordCampaignIntents {
        app_id: "app".into(),
        campaign_id: "camp".into(),
        at_ms,
        limits,
        intents,
    }
}

fn verdicts(r: CmdResult) -> Vec<String> {
    let CmdResult::CampaignLedger(v) = r else {
        panic!("unexpected {r:?}")
    };
    v.into_iter()
        .map(|v| match v {
            IntentVerdict::New => "new".to_owned(),
            IntentVerdict::Exists(_) => "exists".to_owned(),
            IntentVerdict::Limited(why) => why,
        })
        .collect()
}

async fn caps_are_charged_with_the_intent<E: KvEngine>(engine: Arc<E>) {
    let mut sm = Sm::open(engine, DATA);
    let caps = ChargeLimits {
        daily: 1,
        total: 2,
        session: 0,
    };
    let t0 = 1_000 * DAY_MS;
    // Two sends to one endpoint in one command: the second meets Daily.
    let r = sm
        .apply(record(
            t0,
            caps,
            vec![intent("e1", "m1"), intent("e1", "m2")],
        ))
        .await;
    assert_eq!(verdicts(r), ["new", "daily_limit"]);
    // The same message id again (a resumed run): never recorded twice,
    // and not charged again.
    let r = sm
        .apply(record(t0 + 1, caps, vec![intent("e1", "m1")]))
        .await;
    assert_eq!(verdicts(r), ["exists"]);
    // A day later Daily allows one more; then Total (2) is reached.
    let r = sm
        .apply(record(t0 + DAY_MS + 1, caps, vec![intent("e1", "m3")]))
        .await;
    assert_eq!(verdicts(r), ["new"]);
    let r = sm
        .apply(record(t0 + 3 * DAY_MS, caps, vec![intent("e1", "m4")]))
        .await;
    assert_eq!(verdicts(r), ["total_limit"]);
    // Caps are per endpoint: another endpoint is not held back.
    let r = sm
        .apply(record(t0 + 3 * DAY_MS, caps, vec![intent("e2", "m5")]))
        .await;
    assert_eq!(verdicts(r), ["new"]);
    // No caps: anything goes.
    let r = sm
        .apply(record(
            t0 + 3 * DAY_MS,
            ChargeLimits::default(),
            vec![intent("e1", "m6"), intent("e1", "m7")],
        ))
        .await;
    assert_eq!(verdicts(r), ["new", "new"]);
}

fn outcome(endpoint: &str, message: &str, status: DeliveryStatus, hard: bool) -> CampaignOutcome {
    CampaignOutcome {
        message_id: message.into(),
        endpoint_id: endpoint.into(),
        treatment: 1,
        channel: "EMAIL".into(),
        outcome: Outcome::new(status, 250, "ok"),
        hard_bounce: hard,
    }
}

fn outcomes(v: Vec<CampaignOutcome>) -> Command {
    Command::RecordCampaignOutcomes {
        app_id: "app".into(),
        campaign_id: "camp".into(),
        activities: vec!["run-1-treatment-0".into(), "run-1-treatment-1".into()],
        at_ms: 1_000 * DAY_MS,
        outcomes: v,
    }
}

async fn outcomes_are_recorded_once_with_their_events<E: KvEngine>(engine: Arc<E>) {
    let mut sm = Sm::open(engine.clone(), DATA);
    let r = sm
        .apply(Command::UpsertEndpoints {
            app_id: "app".into(),
            now_iso: "2026-11-29T00:00:00.000Z".into(),
            limits: ApplyLimits {
                endpoint_bytes_max: 15 * 1024,
                endpoint_attributes_max: 250,
                session_idle_timeout_ms: 1_800_000,
                rollups: true,
            },
            items: vec![EndpointUpsert {
                endpoint_id: "e2".into(),
                request: EndpointRequest {
                    address: Some("e2@example.org".into()),
                    channel_type: Some("EMAIL".into()),
                    ..Default::default()
                },
                seq: 0,
            }],
        })
        .await;
    assert!(matches!(r, CmdResult::Written { .. }), "{r:?}");
    let r = sm
        .apply(record(
            DAY_MS,
            ChargeLimits::default(),
            vec![intent("e1", "m1"), intent("e2", "m2")],
        ))
        .await;
    assert_eq!(verdicts(r), ["new", "new"]);
    // A treatment the run does not have refuses the whole command.
    let mut bad = outcome("e1", "m1", DeliveryStatus::Successful, false);
    bad.treatment = 2;
    let r = sm
        .apply(outcomes(vec![
            outcome("e2", "m2", DeliveryStatus::Successful, false),
            bad,
        ]))
        .await;
    assert!(matches!(r, CmdResult::Rejected(_)), "{r:?}");
    let reader = Reader::new(engine.clone());
    assert!(reader
        .ledger_row(DATA, "app", "m2")
        .unwrap()
        .unwrap()
        .outcome
        .is_none());

    let batch = vec![
        outcome("e1", "m1", DeliveryStatus::Successful, false),
        outcome("e2", "m2", DeliveryStatus::PermanentFailure, true),
        // Never recorded as an intent: ignored.
        outcome("e3", "m3", DeliveryStatus::Successful, false),
    ];
    assert_eq!(sm.apply(outcomes(batch.clone())).await, CmdResult::Count(2));
    // The same batch again (a retried proposal) changes nothing.
    assert_eq!(sm.apply(outcomes(batch)).await, CmdResult::Count(0));

    let row = reader.ledger_row(DATA, "app", "m1").unwrap().unwrap();
    assert_eq!(row.outcome.unwrap().status, DeliveryStatus::Successful);
    let mut types = reader.event_types(DATA, "app").unwrap();
    types.sort();
    assert_eq!(
        types,
        [
            ("_email.delivered".to_owned(), 1),
            ("_email.hardbounce".to_owned(), 1),
            ("_email.send".to_owned(), 2),
        ]
    );
    let events = reader.events(DATA, "app", 100).unwrap();
    assert_eq!(events.len(), 4);
    let hard = events
        .iter()
        .find(|e| e.event.event_type.as_deref() == Some("_email.hardbounce"))
        .unwrap();
    assert_eq!(hard.endpoint_id, "e2");
    assert_eq!(hard.event_id, "m2_email.hardbounce");
    let a = hard.event.attributes.as_ref().unwrap();
    assert_eq!(a["campaign_id"], "camp");
    assert_eq!(a["campaign_activity_id"], "run-1-treatment-1");
    assert_eq!(a["treatment_id"], "1");
    assert_eq!(a["delivery_status"], "PERMANENT_FAILURE");
    // The hard bounce made the endpoint INACTIVE.
    let ep = reader.endpoint(DATA, "app", "e2").unwrap().unwrap();
    assert_eq!(ep.endpoint_status.as_deref(), Some("INACTIVE"));
}

async fn definitions_version_and_claims_compare_and_set<E: KvEngine>(engine: Arc<E>) {
    let mut sm = Sm::open(engine.clone(), META_GROUP);
    let app = herald_storage::AppRecord {
        id: "app".into(),
        name: "a".into(),
        arn: "arn".into(),
        creation_date: "2026-01-01T00:00:00.000Z".into(),
        tags: Default::default(),
        settings: Default::default(),
        email_channel: None,
        custom_channel: None,
        apns_channels: Default::default(),
        gcm_channel: None,
        sms_channel: None,
        event_stream: None,
        deleting: false,
        event_retention_days: None,
    };
    assert!(matches!(
        sm.apply(Command::CreateApp(Box::new(app))).await,
        CmdResult::App(Some(_))
    ));
    let put = |write: DefWrite, name: &str| Command::PutDefinition {
        app_id: "app".into(),
        kind: def_kind::CAMPAIGN,
        id: "c1".into(),
        write,
        body: serde_json::json!({ "Name": name }),
        now_iso: "2026-01-02T00:00:00.000Z".into(),
    };
    let create = DefWrite::Create {
        arn: "arn:c1".into(),
        tags: Default::default(),
    };
    assert!(
        matches!(sm.apply(put(create.clone(), "v1")).await, CmdResult::Def(Some((ref h, _))) if h.latest == 1)
    );
    assert!(matches!(
        sm.apply(put(create, "again")).await,
        CmdResult::Rejected(_)
    ));
    assert!(
        matches!(sm.apply(put(DefWrite::NewVersion, "v2")).await, CmdResult::Def(Some((ref h, ref v))) if h.latest == 2 && v.version == 2)
    );
    let reader = Reader::new(engine.clone());
    let versions = reader
        .def_versions("app", def_kind::CAMPAIGN, "c1")
        .unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0].body["Name"], "v1");

    // Claiming a run: only from the progress the claimant saw.
    let run = RunState {
        run: 0,
        version: 2,
        scheduled_ms: 1,
        started_ms: 1,
        watermark_ms: i64::MIN,
        groups_done: 0,
        groups_also_done: Vec::new(),
    };
    let claimed = CampaignProgress {
        runs_started: 1,
        current: Some(run),
        finished: false,
    };
    let claim = |expect: Option<CampaignProgress>| Command::SetCampaignProgress {
        app_id: "app".into(),
        campaign_id: "c1".into(),
        expect,
        progress: claimed.clone(),
    };
    assert!(matches!(
        sm.apply(claim(None)).await,
        CmdResult::Def(Some(_))
    ));
    assert!(
        matches!(sm.apply(claim(None)).await, CmdResult::Rejected(_)),
        "a second scheduler that saw the old progress must not start the run again"
    );

    // Deleting removes the head and every version.
    let del = Command::DeleteDefinition {
        app_id: "app".into(),
        kind: def_kind::CAMPAIGN,
        id: "c1".into(),
    };
    assert!(matches!(
        sm.apply(del.clone()).await,
        CmdResult::Def(Some(_))
    ));
    assert!(matches!(sm.apply(del).await, CmdResult::Def(None)));
    let reader = Reader::new(engine);
    assert!(reader
        .def_head("app", def_kind::CAMPAIGN, "c1")
        .unwrap()
        .is_none());
    assert!(reader
        .def_versions("app", def_kind::CAMPAIGN, "c1")
        .unwrap()
        .is_empty());
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn caps_on_both_engines() {
    rt().block_on(caps_are_charged_with_the_intent(Arc::new(MemEngine::new())));
    let dir = tempfile::tempdir().unwrap();
    let rocks = Arc::new(RocksEngine::open(dir.path()).unwrap());
    rt().block_on(caps_are_charged_with_the_intent(rocks));
}

#[test]
fn definitions_on_both_engines() {
    rt().block_on(definitions_version_and_claims_compare_and_set(Arc::new(
        MemEngine::new(),
    )));
    let dir = tempfile::tempdir().unwrap();
    let rocks = Arc::new(RocksEngine::open(dir.path()).unwrap());
    rt().block_on(definitions_version_and_claims_compare_and_set(rocks));
}

#[test]
fn outcomes_on_both_engines() {
    rt().block_on(outcomes_are_recorded_once_with_their_events(Arc::new(
        MemEngine::new(),
    )));
    let dir = tempfile::tempdir().unwrap();
    let rocks = Arc::new(RocksEngine::open(dir.path()).unwrap());
    rt().block_on(outcomes_are_recorded_once_with_their_events(rocks));
}

/// One-time passwords through the state machine: valid once, a wrong guess
/// spends an attempt, an expired code is refused (and removed), and the
/// verdict is the same on every replica because the guess's hash and the
/// time come in the command.
async fn otps_are_valid_once_within_time_and_attempts<E: KvEngine>(engine: Arc<E>) {
    use herald_model::otp::{code_hash, OtpRecord};
    let mut sm = Sm::open(engine, DATA);
    let h = |c: &str| code_hash(b"secret", "app", "+12065550123", "login", c);
    let put = |attempts: u32| Command::PutOtp {
        app_id: "app".into(),
        destination: "+12065550123".into(),
        reference_id: "login".into(),
        record: OtpRecord {
            code_hash: h("123456"),
            expires_at_ms: 10_000,
            attempts_left: attempts,
        },
    };
    let verify = |code: &str, now_ms: i64| Command::VerifyOtp {
        app_id: "app".into(),
        destination: "+12065550123".into(),
        reference_id: "login".into(),
        guess_hash: h(code),
        now_ms,
    };
    sm.apply(put(3)).await;
    assert_eq!(
        sm.apply(verify("000000", 1)).await,
        CmdResult::OtpVerdict(false)
    );
    assert_eq!(
        sm.apply(verify("123456", 2)).await,
        CmdResult::OtpVerdict(true)
    );
    assert_eq!(
        sm.apply(verify("123456", 3)).await,
        CmdResult::OtpVerdict(false),
        "used once"
    );
    // Out of attempts: even the right code is refused after.
    sm.apply(put(2)).await;
    for _ in 0..2 {
        assert_eq!(
            sm.apply(verify("999999", 4)).await,
            CmdResult::OtpVerdict(false)
        );
    }
    assert_eq!(
        sm.apply(verify("123456", 5)).await,
        CmdResult::OtpVerdict(false)
    );
    // Expired.
    sm.apply(put(3)).await;
    assert_eq!(
        sm.apply(verify("123456", 10_000)).await,
        CmdResult::OtpVerdict(false)
    );
    assert_eq!(
        sm.apply(verify("123456", 9_000)).await,
        CmdResult::OtpVerdict(false),
        "removed when found expired"
    );
}

#[test]
fn otps_on_both_engines() {
    rt().block_on(otps_are_valid_once_within_time_and_attempts(Arc::new(
        MemEngine::new(),
    )));
    let dir = tempfile::tempdir().unwrap();
    let rocks = Arc::new(RocksEngine::open(dir.path()).unwrap());
    rt().block_on(otps_are_valid_once_within_time_and_attempts(rocks));
}

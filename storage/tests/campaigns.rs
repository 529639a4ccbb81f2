//! Campaign tables through the state machine, on both engines: caps charged
//! with the intent (and only for new intents), message ids never recorded
//! twice, versioned definitions, and the run claim's compare-and-set.

use std::sync::Arc;

use herald_storage::{
    def_kind, CampaignProgress, ChargeLimits, CmdResult, Command, DefWrite, IntentVerdict,
    KvEngine, MemEngine, Reader, RocksEngine, RunState, SendIntent, StateMachine, TypeConfig,
    META_GROUP,
};
use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};

const DATA: u32 = 5;
const DAY_MS: i64 = 24 * 3_600_000;

struct Sm<E: KvEngine> {
    sm: StateMachine<E>,
    index: u64,
}

impl<E: KvEngine> Sm<E> {
    fn open(engine: Arc<E>, group: u32) -> Self {
        Self {
            sm: StateMachine::open(engine, group, None).unwrap(),
            index: 0,
        }
    }

    async fn apply(&mut self, cmd: Command) -> CmdResult {
        self.index += 1;
        let entry: Entry<TypeConfig> = Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), self.index),
            payload: EntryPayload::Normal(cmd),
        };
        self.sm.apply(vec![entry]).await.unwrap().remove(0)
    }
}

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
        deleting: false,
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

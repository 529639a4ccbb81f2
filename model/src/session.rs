//! Session rules for app events (Amplify / Pinpoint mobile SDK semantics).
//!
//! The SDKs report `_session.start`, `_session.pause`, `_session.resume` and
//! `_session.stop`, each carrying `Session.Id`. herald derives sessions from
//! them, one endpoint at a time, as a pure state machine over
//! `Option<OpenSession>`:
//!
//! * **start / resume** open a session. If the same session is already open
//!   (same id), it continues: a pause is cancelled, and a duplicate start is just
//!   activity. If a *different* session is open, it is closed first (at its last
//!   activity, or at its pause time if paused) and the new one opens.
//! * **pause** marks the open session paused at that time. A resume within
//!   `resume_grace_ms` of the pause continues the SAME session: no session is
//!   closed and the pause does not count as an end.
//! * **stop** closes the open session: at the pause time if paused, otherwise at
//!   the stop's time.
//! * **other events** while a session is open and not paused are activity.
//!   Events while paused do not resume or extend it; events while no session is
//!   open do not open one.
//! * **expiry**, checked before every event and on every tick: a paused
//!   session whose grace has run out (`now - paused_at > resume_grace_ms`)
//!   closes at its pause time; an unpaused session idle for longer than
//!   `idle_timeout_ms` closes at its last activity.
//!
//! Time never moves backwards inside a session: an event older than the open
//! session's last activity is applied at that last activity (it still counts as
//! a pause/stop/activity, but cannot shorten or reorder the session), so
//! `start <= last_activity`, `paused_at == last_activity` while paused, and
//! every closed session has `end >= start`. Sessions closed and opened by one
//! call never overlap. The state has no memory of sessions already closed, so
//! callers that want non-overlap across late deliveries must feed each
//! endpoint's events in timestamp order (PutEvents batches are per endpoint;
//! sort a batch by timestamp before applying it), and de-duplicate events by
//! event id: a start re-delivered after its session closed opens a new session
//! with the same id.

use serde::{Deserialize, Serialize};

/// Timing rules. Defaults: 5 s resume grace, 30 min idle timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SessionConfig {
    /// A resume within this many ms of a pause continues the same session.
    pub resume_grace_ms: i64,
    /// An unpaused session without activity for longer than this is closed.
    pub idle_timeout_ms: i64,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            resume_grace_ms: 5_000,
            idle_timeout_ms: 30 * 60 * 1000,
        }
    }
}

/// The session currently open for an endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenSession {
    pub id: String,
    pub start_ms: i64,
    pub last_activity_ms: i64,
    /// `Some(t)` while paused since `t`.
    pub paused_at_ms: Option<i64>,
}

/// A finished session; `end_ms >= start_ms`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClosedSession {
    pub id: String,
    pub start_ms: i64,
    pub end_ms: i64,
}

impl ClosedSession {
    /// `end_ms - start_ms`.
    pub fn duration_ms(&self) -> i64 {
        self.end_ms - self.start_ms
    }
}

/// What an event means for sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEvent<'a> {
    Start {
        id: &'a str,
    },
    Resume {
        id: &'a str,
    },
    Pause,
    Stop,
    Activity,
    /// A delivery event herald records itself (`_email.send`, …): the
    /// server sending a message is not the user using the app, so it
    /// neither opens, extends nor expires a session.
    Ignored,
}

/// Prefixes of the delivery events herald records on its own (campaign and
/// direct sends); see [`SessionEvent::Ignored`].
pub const DELIVERY_EVENT_PREFIXES: [&str; 4] = ["_email.", "_sms.", "_voice.", "_custom."];

/// Event type names the SDKs use.
pub const SESSION_START: &str = "_session.start";
pub const SESSION_STOP: &str = "_session.stop";
pub const SESSION_PAUSE: &str = "_session.pause";
pub const SESSION_RESUME: &str = "_session.resume";

/// Maps an event's `EventType` and `Session.Id` to a [`SessionEvent`]. Names
/// match exactly (case-sensitive). A start or resume without a non-empty
/// session id cannot name a session and counts as plain activity.
pub fn classify<'a>(event_type: &str, session_id: Option<&'a str>) -> SessionEvent<'a> {
    let id = session_id.filter(|s| !s.is_empty());
    match (event_type, id) {
        (SESSION_START, Some(id)) => SessionEvent::Start { id },
        (SESSION_RESUME, Some(id)) => SessionEvent::Resume { id },
        (SESSION_PAUSE, _) => SessionEvent::Pause,
        (SESSION_STOP, _) => SessionEvent::Stop,
        _ if DELIVERY_EVENT_PREFIXES
            .iter()
            .any(|p| event_type.starts_with(p)) =>
        {
            SessionEvent::Ignored
        }
        _ => SessionEvent::Activity,
    }
}

/// Applies one event at `ts_ms` to the endpoint's open session. Returns the new
/// open session and the sessions this closed: an expired one, one replaced by a
/// different session id, or one stopped — never more than one today, but
/// callers should handle any number, oldest first.
pub fn on_event(
    open: Option<OpenSession>,
    ev: SessionEvent<'_>,
    ts_ms: i64,
    cfg: &SessionConfig,
) -> (Option<OpenSession>, Vec<ClosedSession>) {
    if ev == SessionEvent::Ignored {
        return (open, Vec::new());
    }
    let mut closed = Vec::new();
    let open = match open.map(|o| expire(o, ts_ms, cfg)) {
        None => None,
        Some(Ok(o)) => Some(o),
        Some(Err(c)) => {
            closed.push(c);
            None
        }
    };
    let next = match (ev, open) {
        (SessionEvent::Start { id } | SessionEvent::Resume { id }, Some(mut o)) if o.id == id => {
            o.last_activity_ms = o.last_activity_ms.max(ts_ms);
            o.paused_at_ms = None;
            Some(o)
        }
        (SessionEvent::Start { id } | SessionEvent::Resume { id }, Some(o)) => {
            let c = close_at_rest(o);
            let start = ts_ms.max(c.end_ms);
            closed.push(c);
            Some(new_session(id, start))
        }
        (SessionEvent::Start { id } | SessionEvent::Resume { id }, None) => {
            let start = closed.last().map_or(ts_ms, |c| ts_ms.max(c.end_ms));
            Some(new_session(id, start))
        }
        (SessionEvent::Pause, Some(mut o)) => {
            if o.paused_at_ms.is_none() {
                let t = o.last_activity_ms.max(ts_ms);
                o.last_activity_ms = t;
                o.paused_at_ms = Some(t);
            }
            Some(o)
        }
        (SessionEvent::Stop, Some(o)) => {
            let end = o.paused_at_ms.unwrap_or(o.last_activity_ms.max(ts_ms));
            closed.push(ClosedSession {
                id: o.id,
                start_ms: o.start_ms,
                end_ms: end,
            });
            None
        }
        (SessionEvent::Activity, Some(mut o)) => {
            if o.paused_at_ms.is_none() {
                o.last_activity_ms = o.last_activity_ms.max(ts_ms);
            }
            Some(o)
        }
        (SessionEvent::Pause | SessionEvent::Stop | SessionEvent::Activity, None) => None,
        (SessionEvent::Ignored, o) => o,
    };
    debug_assert!(next.as_ref().is_none_or(invariant_holds));
    debug_assert!(closed.iter().all(|c| c.end_ms >= c.start_ms));
    (next, closed)
}

/// Closes the open session if it expired by `now_ms` (see the module doc).
pub fn on_tick(
    open: Option<OpenSession>,
    now_ms: i64,
    cfg: &SessionConfig,
) -> (Option<OpenSession>, Option<ClosedSession>) {
    match open.map(|o| expire(o, now_ms, cfg)) {
        None => (None, None),
        Some(Ok(o)) => (Some(o), None),
        Some(Err(c)) => (None, Some(c)),
    }
}

/// The earliest time at which [`on_tick`] would close `open`, for scheduling
/// timers: pause time + grace + 1 if paused, else last activity + idle + 1.
pub fn expires_at_ms(open: &OpenSession, cfg: &SessionConfig) -> i64 {
    match open.paused_at_ms {
        Some(p) => p.saturating_add(cfg.resume_grace_ms).saturating_add(1),
        None => open
            .last_activity_ms
            .saturating_add(cfg.idle_timeout_ms)
            .saturating_add(1),
    }
}

fn new_session(id: &str, start_ms: i64) -> OpenSession {
    OpenSession {
        id: id.to_string(),
        start_ms,
        last_activity_ms: start_ms,
        paused_at_ms: None,
    }
}

/// Closes a session "where it came to rest": at its pause time, else its last activity.
fn close_at_rest(o: OpenSession) -> ClosedSession {
    let end = o.paused_at_ms.unwrap_or(o.last_activity_ms).max(o.start_ms);
    ClosedSession {
        id: o.id,
        start_ms: o.start_ms,
        end_ms: end,
    }
}

fn expire(o: OpenSession, now_ms: i64, cfg: &SessionConfig) -> Result<OpenSession, ClosedSession> {
    if now_ms >= expires_at_ms(&o, cfg) {
        Err(close_at_rest(o))
    } else {
        Ok(o)
    }
}

fn invariant_holds(o: &OpenSession) -> bool {
    o.start_ms <= o.last_activity_ms && o.paused_at_ms.is_none_or(|p| p == o.last_activity_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CFG: SessionConfig = SessionConfig {
        resume_grace_ms: 5_000,
        idle_timeout_ms: 1_800_000,
    };

    fn start(id: &str) -> SessionEvent<'_> {
        SessionEvent::Start { id }
    }
    fn resume(id: &str) -> SessionEvent<'_> {
        SessionEvent::Resume { id }
    }

    /// Feeds `(event, ts)` in order; returns the final open session and all closed ones.
    fn run(events: &[(SessionEvent<'_>, i64)]) -> (Option<OpenSession>, Vec<ClosedSession>) {
        let mut open = None;
        let mut all = Vec::new();
        for &(ev, ts) in events {
            let (o, c) = on_event(open, ev, ts, &CFG);
            open = o;
            all.extend(c);
        }
        (open, all)
    }

    fn closed(id: &str, start_ms: i64, end_ms: i64) -> ClosedSession {
        ClosedSession {
            id: id.into(),
            start_ms,
            end_ms,
        }
    }

    #[test]
    fn classify_event_types() {
        assert_eq!(
            classify("_session.start", Some("s")),
            SessionEvent::Start { id: "s" }
        );
        assert_eq!(
            classify("_session.resume", Some("s")),
            SessionEvent::Resume { id: "s" }
        );
        assert_eq!(classify("_session.pause", Some("s")), SessionEvent::Pause);
        assert_eq!(classify("_session.stop", None), SessionEvent::Stop);
        assert_eq!(classify("purchase", Some("s")), SessionEvent::Activity);
        assert_eq!(classify("_email.send", Some("s")), SessionEvent::Ignored);
        assert_eq!(classify("_custom.delivered", None), SessionEvent::Ignored);
        assert_eq!(classify("_email", None), SessionEvent::Activity);
        assert_eq!(classify("_session.start", None), SessionEvent::Activity);
        assert_eq!(classify("_session.start", Some("")), SessionEvent::Activity);
        assert_eq!(
            classify("_SESSION.START", Some("s")),
            SessionEvent::Activity
        );
    }

    #[test]
    fn start_activity_stop() {
        let (open, c) = run(&[
            (start("a"), 1_000),
            (SessionEvent::Activity, 5_000),
            (SessionEvent::Stop, 9_000),
        ]);
        assert_eq!(open, None);
        assert_eq!(c, vec![closed("a", 1_000, 9_000)]);
        assert_eq!(c[0].duration_ms(), 8_000);
    }

    #[test]
    fn delivery_events_leave_sessions_alone() {
        // Sent long after the session went idle: an activity would have
        // expired it; a delivery event does not touch it, nor open one.
        let (open, c) = run(&[(start("a"), 1_000), (SessionEvent::Ignored, 9_000_000)]);
        assert_eq!(
            open.map(|o| (o.start_ms, o.last_activity_ms)),
            Some((1_000, 1_000))
        );
        assert!(c.is_empty());
        let (open, c) = run(&[(SessionEvent::Ignored, 5_000)]);
        assert_eq!(open, None);
        assert!(c.is_empty());
    }

    #[test]
    fn pause_then_quick_resume_is_one_session() {
        let (open, c) = run(&[
            (start("a"), 0),
            (SessionEvent::Pause, 10_000),
            (resume("a"), 15_000), // exactly at the grace boundary: still the same session
            (SessionEvent::Pause, 20_000),
            (resume("a"), 21_000),
            (SessionEvent::Stop, 30_000),
        ]);
        assert_eq!(open, None);
        assert_eq!(c, vec![closed("a", 0, 30_000)]);
    }

    #[test]
    fn late_resume_closes_at_pause_and_starts_again() {
        let (open, c) = run(&[
            (start("a"), 0),
            (SessionEvent::Pause, 10_000),
            (resume("a"), 15_001),
        ]);
        assert_eq!(c, vec![closed("a", 0, 10_000)]);
        let open = open.unwrap();
        assert_eq!(
            (open.id.as_str(), open.start_ms, open.paused_at_ms),
            ("a", 15_001, None)
        );
    }

    #[test]
    fn pause_then_stop_ends_at_pause() {
        let (_, c) = run(&[
            (start("a"), 0),
            (SessionEvent::Pause, 10_000),
            (SessionEvent::Stop, 12_000),
        ]);
        assert_eq!(c, vec![closed("a", 0, 10_000)]);
    }

    #[test]
    fn activity_while_paused_does_not_extend() {
        let (open, c) = run(&[
            (start("a"), 0),
            (SessionEvent::Pause, 1_000),
            (SessionEvent::Activity, 2_000),
        ]);
        assert!(c.is_empty());
        assert_eq!(open.as_ref().unwrap().last_activity_ms, 1_000);
        let (open, c) = on_tick(open, 6_001, &CFG);
        assert_eq!((open, c), (None, Some(closed("a", 0, 1_000))));
    }

    #[test]
    fn idle_timeout_closes_at_last_activity() {
        let (open, _) = run(&[(start("a"), 0), (SessionEvent::Activity, 60_000)]);
        let o = open.clone().unwrap();
        assert_eq!(expires_at_ms(&o, &CFG), 60_000 + 1_800_001);
        assert_eq!(
            on_tick(open.clone(), 60_000 + 1_800_000, &CFG),
            (open.clone(), None)
        );
        assert_eq!(
            on_tick(open.clone(), 60_000 + 1_800_001, &CFG),
            (None, Some(closed("a", 0, 60_000)))
        );
        // The next event after the timeout closes it too, and is not part of it.
        let (next, c) = on_event(open, SessionEvent::Activity, 10_000_000, &CFG);
        assert_eq!((next, c), (None, vec![closed("a", 0, 60_000)]));
    }

    #[test]
    fn expiry_then_start_in_one_call() {
        let (open, c) = run(&[(start("a"), 0), (start("b"), 2_000_000)]);
        assert_eq!(c, vec![closed("a", 0, 0)]);
        assert_eq!(open.unwrap().start_ms, 2_000_000);
    }

    #[test]
    fn different_session_replaces_open_one() {
        let (open, c) = run(&[
            (start("a"), 0),
            (SessionEvent::Activity, 3_000),
            (start("b"), 4_000),
        ]);
        assert_eq!(c, vec![closed("a", 0, 3_000)]);
        assert_eq!(open.unwrap().id, "b");
        // A resume with a different id while paused: old one ends at its pause.
        let (open, c) = run(&[
            (start("a"), 0),
            (SessionEvent::Pause, 3_000),
            (resume("b"), 4_000),
        ]);
        assert_eq!(c, vec![closed("a", 0, 3_000)]);
        assert_eq!(open.unwrap().id, "b");
    }

    #[test]
    fn duplicates_and_orphans() {
        // Duplicate start is activity.
        let (open, c) = run(&[(start("a"), 0), (start("a"), 1_000)]);
        assert!(c.is_empty());
        assert_eq!(
            open.unwrap(),
            OpenSession {
                id: "a".into(),
                start_ms: 0,
                last_activity_ms: 1_000,
                paused_at_ms: None
            }
        );
        // A second pause keeps the first pause time.
        let (open, _) = run(&[
            (start("a"), 0),
            (SessionEvent::Pause, 1_000),
            (SessionEvent::Pause, 3_000),
        ]);
        assert_eq!(open.unwrap().paused_at_ms, Some(1_000));
        // Pause, stop, activity without a session do nothing.
        for ev in [
            SessionEvent::Pause,
            SessionEvent::Stop,
            SessionEvent::Activity,
        ] {
            assert_eq!(on_event(None, ev, 5, &CFG), (None, vec![]));
        }
        // Resume without a session opens one.
        let (open, _) = on_event(None, resume("r"), 7, &CFG);
        assert_eq!(open.unwrap().start_ms, 7);
    }

    #[test]
    fn out_of_order_events_do_not_move_time_backwards() {
        let (open, c) = run(&[
            (start("a"), 10_000),
            (SessionEvent::Activity, 20_000),
            (SessionEvent::Activity, 5_000),
            (SessionEvent::Pause, 15_000),
        ]);
        assert!(c.is_empty());
        let o = open.clone().unwrap();
        assert_eq!((o.last_activity_ms, o.paused_at_ms), (20_000, Some(20_000)));
        let (_, c) = on_event(open, SessionEvent::Stop, 1_000, &CFG);
        assert_eq!(c, vec![closed("a", 10_000, 20_000)]);
        // A stop stamped before the start ends the session at its start.
        let (_, c) = run(&[(start("b"), 10_000), (SessionEvent::Stop, 9_000)]);
        assert_eq!(c, vec![closed("b", 10_000, 10_000)]);
        // A different session that claims to start earlier starts after the old one ends.
        let (open, c) = run(&[
            (start("a"), 10_000),
            (SessionEvent::Activity, 12_000),
            (start("b"), 11_000),
        ]);
        assert_eq!(c, vec![closed("a", 10_000, 12_000)]);
        assert_eq!(open.unwrap().start_ms, 12_000);
    }

    #[test]
    fn extreme_times_do_not_overflow() {
        let (open, _) = on_event(None, start("a"), i64::MAX - 2, &CFG);
        assert_eq!(on_tick(open.clone(), i64::MAX - 1, &CFG).0, open);
        assert_eq!(on_tick(open, i64::MAX, &CFG).0, None);
        let (open, _) = on_event(None, start("a"), i64::MIN, &CFG);
        let (o, c) = on_tick(open, i64::MAX, &CFG);
        assert_eq!((o, c), (None, Some(closed("a", i64::MIN, i64::MIN))));
    }

    // --- property tests -------------------------------------------------

    #[derive(Debug, Clone)]
    enum Op {
        Start(u8),
        Resume(u8),
        Pause,
        Stop,
        Activity,
        Tick,
    }

    fn arb_op() -> impl Strategy<Value = Op> {
        prop_oneof![
            2 => (0u8..3).prop_map(Op::Start),
            2 => (0u8..3).prop_map(Op::Resume),
            2 => Just(Op::Pause),
            1 => Just(Op::Stop),
            4 => Just(Op::Activity),
            1 => Just(Op::Tick),
        ]
    }

    /// Gaps straddle both thresholds: within grace, between grace and idle, past idle.
    fn arb_gap() -> impl Strategy<Value = i64> {
        prop_oneof![
            0i64..6_000,
            4_990i64..5_010,
            5_000i64..2_000_000,
            1_799_990i64..1_800_010
        ]
    }

    const IDS: [&str; 3] = ["s0", "s1", "s2"];

    fn apply(
        open: Option<OpenSession>,
        op: &Op,
        ts: i64,
    ) -> (Option<OpenSession>, Vec<ClosedSession>) {
        match op {
            Op::Start(i) => on_event(open, start(IDS[*i as usize]), ts, &CFG),
            Op::Resume(i) => on_event(open, resume(IDS[*i as usize]), ts, &CFG),
            Op::Pause => on_event(open, SessionEvent::Pause, ts, &CFG),
            Op::Stop => on_event(open, SessionEvent::Stop, ts, &CFG),
            Op::Activity => on_event(open, SessionEvent::Activity, ts, &CFG),
            Op::Tick => {
                let (o, c) = on_tick(open, ts, &CFG);
                (o, c.into_iter().collect())
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// In-order streams: sessions are well-formed, never overlap, stay inside
        /// the observed time range, and everything is closed by a final tick.
        #[test]
        fn ordered_streams_are_consistent(
            t0 in -1_000_000_000i64..1_000_000_000,
            steps in prop::collection::vec((arb_op(), arb_gap()), 1..60),
        ) {
            let mut open = None;
            let mut all: Vec<ClosedSession> = Vec::new();
            let mut ts = t0;
            let mut opens = 0usize;
            for (op, gap) in &steps {
                ts += gap;
                let before = open.clone();
                let (o, c) = apply(open, op, ts);
                prop_assert!(c.len() <= 1);
                if let Some(o) = &o {
                    prop_assert!(o.start_ms <= o.last_activity_ms && o.last_activity_ms <= ts);
                    if let Some(p) = o.paused_at_ms { prop_assert_eq!(p, o.last_activity_ms); }
                    if before.as_ref().is_none_or(|b| b.id != o.id || b.start_ms != o.start_ms) {
                        opens += 1;
                        // A new session starts no earlier than anything already closed.
                        for x in all.iter().chain(c.iter()) { prop_assert!(o.start_ms >= x.end_ms); }
                    }
                }
                all.extend(c);
                open = o;
            }
            let (o, c) = on_tick(open, ts + CFG.idle_timeout_ms + CFG.resume_grace_ms + 1, &CFG);
            prop_assert!(o.is_none());
            all.extend(c);

            prop_assert_eq!(all.len(), opens, "every opened session is closed exactly once");
            let mut total = 0;
            for (i, s) in all.iter().enumerate() {
                prop_assert!(s.end_ms >= s.start_ms);
                prop_assert!(s.start_ms >= t0 && s.end_ms <= ts);
                if i > 0 { prop_assert!(s.start_ms >= all[i - 1].end_ms, "overlap: {:?}", all); }
                total += s.duration_ms();
            }
            prop_assert!(total <= ts - t0);
            let starts = steps.iter().filter(|(op, _)| matches!(op, Op::Start(_) | Op::Resume(_))).count();
            prop_assert!(all.len() <= starts);
        }

        /// Whatever came before, a resume of the paused session within the grace
        /// closes nothing and keeps the session (same id and start).
        #[test]
        fn resume_within_grace_never_closes(
            steps in prop::collection::vec((arb_op(), arb_gap()), 0..40),
            pause_gap in 0i64..1_000_000,
            resume_gap in 0i64..=5_000,
        ) {
            let mut open = Some(new_session("s0", 0));
            let mut ts = 0;
            for (op, gap) in &steps {
                ts += gap;
                open = apply(open, op, ts).0;
            }
            ts += pause_gap;
            let (o, _) = on_event(open, start("s1"), ts, &CFG);
            let (o, c) = on_event(o, SessionEvent::Pause, ts, &CFG);
            prop_assert!(c.is_empty());
            let paused = o.clone().unwrap();
            let (o, c) = on_event(o, resume("s1"), ts + resume_gap, &CFG);
            prop_assert!(c.is_empty());
            let o = o.unwrap();
            prop_assert_eq!((&o.id, o.start_ms, o.paused_at_ms), (&paused.id, paused.start_ms, None));
            // And a tick inside the grace never closes a paused session either.
            let (o2, c2) = on_tick(Some(paused.clone()), paused.paused_at_ms.unwrap() + resume_gap, &CFG);
            prop_assert_eq!((o2, c2), (Some(paused), None));
        }

        /// Arbitrary (unordered) timestamps: no panics, sessions are well-formed,
        /// and what one call closes never overlaps what it opens.
        #[test]
        fn unordered_streams_stay_well_formed(
            steps in prop::collection::vec((arb_op(), -10_000_000i64..10_000_000), 1..60),
        ) {
            let mut open = None;
            for (op, ts) in &steps {
                let (o, c) = apply(open, op, *ts);
                for s in &c { prop_assert!(s.end_ms >= s.start_ms); }
                for w in c.windows(2) { prop_assert!(w[1].start_ms >= w[0].end_ms); }
                if let Some(o) = &o {
                    prop_assert!(o.start_ms <= o.last_activity_ms);
                    for s in &c { prop_assert!(o.start_ms >= s.end_ms); }
                }
                open = o;
            }
        }

        /// Ticking before the expiry time changes nothing; at it, the session closes
        /// where it came to rest.
        #[test]
        fn tick_matches_expires_at(
            steps in prop::collection::vec((arb_op(), arb_gap()), 1..30),
            early in 1i64..1_000_000,
        ) {
            let mut open = None;
            let mut ts = 0;
            for (op, gap) in &steps {
                ts += gap;
                open = apply(open, op, ts).0;
            }
            if let Some(o) = open {
                let at = expires_at_ms(&o, &CFG);
                prop_assert_eq!(on_tick(Some(o.clone()), at - early, &CFG), (Some(o.clone()), None));
                let (none, c) = on_tick(Some(o.clone()), at, &CFG);
                prop_assert!(none.is_none());
                prop_assert_eq!(c.unwrap().end_ms, o.paused_at_ms.unwrap_or(o.last_activity_ms));
            }
        }
    }
}

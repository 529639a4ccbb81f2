//! herald's analytics API: reads the rollups of every data shard (local
//! copies, after each group's read barrier), translates shard-local
//! ordinals into query-wide ones so that a person with endpoints in several
//! shards counts once, and answers with `herald_model::analytics`.
//!
//! The translation tables are cached per node and app and only grow
//! (ordinals are dense and never reused); a deleted and re-created app is
//! detected by the id at ordinal 0 and starts over.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::Mutex;

use chrono::NaiveDate;
use chrono_tz::Tz;
use herald_model::analytics::{
    self as an, local_days, ActiveDay, Agg, Cohort, Kind, LocalDay, SessionRollup, TypeRollup,
};
use herald_storage::keys::{tag, GroupId};
use herald_storage::KvEngine;
use roaring::RoaringBitmap;
use serde::Serialize;

use crate::service::{Herald, Result, ServiceError};

/// The longest date range a query may cover.
pub const RANGE_DAYS_MAX: i64 = 366;
/// The most steps a funnel may have.
pub const FUNNEL_STEPS_MAX: usize = 10;
/// The longest funnel window.
pub const FUNNEL_WINDOW_MAX_SECS: i64 = 31 * 24 * 3600;
/// Most occurrences of its steps a funnel may read (8 bytes each): 256 MB.
pub const FUNNEL_OCCURRENCES_MAX: usize = 32 << 20;
/// Funnel buffers up to this size are kept for the next funnel query
/// (10 million events over 30 days, 3 steps: about 40 MB).
pub const FUNNEL_SCRATCH_KEEP_BYTES: usize = 128 << 20;
const _: () = assert!(FUNNEL_STEPS_MAX <= an::FUNNEL_STEPS_LIMIT);

/// Local dates `from..=to` in a time zone.
#[derive(Debug, Clone, Copy)]
pub struct DateRange {
    pub tz: Tz,
    pub from: NaiveDate,
    pub to: NaiveDate,
}

impl DateRange {
    /// Parses `tz` (IANA name, default UTC) and `from`/`to` (YYYY-MM-DD,
    /// default the 7 days ending today in that zone).
    pub fn parse(
        tz: Option<&str>,
        from: Option<&str>,
        to: Option<&str>,
        now_ms: i64,
    ) -> Result<Self> {
        let tz: Tz = match tz {
            None | Some("") => Tz::UTC,
            Some(name) => name.parse().map_err(|_| {
                ServiceError::BadRequest(format!("tz {name:?} is not an IANA time zone name"))
            })?,
        };
        let date = |name: &str, v: &str| {
            NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| {
                ServiceError::BadRequest(format!("{name} must be a date as YYYY-MM-DD, not {v:?}"))
            })
        };
        let today = an::local_date(tz, now_ms);
        let to = match to {
            Some(v) => date("to", v)?,
            None => today,
        };
        let from = match from {
            Some(v) => date("from", v)?,
            None => to - chrono::Duration::days(6),
        };
        if from > to {
            return Err(ServiceError::BadRequest(format!(
                "from ({from}) is after to ({to})"
            )));
        }
        if (to - from).num_days() >= RANGE_DAYS_MAX {
            return Err(ServiceError::BadRequest(format!(
                "a range may cover at most {RANGE_DAYS_MAX} days"
            )));
        }
        Ok(Self { tz, from, to })
    }

    fn days(&self) -> Vec<LocalDay> {
        local_days(self.tz, self.from, self.to)
    }

    fn shifted(&self, before: i64, after: i64) -> Vec<LocalDay> {
        local_days(
            self.tz,
            self.from - chrono::Duration::days(before),
            self.to + chrono::Duration::days(after),
        )
    }
}

/// Which identity a count is over.
pub fn parse_kind(v: Option<&str>) -> Result<Kind> {
    match v {
        None | Some("users") => Ok(Kind::Person),
        Some("endpoints") => Ok(Kind::Endpoint),
        Some(other) => Err(ServiceError::BadRequest(format!(
            "by must be users or endpoints, not {other:?}"
        ))),
    }
}

/// Shard-local -> query-wide ordinals of one app and kind.
#[derive(Default)]
struct Translation {
    /// Per group (by shard index): global ordinal of each local one.
    local: Vec<Vec<u32>>,
    /// Per group: the id at ordinal 0, to notice a re-created app.
    first: Vec<Option<String>>,
    /// Person ids -> global ordinal (persons only).
    names: BTreeMap<Box<str>, u32>,
    next: u32,
}

/// The node's translation tables, and the buffers of the last funnel query.
#[derive(Default)]
pub struct OrdinalCache {
    apps: Mutex<BTreeMap<(String, u8), Translation>>,
    funnel: Mutex<Option<an::FunnelScratch>>,
}

impl OrdinalCache {
    /// The kept funnel buffers, or new ones (when none are kept or another
    /// query holds them).
    fn take_funnel_scratch(&self) -> an::FunnelScratch {
        self.funnel
            .lock()
            .expect("funnel scratch lock")
            .take()
            .unwrap_or_default()
    }

    /// Keeps a funnel's buffers for the next one, unless they are larger
    /// than [`FUNNEL_SCRATCH_KEEP_BYTES`].
    fn keep_funnel_scratch(&self, scratch: an::FunnelScratch) {
        if scratch.bytes() <= FUNNEL_SCRATCH_KEEP_BYTES {
            *self.funnel.lock().expect("funnel scratch lock") = Some(scratch);
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ActiveRow {
    pub date: String,
    pub daily: u64,
    pub weekly: u64,
    pub monthly: u64,
    pub sticky_factor: f64,
    pub new: u64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RetentionRow {
    pub date: String,
    pub cohort: u64,
    /// Came back within 1, 7, 14 and 30 days (`null` until the window ends).
    pub day1: Option<u64>,
    pub day7: Option<u64>,
    pub day14: Option<u64>,
    pub day30: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SessionRow {
    pub date: String,
    /// Closed sessions that started that day.
    pub sessions: u64,
    pub average_duration_seconds: f64,
    pub sessions_per_active_user: f64,
    pub session_starts: u64,
    pub active_users: u64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct MetricReport {
    pub count: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    pub average: f64,
    pub per_session: f64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DayCount {
    pub date: String,
    pub count: u64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct EventReport {
    pub event_type: String,
    pub count: u64,
    pub days: Vec<DayCount>,
    pub metrics: BTreeMap<String, MetricReport>,
    /// attribute -> value -> events (no attribute filter only).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, BTreeMap<String, u64>>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub revenue: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct FunnelStep {
    pub event_type: String,
    pub users: u64,
    /// Of those who reached the previous step (1 for the first).
    pub conversion_from_previous: f64,
    pub conversion_from_first: f64,
}

/// Shard-local -> query-wide ordinals (a copy of the cached translation).
struct Ords {
    local: Vec<Vec<u32>>,
    n: u32,
}

impl Ords {
    fn get(&self, group_index: usize, ord: u32) -> Option<u32> {
        self.local.get(group_index)?.get(ord as usize).copied()
    }
}

/// A bitset over query-wide ordinals `0..n`.
struct Dense {
    words: Vec<u64>,
}

impl Dense {
    fn new(n: u32) -> Self {
        Self {
            words: vec![0; (n as usize).div_ceil(64)],
        }
    }

    fn set(&mut self, i: u32) {
        self.words[(i / 64) as usize] |= 1 << (i % 64);
    }

    fn get(&self, i: u32) -> bool {
        self.words[(i / 64) as usize] & (1 << (i % 64)) != 0
    }

    fn to_bitmap(&self) -> RoaringBitmap {
        let bits = self.words.iter().enumerate().flat_map(|(w, &word)| {
            let mut word = word;
            std::iter::from_fn(move || {
                (word != 0).then(|| {
                    let b = word.trailing_zeros();
                    word &= word - 1;
                    (w as u32) * 64 + b
                })
            })
        });
        RoaringBitmap::from_sorted_iter(bits).expect("bits come in order")
    }
}

/// One day's rollups by event type.
type DayTypes = BTreeMap<String, TypeRollup>;

/// What a custom event report covers.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub event_type: Option<String>,
    /// `(attribute, value)`: count only events with it.
    pub attribute: Option<(String, String)>,
}

/// The demographic dimensions a report can group active endpoints by.
pub const DIMENSIONS: [&str; 6] = [
    "platform",
    "app-version",
    "make",
    "model",
    "country",
    "locale",
];

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

impl<E: KvEngine> Herald<E> {
    /// A query's date range (see [`DateRange::parse`]), "today" by this
    /// node's clock.
    pub fn analytics_range(
        &self,
        tz: Option<&str>,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<DateRange> {
        DateRange::parse(tz, from, to, self.clock.now_ms())
    }

    async fn analytics_barrier(&self, app_id: &str) -> Result<Vec<GroupId>> {
        self.app(app_id).await?;
        let groups: Vec<GroupId> = self.host.data_groups().collect();
        for g in &groups {
            self.host.read_barrier(*g).await?;
        }
        Ok(groups)
    }

    /// A query over the app's rollups as of now: every data group's read
    /// barrier is passed first, so it sees every acknowledged write.
    pub async fn analytics(&self, app_id: &str) -> Result<Query<'_, E>> {
        let groups = self.analytics_barrier(app_id).await?;
        Ok(Query {
            reader: self.host.reader(),
            groups,
            ords: &self.analytics_ords,
            now_ms: self.clock.now_ms(),
        })
    }
}

/// Reads of one app's rollups across the data groups (see
/// [`Herald::analytics`]); usable on a bare storage engine too (benchmarks).
pub struct Query<'a, E: KvEngine> {
    pub reader: &'a herald_storage::Reader<E>,
    pub groups: Vec<GroupId>,
    pub ords: &'a OrdinalCache,
    /// "Today" for retention windows.
    pub now_ms: i64,
}

impl<E: KvEngine> Query<'_, E> {
    /// Brings the translation of `kind` up to date and hands it to `f`.
    fn with_translation<T>(
        &self,
        app_id: &str,
        kind: Kind,
        groups: &[GroupId],
        f: impl FnOnce(&Translation) -> T,
    ) -> Result<T> {
        let reader = self.reader.analytics();
        let mut apps = self.ords.apps.lock().expect("ordinal cache lock");
        let t = apps.entry((app_id.to_owned(), kind.byte())).or_default();
        let mut stale = false;
        for (i, g) in groups.iter().enumerate() {
            if let Some(first) = t.first.get(i).cloned().flatten() {
                stale |= reader.id_at(*g, app_id, kind, 0)?.as_deref() != Some(first.as_str());
            }
        }
        if stale || t.local.len() != groups.len() {
            *t = Translation {
                local: vec![Vec::new(); groups.len()],
                first: vec![None; groups.len()],
                ..Translation::default()
            };
        }
        for (i, g) in groups.iter().enumerate() {
            let have = u32::try_from(t.local[i].len()).expect("ordinals fit u32");
            let ids = reader.ids_from(*g, app_id, kind, have)?;
            for id in ids {
                if t.first[i].is_none() {
                    t.first[i] = Some(id.clone());
                }
                let global = match kind {
                    Kind::Endpoint => {
                        t.next += 1;
                        t.next - 1
                    }
                    Kind::Person => match t.names.get(id.as_str()) {
                        Some(o) => *o,
                        None => {
                            t.names.insert(id.into_boxed_str(), t.next);
                            t.next += 1;
                            t.next - 1
                        }
                    },
                };
                t.local[i].push(global);
            }
        }
        Ok(f(t))
    }

    /// A copy of the translation of `kind`, brought up to date (the lock
    /// is held only while it is refreshed and copied).
    fn translation(&self, app_id: &str, kind: Kind, groups: &[GroupId]) -> Result<Ords> {
        self.with_translation(app_id, kind, groups, |t| Ords {
            local: t.local.clone(),
            n: t.next,
        })
    }

    /// Per local day, the query-wide ordinals in the active or first-seen
    /// bitmaps of every shard.
    fn day_sets(
        &self,
        app_id: &str,
        table: u8,
        kind: Kind,
        groups: &[GroupId],
        days: &[LocalDay],
    ) -> Result<Vec<RoaringBitmap>> {
        let reader = self.reader.analytics();
        let (Some(first), Some(last)) = (days.first(), days.last()) else {
            return Ok(Vec::new());
        };
        let ords = self.translation(app_id, kind, groups)?;
        // A dense bitset per day: setting bits is cheaper than inserting
        // into bitmaps in no particular order.
        let mut dense: Vec<Dense> = days.iter().map(|_| Dense::new(ords.n)).collect();
        for (gi, g) in groups.iter().enumerate() {
            let forgotten = reader.forgotten(*g, app_id, kind)?;
            for (h, b) in
                reader.hour_sets(*g, table, app_id, kind, first.first_hour, last.end_hour)?
            {
                let d = days.partition_point(|d| d.end_hour <= h);
                let Some(slot) = dense.get_mut(d) else {
                    continue;
                };
                for o in &b {
                    if forgotten.is_empty() || !forgotten.contains(o) {
                        if let Some(p) = ords.get(gi, o) {
                            slot.set(p);
                        }
                    }
                }
            }
        }
        Ok(dense.iter().map(Dense::to_bitmap).collect())
    }

    /// The first hour each query-wide ordinal was seen anywhere, up to
    /// (excluding) `end_hour`.
    fn first_seen(
        &self,
        app_id: &str,
        kind: Kind,
        groups: &[GroupId],
        end_hour: i32,
    ) -> Result<Vec<(u32, i32)>> {
        let reader = self.reader.analytics();
        let mut local = Vec::with_capacity(groups.len());
        for g in groups {
            let forgotten = reader.forgotten(*g, app_id, kind)?;
            let mut sets = reader.hour_sets(*g, tag::AN_NEW, app_id, kind, i32::MIN, end_hour)?;
            for (_, b) in &mut sets {
                *b -= &forgotten;
            }
            local.push(sets);
        }
        self.with_translation(app_id, kind, groups, |t| {
            let mut first = vec![i32::MAX; t.next as usize];
            for (gi, sets) in local.iter().enumerate() {
                for (h, b) in sets {
                    for o in b {
                        if let Some(&p) = t.local[gi].get(o as usize) {
                            let e = &mut first[p as usize];
                            *e = (*e).min(*h);
                        }
                    }
                }
            }
            first
                .into_iter()
                .enumerate()
                .filter(|(_, h)| *h != i32::MAX)
                .map(|(p, h)| (p as u32, h))
                .collect()
        })
    }

    /// Daily, weekly and monthly active users (or endpoints), sticky
    /// factor and new ones, per local day of the range.
    pub fn active(&self, app_id: &str, range: DateRange, kind: Kind) -> Result<Vec<ActiveRow>> {
        let groups = &self.groups;
        let days = range.shifted(29, 0);
        let sets = self.day_sets(app_id, tag::AN_ACTIVE, kind, groups, &days)?;
        let counts: Vec<ActiveDay> = an::active_counts(&sets);
        let report = &days[29..];
        let end = report.last().map_or(0, |d| d.end_hour);
        let first = self.first_seen(app_id, kind, groups, end)?;
        let mut new = vec![0u64; report.len()];
        for (_, h) in &first {
            let d = report.partition_point(|d| d.end_hour <= *h);
            if d < report.len() && *h >= report[d].first_hour {
                new[d] += 1;
            }
        }
        Ok(report
            .iter()
            .zip(counts)
            .zip(new)
            .map(|((d, c), n)| ActiveRow {
                date: d.date.to_string(),
                daily: c.daily,
                weekly: c.weekly,
                monthly: c.monthly,
                sticky_factor: c.sticky_factor,
                new: n,
            })
            .collect())
    }

    /// Cohorts by the local day of first use, and how many came back
    /// within 1, 7, 14 and 30 days.
    pub fn retention(
        &self,
        app_id: &str,
        range: DateRange,
        kind: Kind,
    ) -> Result<Vec<RetentionRow>> {
        let groups = &self.groups;
        let today = an::local_date(range.tz, self.now_ms);
        let all = range.shifted(0, 30);
        // Days after today have not happened: their windows are not over.
        let upto = all.partition_point(|d| d.date <= today);
        let active_days = &all[..upto];
        let active = self.day_sets(app_id, tag::AN_ACTIVE, kind, groups, active_days)?;
        let cohort_days = range.days();
        let end = cohort_days.last().map_or(0, |d| d.end_hour);
        let first = self.first_seen(app_id, kind, groups, end)?;
        let mut cohorts = vec![RoaringBitmap::new(); cohort_days.len()];
        for (p, h) in &first {
            let d = cohort_days.partition_point(|d| d.end_hour <= *h);
            if d < cohort_days.len() && *h >= cohort_days[d].first_hour {
                cohorts[d].insert(*p);
            }
        }
        let rows: Vec<Cohort> = an::retention(&cohorts, &active);
        Ok(cohort_days
            .iter()
            .zip(rows)
            .map(|(d, c)| RetentionRow {
                date: d.date.to_string(),
                cohort: c.size,
                day1: c.retained[0],
                day7: c.retained[1],
                day14: c.retained[2],
                day30: c.retained[3],
            })
            .collect())
    }

    fn rollups_by_day(
        &self,
        app_id: &str,
        groups: &[GroupId],
        days: &[LocalDay],
    ) -> Result<(Vec<DayTypes>, Vec<SessionRollup>)> {
        let reader = self.reader.analytics();
        let mut types = vec![BTreeMap::<String, TypeRollup>::new(); days.len()];
        let mut sessions = vec![SessionRollup::default(); days.len()];
        let (Some(first), Some(last)) = (days.first(), days.last()) else {
            return Ok((types, sessions));
        };
        for g in groups {
            for (h, et, r) in reader.types(*g, app_id, first.first_hour, last.end_hour)? {
                let d = days.partition_point(|d| d.end_hour <= h);
                if let Some(slot) = types.get_mut(d) {
                    slot.entry(et).or_default().merge(&r);
                }
            }
            for (h, r) in reader.sessions(*g, app_id, first.first_hour, last.end_hour)? {
                let d = days.partition_point(|d| d.end_hour <= h);
                if let Some(slot) = sessions.get_mut(d) {
                    slot.merge(&r);
                }
            }
        }
        Ok((types, sessions))
    }

    /// Sessions per local day: closed sessions by the day they started,
    /// their average length, and sessions per active user.
    pub fn sessions(&self, app_id: &str, range: DateRange) -> Result<Vec<SessionRow>> {
        let groups = &self.groups;
        let days = range.days();
        let (types, sessions) = self.rollups_by_day(app_id, groups, &days)?;
        let active = self.day_sets(app_id, tag::AN_ACTIVE, Kind::Person, groups, &days)?;
        Ok(days
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let s = sessions[i];
                let users = active[i].len();
                SessionRow {
                    date: d.date.to_string(),
                    sessions: s.count,
                    average_duration_seconds: if s.count == 0 {
                        0.0
                    } else {
                        s.duration_ms as f64 / s.count as f64 / 1000.0
                    },
                    sessions_per_active_user: ratio(s.count, users),
                    session_starts: types[i].get("_session.start").map_or(0, |r| r.count),
                    active_users: users,
                }
            })
            .collect())
    }

    /// Custom event report: per event type, counts by day, metric
    /// aggregates (per-session averages over the range's closed sessions),
    /// attribute value breakdowns and revenue.
    pub fn events(
        &self,
        app_id: &str,
        range: DateRange,
        filter: &EventFilter,
    ) -> Result<Vec<EventReport>> {
        let groups = &self.groups;
        let days = range.days();
        let (types, sessions) = self.rollups_by_day(app_id, groups, &days)?;
        let session_count: u64 = sessions.iter().map(|s| s.count).sum();
        let mut reports: BTreeMap<String, EventReport> = BTreeMap::new();
        for (i, day) in types.iter().enumerate() {
            for (et, r) in day {
                if filter.event_type.as_ref().is_some_and(|t| t != et) {
                    continue;
                }
                let (count, metrics) = match &filter.attribute {
                    None => (r.count, r.metrics.clone()),
                    Some((a, v)) => match r.attrs.get(a).and_then(|vals| vals.get(v)) {
                        Some(vr) => (vr.count, vr.metrics.clone()),
                        None => (0, BTreeMap::new()),
                    },
                };
                let rep = reports.entry(et.clone()).or_insert_with(|| EventReport {
                    event_type: et.clone(),
                    count: 0,
                    days: days
                        .iter()
                        .map(|d| DayCount {
                            date: d.date.to_string(),
                            count: 0,
                        })
                        .collect(),
                    metrics: BTreeMap::new(),
                    attributes: BTreeMap::new(),
                    revenue: BTreeMap::new(),
                });
                rep.count += count;
                rep.days[i].count += count;
                for (m, a) in metrics {
                    let e = rep.metrics.entry(m).or_insert(MetricReport {
                        count: 0,
                        sum: 0.0,
                        min: 0.0,
                        max: 0.0,
                        average: 0.0,
                        per_session: 0.0,
                    });
                    let mut agg = Agg {
                        n: e.count,
                        sum: e.sum,
                        min: e.min,
                        max: e.max,
                    };
                    agg.merge(&a);
                    e.count = agg.n;
                    e.sum = agg.sum;
                    e.min = agg.min;
                    e.max = agg.max;
                }
                if filter.attribute.is_none() {
                    for (a, vals) in &r.attrs {
                        let slot = rep.attributes.entry(a.clone()).or_default();
                        for (v, vr) in vals {
                            *slot.entry(v.clone()).or_default() += vr.count;
                        }
                    }
                    for (c, x) in &r.revenue {
                        *rep.revenue.entry(c.clone()).or_default() += x;
                    }
                }
            }
        }
        let mut out: Vec<EventReport> = reports.into_values().filter(|r| r.count > 0).collect();
        for r in &mut out {
            for m in r.metrics.values_mut() {
                m.average = if m.count == 0 {
                    0.0
                } else {
                    m.sum / m.count as f64
                };
                m.per_session = if session_count == 0 {
                    0.0
                } else {
                    m.sum / session_count as f64
                };
            }
        }
        Ok(out)
    }

    /// How many users did `steps` in order, each within `window_secs` of
    /// the first, with the first step inside the range.
    pub fn funnel(
        &self,
        app_id: &str,
        range: DateRange,
        steps: &[String],
        window_secs: i64,
    ) -> Result<Vec<FunnelStep>> {
        if steps.len() < 2 || steps.len() > FUNNEL_STEPS_MAX {
            return Err(ServiceError::BadRequest(format!(
                "a funnel has 2 to {FUNNEL_STEPS_MAX} steps, not {}",
                steps.len()
            )));
        }
        if !(1..=FUNNEL_WINDOW_MAX_SECS).contains(&window_secs) {
            return Err(ServiceError::BadRequest(format!(
                "window must be 1 to {FUNNEL_WINDOW_MAX_SECS} seconds"
            )));
        }
        let groups = &self.groups;
        let days = range.days();
        let (Some(first), Some(last)) = (days.first(), days.last()) else {
            return Ok(Vec::new());
        };
        let from_ms = i64::from(first.first_hour) * an::HOUR_MS;
        let to_ms = i64::from(last.end_hour) * an::HOUR_MS;
        let window_ms = window_secs * 1000;
        let end_hour = an::hour_of(to_ms + window_ms) + 1;
        let reader = self.reader.analytics();
        let ords = self.translation(app_id, Kind::Person, groups)?;
        let forgotten: Vec<RoaringBitmap> = groups
            .iter()
            .map(|g| reader.forgotten(*g, app_id, Kind::Person))
            .collect::<std::result::Result<_, _>>()?;
        let span = u64::try_from(to_ms - from_ms + window_ms).expect("to is after from");
        let mut scratch = self.ords.take_funnel_scratch();
        scratch.reset(steps.len(), ords.n, span);
        // The first step's occurrences in range name the persons that can
        // count; later steps keep only theirs. Occurrences before the range
        // cannot follow a first step in it, so none are read.
        let mut starters = Dense::new(ords.n);
        for (s, step) in steps.iter().enumerate() {
            let hours = if s == 0 { last.end_hour } else { end_hour };
            for (gi, g) in groups.iter().enumerate() {
                let gone = &forgotten[gi];
                let Some(local) = ords.local.get(gi) else {
                    continue;
                };
                reader.visit_occurrences(
                    *g,
                    app_id,
                    step,
                    first.first_hour,
                    hours,
                    &mut |chunk| {
                        for (o, ms) in chunk {
                            let Some(&p) = local.get(o as usize) else {
                                continue;
                            };
                            if !gone.is_empty() && gone.contains(o) {
                                continue;
                            }
                            if s == 0 {
                                starters.set(p);
                            } else if !starters.get(p) {
                                continue;
                            }
                            // At or after from_ms: the hours asked for
                            // start there (the scratch drops any beyond
                            // the window of the range's end).
                            scratch.push(s, p, (ms - from_ms) as u64);
                        }
                        if scratch.len() > FUNNEL_OCCURRENCES_MAX {
                            ControlFlow::Break(())
                        } else {
                            ControlFlow::Continue(())
                        }
                    },
                )?;
            }
            if scratch.len() > FUNNEL_OCCURRENCES_MAX {
                self.ords.keep_funnel_scratch(scratch);
                return Err(ServiceError::BadRequest(format!(
                    "the funnel's steps occur more than {FUNNEL_OCCURRENCES_MAX} times in the \
                     range; choose a shorter range"
                )));
            }
        }
        let reached = an::funnel(&mut scratch, (to_ms - from_ms) as u64, window_ms as u64);
        self.ords.keep_funnel_scratch(scratch);
        Ok(steps
            .iter()
            .enumerate()
            .map(|(i, s)| FunnelStep {
                event_type: s.clone(),
                users: reached[i],
                conversion_from_previous: if i == 0 {
                    1.0
                } else {
                    ratio(reached[i], reached[i - 1])
                },
                conversion_from_first: ratio(reached[i], reached[0]),
            })
            .collect())
    }

    /// Endpoints active in the range, counted by a demographic dimension
    /// (see [`DIMENSIONS`]) or a custom endpoint attribute, as they are now.
    pub fn demographics(
        &self,
        app_id: &str,
        range: DateRange,
        dimension: &str,
    ) -> Result<BTreeMap<String, u64>> {
        let attribute = dimension.strip_prefix("attribute:");
        if attribute.is_none() && !DIMENSIONS.contains(&dimension) {
            return Err(ServiceError::BadRequest(format!(
                "dimension must be one of {} or attribute:<name>, not {dimension:?}",
                DIMENSIONS.join(", ")
            )));
        }
        let groups = &self.groups;
        let days = range.days();
        let (Some(first), Some(last)) = (days.first(), days.last()) else {
            return Ok(BTreeMap::new());
        };
        let reader = self.reader;
        let mut out: BTreeMap<String, u64> = BTreeMap::new();
        for g in groups {
            let mut active = RoaringBitmap::new();
            for (_, b) in reader.analytics().hour_sets(
                *g,
                tag::AN_ACTIVE,
                app_id,
                Kind::Endpoint,
                first.first_hour,
                last.end_hour,
            )? {
                active |= b;
            }
            if active.is_empty() {
                continue;
            }
            for o in &active {
                let Some(id) = reader.analytics().id_at(*g, app_id, Kind::Endpoint, o)? else {
                    continue;
                };
                let Some(ep) = reader.endpoint(*g, app_id, &id)? else {
                    continue;
                };
                let demo = ep.demographic.as_ref();
                let values: Vec<String> = match (attribute, dimension) {
                    (Some(a), _) => ep
                        .attributes
                        .as_ref()
                        .and_then(|m| m.get(a))
                        .cloned()
                        .unwrap_or_default(),
                    (None, "platform") => {
                        demo.and_then(|d| d.platform.clone()).into_iter().collect()
                    }
                    (None, "app-version") => demo
                        .and_then(|d| d.app_version.clone())
                        .into_iter()
                        .collect(),
                    (None, "make") => demo.and_then(|d| d.make.clone()).into_iter().collect(),
                    (None, "model") => demo.and_then(|d| d.model.clone()).into_iter().collect(),
                    (None, "locale") => demo.and_then(|d| d.locale.clone()).into_iter().collect(),
                    (None, _) => ep
                        .location
                        .as_ref()
                        .and_then(|l| l.country.clone())
                        .into_iter()
                        .collect(),
                };
                if values.is_empty() {
                    *out.entry("(none)".into()).or_default() += 1;
                }
                for v in values {
                    *out.entry(v).or_default() += 1;
                }
            }
        }
        Ok(out)
    }
    /// A campaign's results per local day and in total, grouped by
    /// treatment (`by_activity`: by activity, i.e. per run and treatment):
    /// its delivery events and the sessions and purchases attributed to it.
    /// Groups without any event are left out.
    pub fn campaign_results(
        &self,
        app_id: &str,
        campaign_id: &str,
        range: DateRange,
        by_activity: bool,
    ) -> Result<CampaignReport> {
        let days = range.days();
        let (Some(first), Some(last)) = (days.first(), days.last()) else {
            return Ok(CampaignReport::default());
        };
        let reader = self.reader.analytics();
        let mut per_day: Vec<BTreeMap<String, Cell>> = vec![BTreeMap::new(); days.len()];
        let mut total: BTreeMap<String, Cell> = BTreeMap::new();
        for (shard, g) in self.groups.iter().enumerate() {
            let shard = u32::try_from(shard).expect("shards fit u32");
            let forgotten = reader.forgotten(*g, app_id, Kind::Endpoint)?;
            let rows = reader.deliveries(
                *g,
                app_id,
                Some(campaign_id),
                first.first_hour,
                last.end_hour,
            )?;
            for row in rows {
                if row.campaign != campaign_id {
                    continue;
                }
                let d = days.partition_point(|d| d.end_hour <= row.hour);
                let Some(day) = per_day.get_mut(d) else {
                    continue;
                };
                let key = if by_activity {
                    row.activity.clone()
                } else if herald_model::campaign::is_holdout_activity(&row.activity) {
                    "holdout".to_owned()
                } else {
                    herald_model::campaign::treatment_of_activity(&row.activity)
                        .map(|t| t.to_string())
                        .unwrap_or_default()
                };
                let r = &row.rollup;
                let endpoints = &r.endpoints - &forgotten;
                for cell in [
                    day.entry(key.clone()).or_default(),
                    total.entry(key).or_default(),
                ] {
                    cell.add(
                        &row.event_type,
                        shard,
                        r.count,
                        r.extra.parts,
                        Some(&endpoints),
                    );
                    cell.add_revenue(&r.extra.revenue);
                }
            }
        }
        let group = |key: String, cell: &Cell| CampaignGroup {
            treatment_id: (!by_activity).then(|| key.clone()),
            activity_id: by_activity.then_some(key),
            results: kpi::CampaignResults::of(cell),
        };
        Ok(CampaignReport {
            days: days
                .iter()
                .zip(per_day)
                .filter(|(_, cells)| !cells.is_empty())
                .map(|(d, cells)| CampaignDay {
                    date: d.date.to_string(),
                    groups: cells.into_iter().map(|(k, c)| group(k, &c)).collect(),
                })
                .collect(),
            total: total.into_iter().map(|(k, c)| group(k, &c)).collect(),
        })
    }
}

/// [`Query::campaign_results`].
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CampaignReport {
    pub days: Vec<CampaignDay>,
    pub total: Vec<CampaignGroup>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CampaignDay {
    pub date: String,
    pub groups: Vec<CampaignGroup>,
}

/// One treatment's (or activity's) results; `TreatmentId` "" holds
/// events naming an activity herald did not make.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CampaignGroup {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub treatment_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activity_id: Option<String>,
    #[serde(flatten)]
    pub results: kpi::CampaignResults,
}

/// A KPI answer in Pinpoint's `*DateRangeKpiResponse` shape.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct KpiResponse {
    pub application_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub campaign_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub journey_id: Option<String>,
    pub kpi_name: String,
    pub start_time: String,
    pub end_time: String,
    pub kpi_result: KpiResult,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct KpiResult {
    pub rows: Vec<kpi::Row>,
}

/// The longest KPI date range, in calendar days (inclusive).
pub const KPI_RANGE_DAYS_MAX: i64 = 31;

use herald_model::kpi::{self, Cell, GroupBy, Scope, Source};

impl<E: KvEngine> Herald<E> {
    /// GetApplicationDateRangeKpi (`scope_id` None), GetCampaignDateRangeKpi
    /// and GetJourneyDateRangeKpi: `start`/`end` are ISO 8601 instants,
    /// inclusive, at most 31 calendar days apart (default: the 31 days
    /// before now). All rows come in one page.
    pub async fn date_range_kpi(
        &self,
        app_id: &str,
        scope: Scope,
        scope_id: Option<&str>,
        name: &str,
        start: Option<&str>,
        end: Option<&str>,
    ) -> Result<KpiResponse> {
        let now = self.clock.now_ms();
        let parse = |what: &str, v: &str| {
            herald_model::time::parse_iso8601_ms(v).map_err(|_| {
                ServiceError::BadRequest(format!(
                    "{what} must be an ISO 8601 date and time such as 2026-11-01T00:00:00Z, not {v:?}"
                ))
            })
        };
        let end_ms = match end {
            Some(v) => parse("end-time", v)?,
            None => now,
        };
        let start_ms = match start {
            Some(v) => parse("start-time", v)?,
            // The 31 calendar days ending with end-time's.
            None => (end_ms.div_euclid(an::DAY_MS) - (KPI_RANGE_DAYS_MAX - 1)) * an::DAY_MS,
        };
        if start_ms > end_ms {
            return Err(ServiceError::BadRequest(
                "start-time is after end-time".into(),
            ));
        }
        let day = |ms: i64| an::local_date(Tz::UTC, ms);
        if (day(end_ms) - day(start_ms)).num_days() >= KPI_RANGE_DAYS_MAX {
            return Err(ServiceError::BadRequest(format!(
                "the date range may cover at most {KPI_RANGE_DAYS_MAX} calendar days"
            )));
        }
        let Some(k) = kpi::find(scope, name) else {
            return Err(ServiceError::BadRequest(format!(
                "{name:?} is not a {} metric herald knows; see the README for the list",
                match scope {
                    Scope::Application => "application",
                    Scope::Campaign => "campaign",
                    Scope::Journey => "journey",
                }
            )));
        };
        match (scope, scope_id) {
            (Scope::Campaign, Some(id)) => {
                self.campaign(app_id, id, None).await?;
            }
            (Scope::Journey, Some(id)) => {
                self.app(app_id).await?;
                return Err(ServiceError::NotFound(format!(
                    "journey {id} does not exist (herald has no journeys yet)"
                )));
            }
            _ => {}
        }
        let groups = self.analytics_barrier(app_id).await?;
        let from = an::hour_of(start_ms);
        let to = an::hour_of(end_ms) + 1;
        let reader = self.host.reader().analytics();
        let mut cells: BTreeMap<String, Cell> = BTreeMap::new();
        for (shard, g) in groups.iter().enumerate() {
            let shard = u32::try_from(shard).expect("shards fit u32");
            let forgotten = reader.forgotten(*g, app_id, Kind::Endpoint)?;
            let campaign = if scope == Scope::Campaign {
                scope_id
            } else {
                None
            };
            for row in reader.deliveries(*g, app_id, campaign, from, to)? {
                let keep = match k.source {
                    Source::Transactional => row.campaign.is_empty(),
                    Source::Campaigns => !row.campaign.is_empty(),
                    Source::Journeys => false,
                };
                if !keep {
                    continue;
                }
                let r = &row.rollup;
                let endpoints = &r.endpoints - &forgotten;
                let mut add = |key: String, count: u64, parts: u64, with_endpoints: bool| {
                    cells.entry(key).or_default().add(
                        &row.event_type,
                        shard,
                        count,
                        parts,
                        with_endpoints.then_some(&endpoints),
                    );
                };
                match k.group {
                    GroupBy::None => add(String::new(), r.count, r.extra.parts, true),
                    GroupBy::Date => add(
                        day(i64::from(row.hour) * an::HOUR_MS).to_string(),
                        r.count,
                        r.extra.parts,
                        true,
                    ),
                    GroupBy::CampaignId => add(row.campaign.clone(), r.count, r.extra.parts, true),
                    GroupBy::CampaignActivityId | GroupBy::JourneyActivityId => {
                        add(row.activity.clone(), r.count, r.extra.parts, true)
                    }
                    GroupBy::Country => {
                        for (c, (n, p)) in &r.extra.countries {
                            add(c.clone(), *n, *p, false);
                        }
                    }
                    GroupBy::ErrorCode => {
                        for (e, n) in &r.extra.errors {
                            add(e.clone(), *n, 0, false);
                        }
                    }
                }
            }
        }
        Ok(KpiResponse {
            application_id: app_id.to_owned(),
            campaign_id: (scope == Scope::Campaign)
                .then(|| scope_id.unwrap_or_default().to_owned()),
            journey_id: None,
            kpi_name: name.to_owned(),
            start_time: iso_seconds(start_ms),
            end_time: iso_seconds(end_ms),
            kpi_result: KpiResult {
                rows: kpi::rows(k, &cells),
            },
        })
    }
}

/// Events expired per proposal, and proposals per app and sweep, at most.
const EXPIRE_PER_PROPOSAL: u32 = 2048;
const EXPIRE_PROPOSALS_PER_SWEEP: usize = 8;

/// Removes the raw events of every app in `group` older than its retention
/// (`AppRecord::event_retention_days`, else `default_days`), a bounded
/// number per sweep. Answers how many.
pub async fn expire_events<E: KvEngine>(
    host: &herald_cluster::RaftHost<E>,
    group: GroupId,
    now_ms: i64,
    default_days: u32,
) -> Result<u64> {
    let mut expired = 0;
    let mut after: Option<String> = None;
    loop {
        let apps = host.reader().apps(after.as_deref(), 100, false)?;
        let Some(last) = apps.last() else { break };
        after = Some(last.id.clone());
        for app in &apps {
            let days = app.event_retention_days.unwrap_or(default_days);
            let before_ms = now_ms - i64::from(days) * an::DAY_MS;
            if !host.reader().has_events_before(group, &app.id, before_ms)? {
                continue;
            }
            for _ in 0..EXPIRE_PROPOSALS_PER_SWEEP {
                let cmd = herald_storage::Command::ExpireEvents {
                    app_id: app.id.clone(),
                    before_ms,
                    max_rows: EXPIRE_PER_PROPOSAL,
                };
                let n = match host.propose(group, cmd).await? {
                    herald_storage::CmdResult::Count(n) => n,
                    _ => 0,
                };
                expired += n;
                if n < u64::from(EXPIRE_PER_PROPOSAL) {
                    break;
                }
            }
        }
    }
    Ok(expired)
}

/// The most days an app may keep its raw events.
pub const EVENT_RETENTION_DAYS_MAX: u32 = 3650;

impl<E: KvEngine> Herald<E> {
    /// herald's event retention setting of an app: `(days, is_default)`.
    pub async fn event_retention(&self, app_id: &str) -> Result<(u32, bool)> {
        let app = self.app(app_id).await?;
        Ok(match app.event_retention_days {
            Some(d) => (d, false),
            None => (self.cfg.event_retention_days, true),
        })
    }

    /// Sets (or with `None` resets) how many days the app's raw events are
    /// kept; rollups are kept regardless.
    pub async fn set_event_retention(
        &self,
        app_id: &str,
        days: Option<u32>,
    ) -> Result<(u32, bool)> {
        if let Some(d) = days {
            if !(1..=EVENT_RETENTION_DAYS_MAX).contains(&d) {
                return Err(ServiceError::BadRequest(format!(
                    "Days must be 1 to {EVENT_RETENTION_DAYS_MAX}, not {d}"
                )));
            }
        }
        self.app(app_id).await?;
        let cmd = herald_storage::Command::SetEventRetention {
            app_id: app_id.to_owned(),
            days,
        };
        match self.host.propose(herald_storage::META_GROUP, cmd).await? {
            herald_storage::CmdResult::App(Some(_)) => self.event_retention(app_id).await,
            _ => Err(ServiceError::NotFound(format!(
                "app {app_id} does not exist"
            ))),
        }
    }
}

/// `2026-11-01T00:00:00Z`.
fn iso_seconds(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

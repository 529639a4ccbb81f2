//! Analytics rollups and the queries over them.
//!
//! The state machine of each data shard keeps, per app and per UTC hour,
//! bitmaps of the shard-local ordinals of the endpoints and the persons
//! (a person is the endpoint's `User.UserId`, or the endpoint itself when it
//! has none) that were active or first seen in that hour, one
//! [`TypeRollup`] per event type (count, metric aggregates, attribute value
//! breakdowns, revenue), one [`SessionRollup`] (closed sessions by start
//! hour), and the `(person, time)` occurrences that funnels need. Queries
//! translate shard-local ordinals to query-wide ones, so distinct counts are
//! exact across shards, then compute here: local days in any time zone
//! ([`local_days`], rounded to whole UTC hours), active counts and sticky
//! factor ([`active_counts`]), retention cohorts ([`retention`]), funnels
//! ([`funnel`]).

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate, TimeZone};
use roaring::RoaringBitmap;
use serde::{Deserialize, Serialize};

use crate::wire::Event;

pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 24 * HOUR_MS;

/// Distinct attribute values kept per (event type, attribute) in one
/// hour's row of one shard; further values are counted under [`OTHER`].
pub const ATTR_VALUES_MAX: usize = 100;
/// Attributes broken down per event type in one row; further ones are not.
pub const ATTRS_MAX: usize = 20;
/// Metrics aggregated per attribute value (the first by name); all metrics
/// are aggregated per event type regardless.
pub const VALUE_METRICS_MAX: usize = 5;
/// The bucket of values past [`ATTR_VALUES_MAX`].
pub const OTHER: &str = "(other)";
/// The purchase event whose metrics make revenue.
pub const PURCHASE_EVENT: &str = "_monetization.purchase";

/// Who a bitmap counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Endpoint = 0,
    Person = 1,
}

impl Kind {
    pub fn byte(self) -> u8 {
        self as u8
    }
}

/// Delivery events (a send and what became of it) are counted by type but
/// do not make their endpoint active, and are not funnel steps.
pub fn is_delivery_event(event_type: &str) -> bool {
    const PREFIXES: [&str; 8] = [
        "_email.",
        "_SMS.",
        "_sms.",
        "_push.",
        "_custom.",
        "_campaign.",
        "_journey.",
        "_voice.",
    ];
    PREFIXES.iter().any(|p| event_type.starts_with(p))
}

/// The revenue of a purchase event: `_item_price` times `_quantity`
/// (default one) in `_currency` (default USD); None for other events or
/// without a finite price.
pub fn purchase_revenue(ev: &Event) -> Option<(String, f64)> {
    if ev.event_type.as_deref() != Some(PURCHASE_EVENT) {
        return None;
    }
    let metrics = ev.metrics.as_ref()?;
    let price = metrics
        .get("_item_price")
        .copied()
        .filter(|p| p.is_finite())?;
    let qty = metrics
        .get("_quantity")
        .copied()
        .filter(|q| q.is_finite())
        .unwrap_or(1.0);
    let currency = ev
        .attributes
        .as_ref()
        .and_then(|a| a.get("_currency"))
        .cloned()
        .unwrap_or_else(|| "USD".to_owned());
    Some((currency, price * qty))
}

/// How long after a campaign message reached an endpoint (its last
/// [`TOUCH_EVENTS`]) that endpoint's sessions and purchases count for the
/// campaign, when the app did not name the campaign on the event itself.
pub const ATTRIBUTION_WINDOW_MS: i64 = 24 * HOUR_MS;

/// Delivery events that make an endpoint's last campaign touch: the
/// message arrived, or the recipient opened or clicked it.
pub const TOUCH_EVENTS: [&str; 7] = [
    "_email.delivered",
    "_SMS.SUCCESS",
    "_push.delivered",
    "_custom.delivered",
    "_email.open",
    "_email.click",
    "_campaign.opened_notification",
];

/// Recorded (in rollups only, never as a raw event) for each member of a
/// campaign's holdout group when a run leaves it out: it makes the member's
/// last touch like a delivery would, so the holdout group's sessions and
/// purchases can be compared with the treatments'.
pub const HOLDOUT_EVENT: &str = "_campaign.holdout";

/// App events that are attributed to campaigns.
pub const ATTRIBUTED_EVENTS: [&str; 2] = ["_session.start", PURCHASE_EVENT];

/// The last campaign message that reached an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Touch {
    pub campaign_id: String,
    pub activity_id: String,
    pub ms: i64,
}

/// The campaign and activity an app event counts for, if any: the one the
/// event names (`campaign_id`, `campaign_activity_id` attributes, as
/// Pinpoint's mobile SDKs tag events after a notification was opened), else
/// the endpoint's last touch when the event came within
/// [`ATTRIBUTION_WINDOW_MS`] after it. Only [`ATTRIBUTED_EVENTS`] count.
pub fn attribution(ev: &Event, ms: i64, touch: Option<&Touch>) -> Option<(String, String)> {
    let et = ev.event_type.as_deref()?;
    if !ATTRIBUTED_EVENTS.contains(&et) {
        return None;
    }
    let attr = |k: &str| {
        ev.attributes
            .as_ref()
            .and_then(|a| a.get(k))
            .filter(|v| !v.is_empty())
            .cloned()
    };
    if let Some(c) = attr("campaign_id") {
        return Some((c, attr("campaign_activity_id").unwrap_or_default()));
    }
    let t = touch?;
    (ms >= t.ms && ms - t.ms <= ATTRIBUTION_WINDOW_MS)
        .then(|| (t.campaign_id.clone(), t.activity_id.clone()))
}

/// The UTC hour (hours since the epoch) holding `ms`.
pub fn hour_of(ms: i64) -> i32 {
    i32::try_from(ms.div_euclid(HOUR_MS)).unwrap_or(if ms < 0 { i32::MIN } else { i32::MAX })
}

/// The person an endpoint counts as: its user id, or the endpoint.
pub fn person_key(user_id: Option<&str>, endpoint_id: &str) -> String {
    match user_id {
        Some(u) if !u.is_empty() => format!("u:{u}"),
        _ => format!("e:{endpoint_id}"),
    }
}

/// Count, sum, minimum and maximum of a metric.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Agg {
    pub n: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
}

impl Agg {
    pub fn add(&mut self, v: f64) {
        if self.n == 0 {
            self.min = v;
            self.max = v;
        } else {
            self.min = self.min.min(v);
            self.max = self.max.max(v);
        }
        self.n += 1;
        self.sum += v;
    }

    pub fn merge(&mut self, o: &Agg) {
        if o.n == 0 {
            return;
        }
        if self.n == 0 {
            *self = *o;
            return;
        }
        self.n += o.n;
        self.sum += o.sum;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
    }

    pub fn avg(&self) -> Option<f64> {
        (self.n > 0).then(|| self.sum / self.n as f64)
    }
}

/// Events of one attribute value: how many, and their metrics.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ValueRollup {
    pub count: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, Agg>,
}

impl ValueRollup {
    pub fn merge(&mut self, o: &ValueRollup) {
        self.count += o.count;
        for (m, a) in &o.metrics {
            self.metrics.entry(m.clone()).or_default().merge(a);
        }
    }
}

/// One event type's events in one hour (of one shard, or merged).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TypeRollup {
    pub count: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, Agg>,
    /// attribute -> value -> events with it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attrs: BTreeMap<String, BTreeMap<String, ValueRollup>>,
    /// currency -> sum of `_item_price` x `_quantity` (purchases only).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub revenue: BTreeMap<String, f64>,
}

impl TypeRollup {
    pub fn add(&mut self, ev: &Event) {
        self.count += 1;
        let empty = BTreeMap::new();
        let metrics = ev.metrics.as_ref().unwrap_or(&empty);
        for (m, v) in metrics {
            if v.is_finite() {
                self.metrics.entry(m.clone()).or_default().add(*v);
            }
        }
        if let Some(attrs) = &ev.attributes {
            for (a, v) in attrs {
                if !self.attrs.contains_key(a) && self.attrs.len() >= ATTRS_MAX {
                    continue;
                }
                let values = self.attrs.entry(a.clone()).or_default();
                let slot = if values.contains_key(v) || values.len() < ATTR_VALUES_MAX {
                    v.as_str()
                } else {
                    OTHER
                };
                let r = values.entry(slot.to_owned()).or_default();
                r.count += 1;
                for (m, x) in metrics.iter().take(VALUE_METRICS_MAX) {
                    if x.is_finite() {
                        r.metrics.entry(m.clone()).or_default().add(*x);
                    }
                }
            }
        }
        if let Some((currency, amount)) = purchase_revenue(ev) {
            *self.revenue.entry(currency).or_default() += amount;
        }
    }

    pub fn merge(&mut self, o: &TypeRollup) {
        self.count += o.count;
        for (m, a) in &o.metrics {
            self.metrics.entry(m.clone()).or_default().merge(a);
        }
        for (a, values) in &o.attrs {
            let mine = self.attrs.entry(a.clone()).or_default();
            for (v, r) in values {
                mine.entry(v.clone()).or_default().merge(r);
            }
        }
        for (c, x) in &o.revenue {
            *self.revenue.entry(c.clone()).or_default() += x;
        }
    }
}

/// Closed sessions that started in one hour.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRollup {
    pub count: u64,
    pub duration_ms: u64,
}

impl SessionRollup {
    pub fn merge(&mut self, o: &SessionRollup) {
        self.count += o.count;
        self.duration_ms += o.duration_ms;
    }
}

/// One local calendar day as a half-open range of UTC hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalDay {
    pub date: NaiveDate,
    pub first_hour: i32,
    pub end_hour: i32,
}

/// The local days `from..=to` in `tz`, each as the UTC hours it covers.
/// Local midnight is rounded down to a whole UTC hour (zones offset by
/// :30 or :45 see their days start up to 45 minutes early).
pub fn local_days(tz: chrono_tz::Tz, from: NaiveDate, to: NaiveDate) -> Vec<LocalDay> {
    let mut out = Vec::new();
    let mut d = from;
    while d <= to {
        let next = d.succ_opt().expect("date in range");
        out.push(LocalDay {
            date: d,
            first_hour: hour_of(local_midnight_ms(tz, d)),
            end_hour: hour_of(local_midnight_ms(tz, next)),
        });
        d = next;
    }
    out
}

/// The UTC instant of `date`'s first moment in `tz` (the earliest one
/// when midnight is skipped or repeated by a clock change).
pub fn local_midnight_ms(tz: chrono_tz::Tz, date: NaiveDate) -> i64 {
    let naive = date.and_hms_opt(0, 0, 0).expect("midnight");
    // A day whose midnight is skipped starts at the first valid minute.
    (0..=180)
        .find_map(|m| {
            tz.from_local_datetime(&(naive + chrono::Duration::minutes(m)))
                .earliest()
        })
        .map(|t| t.timestamp_millis())
        .unwrap_or_else(|| naive.and_utc().timestamp_millis())
}

/// The local date of a UTC instant.
pub fn local_date(tz: chrono_tz::Tz, ms: i64) -> NaiveDate {
    chrono::DateTime::from_timestamp_millis(ms)
        .expect("timestamp in range")
        .with_timezone(&tz)
        .date_naive()
}

/// Days since 1970-01-01 of a date (a stable day number).
pub fn day_number(d: NaiveDate) -> i64 {
    i64::from(d.num_days_from_ce()) - 719_163
}

/// Active counts of one day.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ActiveDay {
    pub daily: u64,
    pub weekly: u64,
    pub monthly: u64,
    /// `daily / monthly`, 0 when nobody was active in the 30 days.
    pub sticky_factor: f64,
}

/// Daily, weekly (7-day) and monthly (30-day) active counts for each of
/// the last `days.len() - 29` days: `days` must hold 29 days of history
/// before the first reported day.
pub fn active_counts(days: &[RoaringBitmap]) -> Vec<ActiveDay> {
    let mut out = Vec::new();
    for i in 29..days.len() {
        let weekly = union(&days[i - 6..=i]).len();
        let monthly = union(&days[i - 29..=i]).len();
        let daily = days[i].len();
        out.push(ActiveDay {
            daily,
            weekly,
            monthly,
            sticky_factor: if monthly == 0 {
                0.0
            } else {
                daily as f64 / monthly as f64
            },
        });
    }
    out
}

pub fn union(maps: &[RoaringBitmap]) -> RoaringBitmap {
    let mut u = RoaringBitmap::new();
    for m in maps {
        u |= m;
    }
    u
}

/// The windows of the retention table, in days after the cohort's day.
pub const RETENTION_WINDOWS: [usize; 4] = [1, 7, 14, 30];

/// One cohort: the persons first seen on a day, and how many of them came
/// back within 1, 7, 14 and 30 days (`None` while the window is not over).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cohort {
    pub size: u64,
    pub retained: [Option<u64>; 4],
}

/// Retention of the cohorts `cohorts[i]` (persons first seen on day `i`),
/// given `active[j]` for days `0..active.len()` (at least as many as
/// cohorts; days past the end are not over yet).
pub fn retention(cohorts: &[RoaringBitmap], active: &[RoaringBitmap]) -> Vec<Cohort> {
    cohorts
        .iter()
        .enumerate()
        .map(|(c, cohort)| {
            let mut back = RoaringBitmap::new();
            let mut retained = [None; 4];
            for k in 1..=30usize {
                let Some(day) = active.get(c + k) else { break };
                back |= &(cohort & day);
                if let Some(w) = RETENTION_WINDOWS.iter().position(|&x| x == k) {
                    retained[w] = Some(back.len());
                }
            }
            Cohort {
                size: cohort.len(),
                retained,
            }
        })
        .collect()
}

/// Most steps a funnel may have: a step index fits in the low 4 bits of a
/// packed occurrence.
pub const FUNNEL_STEPS_LIMIT: usize = 16;
/// Persons per partition of a funnel's occurrences, at most: a partition's
/// occurrences are sorted by person in a buffer that stays in the CPU's
/// cache instead of scattered over all of memory.
const FUNNEL_PART_PERSONS: u32 = 2048;
const _: () = assert!(FUNNEL_PART_PERSONS.is_power_of_two() && FUNNEL_PART_PERSONS <= 1 << 20);

/// A funnel's occurrences, partitioned by person as they are read, and the
/// buffers that compute over them; kept between queries so a large funnel
/// does not fault fresh pages in each time.
///
/// An occurrence is one word: the person's index in its partition, then the
/// time in ms since the funnel's start, then the step in the low 4 bits.
#[derive(Debug, Default)]
pub struct FunnelScratch {
    parts: Vec<Vec<u64>>,
    /// log2 of the persons per partition.
    part_bits: u32,
    time_bits: u32,
    span: u64,
    steps: usize,
    len: usize,
    ends: Vec<u32>,
    sorted: Vec<u64>,
    starts: Vec<u64>,
}

impl FunnelScratch {
    /// Empties the buffers (keeping their memory) for a funnel of `steps`
    /// over persons below `persons` and times below `span_ms`.
    pub fn reset(&mut self, steps: usize, persons: u32, span_ms: u64) {
        assert!(steps <= FUNNEL_STEPS_LIMIT, "{steps} funnel steps");
        self.span = span_ms;
        self.time_bits = 64 - span_ms.leading_zeros();
        assert!(self.time_bits <= 40, "a funnel spans at most 34 years");
        // 20 bits are left for the index in the partition.
        self.part_bits = FUNNEL_PART_PERSONS.trailing_zeros();
        let parts = (persons >> self.part_bits) as usize + 1;
        self.parts.resize_with(parts, Vec::new);
        self.parts.truncate(parts);
        for p in &mut self.parts {
            p.clear();
        }
        self.steps = steps;
        self.len = 0;
    }

    /// Adds an occurrence of step `step` by `person` at `ms` since the
    /// funnel's start. One at or after the span given to [`Self::reset`]
    /// (the range and the window) is left out: no chain can reach it.
    #[inline]
    pub fn push(&mut self, step: usize, person: u32, ms: u64) {
        debug_assert!(step < self.steps);
        if ms >= self.span || step >= self.steps {
            return;
        }
        let local = u64::from(person & ((1 << self.part_bits) - 1));
        if let Some(part) = self.parts.get_mut((person >> self.part_bits) as usize) {
            part.push((local << (self.time_bits + 4)) | (ms << 4) | step as u64);
            self.len += 1;
        }
    }

    /// Occurrences pushed since the last reset.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The memory the buffers hold.
    pub fn bytes(&self) -> usize {
        self.parts.iter().map(|s| s.capacity() * 8).sum::<usize>()
            + self.ends.capacity() * 4
            + (self.sorted.capacity() + self.starts.capacity()) * 8
    }
}

/// How many persons reached each step of a funnel.
///
/// `scratch` holds the occurrences of the steps' event types (pushed in
/// any order), times in ms since the funnel's start. A person reaches step
/// `k` when it has an occurrence of step 0 at `t0 < to_ms` and occurrences
/// of steps `1..=k`, each strictly later than the previous one, all by
/// `t0 + window_ms`. Occurrences before the start are left out by the
/// caller: no chain can use them.
///
/// Linear in the occurrences: a counting sort by (person, step) within each
/// partition (each slice then sorted by time, which it nearly always is
/// already), then one sweep per step over each person's times, carrying
/// the latest start of a chain that reached the previous step before each
/// time (a later start has a later deadline, so it is never worse).
pub fn funnel(scratch: &mut FunnelScratch, to_ms: u64, window_ms: u64) -> Vec<u64> {
    let k = scratch.steps;
    let mut reached = vec![0u64; k];
    if k == 0 {
        return reached;
    }
    let FunnelScratch {
        parts,
        part_bits,
        time_bits,
        ends,
        sorted,
        starts,
        ..
    } = scratch;
    let shift = *time_bits + 4;
    let time_mask = (1u64 << *time_bits) - 1;
    let persons = 1usize << *part_bits;
    // Slot of (person, step) in `ends`.
    let slot = |w: u64| ((w >> shift) as usize) * k + (w & 15) as usize;
    for part in parts.iter() {
        if part.is_empty() {
            continue;
        }
        ends.clear();
        ends.resize(persons * k + 1, 0);
        for &w in part {
            ends[slot(w) + 1] += 1;
        }
        for i in 0..persons * k {
            ends[i + 1] += ends[i];
        }
        sorted.clear();
        sorted.resize(part.len(), 0);
        for &w in part {
            let at = &mut ends[slot(w)];
            sorted[*at as usize] = (w >> 4) & time_mask;
            *at += 1;
        }
        // After the scatter, slot i's times end at ends[i] and start where
        // slot i - 1's end.
        for p in 0..persons {
            let base = p * k;
            let begin = |i: usize| if i == 0 { 0 } else { ends[i - 1] as usize };
            let first = &mut sorted[begin(base)..ends[base] as usize];
            if first.is_empty() {
                continue;
            }
            if !first.is_sorted() {
                first.sort_unstable();
            }
            // Level 0: each start is its own chain's start.
            starts.clear();
            starts.extend(first.iter().map(|&t| if t < to_ms { t } else { NO_START }));
            let mut prev = begin(base)..ends[base] as usize;
            let mut depth = usize::from(starts.iter().any(|&s| s != NO_START));
            for s in 1..k {
                if depth < s {
                    break;
                }
                let cur = begin(base + s)..ends[base + s] as usize;
                if !sorted[cur.clone()].is_sorted() {
                    sorted[cur.clone()].sort_unstable();
                }
                // starts[..prev.len()] belong to the previous step's times;
                // this step's are appended, then moved to the front.
                let n_prev = prev.len();
                let mut j = 0;
                let mut best = NO_START;
                let mut any = false;
                for i in cur.clone() {
                    let t = sorted[i];
                    while j < n_prev && sorted[prev.start + j] < t {
                        let s0 = starts[j];
                        if s0 != NO_START && (best == NO_START || s0 > best) {
                            best = s0;
                        }
                        j += 1;
                    }
                    let start = if best != NO_START && t <= best + window_ms {
                        any = true;
                        best
                    } else {
                        NO_START
                    };
                    starts.push(start);
                }
                starts.drain(..n_prev);
                if any {
                    depth = s + 1;
                }
                prev = cur;
            }
            for r in reached.iter_mut().take(depth) {
                *r += 1;
            }
        }
    }
    reached
}

/// No chain reaches this occurrence (times are below 2^40).
const NO_START: u64 = u64::MAX;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn ev(t: &str, attrs: &[(&str, &str)], metrics: &[(&str, f64)]) -> Event {
        Event {
            event_type: Some(t.into()),
            attributes: Some(
                attrs
                    .iter()
                    .map(|(k, v)| ((*k).into(), (*v).into()))
                    .collect(),
            ),
            metrics: Some(metrics.iter().map(|(k, v)| ((*k).into(), *v)).collect()),
            ..Event::default()
        }
    }

    #[test]
    fn attribution_prefers_the_named_campaign_then_a_recent_touch() {
        let touch = Touch {
            campaign_id: "c1".into(),
            activity_id: "run-1-treatment-1".into(),
            ms: 1_000,
        };
        let session = ev("_session.start", &[], &[]);
        let by_touch = Some(("c1".to_owned(), "run-1-treatment-1".to_owned()));
        assert_eq!(attribution(&session, 1_000, Some(&touch)), by_touch);
        let last = 1_000 + ATTRIBUTION_WINDOW_MS;
        assert_eq!(attribution(&session, last, Some(&touch)), by_touch);
        assert_eq!(attribution(&session, last + 1, Some(&touch)), None);
        assert_eq!(
            attribution(&session, 999, Some(&touch)),
            None,
            "before the touch"
        );
        assert_eq!(attribution(&session, 1_500, None), None);
        let tagged = ev(
            PURCHASE_EVENT,
            &[("campaign_id", "c2"), ("campaign_activity_id", "a")],
            &[],
        );
        assert_eq!(
            attribution(&tagged, 10 * DAY_MS, Some(&touch)),
            Some(("c2".to_owned(), "a".to_owned())),
            "a named campaign wins without a window"
        );
        let other = ev("level.up", &[("campaign_id", "c2")], &[]);
        assert_eq!(attribution(&other, 1_500, Some(&touch)), None);
        let empty = ev("_session.start", &[("campaign_id", "")], &[]);
        assert_eq!(attribution(&empty, 1_500, Some(&touch)), by_touch);
    }

    #[test]
    fn purchase_revenue_is_price_times_quantity_in_its_currency() {
        let p = ev(
            PURCHASE_EVENT,
            &[("_currency", "EUR")],
            &[("_item_price", 2.5), ("_quantity", 4.0)],
        );
        assert_eq!(purchase_revenue(&p), Some(("EUR".to_owned(), 10.0)));
        let p = ev(PURCHASE_EVENT, &[], &[("_item_price", 3.0)]);
        assert_eq!(purchase_revenue(&p), Some(("USD".to_owned(), 3.0)));
        assert_eq!(purchase_revenue(&ev(PURCHASE_EVENT, &[], &[])), None);
        assert_eq!(
            purchase_revenue(&ev("x", &[], &[("_item_price", 3.0)])),
            None
        );
    }

    #[test]
    fn rollup_counts_metrics_attributes_and_revenue() {
        let mut r = TypeRollup::default();
        r.add(&ev(
            PURCHASE_EVENT,
            &[("_currency", "EUR")],
            &[("_item_price", 2.5), ("_quantity", 4.0)],
        ));
        r.add(&ev(PURCHASE_EVENT, &[], &[("_item_price", 1.0)]));
        assert_eq!(r.count, 2);
        assert_eq!(r.revenue["EUR"], 10.0);
        assert_eq!(r.revenue["USD"], 1.0);
        let p = r.metrics["_item_price"];
        assert_eq!((p.n, p.sum, p.min, p.max), (2, 3.5, 1.0, 2.5));
        assert_eq!(r.attrs["_currency"]["EUR"].metrics["_quantity"].sum, 4.0);
    }

    #[test]
    fn attribute_values_past_the_cap_go_to_other() {
        let mut r = TypeRollup::default();
        for i in 0..ATTR_VALUES_MAX + 5 {
            r.add(&ev("x", &[("k", &i.to_string())], &[]));
        }
        r.add(&ev("x", &[("k", "3")], &[]));
        let k = &r.attrs["k"];
        assert_eq!(k.len(), ATTR_VALUES_MAX + 1);
        assert_eq!(k[OTHER].count, 5);
        assert_eq!(k["3"].count, 2);
    }

    #[test]
    fn local_days_follow_the_zone_and_its_clock_changes() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let utc = local_days(chrono_tz::UTC, d("2026-01-01"), d("2026-01-02"));
        assert_eq!(utc[0].end_hour - utc[0].first_hour, 24);
        assert_eq!(utc[0].end_hour, utc[1].first_hour);
        // New York: 2026-03-08 has 23 hours, 2026-11-01 has 25.
        let ny = chrono_tz::America::New_York;
        let spring = local_days(ny, d("2026-03-08"), d("2026-03-08"))[0];
        assert_eq!(spring.end_hour - spring.first_hour, 23);
        let fall = local_days(ny, d("2026-11-01"), d("2026-11-01"))[0];
        assert_eq!(fall.end_hour - fall.first_hour, 25);
        assert_eq!(
            i64::from(spring.first_hour) * HOUR_MS,
            local_midnight_ms(ny, d("2026-03-08"))
        );
        assert_eq!(day_number(d("1970-01-02")), 1);
    }

    #[test]
    fn sticky_factor_is_daily_over_monthly() {
        let mut days = vec![RoaringBitmap::new(); 30];
        for (i, d) in days.iter_mut().enumerate() {
            d.insert(i as u32);
        }
        days[29].insert(0);
        let a = active_counts(&days);
        assert_eq!(a.len(), 1);
        assert_eq!((a[0].daily, a[0].weekly, a[0].monthly), (2, 8, 30));
        assert_eq!(a[0].sticky_factor, 2.0 / 30.0);
    }

    fn naive_funnel(steps: &[Vec<(u32, i64)>], from: i64, to: i64, w: i64) -> Vec<u64> {
        let persons: BTreeSet<u32> = steps[0].iter().map(|x| x.0).collect();
        let mut reached = vec![0u64; steps.len()];
        for p in persons {
            let times: Vec<Vec<i64>> = steps
                .iter()
                .map(|s| s.iter().filter(|x| x.0 == p).map(|x| x.1).collect())
                .collect();
            // Exhaustive: the deepest chain from any start in range.
            fn deepest(times: &[Vec<i64>], k: usize, t: i64, deadline: i64) -> usize {
                if k == times.len() {
                    return 0;
                }
                times[k]
                    .iter()
                    .filter(|&&x| x > t && x <= deadline)
                    .map(|&x| 1 + deepest(times, k + 1, x, deadline))
                    .max()
                    .unwrap_or(0)
            }
            let best = times[0]
                .iter()
                .filter(|&&t0| t0 >= from && t0 < to)
                .map(|&t0| 1 + deepest(&times, 1, t0, t0 + w))
                .max()
                .unwrap_or(0);
            for r in reached.iter_mut().take(best) {
                *r += 1;
            }
        }
        reached
    }

    /// Pushes occurrences as a query does: ms since `from`, earlier ones
    /// left out.
    fn fill(
        scratch: &mut FunnelScratch,
        steps: &[Vec<(u32, i64)>],
        persons: u32,
        from: i64,
        span: u64,
    ) {
        scratch.reset(steps.len(), persons, span);
        for (s, occ) in steps.iter().enumerate() {
            for &(p, t) in occ {
                if t >= from {
                    scratch.push(s, p, (t - from) as u64);
                }
            }
        }
    }

    #[test]
    fn funnel_partitions_persons_whatever_the_span() {
        let mut scratch = FunnelScratch::default();
        let year = (366 + 31) * DAY_MS as u64;
        let last = (1 << 20) - 1;
        scratch.reset(3, 1 << 20, year);
        assert_eq!(scratch.parts.len(), (1 << 20) / 2048 + 1);
        scratch.push(1, last, year - 1);
        scratch.push(0, last, year - 2);
        scratch.push(2, last - 1, year - 1);
        scratch.push(2, last, year);
        assert_eq!(scratch.len(), 3, "at the span: left out");
        assert_eq!(funnel(&mut scratch, year, 1), vec![1, 1, 0]);
        assert_eq!(
            funnel(&mut scratch, year - 2, 1),
            vec![0, 0, 0],
            "start too late"
        );
    }

    proptest! {
        #[test]
        fn funnel_matches_an_exhaustive_search(
            raw in proptest::collection::vec(
                proptest::collection::vec((0u32..6, 0i64..40), 0..14), 1..6),
            from in 0i64..20, len in 1i64..30, w in 0i64..25,
        ) {
            let steps: Vec<Vec<(u32, i64)>> = raw;
            // The scratch of an earlier funnel (steps reversed, persons in
            // several partitions) is reused.
            let mut scratch = FunnelScratch::default();
            let reversed: Vec<_> = steps
                .iter()
                .rev()
                .map(|s| s.iter().map(|&(p, t)| (p * 1000, t)).collect())
                .collect();
            fill(&mut scratch, &reversed, 6000, 0, 80);
            funnel(&mut scratch, 40, 40);
            // The span a query gives: the range and the window; later
            // occurrences are dropped.
            fill(&mut scratch, &steps, 6, from, (len + w) as u64);
            prop_assert_eq!(
                funnel(&mut scratch, len as u64, w as u64),
                naive_funnel(&steps, from, from + len, w)
            );
        }

        #[test]
        fn retention_matches_a_direct_count(
            first in proptest::collection::vec(0usize..10, 1..30),
            seen in proptest::collection::vec((0usize..30, 0usize..45), 0..200),
        ) {
            // Person p is first seen on day first[p] and active on the days in `seen`.
            let days = 45;
            let mut active = vec![RoaringBitmap::new(); days];
            let mut cohorts = vec![RoaringBitmap::new(); 10];
            for (p, &f) in first.iter().enumerate() {
                cohorts[f].insert(p as u32);
                active[f].insert(p as u32);
            }
            for &(p, d) in &seen {
                if p < first.len() && d > first[p] {
                    active[d].insert(p as u32);
                }
            }
            let got = retention(&cohorts, &active);
            for (c, row) in got.iter().enumerate() {
                prop_assert_eq!(row.size, first.iter().filter(|&&f| f == c).count() as u64);
                for (w, &k) in RETENTION_WINDOWS.iter().enumerate() {
                    let expect = (c + k < days).then(|| {
                        first.iter().enumerate().filter(|&(p, &f)| f == c
                            && (c + 1..=c + k).any(|d| active[d].contains(p as u32))).count() as u64
                    });
                    prop_assert_eq!(row.retained[w], expect);
                }
            }
        }
    }
}

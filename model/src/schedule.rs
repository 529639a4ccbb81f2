//! Campaign schedules: time zones, run instants, local-time runs and quiet time.
//!
//! Contract (all pure; instants are Unix milliseconds, UTC):
//!
//! * **Zones.** [`parse_zone`] accepts IANA names (`America/New_York`) and the
//!   UTC-offset forms Pinpoint uses for `Schedule.Timezone` (`UTC`, `UTC+01`,
//!   `UTC-05:30`).
//! * **Runs.** [`occurrence`] gives the n-th run of a [`Recurrence`]:
//!   HOURLY / DAILY / WEEKLY add n hours / days / weeks to the start; MONTHLY
//!   adds n calendar months to the start's UTC date, keeping the day of month
//!   and clamping it to the month's last day (always computed from the start,
//!   never chained, so Jan 31 gives Feb 28 or 29, then Mar 31). `EndTime` is
//!   inclusive: a run scheduled exactly at `EndTime` happens, a run after it
//!   does not.
//! * **Local time** (`Schedule.IsLocalTime`). A campaign's start is a wall
//!   clock that each endpoint reads in its own zone. The wall clock is the
//!   campaign's `StartTime` read in the campaign's `Timezone` (UTC when none
//!   is given); [`wall_clock_ms`] turns an instant into that wall clock,
//!   encoded as if it were UTC ("floating" milliseconds), and the
//!   [`Recurrence`] given to [`local_occurrence`] holds such floating values.
//!   [`local_instant`] maps a wall clock to an instant in a zone: inside a
//!   spring-forward gap the wall clock moves forward by the gap's length (it
//!   is read with the offset in effect before the transition, as java.time
//!   does); an ambiguous fall-back wall clock takes the earlier instant.
//! * **Quiet time.** [`in_quiet_time`] compares the endpoint's local minute
//!   of day with `[start, end)`; a range with start > end crosses midnight,
//!   start == end means no quiet time, and an endpoint without a valid zone
//!   is never held back (Pinpoint's rule).

use chrono::{
    DateTime, Datelike, Days, FixedOffset, LocalResult, Months, NaiveDateTime, Offset, TimeZone,
    Timelike,
};

use crate::time::{parse_hh_mm, DAY_MS, HOUR_MS, MAX_MS, MINUTE_MS, MIN_MS};
use crate::wire::QuietTime;

/// A time zone: an IANA zone with its DST rules, or a fixed UTC offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zone {
    Iana(chrono_tz::Tz),
    Fixed(FixedOffset),
}

/// Parses an IANA zone name (exact case, e.g. `Europe/London`) or one of
/// Pinpoint's offset forms: `UTC`, `UTC±HH` or `UTC±HH:MM` (hours 00..=14,
/// minutes 00..=59). Anything else is `None`.
pub fn parse_zone(s: &str) -> Option<Zone> {
    if let Some(rest) = s.strip_prefix("UTC") {
        if rest.is_empty() {
            return FixedOffset::east_opt(0).map(Zone::Fixed);
        }
        if let Some(secs) = parse_offset(rest.as_bytes()) {
            return FixedOffset::east_opt(secs).map(Zone::Fixed);
        }
    }
    s.parse::<chrono_tz::Tz>().ok().map(Zone::Iana)
}

/// `±HH` or `±HH:MM` in seconds east of UTC.
fn parse_offset(b: &[u8]) -> Option<i32> {
    let sign = match b.first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let two = |at: usize| -> Option<i32> {
        let hi = *b.get(at)?;
        let lo = *b.get(at + 1)?;
        (hi.is_ascii_digit() && lo.is_ascii_digit())
            .then(|| i32::from(hi - b'0') * 10 + i32::from(lo - b'0'))
    };
    let hours = two(1)?;
    let minutes = match b.len() {
        3 => 0,
        6 if b[3] == b':' => two(4)?,
        _ => return None,
    };
    (hours <= 14 && minutes < 60).then_some(sign * (hours * 3600 + minutes * 60))
}

impl Zone {
    /// The zone's offset from UTC, in milliseconds, at instant `ms`.
    pub fn offset_ms(&self, ms: i64) -> i64 {
        let utc = utc_naive(ms);
        let secs = match self {
            Zone::Iana(tz) => tz.offset_from_utc_datetime(&utc).fix().local_minus_utc(),
            Zone::Fixed(f) => f.local_minus_utc(),
        };
        i64::from(secs) * 1000
    }

    /// The wall clock in this zone at instant `ms`.
    pub fn wall_clock(&self, ms: i64) -> NaiveDateTime {
        utc_naive(ms.saturating_add(self.offset_ms(ms)))
    }
}

/// The UTC date-time of `ms`, clamped to years 0000..=9999.
fn utc_naive(ms: i64) -> NaiveDateTime {
    DateTime::from_timestamp_millis(ms.clamp(MIN_MS, MAX_MS))
        .unwrap_or_default()
        .naive_utc()
}

/// `wall` encoded as if it were UTC ("floating" milliseconds).
fn floating(wall: NaiveDateTime) -> i64 {
    wall.and_utc().timestamp_millis()
}

/// The wall clock of instant `ms` in the campaign's `Timezone` (`None`: UTC),
/// as floating milliseconds: the input [`local_occurrence`] expects for
/// `StartTime` and `EndTime` of an `IsLocalTime` campaign.
pub fn wall_clock_ms(ms: i64, campaign_zone: Option<&Zone>) -> i64 {
    campaign_zone.map_or(ms, |z| floating(z.wall_clock(ms)))
}

/// How often a campaign runs (`Schedule.Frequency`, without `IN_APP_EVENT`,
/// which herald does not support yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frequency {
    Once,
    Hourly,
    Daily,
    Weekly,
    Monthly,
    Event,
    /// An in-app campaign: nothing is sent; devices fetch it
    /// (GetInAppMessages) while it runs.
    InAppEvent,
}

impl Frequency {
    /// The wire value (`ONCE`, `HOURLY`, ...) or `None`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "ONCE" => Frequency::Once,
            "HOURLY" => Frequency::Hourly,
            "DAILY" => Frequency::Daily,
            "WEEKLY" => Frequency::Weekly,
            "MONTHLY" => Frequency::Monthly,
            "EVENT" => Frequency::Event,
            "IN_APP_EVENT" => Frequency::InAppEvent,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Frequency::Once => "ONCE",
            Frequency::Hourly => "HOURLY",
            Frequency::Daily => "DAILY",
            Frequency::Weekly => "WEEKLY",
            Frequency::Monthly => "MONTHLY",
            Frequency::Event => "EVENT",
            Frequency::InAppEvent => "IN_APP_EVENT",
        }
    }
}

/// A campaign's run pattern. `end_ms` is inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recurrence {
    pub start_ms: i64,
    pub end_ms: Option<i64>,
    pub frequency: Frequency,
}

/// The n-th run ignoring `EndTime`; `None` when there is no such run or it
/// falls outside years 0000..=9999.
fn unbounded(r: &Recurrence, n: u32) -> Option<i64> {
    let step = |unit: i64| {
        i64::from(n)
            .checked_mul(unit)
            .and_then(|d| r.start_ms.checked_add(d))
    };
    let t = match r.frequency {
        Frequency::Once if n == 0 => Some(r.start_ms),
        Frequency::Once | Frequency::Event | Frequency::InAppEvent => None,
        Frequency::Hourly => step(HOUR_MS),
        Frequency::Daily => step(DAY_MS),
        Frequency::Weekly => step(7 * DAY_MS),
        Frequency::Monthly => utc_naive(r.start_ms)
            .checked_add_months(Months::new(n))
            .map(floating),
    }?;
    (MIN_MS..=MAX_MS).contains(&t).then_some(t)
}

fn within_end(end_ms: Option<i64>, t: i64) -> bool {
    end_ms.is_none_or(|e| t <= e)
}

/// The n-th run's scheduled instant (UTC), n = 0 being the first. `None`
/// past `EndTime`, for ONCE with n > 0, and for EVENT (event campaigns have
/// no scheduled runs).
pub fn occurrence(r: &Recurrence, n: u32) -> Option<i64> {
    unbounded(r, n).filter(|&t| within_end(r.end_ms, t))
}

/// The first run strictly after `after_ms`, with its index; `None` when no
/// run remains.
pub fn next_occurrence_after(r: &Recurrence, after_ms: i64) -> Option<(u32, i64)> {
    let months_between = |a: i64, b: i64| {
        let (a, b) = (utc_naive(a), utc_naive(b));
        i64::from(b.year() - a.year()) * 12 + i64::from(b.month()) - i64::from(a.month())
    };
    // An estimate of the index, then a local search around it.
    let estimate = if after_ms < r.start_ms {
        0
    } else {
        let elapsed = after_ms - r.start_ms;
        match r.frequency {
            Frequency::Once | Frequency::Event | Frequency::InAppEvent => 0,
            Frequency::Hourly => elapsed / HOUR_MS,
            Frequency::Daily => elapsed / DAY_MS,
            Frequency::Weekly => elapsed / (7 * DAY_MS),
            Frequency::Monthly => months_between(r.start_ms, after_ms),
        }
    };
    let mut n = u32::try_from(estimate.max(0)).ok()?;
    while n > 0 && unbounded(r, n - 1).is_some_and(|t| t > after_ms) {
        n -= 1;
    }
    loop {
        let t = unbounded(r, n)?;
        if t > after_ms {
            return within_end(r.end_ms, t).then_some((n, t));
        }
        n = n.checked_add(1)?;
    }
}

/// The instant at which wall clock `wall` occurs in `zone`. A wall clock
/// inside a spring-forward gap moves forward by the gap's length (read with
/// the offset in effect before the transition); an ambiguous wall clock
/// (fall-back) takes the earlier instant.
pub fn local_instant(wall: chrono::NaiveDateTime, zone: &Zone) -> i64 {
    let tz = match zone {
        Zone::Fixed(f) => return floating(wall) - i64::from(f.local_minus_utc()) * 1000,
        Zone::Iana(tz) => tz,
    };
    match tz.from_local_datetime(&wall) {
        LocalResult::Single(t) => t.timestamp_millis(),
        LocalResult::Ambiguous(a, b) => a.timestamp_millis().min(b.timestamp_millis()),
        LocalResult::None => {
            // A day earlier is before the transition (transitions are far
            // more than a day apart), so this is the pre-transition offset.
            let w = floating(wall);
            w - zone.offset_ms(w - DAY_MS)
        }
    }
}

/// The n-th run of a local-time campaign for an endpoint in `zone`.
///
/// `r` holds floating wall clocks (see [`wall_clock_ms`]). DAILY, WEEKLY and
/// MONTHLY runs are computed in wall-clock space, so a DAILY 09:00 campaign
/// runs at 09:00 local time on both sides of a DST change, then read in
/// `zone` with [`local_instant`]. HOURLY runs are the first run's instant
/// plus n hours of elapsed time, so a clock change neither doubles nor skips
/// an hourly run. `EndTime` is a wall clock too (Pinpoint applies
/// `IsLocalTime` to both start and end): the run happens when its instant is
/// at or before `EndTime` read in the same zone.
pub fn local_occurrence(r: &Recurrence, n: u32, zone: &Zone) -> Option<i64> {
    let at_wall = |ms: i64| local_instant(utc_naive(ms), zone);
    let t = match r.frequency {
        Frequency::Hourly => {
            let first = at_wall(unbounded(r, 0)?);
            let t = first.checked_add(i64::from(n).checked_mul(HOUR_MS)?)?;
            (t <= MAX_MS).then_some(t)?
        }
        _ => at_wall(unbounded(r, n)?),
    };
    within_end(r.end_ms.map(at_wall), t).then_some(t)
}

/// Quiet time in minutes after local midnight; `[start_min, end_min)`,
/// crossing midnight when `start_min > end_min`, empty when equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quiet {
    pub start_min: u16,
    pub end_min: u16,
}

impl Quiet {
    /// Whether minute-of-day `m` (0..1440) is quiet.
    pub fn contains_minute(&self, m: u16) -> bool {
        let (s, e) = (self.start_min, self.end_min);
        match s.cmp(&e) {
            std::cmp::Ordering::Less => s <= m && m < e,
            std::cmp::Ordering::Greater => m >= s || m < e,
            std::cmp::Ordering::Equal => false,
        }
    }
}

/// Quiet time from a campaign's or app's `QuietTime`: `None` unless both
/// `Start` and `End` are valid `HH:MM` values (validation rejects the rest;
/// empty strings mean "no quiet time").
pub fn quiet_from(q: Option<&QuietTime>) -> Option<Quiet> {
    let q = q?;
    let start_min = parse_hh_mm(q.start.as_deref()?).ok()?;
    let end_min = parse_hh_mm(q.end.as_deref()?).ok()?;
    Some(Quiet { start_min, end_min })
}

fn minute_of_day(wall: NaiveDateTime) -> u16 {
    // hour * 60 + minute < 1440 always fits.
    (wall.hour() * 60 + wall.minute()) as u16
}

/// Whether `at_ms` falls in quiet time in `zone`; an endpoint without a
/// valid zone (`None`) is never held back (Pinpoint's rule).
pub fn in_quiet_time(q: &Quiet, zone: Option<&Zone>, at_ms: i64) -> bool {
    zone.is_some_and(|z| q.contains_minute(minute_of_day(z.wall_clock(at_ms))))
}

/// The first instant at or after `at_ms` outside quiet time (for reporting
/// when a held-back message may go), with the rules of [`in_quiet_time`].
/// Clock changes are followed: a spring-forward jump past the end of quiet
/// time ends it at the transition, and a fall-back jump out of the range
/// ends it too.
pub fn quiet_ends_after(q: &Quiet, zone: Option<&Zone>, at_ms: i64) -> i64 {
    let Some(zone) = zone else { return at_ms };
    let mut t = at_ms;
    // Each step ends quiet time or crosses one offset transition; a quiet
    // range is shorter than a day, so a handful of steps always suffices.
    for _ in 0..8 {
        if !in_quiet_time(q, Some(zone), t) || t >= MAX_MS {
            return t;
        }
        let off = zone.offset_ms(t);
        let wall = zone.wall_clock(t);
        let days = u64::from(minute_of_day(wall) >= q.end_min);
        let end_wall = wall
            .date()
            .checked_add_days(Days::new(days))
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map_or(MAX_MS, |d| floating(d) + i64::from(q.end_min) * MINUTE_MS);
        let candidate = (end_wall - off).min(MAX_MS);
        if zone.offset_ms(candidate) == off {
            return candidate;
        }
        // The offset changes before the candidate: find the transition
        // (the first instant with another offset) and continue from there.
        let (mut lo, mut hi) = (t, candidate);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if zone.offset_ms(mid) == off {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        t = hi;
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{format_iso8601_ms, parse_iso8601_ms};
    use chrono::NaiveDate;
    use proptest::prelude::*;

    fn ms(s: &str) -> i64 {
        parse_iso8601_ms(s).unwrap()
    }

    fn iso(t: i64) -> String {
        format_iso8601_ms(t)
    }

    fn zone(s: &str) -> Zone {
        parse_zone(s).unwrap()
    }

    fn wall(s: &str) -> NaiveDateTime {
        utc_naive(ms(s))
    }

    fn rec(start: &str, end: Option<&str>, frequency: Frequency) -> Recurrence {
        Recurrence {
            start_ms: ms(start),
            end_ms: end.map(ms),
            frequency,
        }
    }

    fn runs(r: &Recurrence, count: u32) -> Vec<String> {
        (0..count)
            .map_while(|n| occurrence(r, n))
            .map(iso)
            .collect()
    }

    #[test]
    fn zones() {
        assert_eq!(
            parse_zone("UTC"),
            Some(Zone::Fixed(FixedOffset::east_opt(0).unwrap()))
        );
        assert_eq!(
            parse_zone("UTC+01"),
            Some(Zone::Fixed(FixedOffset::east_opt(3600).unwrap()))
        );
        assert_eq!(
            parse_zone("UTC-05:30"),
            Some(Zone::Fixed(FixedOffset::west_opt(5 * 3600 + 1800).unwrap()))
        );
        assert_eq!(
            parse_zone("UTC+05:45"),
            Some(Zone::Fixed(
                FixedOffset::east_opt(5 * 3600 + 45 * 60).unwrap()
            ))
        );
        assert_eq!(
            parse_zone("America/New_York"),
            Some(Zone::Iana(chrono_tz::America::New_York))
        );
        assert!(matches!(parse_zone("Etc/UTC"), Some(Zone::Iana(_))));
        for bad in [
            "",
            "utc",
            "UTC+1",
            "UTC+015",
            "UTC+15",
            "UTC+01:60",
            "UTC+01:5",
            "UTC 01",
            "UTC+",
            "UTC+01:00:00",
            "Mars/Olympus",
            "america/new_york",
            "+01:00",
        ] {
            assert_eq!(parse_zone(bad), None, "accepted {bad:?}");
        }
    }

    #[test]
    fn frequencies_round_trip() {
        for f in [
            "ONCE",
            "HOURLY",
            "DAILY",
            "WEEKLY",
            "MONTHLY",
            "EVENT",
            "IN_APP_EVENT",
        ] {
            assert_eq!(Frequency::parse(f).map(Frequency::as_str), Some(f));
        }
        assert_eq!(Frequency::parse("daily"), None);
    }

    #[test]
    fn monthly_keeps_the_day_and_clamps_to_month_end() {
        let r = rec("2027-01-31T10:00:00Z", None, Frequency::Monthly);
        assert_eq!(
            runs(&r, 4),
            [
                "2027-01-31T10:00:00.000Z",
                "2027-02-28T10:00:00.000Z",
                "2027-03-31T10:00:00.000Z",
                "2027-04-30T10:00:00.000Z",
            ]
        );
        assert_eq!(iso(occurrence(&r, 13).unwrap()), "2028-02-29T10:00:00.000Z");
        assert_eq!(iso(occurrence(&r, 14).unwrap()), "2028-03-31T10:00:00.000Z");
        assert_eq!(iso(occurrence(&r, 11).unwrap()), "2027-12-31T10:00:00.000Z");
    }

    #[test]
    fn hourly_daily_weekly_once_event() {
        let h = rec("2027-03-13T23:30:00Z", None, Frequency::Hourly);
        assert_eq!(
            runs(&h, 3),
            [
                "2027-03-13T23:30:00.000Z",
                "2027-03-14T00:30:00.000Z",
                "2027-03-14T01:30:00.000Z",
            ]
        );
        let w = rec("2027-02-22T09:00:00Z", None, Frequency::Weekly);
        assert_eq!(
            runs(&w, 3),
            [
                "2027-02-22T09:00:00.000Z",
                "2027-03-01T09:00:00.000Z",
                "2027-03-08T09:00:00.000Z",
            ]
        );
        let d = rec("2028-02-28T09:00:00Z", None, Frequency::Daily);
        assert_eq!(iso(occurrence(&d, 1).unwrap()), "2028-02-29T09:00:00.000Z");
        let o = rec("2027-01-01T00:00:00Z", None, Frequency::Once);
        assert_eq!(runs(&o, 5), ["2027-01-01T00:00:00.000Z"]);
        let e = rec("2027-01-01T00:00:00Z", None, Frequency::Event);
        assert_eq!(occurrence(&e, 0), None);
        assert_eq!(next_occurrence_after(&e, 0), None);
    }

    #[test]
    fn end_time_is_inclusive() {
        let r = rec(
            "2027-01-01T09:00:00Z",
            Some("2027-01-03T09:00:00Z"),
            Frequency::Daily,
        );
        assert_eq!(runs(&r, 10).len(), 3);
        let r = Recurrence {
            end_ms: r.end_ms.map(|e| e - 1),
            ..r
        };
        assert_eq!(runs(&r, 10).len(), 2);
        assert_eq!(occurrence(&r, 2), None);
        // A once campaign ending before it starts never runs.
        let o = rec(
            "2027-01-02T00:00:00Z",
            Some("2027-01-01T00:00:00Z"),
            Frequency::Once,
        );
        assert_eq!(occurrence(&o, 0), None);
    }

    #[test]
    fn next_run_after() {
        let r = rec(
            "2027-01-31T10:00:00Z",
            Some("2027-06-01T00:00:00Z"),
            Frequency::Monthly,
        );
        assert_eq!(
            next_occurrence_after(&r, 0),
            Some((0, ms("2027-01-31T10:00:00Z")))
        );
        assert_eq!(
            next_occurrence_after(&r, ms("2027-01-31T10:00:00Z")),
            Some((1, ms("2027-02-28T10:00:00Z")))
        );
        assert_eq!(
            next_occurrence_after(&r, ms("2027-03-31T09:59:59Z")),
            Some((2, ms("2027-03-31T10:00:00Z")))
        );
        assert_eq!(next_occurrence_after(&r, ms("2027-05-31T10:00:00Z")), None);
        let h = rec("2027-01-01T00:15:00Z", None, Frequency::Hourly);
        assert_eq!(
            next_occurrence_after(&h, ms("2027-01-02T00:15:00Z")),
            Some((25, ms("2027-01-02T01:15:00Z")))
        );
        let o = rec("2027-01-01T00:00:00Z", None, Frequency::Once);
        assert_eq!(next_occurrence_after(&o, ms("2027-01-01T00:00:00Z")), None);
    }

    #[test]
    fn local_instant_new_york_dst() {
        let ny = zone("America/New_York");
        let at = |w: &str| iso(local_instant(wall(w), &ny));
        assert_eq!(at("2027-03-13T09:00:00Z"), "2027-03-13T14:00:00.000Z"); // EST
        assert_eq!(at("2027-03-14T09:00:00Z"), "2027-03-14T13:00:00.000Z"); // EDT
                                                                            // 02:30 does not exist on 2027-03-14: read with EST, i.e. 03:30 EDT.
        assert_eq!(at("2027-03-14T02:30:00Z"), "2027-03-14T07:30:00.000Z");
        assert_eq!(at("2027-03-14T03:00:00Z"), "2027-03-14T07:00:00.000Z");
        // 01:30 happens twice on 2027-11-07: the earlier (EDT) one.
        assert_eq!(at("2027-11-07T01:30:00Z"), "2027-11-07T05:30:00.000Z");
        assert_eq!(at("2027-11-07T02:00:00Z"), "2027-11-07T07:00:00.000Z");
    }

    #[test]
    fn local_instant_london_lord_howe_and_fixed() {
        let london = zone("Europe/London");
        let at = |w: &str, z: &Zone| iso(local_instant(wall(w), z));
        assert_eq!(
            at("2027-03-28T01:30:00Z", &london),
            "2027-03-28T01:30:00.000Z"
        );
        assert_eq!(
            at("2027-03-28T09:00:00Z", &london),
            "2027-03-28T08:00:00.000Z"
        );
        assert_eq!(
            at("2027-10-31T01:30:00Z", &london),
            "2027-10-31T00:30:00.000Z"
        );
        // Lord Howe moves by 30 minutes: +10:30 -> +11 on 2027-10-03 at 02:00.
        let lh = zone("Australia/Lord_Howe");
        assert_eq!(at("2027-10-03T02:15:00Z", &lh), "2027-10-02T15:45:00.000Z");
        assert_eq!(at("2027-10-03T09:00:00Z", &lh), "2027-10-02T22:00:00.000Z");
        let fixed = zone("UTC-05:30");
        assert_eq!(
            at("2027-01-01T00:00:00Z", &fixed),
            "2027-01-01T05:30:00.000Z"
        );
    }

    #[test]
    fn daily_local_time_stays_on_the_wall_clock_across_dst() {
        let ny = zone("America/New_York");
        let r = rec("2027-03-12T09:00:00Z", None, Frequency::Daily);
        let got: Vec<String> = (0..4)
            .map(|n| iso(local_occurrence(&r, n, &ny).unwrap()))
            .collect();
        assert_eq!(
            got,
            [
                "2027-03-12T14:00:00.000Z",
                "2027-03-13T14:00:00.000Z",
                "2027-03-14T13:00:00.000Z",
                "2027-03-15T13:00:00.000Z",
            ]
        );
        let r = rec("2027-11-06T09:00:00Z", None, Frequency::Daily);
        assert_eq!(
            iso(local_occurrence(&r, 0, &ny).unwrap()),
            "2027-11-06T13:00:00.000Z"
        );
        assert_eq!(
            iso(local_occurrence(&r, 1, &ny).unwrap()),
            "2027-11-07T14:00:00.000Z"
        );
    }

    #[test]
    fn local_end_time_and_hourly() {
        let ny = zone("America/New_York");
        let r = rec(
            "2027-03-12T09:00:00Z",
            Some("2027-03-14T09:00:00Z"),
            Frequency::Daily,
        );
        // EndTime 09:00 is read in New York too, so the 09:00 run on the 14th happens.
        assert_eq!(
            local_occurrence(&r, 2, &ny).map(iso).as_deref(),
            Some("2027-03-14T13:00:00.000Z")
        );
        assert_eq!(local_occurrence(&r, 3, &ny), None);
        // Hourly runs are an hour of elapsed time apart across the gap.
        let h = rec("2027-03-14T00:30:00Z", None, Frequency::Hourly);
        let got: Vec<String> = (0..3)
            .map(|n| iso(local_occurrence(&h, n, &ny).unwrap()))
            .collect();
        assert_eq!(
            got,
            [
                "2027-03-14T05:30:00.000Z",
                "2027-03-14T06:30:00.000Z",
                "2027-03-14T07:30:00.000Z",
            ]
        );
        let e = rec("2027-03-14T00:30:00Z", None, Frequency::Event);
        assert_eq!(local_occurrence(&e, 0, &ny), None);
    }

    #[test]
    fn campaign_timezone_gives_the_wall_clock() {
        let start = ms("2027-03-12T14:00:00Z");
        let ny_fixed = zone("UTC-05");
        assert_eq!(
            iso(wall_clock_ms(start, Some(&ny_fixed))),
            "2027-03-12T09:00:00.000Z"
        );
        assert_eq!(wall_clock_ms(start, None), start);
        let berlin = zone("Europe/Berlin");
        assert_eq!(
            iso(wall_clock_ms(ms("2027-07-01T07:00:00Z"), Some(&berlin))),
            "2027-07-01T09:00:00.000Z"
        );
    }

    #[test]
    fn quiet_time_crossing_midnight() {
        let q = Quiet {
            start_min: 22 * 60,
            end_min: 7 * 60,
        };
        let utc = zone("UTC");
        let quiet = |s: &str| in_quiet_time(&q, Some(&utc), ms(s));
        assert!(!quiet("2027-01-01T21:59:59Z"));
        assert!(quiet("2027-01-01T22:00:00Z"));
        assert!(quiet("2027-01-01T23:59:00Z"));
        assert!(quiet("2027-01-02T00:00:00Z"));
        assert!(quiet("2027-01-02T06:59:59Z"));
        assert!(!quiet("2027-01-02T07:00:00Z"));
        assert!(!quiet("2027-01-02T12:00:00Z"));
        // No zone: never held back.
        assert!(!in_quiet_time(&q, None, ms("2027-01-01T23:00:00Z")));
        assert_eq!(quiet_ends_after(&q, None, 5), 5);
        // Equal bounds: no quiet time.
        let none = Quiet {
            start_min: 600,
            end_min: 600,
        };
        assert!(!in_quiet_time(
            &none,
            Some(&utc),
            ms("2027-01-01T10:00:00Z")
        ));
        let ends = |s: &str| iso(quiet_ends_after(&q, Some(&utc), ms(s)));
        assert_eq!(ends("2027-01-01T23:00:00Z"), "2027-01-02T07:00:00.000Z");
        assert_eq!(ends("2027-01-02T03:00:00Z"), "2027-01-02T07:00:00.000Z");
        assert_eq!(ends("2027-01-02T12:00:00Z"), "2027-01-02T12:00:00.000Z");
    }

    #[test]
    fn quiet_time_on_dst_days() {
        let ny = zone("America/New_York");
        let q = Quiet {
            start_min: 22 * 60,
            end_min: 7 * 60,
        };
        // 2027-03-14: the night is an hour shorter; 07:00 EDT is 11:00Z.
        assert!(in_quiet_time(&q, Some(&ny), ms("2027-03-14T10:59:00Z")));
        assert!(!in_quiet_time(&q, Some(&ny), ms("2027-03-14T11:00:00Z")));
        assert_eq!(
            iso(quiet_ends_after(&q, Some(&ny), ms("2027-03-14T03:00:00Z"))),
            "2027-03-14T11:00:00.000Z"
        );
        // 2027-11-07: an hour longer; 07:00 EST is 12:00Z.
        assert!(in_quiet_time(&q, Some(&ny), ms("2027-11-07T11:30:00Z")));
        assert_eq!(
            iso(quiet_ends_after(&q, Some(&ny), ms("2027-11-07T03:00:00Z"))),
            "2027-11-07T12:00:00.000Z"
        );
        // Quiet time ending inside the spring-forward gap ends at the jump.
        let q = Quiet {
            start_min: 60,
            end_min: 150,
        };
        assert_eq!(
            iso(quiet_ends_after(&q, Some(&ny), ms("2027-03-14T06:30:00Z"))),
            "2027-03-14T07:00:00.000Z"
        );
        // Fall-back jumping from 01:59 EDT to 01:00 EST leaves 01:30-03:00.
        let q = Quiet {
            start_min: 90,
            end_min: 180,
        };
        assert_eq!(
            iso(quiet_ends_after(&q, Some(&ny), ms("2027-11-07T05:45:00Z"))),
            "2027-11-07T06:00:00.000Z"
        );
        // ...and 01:30 EST re-enters it until 03:00 EST.
        assert_eq!(
            iso(quiet_ends_after(&q, Some(&ny), ms("2027-11-07T06:40:00Z"))),
            "2027-11-07T08:00:00.000Z"
        );
    }

    #[test]
    fn quiet_from_wire() {
        let qt = |s: Option<&str>, e: Option<&str>| QuietTime {
            start: s.map(Into::into),
            end: e.map(Into::into),
        };
        assert_eq!(
            quiet_from(Some(&qt(Some("22:00"), Some("07:30")))),
            Some(Quiet {
                start_min: 1320,
                end_min: 450
            })
        );
        assert_eq!(quiet_from(None), None);
        assert_eq!(quiet_from(Some(&qt(Some("22:00"), None))), None);
        assert_eq!(quiet_from(Some(&qt(Some(""), Some("")))), None);
        assert_eq!(quiet_from(Some(&qt(Some("25:00"), Some("07:00")))), None);
    }

    const Y2000: i64 = 946_684_800_000;
    const Y2100: i64 = 4_102_444_800_000;

    fn frequency() -> impl Strategy<Value = Frequency> {
        prop_oneof![
            Just(Frequency::Hourly),
            Just(Frequency::Daily),
            Just(Frequency::Weekly),
            Just(Frequency::Monthly),
        ]
    }

    fn some_zone() -> impl Strategy<Value = Zone> {
        prop_oneof![
            Just("America/New_York"),
            Just("Europe/London"),
            Just("Australia/Lord_Howe"),
            Just("America/Santiago"),
            Just("Asia/Kolkata"),
            Just("Pacific/Chatham"),
            Just("UTC+05:45"),
            Just("UTC-03"),
        ]
        .prop_map(zone)
    }

    proptest! {
        #[test]
        fn occurrences_strictly_increase(
            start in Y2000..Y2100,
            f in frequency(),
            n in 0u32..2000,
        ) {
            let r = Recurrence { start_ms: start, end_ms: None, frequency: f };
            let a = occurrence(&r, n).unwrap();
            let b = occurrence(&r, n + 1).unwrap();
            prop_assert!(a < b);
            prop_assert_eq!(next_occurrence_after(&r, a), Some((n + 1, b)));
            prop_assert_eq!(next_occurrence_after(&r, a - 1), Some((n, a)));
        }

        #[test]
        fn monthly_day_is_clamped(start in Y2000..Y2100, n in 0u32..1200) {
            let r = Recurrence { start_ms: start, end_ms: None, frequency: Frequency::Monthly };
            let s = utc_naive(start);
            let t = utc_naive(occurrence(&r, n).unwrap());
            let months = s.year() * 12 + s.month0() as i32 + n as i32;
            prop_assert_eq!(t.year() * 12 + t.month0() as i32, months);
            let first = NaiveDate::from_ymd_opt(t.year(), t.month(), 1).unwrap();
            let days_in_month = (first + Months::new(1) - first).num_days() as u32;
            prop_assert_eq!(t.day(), s.day().min(days_in_month));
            prop_assert_eq!(t.time(), s.time());
        }

        #[test]
        fn daily_local_runs_keep_the_wall_clock(
            start in Y2000..Y2100,
            n in 0u32..800,
            z in some_zone(),
        ) {
            let r = Recurrence { start_ms: start, end_ms: None, frequency: Frequency::Daily };
            let w = utc_naive(occurrence(&r, n).unwrap());
            let t = local_occurrence(&r, n, &z).unwrap();
            let exists = match z {
                Zone::Iana(tz) => !matches!(tz.from_local_datetime(&w), LocalResult::None),
                Zone::Fixed(_) => true,
            };
            if exists {
                prop_assert_eq!(z.wall_clock(t), w);
            } else {
                prop_assert!(z.wall_clock(t) > w);
            }
        }

        #[test]
        fn quiet_matches_brute_force(
            s in 0u16..1440,
            e in 0u16..1440,
            at in Y2000..Y2100,
            z in some_zone(),
        ) {
            let q = Quiet { start_min: s, end_min: e };
            let w = z.wall_clock(at);
            let m = (w.hour() * 60 + w.minute()) as u16;
            let brute = if s == e {
                false
            } else {
                // Walk from start to end around the clock.
                let mut k = s;
                let mut hit = false;
                while k != e {
                    hit |= k == m;
                    k = (k + 1) % 1440;
                }
                hit
            };
            prop_assert_eq!(in_quiet_time(&q, Some(&z), at), brute);
            prop_assert!(!in_quiet_time(&q, None, at));
            let end = quiet_ends_after(&q, Some(&z), at);
            prop_assert!(end >= at);
            prop_assert!(!in_quiet_time(&q, Some(&z), end));
            prop_assert!(end - at <= DAY_MS + 2 * HOUR_MS);
            if end > at {
                prop_assert!(in_quiet_time(&q, Some(&z), end - 1));
            }
        }

        #[test]
        fn crossing_midnight_is_the_complement(e in 0u16..1440, s in 0u16..1440, m in 0u16..1440) {
            prop_assume!(s > e);
            let crossing = Quiet { start_min: s, end_min: e };
            let inner = Quiet { start_min: e, end_min: s };
            prop_assert_eq!(crossing.contains_minute(m), !inner.contains_minute(m));
        }
    }
}

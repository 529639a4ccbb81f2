//! Rate limits and retry timing for the channel actors, as pure functions of
//! what the caller passes in: the time (milliseconds on the caller's clock)
//! and random numbers. Nothing here reads a clock or draws randomness, so a
//! simulation replays the same decisions from the same seed.
//!
//! [`TokenBucket`] is kept as a theoretical arrival time (GCRA) in integer
//! nanoseconds: one token every `ceil(1e9 / rate)` ns, at most `burst` ahead.
//! Integer time makes it exact (it never grants more than
//! `burst + rate * elapsed`), a clock that goes backwards refills nothing, and
//! a long pause refills to `burst` and no further. [`Backoff`] is exponential
//! with full jitter.

const NS_PER_MS: i128 = 1_000_000;

/// A token bucket: `rate_per_sec` tokens a second (Pinpoint's
/// `MessagesPerSecond`), holding at most `burst`; it starts full.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBucket {
    rate_per_sec: f64,
    burst: u32,
    /// Nanoseconds per token; 0 when unlimited.
    interval_ns: i128,
    /// When the bucket would be full again if nothing more were taken; a
    /// time in the past (or `i128::MIN`) means it is full.
    tat_ns: i128,
}

impl TokenBucket {
    /// A rate of 0 or less (or not a number, or infinite) means unlimited. A
    /// burst of 0 is taken as 1, so a limited bucket can always grant one
    /// token at a time.
    pub fn new(rate_per_sec: f64, burst: u32) -> Self {
        let interval_ns = if rate_per_sec > 0.0 && rate_per_sec.is_finite() {
            // Rounded up, so the bucket never runs faster than asked.
            let ns = (1e9 / rate_per_sec).ceil();
            if ns >= i64::MAX as f64 {
                i64::MAX as i128
            } else {
                (ns as i128).max(1)
            }
        } else {
            0
        };
        Self {
            rate_per_sec,
            burst: burst.max(1),
            interval_ns,
            tat_ns: i128::MIN,
        }
    }

    pub fn rate_per_sec(&self) -> f64 {
        self.rate_per_sec
    }

    pub fn burst(&self) -> u32 {
        self.burst
    }

    pub fn is_unlimited(&self) -> bool {
        self.interval_ns == 0
    }

    fn tolerance_ns(&self) -> i128 {
        self.interval_ns * self.burst as i128
    }

    /// Takes `n` tokens if they are all there now; takes nothing otherwise
    /// (so `n > burst` is always refused by a limited bucket).
    pub fn try_take(&mut self, now_ms: i64, n: u32) -> bool {
        if self.is_unlimited() || n == 0 {
            return true;
        }
        let now = now_ms as i128 * NS_PER_MS;
        let after = self
            .tat_ns
            .max(now)
            .saturating_add(n as i128 * self.interval_ns);
        if after.saturating_sub(now) <= self.tolerance_ns() {
            self.tat_ns = after;
            true
        } else {
            false
        }
    }

    /// Commits `n` tokens now, going into debt if they are not there yet;
    /// answers the milliseconds to wait before sending them. Later takes
    /// and reservations queue behind this one.
    pub fn reserve(&mut self, now_ms: i64, n: u32) -> i64 {
        if self.is_unlimited() || n == 0 {
            return 0;
        }
        let now = now_ms as i128 * NS_PER_MS;
        let after = self
            .tat_ns
            .max(now)
            .saturating_add(n as i128 * self.interval_ns);
        self.tat_ns = after;
        let wait_ns = after
            .saturating_sub(now)
            .saturating_sub(self.tolerance_ns())
            .max(0);
        let wait_ms = wait_ns / NS_PER_MS + i128::from(wait_ns % NS_PER_MS != 0);
        i64::try_from(wait_ms).unwrap_or(i64::MAX)
    }

    /// Whole tokens that could be taken at `now_ms` (`u32::MAX` when
    /// unlimited); 0 while reservations are in debt.
    pub fn available(&self, now_ms: i64) -> u32 {
        if self.is_unlimited() {
            return u32::MAX;
        }
        let now = now_ms as i128 * NS_PER_MS;
        let used = self.tat_ns.saturating_sub(now).max(0);
        let free = (self.tolerance_ns() - used).max(0) / self.interval_ns;
        free as u32
    }
}

/// Exponential backoff with full jitter: after the `attempt`-th failed
/// attempt, wait a uniformly random time in `[0, min(max_ms, base_ms *
/// 2^(attempt-1))]`. Full jitter spreads retries of many messages that
/// failed together (a provider outage) instead of bunching them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base_ms: i64,
    pub max_ms: i64,
    /// Attempts in all, the first one included; 0 or 1 means no retries.
    pub attempts_max: u32,
}

impl Backoff {
    /// The upper end of the wait after `attempt` failed attempts; 0 for
    /// attempt 0. Negative settings count as 0.
    pub fn ceiling_ms(&self, attempt: u32) -> i64 {
        if attempt == 0 {
            return 0;
        }
        let base = self.base_ms.max(0);
        let max = self.max_ms.max(0);
        let grown = match 1i64.checked_shl(attempt - 1) {
            Some(f) if attempt - 1 < 63 => base.saturating_mul(f),
            _ if base == 0 => 0,
            _ => i64::MAX,
        };
        grown.min(max)
    }

    /// The wait before the next attempt once `attempt` attempts have failed,
    /// or `None` when the budget is spent (`attempt >= attempts_max`).
    /// `random` is any u64 from the caller's random source (taken modulo
    /// the range; the bias is negligible for waits below 2^40 ms).
    pub fn delay_ms(&self, attempt: u32, random: u64) -> Option<i64> {
        if attempt >= self.attempts_max {
            return None;
        }
        let ceiling = self.ceiling_ms(attempt) as u64;
        Some((random % (ceiling + 1)) as i64)
    }

    /// As [`Backoff::delay_ms`], but never sooner than the peer's
    /// retry-after hint (HTTP `Retry-After`, a 429's advice). The hint is
    /// honoured even beyond `max_ms`: coming back earlier would be refused
    /// again; the caller compares the result with the message's deadline.
    /// A negative hint is ignored. The budget applies either way.
    pub fn delay_with_hint_ms(
        &self,
        attempt: u32,
        random: u64,
        hint_ms: Option<i64>,
    ) -> Option<i64> {
        let jittered = self.delay_ms(attempt, random)?;
        Some(jittered.max(hint_ms.unwrap_or(0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_bucket_starts_full_and_refills_at_its_rate() {
        let mut b = TokenBucket::new(10.0, 5);
        assert_eq!(b.available(1_000), 5);
        assert!(b.try_take(1_000, 5));
        assert!(!b.try_take(1_000, 1));
        assert!(!b.try_take(1_099, 1), "one token takes 100 ms");
        assert!(b.try_take(1_100, 1));
        // A long pause refills to the burst and no further.
        assert_eq!(b.available(1_000_000), 5);
        assert!(!b.try_take(1_000_000, 6), "more than the burst at once");
        assert!(b.try_take(1_000_000, 5));
        // A clock that goes back refills nothing.
        assert!(!b.try_take(0, 1));
        assert_eq!(b.available(0), 0);
        assert!(b.try_take(1_000_100, 1));
    }

    #[test]
    fn reservations_queue_and_commit() {
        let mut b = TokenBucket::new(2.0, 2);
        assert_eq!(b.reserve(0, 2), 0);
        assert_eq!(b.reserve(0, 1), 500);
        assert_eq!(b.reserve(0, 1), 1_000);
        assert_eq!(b.reserve(0, 4), 3_000, "more than the burst waits longer");
        assert!(!b.try_take(2_999, 1), "the reserved tokens are spoken for");
        assert_eq!(b.available(3_000), 0);
        assert_eq!(b.available(3_500), 1);
        assert!(b.try_take(3_500, 1));
        // Fractional rates wait whole milliseconds, rounded up.
        let mut b = TokenBucket::new(3.0, 1);
        assert_eq!(b.reserve(0, 1), 0);
        assert_eq!(b.reserve(0, 1), 334);
    }

    #[test]
    fn no_rate_means_unlimited() {
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let mut b = TokenBucket::new(rate, 1);
            assert!(b.is_unlimited());
            assert!(b.try_take(0, u32::MAX));
            assert_eq!(b.reserve(0, u32::MAX), 0);
        }
        let mut b = TokenBucket::new(1.0, 0);
        assert_eq!(b.burst(), 1);
        assert!(b.try_take(0, 1));
        assert!(!b.try_take(0, 1));
        // Tiny rates do not overflow.
        let mut b = TokenBucket::new(1e-300, 1);
        assert_eq!(b.reserve(i64::MAX, u32::MAX), i64::MAX);
        assert_eq!(b.reserve(i64::MIN, u32::MAX), i64::MAX);
    }

    #[test]
    fn backoff_grows_to_its_cap_and_spends_its_budget() {
        let b = Backoff {
            base_ms: 100,
            max_ms: 1_000,
            attempts_max: 6,
        };
        let ceilings: Vec<i64> = (0..7).map(|a| b.ceiling_ms(a)).collect();
        assert_eq!(ceilings, [0, 100, 200, 400, 800, 1_000, 1_000]);
        assert_eq!(b.delay_ms(0, 7), Some(0), "the first attempt goes at once");
        assert_eq!(b.delay_ms(3, 401), Some(0));
        assert_eq!(b.delay_ms(3, 400), Some(400));
        assert_eq!(b.delay_ms(5, u64::MAX), Some((u64::MAX % 1_001) as i64));
        assert_eq!(b.delay_ms(6, 0), None, "six attempts made");
        assert_eq!(b.delay_with_hint_ms(1, 50, Some(5_000)), Some(5_000));
        assert_eq!(b.delay_with_hint_ms(1, 50, Some(10)), Some(50));
        assert_eq!(b.delay_with_hint_ms(1, 50, Some(-10)), Some(50));
        assert_eq!(b.delay_with_hint_ms(6, 50, Some(10)), None);
        let none = Backoff {
            attempts_max: 1,
            ..b
        };
        assert_eq!(none.delay_ms(1, 0), None);
        assert_eq!(b.ceiling_ms(200), 1_000, "huge attempt numbers saturate");
    }

    #[derive(Debug, Clone)]
    enum Op {
        Take(u32),
        Reserve(u32),
    }

    fn op(burst: u32) -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..=burst + 2).prop_map(Op::Take),
            (0..=burst + 2).prop_map(Op::Reserve),
        ]
    }

    proptest! {
        /// Over any run of consecutive calls, try_take grants at most
        /// burst + rate * (latest - earliest time seen in the run).
        #[test]
        fn takes_never_exceed_burst_plus_rate(
            rate in 0.01f64..5_000.0,
            burst in 1u32..20,
            steps in prop::collection::vec((-500i64..3_000, 0u32..25), 1..80),
        ) {
            let mut b = TokenBucket::new(rate, burst);
            let mut now = 1_700_000_000_000i64;
            let mut log = Vec::new();
            for (dt, n) in steps {
                now += dt;
                let granted = b.try_take(now, n);
                log.push((now, if granted { n } else { 0 }));
            }
            for i in 0..log.len() {
                let (mut lo, mut hi, mut sum) = (i64::MAX, i64::MIN, 0u64);
                for &(t, n) in &log[i..] {
                    lo = lo.min(t);
                    hi = hi.max(t);
                    sum += n as u64;
                    let bound = burst as f64 + rate * (hi - lo) as f64 / 1000.0;
                    prop_assert!(sum as f64 <= bound + 1e-6, "{sum} > {bound}");
                }
            }
        }

        /// With time not going backwards, each reservation is ready no
        /// earlier than the one before, and ready times keep to the rate.
        #[test]
        fn reservations_are_monotone_and_paced(
            rate in 0.01f64..5_000.0,
            burst in 1u32..20,
            steps in prop::collection::vec((0i64..2_000, 1u32..20), 1..60),
        ) {
            let mut b = TokenBucket::new(rate, burst);
            let mut now = 0i64;
            let mut ready = Vec::new();
            for (dt, n) in steps {
                now += dt;
                let n = n.min(burst);
                let wait = b.reserve(now, n);
                prop_assert!(wait >= 0);
                if let Some(&(prev, _)) = ready.last() {
                    prop_assert!(now + wait >= prev, "ready {} before {prev}", now + wait);
                }
                ready.push((now + wait, n));
            }
            for i in 0..ready.len() {
                let mut sum = 0u64;
                for &(t, n) in &ready[i..] {
                    sum += n as u64;
                    // One ms of slack: ready times are rounded up to ms.
                    let bound = burst as f64 + rate * (t - ready[i].0 + 1) as f64 / 1000.0;
                    prop_assert!(sum as f64 <= bound + 1e-6, "{sum} > {bound}");
                }
            }
        }

        /// Mixed takes and reservations, with the clock jumping both ways,
        /// never wait a negative time nor report more than burst available.
        #[test]
        fn mixed_use_stays_in_bounds(
            rate in 0.01f64..5_000.0,
            burst in 1u32..20,
            steps in prop::collection::vec((-5_000i64..5_000, op(20)), 1..60),
        ) {
            let mut b = TokenBucket::new(rate, burst);
            let mut now = 0i64;
            for (dt, o) in steps {
                now += dt;
                prop_assert!(b.available(now) <= burst);
                match o {
                    Op::Take(n) => {
                        let had = b.available(now);
                        prop_assert_eq!(b.try_take(now, n), n <= had);
                    }
                    Op::Reserve(n) => prop_assert!(b.reserve(now, n) >= 0),
                }
            }
        }

        #[test]
        fn backoff_stays_within_bounds_and_budget(
            base in -10i64..100_000,
            max in -10i64..10_000_000,
            attempts_max in 0u32..40,
            attempt in 0u32..80,
            random: u64,
            hint in prop::option::of(-1_000i64..100_000_000),
        ) {
            let b = Backoff { base_ms: base, max_ms: max, attempts_max };
            let d = b.delay_ms(attempt, random);
            prop_assert_eq!(d.is_some(), attempt < attempts_max);
            if let Some(d) = d {
                prop_assert!(d >= 0 && d <= max.max(0) && d <= b.ceiling_ms(attempt));
            }
            prop_assert!(b.ceiling_ms(attempt) <= b.ceiling_ms(attempt + 1));
            let h = b.delay_with_hint_ms(attempt, random, hint);
            prop_assert_eq!(h.is_some(), attempt < attempts_max);
            if let (Some(h), Some(d)) = (h, d) {
                prop_assert!(h >= d && h >= hint.unwrap_or(0));
                prop_assert!(h == d || Some(h) == hint);
            }
        }
    }
}

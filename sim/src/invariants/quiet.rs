//! Quiet time holds: a campaign with a quiet time (22:00–07:00) sends no
//! endpoint anything while it is quiet time in the endpoint's own time
//! zone. The oracle works the local time out from fixed UTC offsets, not
//! from herald's time-zone code.

use super::Violation;
use crate::senders::Delivery;
use crate::workload::{campaign_subject, zone_of, CampaignSpec, QUIET_MINUTES};
use crate::world::EPOCH_MS;

const MINUTE_MS: i64 = 60_000;
const DAY_MINUTES: i64 = 24 * 60;

/// Whether `epoch_ms` is in quiet time at UTC offset `hours`.
pub fn in_quiet_time(epoch_ms: i64, hours: i64) -> bool {
    let local = (epoch_ms.div_euclid(MINUTE_MS) + hours * 60).rem_euclid(DAY_MINUTES);
    let (start, end) = QUIET_MINUTES;
    if start <= end {
        (start..end).contains(&local)
    } else {
        local >= start || local < end
    }
}

pub fn check<'a>(
    campaigns: impl IntoIterator<Item = &'a CampaignSpec>,
    delivered: &[Delivery],
) -> Vec<Violation> {
    let mut found = Vec::new();
    for spec in campaigns.into_iter().filter(|s| s.quiet) {
        let subject = campaign_subject(&spec.id);
        for d in delivered.iter().filter(|d| d.subject == subject) {
            let ep = d.to.split('@').next().unwrap_or_default();
            let Some((zone, hours)) = zone_of(ep) else {
                continue; // no time zone: never held back
            };
            if in_quiet_time(EPOCH_MS + d.at_ms, hours) {
                found.push(Violation::new(
                    "quiet time holds",
                    format!(
                        "campaign {} sent {} to {} ({zone}) at {} ms, in its quiet time",
                        spec.id, d.message_id, d.to, d.at_ms
                    ),
                ));
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_time_spans_midnight() {
        // 2025-11-29 10:00 UTC: 05:00 in New York (quiet), 19:00 in Tokyo.
        assert!(in_quiet_time(EPOCH_MS, -5));
        assert!(!in_quiet_time(EPOCH_MS, 9));
        assert!(!in_quiet_time(EPOCH_MS, 0));
        assert!(in_quiet_time(EPOCH_MS + 12 * 3_600_000, 0)); // 22:00
        assert!(!in_quiet_time(EPOCH_MS - 3 * 3_600_000, 0)); // 07:00
    }
}

//! Scheduled campaigns wait for their start: nothing of a campaign with a
//! StartTime is delivered before that time (less the clock skew a node may
//! have).

use super::Violation;
use crate::senders::Delivery;
use crate::workload::{campaign_subject, CampaignSpec};
use crate::world::EPOCH_MS;

pub fn check<'a>(
    campaigns: impl IntoIterator<Item = &'a CampaignSpec>,
    delivered: &[Delivery],
    max_skew_ms: i64,
) -> Vec<Violation> {
    let mut found = Vec::new();
    for spec in campaigns {
        let Some(start) = spec.start_ms else { continue };
        let subject = campaign_subject(&spec.id);
        for d in delivered.iter().filter(|d| d.subject == subject) {
            if EPOCH_MS + d.at_ms < start - max_skew_ms {
                found.push(Violation::new(
                    "scheduled campaigns wait for their start",
                    format!(
                        "campaign {} (start {} ms) sent {} to {} at {} ms",
                        spec.id,
                        start - EPOCH_MS,
                        d.message_id,
                        d.to,
                        d.at_ms
                    ),
                ));
            }
        }
    }
    found
}

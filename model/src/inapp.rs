//! In-app messages: the campaign's `InAppMessage`, what GetInAppMessages
//! answers, and which campaigns an endpoint may still be shown.
//!
//! Nothing is sent for an in-app campaign (`Frequency: IN_APP_EVENT`): the
//! app fetches the campaigns its endpoint is eligible for and shows them
//! when its own event filter matches. herald decides eligibility: the
//! campaign runs now (StartTime..EndTime, not paused), the endpoint is in
//! its segment, not held out, not opted out, and its displays
//! (`_inapp.message_displayed` events with the campaign's id) stay under the
//! campaign's `Limits.Daily` (UTC day), `Limits.Session` (the endpoint's
//! latest session) and `Limits.Total`; campaigns come in `Priority` order
//! (1 first).

use std::collections::BTreeMap;

use crate::template::{InAppMessageContent, InAppTemplateRequest};
use crate::validate::ValidationError;

/// The event an app records when it shows an in-app message
/// (attributes `campaign_id`, `treatment_id`).
pub const DISPLAYED_EVENT: &str = "_inapp.message_displayed";

/// Pinpoint's `CampaignInAppMessage`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CampaignInAppMessage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Vec<InAppMessageContent>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_config: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout: Option<String>,
}

/// Pinpoint's `InAppMessage` (what the device renders).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InAppMessage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Vec<InAppMessageContent>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_config: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout: Option<String>,
}

/// Pinpoint's `InAppCampaignSchedule`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InAppCampaignSchedule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_filter: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_time: Option<serde_json::Value>,
}

/// Pinpoint's `InAppMessageCampaign`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InAppMessageCampaign {
    pub campaign_id: String,
    pub daily_cap: i64,
    pub in_app_message: InAppMessage,
    pub priority: i64,
    pub schedule: InAppCampaignSchedule,
    pub session_cap: i64,
    pub total_cap: i64,
    pub treatment_id: String,
}

/// Pinpoint's `InAppMessagesResponse`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InAppMessagesResponse {
    pub in_app_message_campaigns: Vec<InAppMessageCampaign>,
}

/// Checks a campaign's in-app message with the in-app template rules.
pub fn check(m: &CampaignInAppMessage) -> Result<(), ValidationError> {
    crate::template::in_app_template_request(
        &InAppTemplateRequest {
            content: m.content.clone(),
            custom_config: m.custom_config.clone(),
            layout: m.layout.clone(),
            ..Default::default()
        },
        &crate::limits::Limits::default(),
    )
}

/// How often one endpoint was shown one campaign.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Displays {
    pub today: u32,
    pub session: u32,
    pub total: u32,
}

/// A campaign's display caps (`Limits`); 0 is no cap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Caps {
    pub daily: u32,
    pub session: u32,
    pub total: u32,
}

/// Whether the endpoint may be shown the campaign again.
pub fn under_caps(caps: Caps, d: Displays) -> bool {
    let under = |cap: u32, n: u32| cap == 0 || n < cap;
    under(caps.daily, d.today) && under(caps.session, d.session) && under(caps.total, d.total)
}

/// One event of an endpoint as display counting sees it: its type,
/// attributes, UTC day and session id.
pub type DisplayFact<'a> = (&'a str, &'a BTreeMap<String, String>, i64, Option<&'a str>);

/// Counts displays of `campaign_id` among an endpoint's events
/// `(event type, attributes, UTC day, session id)`: today is `today_day`,
/// the session is `session` (the endpoint's latest).
pub fn count_displays<'a>(
    events: impl IntoIterator<Item = DisplayFact<'a>>,
    campaign_id: &str,
    today_day: i64,
    session: Option<&str>,
) -> Displays {
    let mut d = Displays::default();
    for (t, attrs, day, sid) in events {
        if t != DISPLAYED_EVENT || attrs.get("campaign_id").map(String::as_str) != Some(campaign_id)
        {
            continue;
        }
        d.total += 1;
        if day == today_day {
            d.today += 1;
        }
        if session.is_some() && sid == session {
            d.session += 1;
        }
    }
    d
}

/// Orders campaigns as devices should consider them: `Priority` 1 first,
/// then by id.
pub fn order(list: &mut [InAppMessageCampaign]) {
    list.sort_by(|a, b| (a.priority, &a.campaign_id).cmp(&(b.priority, &b.campaign_id)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_of_zero_do_not_limit() {
        let d = Displays {
            today: 2,
            session: 1,
            total: 5,
        };
        assert!(under_caps(Caps::default(), d));
        assert!(!under_caps(
            Caps {
                daily: 2,
                ..Default::default()
            },
            d
        ));
        assert!(under_caps(
            Caps {
                daily: 3,
                session: 2,
                total: 6
            },
            d
        ));
        assert!(!under_caps(
            Caps {
                session: 1,
                ..Default::default()
            },
            d
        ));
        assert!(!under_caps(
            Caps {
                total: 5,
                ..Default::default()
            },
            d
        ));
    }

    #[test]
    fn displays_count_by_campaign_day_and_session() {
        let a: BTreeMap<String, String> = [("campaign_id".to_owned(), "c1".to_owned())].into();
        let b: BTreeMap<String, String> = [("campaign_id".to_owned(), "c2".to_owned())].into();
        let evs = vec![
            (DISPLAYED_EVENT, &a, 10, Some("s1")),
            (DISPLAYED_EVENT, &a, 11, Some("s2")),
            (DISPLAYED_EVENT, &a, 11, Some("s2")),
            (DISPLAYED_EVENT, &b, 11, Some("s2")),
            ("_session.start", &a, 11, Some("s2")),
        ];
        assert_eq!(
            count_displays(evs, "c1", 11, Some("s2")),
            Displays {
                today: 2,
                session: 2,
                total: 3
            }
        );
    }

    #[test]
    fn priority_one_comes_first() {
        let c = |id: &str, p| InAppMessageCampaign {
            campaign_id: id.into(),
            priority: p,
            ..Default::default()
        };
        let mut l = vec![c("b", 3), c("a", 3), c("z", 1)];
        order(&mut l);
        let ids: Vec<_> = l.iter().map(|c| c.campaign_id.as_str()).collect();
        assert_eq!(ids, ["z", "a", "b"]);
    }

    #[test]
    fn messages_are_checked_like_templates() {
        let ok = CampaignInAppMessage {
            layout: Some("BOTTOM_BANNER".into()),
            ..Default::default()
        };
        assert!(check(&ok).is_ok());
        let bad = CampaignInAppMessage {
            layout: Some("SIDEWAYS".into()),
            ..Default::default()
        };
        assert!(check(&bad).unwrap_err().0.contains("Layout"));
    }
}

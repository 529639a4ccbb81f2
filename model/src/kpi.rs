//! Pinpoint's standard metrics (KPIs) of GetApplicationDateRangeKpi,
//! GetCampaignDateRangeKpi and GetJourneyDateRangeKpi: every documented
//! kpi-name, what it is computed from, and the evaluation over delivery
//! rollups already grouped by the caller.
//!
//! Delivery events map to KPIs as follows. Sent: `_email.send`,
//! `_SMS.BUFFERED` (accepted by the SMSC), `_push.send`, `_custom.send`.
//! Delivered: `_email.delivered`, `_SMS.SUCCESS`, `_push.delivered`,
//! `_custom.delivered`. Opens: `_email.open`, push opens
//! `_campaign.opened_notification` (reported by apps through PutEvents).
//! Rates are fractions (0..1), open rates over distinct endpoints. Values
//! are decimal strings of type `Double`, as Pinpoint sends them. A group
//! without data, or a rate whose denominator is 0, has no row.

use std::collections::BTreeMap;

use roaring::RoaringBitmap;
use serde::Serialize;

/// Which API a KPI belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Application,
    Campaign,
    Journey,
}

/// Which messages a KPI counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Campaign messages (the application's campaign family; in campaign
    /// scope, the one campaign).
    Campaigns,
    /// Direct sends (`txn-*`).
    Transactional,
    /// Journey messages.
    Journeys,
}

/// How rows are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    None,
    /// UTC day, `YYYY-MM-DD`.
    Date,
    CampaignId,
    CampaignActivityId,
    JourneyActivityId,
    /// ISO 3166-1 alpha-2 code of the destination number.
    Country,
    /// The failure's record status.
    ErrorCode,
}

impl GroupBy {
    pub fn key(self) -> &'static str {
        match self {
            GroupBy::None => "",
            GroupBy::Date => "Date",
            GroupBy::CampaignId => "CampaignId",
            GroupBy::CampaignActivityId => "CampaignActivityId",
            GroupBy::JourneyActivityId => "JourneyActivityId",
            GroupBy::Country => "Country",
            GroupBy::ErrorCode => "ErrorCode",
        }
    }
}

/// A quantity over some delivery event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// Events.
    Count(&'static [&'static str]),
    /// Distinct endpoints with any of the events.
    Unique(&'static [&'static str]),
    /// Message parts (SMS).
    Parts(&'static [&'static str]),
}

/// How a KPI's value is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Formula {
    Of(Measure),
    Rate(Measure, Measure),
    Minus(Measure, Measure),
    /// herald does not know it (SMS prices): never any rows.
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kpi {
    pub name: &'static str,
    pub scope: Scope,
    pub source: Source,
    pub group: GroupBy,
    /// The `Values` key.
    pub key: &'static str,
    pub formula: Formula,
}

pub const SENT: &[&str] = &["_email.send", "_SMS.BUFFERED", "_push.send", "_custom.send"];
pub const DELIVERED: &[&str] = &[
    "_email.delivered",
    "_SMS.SUCCESS",
    "_push.delivered",
    "_custom.delivered",
];
pub const HARD_BOUNCE: &[&str] = &["_email.hardbounce"];
const EMAIL_SENT: &[&str] = &["_email.send"];
const EMAIL_DELIVERED: &[&str] = &["_email.delivered"];
const EMAIL_OPEN: &[&str] = &["_email.open"];
const EMAIL_CLICK: &[&str] = &["_email.click"];
const EMAIL_SOFT: &[&str] = &["_email.softbounce"];
const EMAIL_COMPLAINT: &[&str] = &["_email.complaint"];
const EMAIL_REJECTED: &[&str] = &["_email.rejected"];
const EMAIL_UNSUB: &[&str] = &["_email.unsubscribe"];
const PUSH_DELIVERED: &[&str] = &["_push.delivered"];
pub const PUSH_OPEN: &[&str] = &["_campaign.opened_notification"];
const SMS_SENT: &[&str] = &["_SMS.BUFFERED"];
const SMS_DELIVERED: &[&str] = &["_SMS.SUCCESS"];
pub const SMS_FAILURE: &[&str] = &["_SMS.FAILURE"];

use Formula::{Minus, Of, Rate, Unknown};
use GroupBy as G;
use Measure::{Count, Parts, Unique};
use Scope::{Application as App, Campaign as Camp, Journey as Jour};
use Source::{Campaigns as C, Journeys as J, Transactional as T};

const fn k(
    name: &'static str,
    scope: Scope,
    source: Source,
    group: GroupBy,
    key: &'static str,
    formula: Formula,
) -> Kpi {
    Kpi {
        name,
        scope,
        source,
        group,
        key,
        formula,
    }
}

/// Every kpi-name Pinpoint documents.
#[rustfmt::skip]
pub const KPIS: &[Kpi] = &[
    // Application: campaigns.
    k("successful-delivery-rate", App, C, G::None, "SuccessfulDeliveryRate", Rate(Count(DELIVERED), Count(SENT))),
    k("successful-delivery-rate-grouped-by-date", App, C, G::Date, "SuccessfulDeliveryRate", Rate(Count(DELIVERED), Count(SENT))),
    k("email-open-rate", App, C, G::None, "EmailOpenRate", Rate(Unique(EMAIL_OPEN), Unique(EMAIL_DELIVERED))),
    k("email-open-rate-grouped-by-campaign", App, C, G::CampaignId, "EmailOpenRate", Rate(Unique(EMAIL_OPEN), Unique(EMAIL_DELIVERED))),
    k("unique-deliveries", App, C, G::None, "UniqueDeliveries", Of(Unique(DELIVERED))),
    k("unique-deliveries-grouped-by-campaign", App, C, G::CampaignId, "UniqueDeliveries", Of(Unique(DELIVERED))),
    k("unique-deliveries-grouped-by-date", App, C, G::Date, "UniqueDeliveries", Of(Unique(DELIVERED))),
    k("successful-deliveries-grouped-by-campaign", App, C, G::CampaignId, "SuccessfulDeliveries", Minus(Count(SENT), Count(HARD_BOUNCE))),
    k("push-open-rate", App, C, G::None, "PushOpenRate", Rate(Unique(PUSH_OPEN), Unique(PUSH_DELIVERED))),
    k("push-open-rate-grouped-by-campaign", App, C, G::CampaignId, "PushOpenRate", Rate(Unique(PUSH_OPEN), Unique(PUSH_DELIVERED))),
    // Application: transactional email.
    k("txn-emails-sent", App, T, G::None, "TxnEmailsSent", Of(Count(EMAIL_SENT))),
    k("txn-emails-sent-grouped-by-date", App, T, G::Date, "TxnEmailsSent", Of(Count(EMAIL_SENT))),
    k("txn-emails-delivered", App, T, G::None, "TxnEmailsDelivered", Of(Count(EMAIL_DELIVERED))),
    k("txn-emails-delivered-grouped-by-date", App, T, G::Date, "TxnEmailsDelivered", Of(Count(EMAIL_DELIVERED))),
    k("txn-emails-delivery-rate", App, T, G::None, "TxnEmailsDeliveryRate", Rate(Count(EMAIL_DELIVERED), Count(EMAIL_SENT))),
    k("txn-emails-delivery-rate-grouped-by-date", App, T, G::Date, "TxnEmailsDeliveryRate", Rate(Count(EMAIL_DELIVERED), Count(EMAIL_SENT))),
    k("txn-emails-opened", App, T, G::None, "TxnEmailsOpened", Of(Count(EMAIL_OPEN))),
    k("txn-emails-opened-grouped-by-date", App, T, G::Date, "TxnEmailsOpened", Of(Count(EMAIL_OPEN))),
    k("txn-emails-unique-opens", App, T, G::None, "TxnEmailsUniqueOpens", Of(Unique(EMAIL_OPEN))),
    k("txn-emails-unique-opens-grouped-by-date", App, T, G::Date, "TxnEmailsUniqueOpens", Of(Unique(EMAIL_OPEN))),
    k("txn-emails-clicked", App, T, G::None, "TxnEmailsClicked", Of(Count(EMAIL_CLICK))),
    k("txn-emails-clicked-grouped-by-date", App, T, G::Date, "TxnEmailsClicked", Of(Count(EMAIL_CLICK))),
    k("txn-emails-unique-clicks", App, T, G::None, "TxnEmailsUniqueClicks", Of(Unique(EMAIL_CLICK))),
    k("txn-emails-unique-clicks-grouped-by-date", App, T, G::Date, "TxnEmailsUniqueClicks", Of(Unique(EMAIL_CLICK))),
    k("txn-emails-hard-bounced", App, T, G::None, "TxnEmailsHardBounced", Of(Count(HARD_BOUNCE))),
    k("txn-emails-hard-bounced-grouped-by-date", App, T, G::Date, "TxnEmailsHardBounced", Of(Count(HARD_BOUNCE))),
    k("txn-emails-soft-bounced", App, T, G::None, "TxnEmailsSoftBounced", Of(Count(EMAIL_SOFT))),
    k("txn-emails-soft-bounced-grouped-by-date", App, T, G::Date, "TxnEmailsSoftBounced", Of(Count(EMAIL_SOFT))),
    k("txn-emails-with-complaints", App, T, G::None, "TxnEmailsWithComplaints", Of(Count(EMAIL_COMPLAINT))),
    k("txn-emails-with-complaints-grouped-by-date", App, T, G::Date, "TxnEmailsWithComplaints", Of(Count(EMAIL_COMPLAINT))),
    k("txn-emails-complaint-rate", App, T, G::None, "TxnEmailsComplaintRate", Rate(Count(EMAIL_COMPLAINT), Count(EMAIL_SENT))),
    k("txn-emails-complaint-rate-grouped-by-date", App, T, G::Date, "TxnEmailsComplaintRate", Rate(Count(EMAIL_COMPLAINT), Count(EMAIL_SENT))),
    // Application: transactional SMS.
    k("txn-sms-sent", App, T, G::None, "TxnSmsSent", Of(Count(SMS_SENT))),
    k("txn-sms-sent-grouped-by-date", App, T, G::Date, "TxnSmsSent", Of(Count(SMS_SENT))),
    k("txn-sms-sent-grouped-by-country", App, T, G::Country, "TxnSmsSent", Of(Count(SMS_SENT))),
    k("txn-sms-delivered", App, T, G::None, "TxnSmsDelivered", Of(Count(SMS_DELIVERED))),
    k("txn-sms-delivered-grouped-by-date", App, T, G::Date, "TxnSmsDelivered", Of(Count(SMS_DELIVERED))),
    k("txn-sms-delivered-grouped-by-country", App, T, G::Country, "TxnSmsDelivered", Of(Count(SMS_DELIVERED))),
    k("txn-sms-delivery-rate", App, T, G::None, "TxnSmsDeliveryRate", Rate(Count(SMS_DELIVERED), Count(SMS_SENT))),
    k("txn-sms-delivery-rate-grouped-by-date", App, T, G::Date, "TxnSmsDeliveryRate", Rate(Count(SMS_DELIVERED), Count(SMS_SENT))),
    k("txn-sms-sent-by-parts", App, T, G::None, "TxnSmsSentByParts", Of(Parts(SMS_SENT))),
    k("txn-sms-sent-by-parts-grouped-by-country", App, T, G::Country, "TxnSmsSentByParts", Of(Parts(SMS_SENT))),
    k("txn-sms-delivered-by-parts", App, T, G::None, "TxnSmsDeliveredByParts", Of(Parts(SMS_DELIVERED))),
    k("txn-sms-delivered-by-parts-grouped-by-country", App, T, G::Country, "TxnSmsDeliveredByParts", Of(Parts(SMS_DELIVERED))),
    k("txn-sms-total-price-grouped-by-country", App, T, G::Country, "TxnSmsTotalPrice", Unknown),
    k("txn-sms-average-price-grouped-by-country", App, T, G::Country, "TxnSmsAveragePrice", Unknown),
    k("txn-sms-average-price-by-parts-grouped-by-country", App, T, G::Country, "TxnSmsAveragePriceByParts", Unknown),
    k("txn-sms-error-distribution", App, T, G::ErrorCode, "TxnSmsErrorDistribution", Of(Count(SMS_FAILURE))),
    // Campaign.
    k("attempted-deliveries-grouped-by-campaign-activity", Camp, C, G::CampaignActivityId, "AttemptedDeliveries", Of(Count(SENT))),
    k("successful-deliveries-grouped-by-campaign-activity", Camp, C, G::CampaignActivityId, "SuccessfulDeliveries", Minus(Count(SENT), Count(HARD_BOUNCE))),
    k("successful-delivery-rate", Camp, C, G::None, "SuccessfulDeliveryRate", Rate(Count(DELIVERED), Count(SENT))),
    k("successful-delivery-rate-grouped-by-campaign-activity", Camp, C, G::CampaignActivityId, "SuccessfulDeliveryRate", Rate(Count(DELIVERED), Count(SENT))),
    k("successful-delivery-rate-grouped-by-date", Camp, C, G::Date, "SuccessfulDeliveryRate", Rate(Count(DELIVERED), Count(SENT))),
    k("unique-deliveries", Camp, C, G::None, "UniqueDeliveries", Of(Unique(DELIVERED))),
    k("unique-deliveries-grouped-by-campaign-activity", Camp, C, G::CampaignActivityId, "UniqueDeliveries", Of(Unique(DELIVERED))),
    k("unique-deliveries-grouped-by-date", Camp, C, G::Date, "UniqueDeliveries", Of(Unique(DELIVERED))),
    k("hard-bounce-rate", Camp, C, G::None, "HardBounceRate", Rate(Count(HARD_BOUNCE), Count(EMAIL_SENT))),
    k("hard-bounce-rate-grouped-by-campaign-activity", Camp, C, G::CampaignActivityId, "HardBounceRate", Rate(Count(HARD_BOUNCE), Count(EMAIL_SENT))),
    k("email-open-rate", Camp, C, G::None, "EmailOpenRate", Rate(Unique(EMAIL_OPEN), Unique(EMAIL_DELIVERED))),
    k("email-open-rate-grouped-by-campaign-activity", Camp, C, G::CampaignActivityId, "EmailOpenRate", Rate(Unique(EMAIL_OPEN), Unique(EMAIL_DELIVERED))),
    k("direct-email-opens-grouped-by-campaign-activity", Camp, C, G::CampaignActivityId, "DirectEmailOpens", Of(Count(EMAIL_OPEN))),
    k("clicks-grouped-by-campaign-activity", Camp, C, G::CampaignActivityId, "Clicks", Of(Count(EMAIL_CLICK))),
    k("push-open-rate", Camp, C, G::None, "PushOpenRate", Rate(Unique(PUSH_OPEN), Unique(PUSH_DELIVERED))),
    k("push-open-rate-grouped-by-campaign-activity", Camp, C, G::CampaignActivityId, "PushOpenRate", Rate(Unique(PUSH_OPEN), Unique(PUSH_DELIVERED))),
    k("direct-push-opens-grouped-by-campaign-activity", Camp, C, G::CampaignActivityId, "DirectPushOpens", Of(Count(PUSH_OPEN))),
    k("sms-spend", Camp, C, G::None, "SmsSpend", Unknown),
    // Journey (email).
    k("journey-emails-sent", Jour, J, G::None, "JourneyEmailsSent", Of(Count(EMAIL_SENT))),
    k("emails-sent-grouped-by-journey-activity", Jour, J, G::JourneyActivityId, "EmailsSent", Of(Count(EMAIL_SENT))),
    k("journey-emails-delivered", Jour, J, G::None, "JourneyEmailsDelivered", Of(Count(EMAIL_DELIVERED))),
    k("emails-delivered-grouped-by-journey-activity", Jour, J, G::JourneyActivityId, "EmailsDelivered", Of(Count(EMAIL_DELIVERED))),
    k("journey-emails-opened", Jour, J, G::None, "JourneyEmailsOpened", Of(Count(EMAIL_OPEN))),
    k("emails-opened-grouped-by-journey-activity", Jour, J, G::JourneyActivityId, "EmailsOpened", Of(Count(EMAIL_OPEN))),
    k("journey-emails-clicked", Jour, J, G::None, "JourneyEmailsClicked", Of(Count(EMAIL_CLICK))),
    k("emails-clicked-grouped-by-journey-activity", Jour, J, G::JourneyActivityId, "EmailsClicked", Of(Count(EMAIL_CLICK))),
    k("journey-emails-hardbounced", Jour, J, G::None, "JourneyEmailsHardbounced", Of(Count(HARD_BOUNCE))),
    k("emails-hardbounced-grouped-by-journey-activity", Jour, J, G::JourneyActivityId, "EmailsHardbounced", Of(Count(HARD_BOUNCE))),
    k("journey-emails-softbounced", Jour, J, G::None, "JourneyEmailsSoftbounced", Of(Count(EMAIL_SOFT))),
    k("emails-softbounced-grouped-by-journey-activity", Jour, J, G::JourneyActivityId, "EmailsSoftbounced", Of(Count(EMAIL_SOFT))),
    k("journey-emails-complained", Jour, J, G::None, "JourneyEmailsComplained", Of(Count(EMAIL_COMPLAINT))),
    k("emails-complained-grouped-by-journey-activity", Jour, J, G::JourneyActivityId, "EmailsComplained", Of(Count(EMAIL_COMPLAINT))),
    k("journey-emails-rejected", Jour, J, G::None, "JourneyEmailsRejected", Of(Count(EMAIL_REJECTED))),
    k("emails-rejected-grouped-by-journey-activity", Jour, J, G::JourneyActivityId, "EmailsRejected", Of(Count(EMAIL_REJECTED))),
    k("journey-emails-unsubscribed", Jour, J, G::None, "JourneyEmailsUnsubscribed", Of(Count(EMAIL_UNSUB))),
    k("emails-unsubscribed-grouped-by-journey-activity", Jour, J, G::JourneyActivityId, "EmailsUnsubscribed", Of(Count(EMAIL_UNSUB))),
];

/// The KPI of a scope with this name.
pub fn find(scope: Scope, name: &str) -> Option<&'static Kpi> {
    KPIS.iter().find(|k| k.scope == scope && k.name == name)
}

/// One event type's rollup within a group: events, message parts, and
/// per shard the endpoints (distinct endpoints are exact per shard, and an
/// endpoint lives in one shard, so shard counts add up).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TypeCell {
    pub count: u64,
    pub parts: u64,
    pub endpoints: BTreeMap<u32, RoaringBitmap>,
}

/// Everything of one group (one date, campaign, activity, country, ...).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cell {
    pub types: BTreeMap<String, TypeCell>,
    /// currency -> revenue of attributed purchases.
    pub revenue: BTreeMap<String, f64>,
}

impl Cell {
    pub fn add(
        &mut self,
        event_type: &str,
        shard: u32,
        count: u64,
        parts: u64,
        endpoints: Option<&RoaringBitmap>,
    ) {
        let t = self.types.entry(event_type.to_owned()).or_default();
        t.count += count;
        t.parts += parts;
        if let Some(e) = endpoints {
            *t.endpoints.entry(shard).or_default() |= e;
        }
    }

    pub fn add_revenue(&mut self, revenue: &BTreeMap<String, f64>) {
        for (c, x) in revenue {
            *self.revenue.entry(c.clone()).or_default() += x;
        }
    }

    fn has_any(&self, types: &[&str]) -> bool {
        types.iter().any(|t| self.types.contains_key(*t))
    }

    pub fn measure(&self, m: Measure) -> u64 {
        match m {
            Count(types) => types
                .iter()
                .filter_map(|t| self.types.get(*t))
                .map(|c| c.count)
                .sum(),
            Parts(types) => types
                .iter()
                .filter_map(|t| self.types.get(*t))
                .map(|c| c.parts)
                .sum(),
            Unique(types) => {
                let mut shards: BTreeMap<u32, RoaringBitmap> = BTreeMap::new();
                for c in types.iter().filter_map(|t| self.types.get(*t)) {
                    for (s, b) in &c.endpoints {
                        *shards.entry(*s).or_default() |= b;
                    }
                }
                shards.values().map(RoaringBitmap::len).sum()
            }
        }
    }
}

fn types_of(m: Measure) -> &'static [&'static str] {
    match m {
        Count(t) | Unique(t) | Parts(t) => t,
    }
}

/// A KPI value in Pinpoint's `ResultRowValue` shape.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RowValue {
    pub key: String,
    #[serde(rename = "Type")]
    pub kind: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Row {
    pub grouped_bys: Vec<RowValue>,
    pub values: Vec<RowValue>,
}

/// Pinpoint writes doubles with at least one decimal: `123.0`.
pub fn double(v: f64) -> String {
    format!("{v:?}")
}

/// The KPI's value over one group, `None` when it has no data.
pub fn value(kpi: &Kpi, cell: &Cell) -> Option<f64> {
    match kpi.formula {
        Unknown => None,
        Of(m) => cell.has_any(types_of(m)).then(|| cell.measure(m) as f64),
        Minus(a, b) => cell
            .has_any(types_of(a))
            .then(|| cell.measure(a).saturating_sub(cell.measure(b)) as f64),
        Rate(n, d) => {
            let den = cell.measure(d);
            (den > 0).then(|| cell.measure(n) as f64 / den as f64)
        }
    }
}

/// The rows of a KPI over groups (keyed by the group value; one group
/// keyed `""` when the KPI is not grouped), in group order.
pub fn rows(kpi: &Kpi, groups: &BTreeMap<String, Cell>) -> Vec<Row> {
    groups
        .iter()
        .filter_map(|(g, cell)| {
            let v = value(kpi, cell)?;
            Some(Row {
                grouped_bys: if kpi.group == G::None {
                    Vec::new()
                } else {
                    vec![RowValue {
                        key: kpi.group.key().to_owned(),
                        kind: "String".into(),
                        value: g.clone(),
                    }]
                },
                values: vec![RowValue {
                    key: kpi.key.to_owned(),
                    kind: "Double".into(),
                    value: double(v),
                }],
            })
        })
        .collect()
}

const FAILED: &[&str] = &[
    "_email.rejected",
    "_SMS.FAILURE",
    "_push.failure",
    "_custom.failure",
];
const BOUNCED: &[&str] = &["_email.hardbounce", "_email.softbounce"];
const OPENED: &[&str] = &["_email.open", "_campaign.opened_notification"];
const OPTED_OUT: &[&str] = &["_email.unsubscribe", "_SMS.OPTOUT"];
const SESSIONS: &[&str] = &["_session.start"];
const PURCHASES: &[&str] = &[crate::analytics::PURCHASE_EVENT];
const HELD_OUT: &[&str] = &[crate::analytics::HOLDOUT_EVENT];

/// A campaign's results in one group (a treatment or an activity, a day
/// or the whole range): deliveries, what recipients did with them, and
/// the sessions and purchases attributed to the campaign (see
/// `analytics::attribution`). `Unique*` and `Purchasers` are distinct
/// endpoints; the rest count events.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CampaignResults {
    pub sent: u64,
    pub delivered: u64,
    pub unique_delivered: u64,
    pub failed: u64,
    pub bounced: u64,
    pub opens: u64,
    pub unique_opens: u64,
    pub clicks: u64,
    pub unique_clicks: u64,
    pub opted_out: u64,
    pub complaints: u64,
    pub sessions: u64,
    pub purchases: u64,
    pub purchasers: u64,
    /// currency -> revenue of the attributed purchases.
    pub revenue: BTreeMap<String, f64>,
    /// Holdout group only: its members, left out by the campaign's runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_out: Option<u64>,
}

impl CampaignResults {
    pub fn of(cell: &Cell) -> Self {
        Self {
            sent: cell.measure(Count(SENT)),
            delivered: cell.measure(Count(DELIVERED)),
            unique_delivered: cell.measure(Unique(DELIVERED)),
            failed: cell.measure(Count(FAILED)),
            bounced: cell.measure(Count(BOUNCED)),
            opens: cell.measure(Count(OPENED)),
            unique_opens: cell.measure(Unique(OPENED)),
            clicks: cell.measure(Count(EMAIL_CLICK)),
            unique_clicks: cell.measure(Unique(EMAIL_CLICK)),
            opted_out: cell.measure(Count(OPTED_OUT)),
            complaints: cell.measure(Count(EMAIL_COMPLAINT)),
            sessions: cell.measure(Count(SESSIONS)),
            purchases: cell.measure(Count(PURCHASES)),
            purchasers: cell.measure(Unique(PURCHASES)),
            revenue: cell.revenue.clone(),
            held_out: cell
                .has_any(HELD_OUT)
                .then(|| cell.measure(Unique(HELD_OUT))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_per_scope_and_counted() {
        let mut seen = std::collections::BTreeSet::new();
        for k in KPIS {
            assert!(seen.insert((k.scope as u8, k.name)), "{} twice", k.name);
            assert_eq!(
                k.name.contains("grouped-by") || k.name == "txn-sms-error-distribution",
                k.group != G::None,
                "{}",
                k.name
            );
        }
        assert_eq!(KPIS.len(), 84);
        assert_eq!(
            KPIS.iter().filter(|k| k.scope == Scope::Journey).count(),
            18
        );
        assert_eq!(
            KPIS.iter().filter(|k| k.scope == Scope::Campaign).count(),
            18
        );
    }

    #[test]
    fn counts_rates_and_uniques() {
        let mut cell = Cell::default();
        let mut a = RoaringBitmap::new();
        a.insert(1);
        a.insert(2);
        let mut b = RoaringBitmap::new();
        b.insert(2);
        cell.add("_email.send", 0, 4, 0, Some(&a));
        cell.add("_email.delivered", 0, 3, 0, Some(&a));
        cell.add("_email.delivered", 1, 1, 0, Some(&b)); // another shard: another endpoint
        cell.add("_SMS.SUCCESS", 0, 1, 2, Some(&b));
        cell.add("_email.open", 0, 5, 0, Some(&b));
        let v = |name| value(find(Scope::Application, name).unwrap(), &cell);
        assert_eq!(v("unique-deliveries"), Some(3.0), "shards add, types union");
        assert_eq!(v("successful-delivery-rate"), Some(5.0 / 4.0));
        assert_eq!(v("email-open-rate"), Some(1.0 / 3.0));
        assert_eq!(v("txn-emails-opened"), Some(5.0));
        assert_eq!(v("txn-sms-sent"), None, "no such events: no row");
        assert_eq!(v("txn-sms-delivered-by-parts"), Some(2.0));
        assert_eq!(v("push-open-rate"), None, "nothing delivered by push");
        assert_eq!(v("txn-sms-total-price-grouped-by-country"), None);
        assert_eq!(double(123.0), "123.0");
        let rows = rows(
            find(Scope::Application, "txn-emails-sent").unwrap(),
            &BTreeMap::from([(String::new(), cell)]),
        );
        assert_eq!(rows[0].values[0].value, "4.0");
        assert!(rows[0].grouped_bys.is_empty());
    }

    #[test]
    fn campaign_results_count_events_and_distinct_endpoints() {
        let set = |ids: &[u32]| ids.iter().copied().collect::<RoaringBitmap>();
        let mut cell = Cell::default();
        cell.add("_email.send", 0, 3, 0, Some(&set(&[1, 2, 3])));
        cell.add("_email.delivered", 0, 2, 0, Some(&set(&[1, 2])));
        cell.add("_email.hardbounce", 0, 1, 0, Some(&set(&[3])));
        cell.add("_push.send", 1, 1, 0, Some(&set(&[1])));
        cell.add("_push.delivered", 1, 1, 0, Some(&set(&[1])));
        cell.add("_email.open", 0, 3, 0, Some(&set(&[1])));
        cell.add("_campaign.opened_notification", 1, 1, 0, Some(&set(&[1])));
        cell.add("_email.click", 0, 2, 0, Some(&set(&[1])));
        cell.add("_email.unsubscribe", 0, 1, 0, Some(&set(&[2])));
        cell.add("_session.start", 0, 4, 0, Some(&set(&[1, 2])));
        cell.add(crate::analytics::PURCHASE_EVENT, 0, 2, 0, Some(&set(&[2])));
        cell.add_revenue(&BTreeMap::from([("EUR".to_owned(), 5.0)]));
        cell.add_revenue(&BTreeMap::from([("EUR".to_owned(), 2.5)]));
        let r = CampaignResults::of(&cell);
        assert_eq!((r.sent, r.delivered, r.unique_delivered), (4, 3, 3));
        assert_eq!((r.bounced, r.failed), (1, 0));
        assert_eq!(
            (r.opens, r.unique_opens),
            (4, 2),
            "ordinal 1 of two shards: two endpoints"
        );
        assert_eq!((r.clicks, r.unique_clicks, r.opted_out), (2, 1, 1));
        assert_eq!((r.sessions, r.purchases, r.purchasers), (4, 2, 1));
        assert_eq!(r.revenue, BTreeMap::from([("EUR".to_owned(), 7.5)]));
        assert_eq!(r.held_out, None, "a treatment");
        let mut holdout = Cell::default();
        let held = crate::analytics::HOLDOUT_EVENT;
        holdout.add(held, 0, 3, 0, Some(&set(&[4, 5])));
        holdout.add(held, 0, 1, 0, Some(&set(&[4])));
        holdout.add(crate::analytics::PURCHASE_EVENT, 0, 1, 0, Some(&set(&[5])));
        let h = CampaignResults::of(&holdout);
        assert_eq!((h.held_out, h.sent, h.purchasers), (Some(2), 0, 1));
    }
}

//! Campaigns: wire shapes, request validation, and the pure per-endpoint
//! rules of a campaign run.
//!
//! * Wire types follow botocore's shapes of the same names (see `wire` for
//!   the conventions: required members of input shapes are still `Option`).
//!   The per-channel push, SMS and in-app messages of
//!   [`MessageConfiguration`] are passed through as JSON for now.
//! * [`validate_write_campaign`] checks a `CreateCampaign` / `UpdateCampaign`
//!   body; messages start with the member path, like `validate`.
//! * [`assign`] puts an endpoint in the holdout group or a treatment; it is a
//!   pure function of (campaign id, endpoint id) and **FIXED FOREVER**.
//! * [`effective_limits`] / [`check_limits`] decide the per-endpoint caps,
//!   [`campaign_status`] derives `CampaignStatus`, and [`event_matches`]
//!   applies an EVENT campaign's filter to an incoming event.
//!
//! Campaign hooks: herald calls a URL instead of invoking a Lambda function.
//! `Hook.WebUrl` must be an http(s) URL, and `Hook.LambdaFunctionName` is
//! accepted only when it is itself an http(s) URL (a function name or ARN
//! cannot be invoked by herald, so it is refused rather than ignored).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::hash::xxh3;
use crate::message::{MessageHeader, TemplateConfiguration};
use crate::schedule::parse_zone;
use crate::segment::{
    attribute_matches, metric_matches, set_matches, AttributeDimension, MetricDimension,
    SetDimension,
};
use crate::time::{parse_hh_mm, parse_iso8601_ms, quote_short};
use crate::validate::{ValidationError, CHANNEL_TYPES, HOOK_MODES};
use crate::wire::{CampaignHook, CampaignLimits, QuietTime};

// ---------------------------------------------------------------------------
// Wire types
// ---------------------------------------------------------------------------

/// Body of `CreateCampaign` and `UpdateCampaign`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WriteCampaignRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_treatments: Option<Vec<WriteTreatmentResource>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_delivery_configuration: Option<CustomDeliveryConfiguration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holdout_percent: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook: Option<CampaignHook>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_paused: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<CampaignLimits>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_configuration: Option<MessageConfiguration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment_version: Option<i32>,
    #[serde(rename = "tags", default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_configuration: Option<TemplateConfiguration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub treatment_description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub treatment_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
}

/// A campaign as returned by the campaign operations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CampaignResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_treatments: Option<Vec<TreatmentResource>>,
    pub application_id: String,
    pub arn: String,
    pub creation_date: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_delivery_configuration: Option<CustomDeliveryConfiguration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_state: Option<CampaignState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holdout_percent: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook: Option<CampaignHook>,
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_paused: Option<bool>,
    pub last_modified_date: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<CampaignLimits>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_configuration: Option<MessageConfiguration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    pub segment_id: String,
    pub segment_version: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<CampaignState>,
    #[serde(rename = "tags", default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_configuration: Option<TemplateConfiguration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub treatment_description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub treatment_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
}

/// A page of campaigns (`GetCampaigns`, `GetCampaignVersions`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CampaignsResponse {
    pub item: Vec<CampaignResponse>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// An additional treatment in a write request; `SizePercent` is required.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WriteTreatmentResource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_delivery_configuration: Option<CustomDeliveryConfiguration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_configuration: Option<MessageConfiguration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_percent: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_configuration: Option<TemplateConfiguration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub treatment_description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub treatment_name: Option<String>,
}

/// An additional treatment as returned.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TreatmentResource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_delivery_configuration: Option<CustomDeliveryConfiguration>,
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_configuration: Option<MessageConfiguration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    pub size_percent: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<CampaignState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_configuration: Option<TemplateConfiguration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub treatment_description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub treatment_name: Option<String>,
}

/// `Schedule`; `StartTime` is required (`IMMEDIATE` or ISO-8601).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Schedule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_filter: Option<CampaignEventFilter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_local_time: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_time: Option<QuietTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
}

/// The event that triggers an EVENT campaign; both members are required.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CampaignEventFilter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<EventDimensions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_type: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EventDimensions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<BTreeMap<String, AttributeDimension>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<SetDimension>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<BTreeMap<String, MetricDimension>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CampaignState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign_status: Option<String>,
}

/// A campaign's (or treatment's) messages per channel.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MessageConfiguration {
    #[serde(
        rename = "ADMMessage",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub adm_message: Option<serde_json::Value>,
    #[serde(
        rename = "APNSMessage",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub apns_message: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baidu_message: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_message: Option<CampaignCustomMessage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_message: Option<Message>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_message: Option<CampaignEmailMessage>,
    #[serde(
        rename = "GCMMessage",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub gcm_message: Option<serde_json::Value>,
    #[serde(
        rename = "SMSMessage",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub sms_message: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_app_message: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CampaignEmailMessage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Vec<MessageHeader>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html_body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CampaignCustomMessage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

/// botocore's `Message`: a push message, also a campaign's default message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Message {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_icon_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_small_icon_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silent_push: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_to_live: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// Delivery through a custom channel; `DeliveryUri` is required.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CustomDeliveryConfiguration {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_types: Option<Vec<String>>,
}

/// One run of a campaign (or treatment).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ActivityResponse {
    pub application_id: String,
    pub campaign_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_start: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successful_endpoint_count: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezones_completed_count: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezones_total_count: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_endpoint_count: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub treatment_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_metrics: Option<BTreeMap<String, String>>,
}

/// A page of activities (`GetCampaignActivities`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ActivitiesResponse {
    pub item: Vec<ActivityResponse>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

// ---------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------

/// The `Frequency` values herald schedules.
pub const FREQUENCIES: [&str; 7] = [
    "ONCE",
    "HOURLY",
    "DAILY",
    "WEEKLY",
    "MONTHLY",
    "EVENT",
    "IN_APP_EVENT",
];
/// The `FilterType` enum.
pub const FILTER_TYPES: [&str; 2] = ["ENDPOINT", "SYSTEM"];
/// The `DimensionType` enum (set dimensions).
pub const DIMENSION_TYPES: [&str; 2] = ["INCLUSIVE", "EXCLUSIVE"];
/// The `AttributeType` enum (attribute dimensions).
pub const ATTRIBUTE_DIMENSION_TYPES: [&str; 7] = [
    "INCLUSIVE",
    "EXCLUSIVE",
    "CONTAINS",
    "BEFORE",
    "AFTER",
    "ON",
    "BETWEEN",
];
/// `MetricDimension.ComparisonOperator` values.
pub const COMPARISON_OPERATORS: [&str; 5] = [
    "GREATER_THAN",
    "LESS_THAN",
    "GREATER_THAN_OR_EQUAL",
    "LESS_THAN_OR_EQUAL",
    "EQUAL",
];
/// At most this many `AdditionalTreatments`.
pub const MAX_ADDITIONAL_TREATMENTS: usize = 5;
/// `Name` is at most this many characters.
pub const CAMPAIGN_NAME_CHARS_MAX: usize = 64;

type Res = Result<(), ValidationError>;

fn err(path: &str, msg: impl std::fmt::Display) -> ValidationError {
    ValidationError(format!("{path}: {msg}"))
}

fn one_of(path: &str, value: &str, allowed: &[&str]) -> Res {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(err(
            path,
            format!(
                "{} is not one of {}",
                quote_short(value),
                allowed.join(", ")
            ),
        ))
    }
}

fn range(path: &str, v: Option<i32>, min: i32, max: Option<i32>) -> Res {
    match (v, max) {
        (Some(v), Some(max)) if v < min || v > max => {
            Err(err(path, format!("{v} is outside {min}..={max}")))
        }
        (Some(v), None) if v < min => Err(err(path, format!("{v} is below the minimum of {min}"))),
        _ => Ok(()),
    }
}

fn non_empty(s: Option<&str>) -> Option<&str> {
    s.filter(|s| !s.is_empty())
}

/// An absolute `http://` or `https://` URL with a host and no whitespace.
fn is_http_url(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"));
    rest.is_some_and(|r| {
        let host = r.split(['/', '?', '#']).next().unwrap_or("");
        !host.is_empty() && !s.chars().any(|c| c.is_whitespace() || c.is_control())
    })
}

/// Checks a `CreateCampaign` (`creating`) or `UpdateCampaign` body:
///
/// * on create `SegmentId` and `Schedule` are required;
/// * `Name` at most 64 characters; `Priority` 1..=5; `HoldoutPercent` 0..=100;
/// * `Schedule` (and each treatment's own `Schedule`): `StartTime` required,
///   `IMMEDIATE` or ISO-8601; `EndTime` ISO-8601 and not before a timestamp
///   `StartTime`; `Frequency` in [`FREQUENCIES`] (`IN_APP_EVENT` needs an
///   `InAppMessage` or an in-app template); EVENT requires `EventFilter`, whose `FilterType` is
///   ENDPOINT or SYSTEM and whose dimensions use valid enums; `Timezone` an
///   IANA name or `UTC`, `UTC±HH`, `UTC±HH:MM`; `QuietTime` `Start` and `End`
///   both `HH:MM` or both absent/empty;
/// * at most 5 `AdditionalTreatments`, each `SizePercent` required and
///   0..=100, their sum at most 100 (the default treatment gets the rest;
///   the holdout is taken out separately, before the split);
/// * `Limits`: `Daily`, `Total`, `Session` 0..=100, `MessagesPerSecond`
///   1..=20,000, `MaximumDuration` ≥ 60 seconds;
/// * `Hook`: `Mode` FILTER or DELIVERY; `WebUrl` and `LambdaFunctionName`
///   http(s) URLs (see the module doc);
/// * `CustomDeliveryConfiguration`: `DeliveryUri` required, `EndpointTypes`
///   channel types.
///
/// An empty string counts as absent for optional strings (`EndTime`,
/// `Timezone`, `QuietTime` bounds, hook URLs), never for required ones.
pub fn validate_write_campaign(req: &WriteCampaignRequest, creating: bool) -> Res {
    if let Some(name) = req.name.as_deref() {
        let n = name.chars().count();
        if n > CAMPAIGN_NAME_CHARS_MAX {
            return Err(err(
                "Name",
                format!("{n} characters exceed the limit of {CAMPAIGN_NAME_CHARS_MAX}"),
            ));
        }
    }
    if creating && non_empty(req.segment_id.as_deref()).is_none() {
        return Err(err("SegmentId", "required"));
    }
    match req.schedule.as_ref() {
        Some(s) => schedule("Schedule", s)?,
        None if creating => return Err(err("Schedule", "required")),
        None => {}
    }
    range("Priority", req.priority, 1, Some(5))?;
    range("HoldoutPercent", req.holdout_percent, 0, Some(100))?;
    if let Some(ts) = req.additional_treatments.as_deref() {
        treatments(ts)?;
    }
    if let Some(l) = req.limits.as_ref() {
        limits("Limits", l)?;
    }
    if let Some(h) = req.hook.as_ref() {
        hook("Hook", h)?;
    }
    if let Some(c) = req.custom_delivery_configuration.as_ref() {
        custom_delivery("CustomDeliveryConfiguration", c)?;
    }
    if let Some(mc) = req.message_configuration.as_ref() {
        push_messages("MessageConfiguration", mc)?;
    }
    let in_app = req.schedule.as_ref().and_then(|s| s.frequency.as_deref()) == Some("IN_APP_EVENT");
    if in_app {
        let has_message = req
            .message_configuration
            .as_ref()
            .is_some_and(|m| m.in_app_message.is_some());
        let has_template = req
            .template_configuration
            .as_ref()
            .is_some_and(|t| t.in_app_template.is_some());
        if creating && !has_message && !has_template {
            return Err(err(
                "MessageConfiguration.InAppMessage",
                "required when Frequency is IN_APP_EVENT (or TemplateConfiguration.InAppTemplate)",
            ));
        }
    }
    Ok(())
}

/// A campaign's push messages must be Pinpoint `Message`s that the APNs
/// and FCM payload rules accept (checked now, not when the campaign runs).
fn push_messages(path: &str, mc: &MessageConfiguration) -> Res {
    let parse =
        |name: &str, v: &Option<serde_json::Value>| -> Result<Option<Message>, ValidationError> {
            v.clone()
                .map(serde_json::from_value::<Message>)
                .transpose()
                .map_err(|e| err(&format!("{path}.{name}"), e.to_string()))
        };
    if let Some(v) = &mc.in_app_message {
        let m: crate::inapp::CampaignInAppMessage = serde_json::from_value(v.clone())
            .map_err(|e| err(&format!("{path}.InAppMessage"), e.to_string()))?;
        crate::inapp::check(&m)
            .map_err(|e| ValidationError(format!("{path}.InAppMessage.{}", e.0)))?;
    }
    let apns = parse("APNSMessage", &mc.apns_message)?;
    let gcm = parse("GCMMessage", &mc.gcm_message)?;
    if let Some(m) = crate::push::apns_from_campaign(mc.default_message.as_ref(), apns.as_ref()) {
        crate::push::apns_check(&m).map_err(|e| err(&format!("{path}.APNSMessage"), e.0))?;
    }
    if let Some(m) = crate::push::gcm_from_campaign(mc.default_message.as_ref(), gcm.as_ref()) {
        crate::push::gcm_check(&m).map_err(|e| err(&format!("{path}.GCMMessage"), e.0))?;
    }
    Ok(())
}

fn treatments(ts: &[WriteTreatmentResource]) -> Res {
    if ts.len() > MAX_ADDITIONAL_TREATMENTS {
        return Err(err(
            "AdditionalTreatments",
            format!(
                "{} treatments exceed the limit of {MAX_ADDITIONAL_TREATMENTS}",
                ts.len()
            ),
        ));
    }
    let mut sum = 0;
    for (i, t) in ts.iter().enumerate() {
        let path = format!("AdditionalTreatments[{i}]");
        let size = t
            .size_percent
            .ok_or_else(|| err(&format!("{path}.SizePercent"), "required"))?;
        range(&format!("{path}.SizePercent"), Some(size), 0, Some(100))?;
        sum += size;
        if let Some(s) = t.schedule.as_ref() {
            schedule(&format!("{path}.Schedule"), s)?;
        }
        if let Some(c) = t.custom_delivery_configuration.as_ref() {
            custom_delivery(&format!("{path}.CustomDeliveryConfiguration"), c)?;
        }
        if let Some(mc) = t.message_configuration.as_ref() {
            push_messages(&format!("{path}.MessageConfiguration"), mc)?;
        }
    }
    if sum > 100 {
        return Err(err(
            "AdditionalTreatments",
            format!("SizePercent values add up to {sum}, more than 100"),
        ));
    }
    Ok(())
}

fn schedule(path: &str, s: &Schedule) -> Res {
    let at = |member: &str| format!("{path}.{member}");
    let start = match s.start_time.as_deref() {
        None | Some("") => return Err(err(&at("StartTime"), "required")),
        Some("IMMEDIATE") => None,
        Some(t) => Some(parse_iso8601_ms(t).map_err(|e| err(&at("StartTime"), e))?),
    };
    if let Some(end) = non_empty(s.end_time.as_deref()) {
        let end = parse_iso8601_ms(end).map_err(|e| err(&at("EndTime"), e))?;
        if start.is_some_and(|start| end < start) {
            return Err(err(&at("EndTime"), "must not be before StartTime"));
        }
    }
    if let Some(f) = s.frequency.as_deref() {
        one_of(&at("Frequency"), f, &FREQUENCIES)?;
    }
    match s.event_filter.as_ref() {
        Some(f) => event_filter(&at("EventFilter"), f)?,
        None if s.frequency.as_deref() == Some("EVENT") => {
            return Err(err(&at("EventFilter"), "required when Frequency is EVENT"))
        }
        None => {}
    }
    if let Some(tz) = non_empty(s.timezone.as_deref()) {
        if parse_zone(tz).is_none() {
            return Err(err(
                &at("Timezone"),
                format!(
                    "{} is not an IANA time zone or a UTC offset such as UTC+01 or UTC-05:30",
                    quote_short(tz)
                ),
            ));
        }
    }
    if let Some(q) = s.quiet_time.as_ref() {
        quiet_time(&at("QuietTime"), q)?;
    }
    Ok(())
}

fn quiet_time(path: &str, q: &QuietTime) -> Res {
    let start = non_empty(q.start.as_deref());
    let end = non_empty(q.end.as_deref());
    match (start, end) {
        (None, None) => Ok(()),
        (Some(s), Some(e)) => {
            parse_hh_mm(s).map_err(|x| err(&format!("{path}.Start"), x))?;
            parse_hh_mm(e).map_err(|x| err(&format!("{path}.End"), x))?;
            Ok(())
        }
        (Some(_), None) => Err(err(&format!("{path}.End"), "required when Start is set")),
        (None, Some(_)) => Err(err(&format!("{path}.Start"), "required when End is set")),
    }
}

fn event_filter(path: &str, f: &CampaignEventFilter) -> Res {
    match f.filter_type.as_deref() {
        None => return Err(err(&format!("{path}.FilterType"), "required")),
        Some(t) => one_of(&format!("{path}.FilterType"), t, &FILTER_TYPES)?,
    }
    let d = f
        .dimensions
        .as_ref()
        .ok_or_else(|| err(&format!("{path}.Dimensions"), "required"))?;
    let path = format!("{path}.Dimensions");
    if let Some(t) = d
        .event_type
        .as_ref()
        .and_then(|e| e.dimension_type.as_deref())
    {
        one_of(
            &format!("{path}.EventType.DimensionType"),
            t,
            &DIMENSION_TYPES,
        )?;
    }
    for (k, a) in d.attributes.iter().flatten() {
        if let Some(t) = a.attribute_type.as_deref() {
            let p = format!("{path}.Attributes[{k}].AttributeType");
            one_of(&p, t, &ATTRIBUTE_DIMENSION_TYPES)?;
        }
    }
    for (k, m) in d.metrics.iter().flatten() {
        let p = format!("{path}.Metrics[{k}].ComparisonOperator");
        one_of(&p, &m.comparison_operator, &COMPARISON_OPERATORS)?;
    }
    Ok(())
}

fn limits(path: &str, l: &CampaignLimits) -> Res {
    let p = |m: &str| format!("{path}.{m}");
    range(&p("Daily"), l.daily, 0, Some(100))?;
    range(&p("Total"), l.total, 0, Some(100))?;
    range(&p("Session"), l.session, 0, Some(100))?;
    range(
        &p("MessagesPerSecond"),
        l.messages_per_second,
        1,
        Some(20_000),
    )?;
    range(&p("MaximumDuration"), l.maximum_duration, 60, None)
}

fn hook(path: &str, h: &CampaignHook) -> Res {
    if let Some(mode) = h.mode.as_deref() {
        one_of(&format!("{path}.Mode"), mode, &HOOK_MODES)?;
    }
    for (member, value) in [
        ("WebUrl", h.web_url.as_deref()),
        ("LambdaFunctionName", h.lambda_function_name.as_deref()),
    ] {
        if let Some(v) = non_empty(value) {
            if !is_http_url(v) {
                return Err(err(
                    &format!("{path}.{member}"),
                    format!(
                        "{} is not an http(s) URL; herald calls a URL instead of a Lambda function",
                        quote_short(v)
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn custom_delivery(path: &str, c: &CustomDeliveryConfiguration) -> Res {
    if non_empty(c.delivery_uri.as_deref()).is_none() {
        return Err(err(&format!("{path}.DeliveryUri"), "required"));
    }
    for (i, t) in c.endpoint_types.iter().flatten().enumerate() {
        one_of(&format!("{path}.EndpointTypes[{i}]"), t, &CHANNEL_TYPES)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Treatments and holdout
// ---------------------------------------------------------------------------

/// Where an endpoint falls in a campaign: the holdout group, or treatment i
/// (0 = the default treatment, i ≥ 1 = `AdditionalTreatments[i - 1]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assignment {
    Holdout,
    Treatment(usize),
}

/// Basis points in the assignment range.
const BUCKETS: u64 = 10_000;

/// The assignment bucket of an endpoint in a campaign, `0..10_000`.
fn bucket(campaign_id: &str, endpoint_id: &str) -> u64 {
    let mut bytes = Vec::with_capacity(11 + campaign_id.len() + endpoint_id.len());
    bytes.extend_from_slice(b"treatment\x00");
    bytes.extend_from_slice(campaign_id.as_bytes());
    bytes.push(0);
    bytes.extend_from_slice(endpoint_id.as_bytes());
    xxh3(&bytes) % BUCKETS
}

/// An activity's id: its run and treatment (`run-3-treatment-0`).
pub fn activity_id(run: u32, treatment: u32) -> String {
    format!("run-{run}-treatment-{treatment}")
}

/// The activity id under which a run's holdout group is counted.
pub fn holdout_activity_id(run: u32) -> String {
    format!("run-{run}-holdout")
}

/// Whether an activity id was made by [`holdout_activity_id`].
pub fn is_holdout_activity(activity_id: &str) -> bool {
    activity_id
        .strip_prefix("run-")
        .and_then(|r| r.strip_suffix("-holdout"))
        .is_some_and(|run| run.parse::<u32>().is_ok())
}

/// The treatment of an activity id made by [`activity_id`].
pub fn treatment_of_activity(activity_id: &str) -> Option<u32> {
    let rest = activity_id.strip_prefix("run-")?;
    let (run, treatment) = rest.split_once("-treatment-")?;
    run.parse::<u32>().ok()?;
    treatment.parse().ok()
}

/// Assigns an endpoint to the holdout group or a treatment.
///
/// **FIXED FOREVER**: changing this re-assigns users of running campaigns.
/// Definition: `b = xxh3_64("treatment" ‖ 0x00 ‖ campaign_id ‖ 0x00 ‖
/// endpoint_id) mod 10_000` (seed 0). With `h = min(holdout_percent, 100) ×
/// 100`, `b < h` is [`Assignment::Holdout`]. Otherwise the weights are
/// `[100 − Σ additional (floored at 0), additional_sizes...]` with total `W`;
/// `x = (b − h) × W / (10_000 − h)` (integer division) picks the first
/// treatment whose cumulative weight exceeds `x`. `W = 0` gives the default
/// treatment.
pub fn assign(
    campaign_id: &str,
    endpoint_id: &str,
    holdout_percent: u32,
    additional_sizes: &[u32],
) -> Assignment {
    let b = bucket(campaign_id, endpoint_id);
    let h = u64::from(holdout_percent.min(100)) * 100;
    if b < h {
        return Assignment::Holdout;
    }
    let extra: u64 = additional_sizes.iter().map(|&s| u64::from(s)).sum();
    let default = 100u64.saturating_sub(extra);
    let total = default + extra;
    if total == 0 {
        return Assignment::Treatment(0);
    }
    let x = (b - h) * total / (BUCKETS - h);
    let weights = std::iter::once(default).chain(additional_sizes.iter().map(|&s| u64::from(s)));
    let mut cumulative = 0;
    for (i, w) in weights.enumerate() {
        cumulative += w;
        if x < cumulative {
            return Assignment::Treatment(i);
        }
    }
    // x < total, so the loop always returns; the default keeps this total.
    Assignment::Treatment(0)
}

// ---------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------

/// Per-endpoint caps of a campaign; `None` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitPolicy {
    pub daily: Option<u32>,
    pub total: Option<u32>,
    pub session: Option<u32>,
}

impl LimitPolicy {
    /// The caps of `CampaignLimits`: 0, negative or absent means unlimited
    /// (Pinpoint's reading of 0).
    pub fn from_limits(l: &CampaignLimits) -> Self {
        let cap = |v: Option<i32>| v.and_then(|v| u32::try_from(v).ok()).filter(|&v| v > 0);
        LimitPolicy {
            daily: cap(l.daily),
            total: cap(l.total),
            session: cap(l.session),
        }
    }
}

/// The limits a campaign runs with: each member the campaign sets overrides
/// the app's default (`GetApplicationSettings.Limits`) for that member, even
/// when it is 0 (unlimited).
pub fn effective_limits(
    campaign: Option<&CampaignLimits>,
    app: Option<&CampaignLimits>,
) -> CampaignLimits {
    let c = campaign.cloned().unwrap_or_default();
    let a = app.cloned().unwrap_or_default();
    CampaignLimits {
        daily: c.daily.or(a.daily),
        maximum_duration: c.maximum_duration.or(a.maximum_duration),
        messages_per_second: c.messages_per_second.or(a.messages_per_second),
        total: c.total.or(a.total),
        session: c.session.or(a.session),
    }
}

/// Messages this campaign already sent to one endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// In the last 24 hours.
    pub sent_today: u32,
    /// Over all runs of the campaign.
    pub sent_total: u32,
    /// In the endpoint's current session.
    pub sent_session: u32,
}

/// Why an endpoint got no message in a run. [`SkipReason::as_str`] names are
/// stable: they are activity metric keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SkipReason {
    DailyLimit,
    TotalLimit,
    SessionLimit,
    QuietTime,
    OptedOut,
    Holdout,
    Hook,
    Inactive,
}

impl SkipReason {
    pub const ALL: [SkipReason; 8] = [
        SkipReason::DailyLimit,
        SkipReason::TotalLimit,
        SkipReason::SessionLimit,
        SkipReason::QuietTime,
        SkipReason::OptedOut,
        SkipReason::Holdout,
        SkipReason::Hook,
        SkipReason::Inactive,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::DailyLimit => "daily_limit",
            SkipReason::TotalLimit => "total_limit",
            SkipReason::SessionLimit => "session_limit",
            SkipReason::QuietTime => "quiet_time",
            SkipReason::OptedOut => "opted_out",
            SkipReason::Holdout => "holdout",
            SkipReason::Hook => "hook",
            SkipReason::Inactive => "inactive",
        }
    }
}

/// Whether one more message may go: a cap is reached when the count is at
/// or above it. Checked in the order daily, total, session; the first
/// reached cap is the reason.
pub fn check_limits(policy: &LimitPolicy, c: &Counters) -> Result<(), SkipReason> {
    let reached = |cap: Option<u32>, sent: u32| cap.is_some_and(|cap| cap > 0 && sent >= cap);
    if reached(policy.daily, c.sent_today) {
        Err(SkipReason::DailyLimit)
    } else if reached(policy.total, c.sent_total) {
        Err(SkipReason::TotalLimit)
    } else if reached(policy.session, c.sent_session) {
        Err(SkipReason::SessionLimit)
    } else {
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Campaign state
// ---------------------------------------------------------------------------

/// `CampaignStatus` values herald reports (never `INVALID`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CampaignStatus {
    Scheduled,
    Executing,
    PendingNextRun,
    Completed,
    Paused,
    Deleted,
}

impl CampaignStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CampaignStatus::Scheduled => "SCHEDULED",
            CampaignStatus::Executing => "EXECUTING",
            CampaignStatus::PendingNextRun => "PENDING_NEXT_RUN",
            CampaignStatus::Completed => "COMPLETED",
            CampaignStatus::Paused => "PAUSED",
            CampaignStatus::Deleted => "DELETED",
        }
    }
}

/// What [`campaign_status`] needs to know about a campaign.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CampaignProgress {
    pub deleted: bool,
    pub paused: bool,
    /// A run is in progress.
    pub executing: bool,
    /// Runs started so far.
    pub runs_started: u32,
    /// The next scheduled run, if any remains. An EVENT campaign passes
    /// `Some` (e.g. its `EndTime`) while it still accepts events.
    pub next_run_ms: Option<i64>,
}

/// The campaign's status, by the first rule that applies: deleted →
/// DELETED; paused → PAUSED (paused wins over everything but deleted); a run
/// in progress → EXECUTING; a next run and none started yet → SCHEDULED; a
/// next run after earlier runs → PENDING_NEXT_RUN; otherwise COMPLETED.
pub fn campaign_status(p: &CampaignProgress) -> CampaignStatus {
    if p.deleted {
        CampaignStatus::Deleted
    } else if p.paused {
        CampaignStatus::Paused
    } else if p.executing {
        CampaignStatus::Executing
    } else if p.next_run_ms.is_none() {
        CampaignStatus::Completed
    } else if p.runs_started == 0 {
        CampaignStatus::Scheduled
    } else {
        CampaignStatus::PendingNextRun
    }
}

// ---------------------------------------------------------------------------
// Event filters
// ---------------------------------------------------------------------------

/// Whether an event matches an EVENT campaign's filter: the event type
/// passes `EventType` (via [`set_matches`]), each attribute dimension passes
/// the event's single attribute value (via [`attribute_matches`]), and each
/// metric dimension passes the event's metric (via [`metric_matches`]); all
/// must hold, and an absent member constrains nothing. `FilterType` is not
/// consulted here: the caller routes ENDPOINT and SYSTEM events.
pub fn event_matches(
    filter: &CampaignEventFilter,
    event_type: &str,
    attributes: &BTreeMap<String, String>,
    metrics: &BTreeMap<String, f64>,
) -> bool {
    let Some(d) = filter.dimensions.as_ref() else {
        return true;
    };
    d.event_type
        .as_ref()
        .is_none_or(|s| set_matches(s, Some(event_type)))
        && d.attributes
            .iter()
            .flatten()
            .all(|(k, dim)| attribute_matches(dim, attributes.get(k).map(std::slice::from_ref)))
        && d.metrics
            .iter()
            .flatten()
            .all(|(k, dim)| metric_matches(dim, metrics.get(k).copied()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn msg(r: Res) -> String {
        r.unwrap_err().0
    }

    #[test]
    fn push_messages_are_checked_when_the_campaign_is_written() {
        let with = |mc: serde_json::Value| {
            let mut c = good();
            c.message_configuration = Some(serde_json::from_value(mc).unwrap());
            validate_write_campaign(&c, true)
        };
        assert!(with(json!({"APNSMessage": {"Body": "hi", "TimeToLive": 60}})).is_ok());
        let e = msg(with(json!({"APNSMessage": {"RawContent": "[1]"}})));
        assert!(e.contains("MessageConfiguration.APNSMessage"), "{e}");
        let e = msg(with(json!({"GCMMessage": {"Action": "JUMP"}})));
        assert!(e.contains("MessageConfiguration.GCMMessage"), "{e}");
        let e = msg(with(json!({"DefaultMessage": {"TimeToLive": -5}})));
        assert!(e.contains("TimeToLive"), "{e}");
        let e = msg(with(json!({"APNSMessage": {"Body": 5}})));
        assert!(e.contains("APNSMessage"), "{e}");
    }

    fn good() -> WriteCampaignRequest {
        serde_json::from_value(json!({
            "Name": "spring sale",
            "SegmentId": "seg-1",
            "HoldoutPercent": 10,
            "AdditionalTreatments": [{"SizePercent": 30}, {"SizePercent": 20}],
            "Schedule": {
                "StartTime": "2027-03-01T09:00:00Z",
                "EndTime": "2027-04-01T09:00:00Z",
                "Frequency": "DAILY",
                "IsLocalTime": true,
                "Timezone": "UTC-05",
                "QuietTime": {"Start": "22:00", "End": "07:00"}
            },
            "Limits": {"Daily": 1, "Total": 10, "Session": 0,
                       "MessagesPerSecond": 50, "MaximumDuration": 60},
            "Hook": {"Mode": "FILTER", "WebUrl": "https://hooks.example.com/filter"},
            "Priority": 3,
            "MessageConfiguration": {
                "EmailMessage": {"Title": "Hi", "HtmlBody": "<p>hi</p>",
                                 "Headers": [{"Name": "X-A", "Value": "1"}]},
                "DefaultMessage": {"Body": "hi", "Action": "OPEN_APP"},
                "SMSMessage": {"Body": "hi", "MessageType": "PROMOTIONAL"}
            },
            "tags": {"env": "dev"}
        }))
        .unwrap()
    }

    fn with(f: impl Fn(&mut WriteCampaignRequest)) -> Res {
        let mut r = good();
        f(&mut r);
        validate_write_campaign(&r, true)
    }

    fn sched(r: &mut WriteCampaignRequest) -> &mut Schedule {
        r.schedule.as_mut().unwrap()
    }

    #[test]
    fn wire_round_trip() {
        let r = good();
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["tags"]["env"], "dev");
        assert_eq!(
            v["MessageConfiguration"]["SMSMessage"]["MessageType"],
            "PROMOTIONAL"
        );
        assert_eq!(
            v["MessageConfiguration"]["EmailMessage"]["Headers"][0]["Name"],
            "X-A"
        );
        assert!(v.get("Description").is_none());
        let back: WriteCampaignRequest = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);

        let resp: CampaignResponse = serde_json::from_value(json!({
            "ApplicationId": "app", "Arn": "arn", "CreationDate": "d", "Id": "c",
            "LastModifiedDate": "d", "SegmentId": "s", "SegmentVersion": 1,
            "State": {"CampaignStatus": "SCHEDULED"},
            "AdditionalTreatments": [{"Id": "t1", "SizePercent": 30}]
        }))
        .unwrap();
        assert_eq!(
            resp.additional_treatments.as_ref().unwrap()[0].size_percent,
            30
        );
        let page = CampaignsResponse {
            item: vec![resp],
            next_token: None,
        };
        let v = serde_json::to_value(&page).unwrap();
        assert_eq!(v["Item"][0]["State"]["CampaignStatus"], "SCHEDULED");
        assert!(v.get("NextToken").is_none());

        let acts: ActivitiesResponse = serde_json::from_value(json!({
            "Item": [{"ApplicationId": "a", "CampaignId": "c", "Id": "x",
                      "ExecutionMetrics": {"holdout": "3"}}]
        }))
        .unwrap();
        assert_eq!(
            acts.item[0].execution_metrics.as_ref().unwrap()["holdout"],
            "3"
        );
    }

    #[test]
    fn accepts_a_good_request() {
        validate_write_campaign(&good(), true).unwrap();
        validate_write_campaign(&WriteCampaignRequest::default(), false).unwrap();
        with(|r| sched(r).start_time = Some("IMMEDIATE".into())).unwrap();
        with(|r| sched(r).timezone = Some("Asia/Kolkata".into())).unwrap();
        with(|r| sched(r).timezone = Some("UTC+05:45".into())).unwrap();
        with(|r| sched(r).timezone = Some("UTC".into())).unwrap();
        with(|r| sched(r).end_time = sched(r).start_time.clone()).unwrap();
        with(|r| sched(r).quiet_time = Some(QuietTime::default())).unwrap();
        with(|r| r.hook.as_mut().unwrap().lambda_function_name = Some("http://h/x".into()))
            .unwrap();
        with(|r| r.additional_treatments.as_mut().unwrap()[0].size_percent = Some(80)).unwrap();
    }

    #[test]
    fn required_on_create() {
        assert_eq!(msg(with(|r| r.segment_id = None)), "SegmentId: required");
        assert_eq!(msg(with(|r| r.schedule = None)), "Schedule: required");
        let mut r = good();
        r.segment_id = None;
        r.schedule = None;
        validate_write_campaign(&r, false).unwrap();
        assert_eq!(
            msg(with(|r| sched(r).start_time = None)),
            "Schedule.StartTime: required"
        );
    }

    #[test]
    fn schedule_rules() {
        assert!(msg(with(|r| sched(r).start_time = Some("soon".into())))
            .starts_with("Schedule.StartTime: "));
        assert_eq!(
            msg(with(
                |r| sched(r).end_time = Some("2027-02-01T00:00:00Z".into())
            )),
            "Schedule.EndTime: must not be before StartTime"
        );
        assert!(
            msg(with(|r| sched(r).end_time = Some("x".into()))).starts_with("Schedule.EndTime: ")
        );
        assert_eq!(
            msg(with(|r| sched(r).frequency = Some("IN_APP_EVENT".into()))),
            "MessageConfiguration.InAppMessage: required when Frequency is IN_APP_EVENT (or TemplateConfiguration.InAppTemplate)"
        );
        assert!(msg(with(|r| sched(r).frequency = Some("YEARLY".into())))
            .starts_with("Schedule.Frequency: \"YEARLY\" is not one of ONCE"));
        assert_eq!(
            msg(with(|r| sched(r).frequency = Some("EVENT".into()))),
            "Schedule.EventFilter: required when Frequency is EVENT"
        );
        for tz in ["UTC+1", "Mars/Base", "EST5EDTX", "UTC+15"] {
            assert!(
                msg(with(|r| sched(r).timezone = Some(tz.into())))
                    .starts_with("Schedule.Timezone: "),
                "{tz}"
            );
        }
        assert_eq!(
            msg(with(|r| sched(r).quiet_time.as_mut().unwrap().end = None)),
            "Schedule.QuietTime.End: required when Start is set"
        );
        assert_eq!(
            msg(with(|r| sched(r).quiet_time.as_mut().unwrap().start = None)),
            "Schedule.QuietTime.Start: required when End is set"
        );
        assert!(msg(with(
            |r| sched(r).quiet_time.as_mut().unwrap().start = Some("7:00".into())
        ))
        .starts_with("Schedule.QuietTime.Start: "));
    }

    #[test]
    fn event_filter_rules() {
        let set = |v: serde_json::Value| {
            with(move |r| {
                let s = sched(r);
                s.frequency = Some("EVENT".into());
                s.event_filter = Some(serde_json::from_value(v.clone()).unwrap());
            })
        };
        set(json!({"FilterType": "ENDPOINT", "Dimensions": {
            "EventType": {"DimensionType": "INCLUSIVE", "Values": ["purchase"]},
            "Attributes": {"plan": {"AttributeType": "CONTAINS", "Values": ["pro"]}},
            "Metrics": {"price": {"ComparisonOperator": "GREATER_THAN", "Value": 10}}}}))
        .unwrap();
        set(json!({"FilterType": "SYSTEM", "Dimensions": {}})).unwrap();
        assert_eq!(
            msg(set(json!({"Dimensions": {}}))),
            "Schedule.EventFilter.FilterType: required"
        );
        assert!(msg(set(json!({"FilterType": "APP", "Dimensions": {}})))
            .starts_with("Schedule.EventFilter.FilterType: \"APP\" is not one of"));
        assert_eq!(
            msg(set(json!({"FilterType": "SYSTEM"}))),
            "Schedule.EventFilter.Dimensions: required"
        );
        assert!(msg(set(json!({"FilterType": "SYSTEM", "Dimensions": {
            "EventType": {"DimensionType": "MAYBE", "Values": []}}})))
        .starts_with("Schedule.EventFilter.Dimensions.EventType.DimensionType: "));
        assert!(msg(set(json!({"FilterType": "SYSTEM", "Dimensions": {
            "Attributes": {"plan": {"AttributeType": "LIKE", "Values": []}}}})))
        .starts_with("Schedule.EventFilter.Dimensions.Attributes[plan].AttributeType: "));
        assert!(msg(set(json!({"FilterType": "SYSTEM", "Dimensions": {
            "Metrics": {"price": {"ComparisonOperator": "NE", "Value": 1}}}})))
        .starts_with("Schedule.EventFilter.Dimensions.Metrics[price].ComparisonOperator: "));
    }

    #[test]
    fn numbers_and_names() {
        assert_eq!(
            msg(with(|r| r.priority = Some(0))),
            "Priority: 0 is outside 1..=5"
        );
        assert!(with(|r| r.priority = Some(6)).is_err());
        assert_eq!(
            msg(with(|r| r.holdout_percent = Some(101))),
            "HoldoutPercent: 101 is outside 0..=100"
        );
        assert!(with(|r| r.holdout_percent = Some(-1)).is_err());
        with(|r| r.name = Some("é".repeat(64))).unwrap();
        assert_eq!(
            msg(with(|r| r.name = Some("x".repeat(65)))),
            "Name: 65 characters exceed the limit of 64"
        );
    }

    #[test]
    fn treatment_rules() {
        let six = vec![
            WriteTreatmentResource {
                size_percent: Some(1),
                ..Default::default()
            };
            6
        ];
        assert_eq!(
            msg(with(|r| r.additional_treatments = Some(six.clone()))),
            "AdditionalTreatments: 6 treatments exceed the limit of 5"
        );
        assert_eq!(
            msg(with(
                |r| r.additional_treatments.as_mut().unwrap()[1].size_percent = None
            )),
            "AdditionalTreatments[1].SizePercent: required"
        );
        assert_eq!(
            msg(with(
                |r| r.additional_treatments.as_mut().unwrap()[1].size_percent = Some(101)
            )),
            "AdditionalTreatments[1].SizePercent: 101 is outside 0..=100"
        );
        assert_eq!(
            msg(with(
                |r| r.additional_treatments.as_mut().unwrap()[0].size_percent = Some(81)
            )),
            "AdditionalTreatments: SizePercent values add up to 101, more than 100"
        );
        assert_eq!(
            msg(with(|r| r.additional_treatments.as_mut().unwrap()[0]
                .schedule = Some(Schedule::default()))),
            "AdditionalTreatments[0].Schedule.StartTime: required"
        );
    }

    #[test]
    fn limit_and_hook_rules() {
        let lim = |f: fn(&mut CampaignLimits)| with(move |r| f(r.limits.as_mut().unwrap()));
        assert_eq!(
            msg(lim(|l| l.daily = Some(101))),
            "Limits.Daily: 101 is outside 0..=100"
        );
        assert!(lim(|l| l.total = Some(-1)).is_err());
        assert!(lim(|l| l.session = Some(101)).is_err());
        assert!(lim(|l| l.messages_per_second = Some(0)).is_err());
        assert!(lim(|l| l.messages_per_second = Some(20_001)).is_err());
        lim(|l| l.messages_per_second = Some(20_000)).unwrap();
        assert_eq!(
            msg(lim(|l| l.maximum_duration = Some(59))),
            "Limits.MaximumDuration: 59 is below the minimum of 60"
        );

        let hk = |f: fn(&mut CampaignHook)| with(move |r| f(r.hook.as_mut().unwrap()));
        hk(|h| h.mode = Some("DELIVERY".into())).unwrap();
        hk(|h| h.web_url = Some(String::new())).unwrap();
        assert!(msg(hk(|h| h.mode = Some("SYNC".into()))).starts_with("Hook.Mode: "));
        for bad in [
            "ftp://x",
            "https://",
            "https:// x",
            "hooks.example.com",
            "https://a b",
        ] {
            let r = with(|r| r.hook.as_mut().unwrap().web_url = Some(bad.into()));
            assert!(msg(r).starts_with("Hook.WebUrl: "), "{bad}");
        }
        assert!(msg(hk(|h| h.lambda_function_name = Some("my-fn".into())))
            .contains("herald calls a URL instead of a Lambda function"));

        let cd = |v: serde_json::Value| {
            with(move |r| {
                r.custom_delivery_configuration = Some(serde_json::from_value(v.clone()).unwrap())
            })
        };
        cd(json!({"DeliveryUri": "https://x", "EndpointTypes": ["EMAIL", "SMS"]})).unwrap();
        assert_eq!(
            msg(cd(json!({"EndpointTypes": ["EMAIL"]}))),
            "CustomDeliveryConfiguration.DeliveryUri: required"
        );
        assert!(msg(cd(
            json!({"DeliveryUri": "https://x", "EndpointTypes": ["FAX"]})
        ))
        .starts_with("CustomDeliveryConfiguration.EndpointTypes[0]: "));
    }

    #[test]
    fn assignment_is_the_documented_definition() {
        for (c, e) in [("camp", "ep-1"), ("", ""), ("a", "b\u{0}c")] {
            let mut bytes = b"treatment\x00".to_vec();
            bytes.extend_from_slice(c.as_bytes());
            bytes.push(0);
            bytes.extend_from_slice(e.as_bytes());
            assert_eq!(bucket(c, e), xxh3(&bytes) % 10_000);
        }
    }

    /// Pins [`assign`] (FIXED FOREVER): never edit these values to make a
    /// change pass.
    #[test]
    fn pinned_assignments_never_change() {
        let got: Vec<u64> = PINNED_ENDPOINTS
            .iter()
            .map(|e| bucket("0123456789abcdef", e))
            .collect();
        assert_eq!(got, PINNED_BUCKETS);
        let got: Vec<Assignment> = PINNED_ENDPOINTS
            .iter()
            .map(|e| assign("0123456789abcdef", e, 50, &[30, 20]))
            .collect();
        assert_eq!(got, PINNED_ASSIGNMENTS);
    }

    const PINNED_ENDPOINTS: [&str; 8] = [
        "ep-1",
        "ep-2",
        "ep-3",
        "ep-4",
        "ep-5",
        "ep-6",
        "testendpoint",
        "",
    ];
    const PINNED_BUCKETS: [u64; 8] = [9761, 6799, 9657, 7718, 9328, 3089, 8372, 9036];
    /// Holdout 50 and treatments [30, 20] (default 50).
    const PINNED_ASSIGNMENTS: [Assignment; 8] = [
        Assignment::Treatment(2),
        Assignment::Treatment(0),
        Assignment::Treatment(2),
        Assignment::Treatment(1),
        Assignment::Treatment(2),
        Assignment::Holdout,
        Assignment::Treatment(1),
        Assignment::Treatment(2),
    ];

    #[test]
    fn activity_ids_name_their_treatment() {
        assert_eq!(activity_id(3, 0), "run-3-treatment-0");
        assert_eq!(treatment_of_activity(&activity_id(12, 4)), Some(4));
        assert_eq!(treatment_of_activity("run-x-treatment-1"), None);
        assert_eq!(
            treatment_of_activity("5473285727f04865bc673e527example"),
            None
        );
        assert_eq!(treatment_of_activity(""), None);
        assert!(is_holdout_activity(&holdout_activity_id(7)));
        assert_eq!(treatment_of_activity(&holdout_activity_id(7)), None);
        assert!(!is_holdout_activity(&activity_id(7, 0)));
        assert!(!is_holdout_activity("run--holdout"));
    }

    #[test]
    fn assignment_edges() {
        // Sizes over 100 (invalid, but total): the default gets nothing.
        for i in 0..200 {
            let e = format!("ep-{i}");
            assert_ne!(assign("c", &e, 0, &[60, 60]), Assignment::Treatment(0));
            assert_eq!(assign("c", &e, 0, &[]), Assignment::Treatment(0));
            assert_eq!(assign("c", &e, 0, &[0, 0]), Assignment::Treatment(0));
            assert_eq!(assign("c", &e, 250, &[10]), Assignment::Holdout);
            assert_ne!(assign("c", &e, 0, &[100]), Assignment::Treatment(0));
        }
    }

    #[test]
    fn limits_merge_and_check() {
        let app = CampaignLimits {
            daily: Some(5),
            total: Some(50),
            session: Some(2),
            messages_per_second: Some(100),
            maximum_duration: Some(600),
        };
        let camp = CampaignLimits {
            daily: Some(0),
            total: Some(10),
            ..Default::default()
        };
        let eff = effective_limits(Some(&camp), Some(&app));
        assert_eq!(eff.daily, Some(0));
        assert_eq!(eff.total, Some(10));
        assert_eq!(eff.session, Some(2));
        assert_eq!(eff.messages_per_second, Some(100));
        assert_eq!(effective_limits(None, None), CampaignLimits::default());
        assert_eq!(effective_limits(None, Some(&app)), app);

        let p = LimitPolicy::from_limits(&eff);
        assert_eq!(
            p,
            LimitPolicy {
                daily: None,
                total: Some(10),
                session: Some(2)
            }
        );
        let c = |d, t, s| Counters {
            sent_today: d,
            sent_total: t,
            sent_session: s,
        };
        assert_eq!(check_limits(&p, &c(1000, 9, 1)), Ok(()));
        assert_eq!(check_limits(&p, &c(0, 10, 0)), Err(SkipReason::TotalLimit));
        assert_eq!(check_limits(&p, &c(0, 0, 2)), Err(SkipReason::SessionLimit));
        let strict = LimitPolicy {
            daily: Some(1),
            total: Some(1),
            session: Some(1),
        };
        assert_eq!(
            check_limits(&strict, &c(1, 1, 1)),
            Err(SkipReason::DailyLimit)
        );
        assert_eq!(
            check_limits(&LimitPolicy::default(), &c(u32::MAX, u32::MAX, u32::MAX)),
            Ok(())
        );
        let zero = LimitPolicy {
            daily: Some(0),
            total: Some(0),
            session: Some(0),
        };
        assert_eq!(check_limits(&zero, &c(9, 9, 9)), Ok(()));
    }

    #[test]
    fn skip_reason_names_are_stable() {
        let names: Vec<&str> = SkipReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(
            names,
            [
                "daily_limit",
                "total_limit",
                "session_limit",
                "quiet_time",
                "opted_out",
                "holdout",
                "hook",
                "inactive"
            ]
        );
    }

    #[test]
    fn status_rules() {
        let p = |deleted, paused, executing, runs_started, next: Option<i64>| {
            campaign_status(&CampaignProgress {
                deleted,
                paused,
                executing,
                runs_started,
                next_run_ms: next,
            })
            .as_str()
        };
        assert_eq!(p(true, true, true, 3, Some(1)), "DELETED");
        assert_eq!(p(false, true, true, 3, Some(1)), "PAUSED");
        assert_eq!(p(false, true, false, 0, None), "PAUSED");
        assert_eq!(p(false, false, true, 1, None), "EXECUTING");
        assert_eq!(p(false, false, false, 0, Some(5)), "SCHEDULED");
        assert_eq!(p(false, false, false, 2, Some(5)), "PENDING_NEXT_RUN");
        assert_eq!(p(false, false, false, 2, None), "COMPLETED");
        assert_eq!(p(false, false, false, 0, None), "COMPLETED");
    }

    #[test]
    fn event_filter_matching() {
        let f: CampaignEventFilter = serde_json::from_value(json!({
            "FilterType": "ENDPOINT",
            "Dimensions": {
                "EventType": {"DimensionType": "INCLUSIVE", "Values": ["purchase", "Signup"]},
                "Attributes": {"plan": {"AttributeType": "INCLUSIVE", "Values": ["pro", "team"]}},
                "Metrics": {"price": {"ComparisonOperator": "GREATER_THAN_OR_EQUAL", "Value": 10}}
            }
        }))
        .unwrap();
        let attrs = |v: &str| BTreeMap::from([("plan".to_string(), v.to_string())]);
        let mets = |v: f64| BTreeMap::from([("price".to_string(), v)]);
        assert!(event_matches(&f, "purchase", &attrs("pro"), &mets(10.0)));
        assert!(event_matches(&f, "signup", &attrs("team"), &mets(99.0)));
        assert!(!event_matches(&f, "refund", &attrs("pro"), &mets(10.0)));
        assert!(!event_matches(&f, "purchase", &attrs("free"), &mets(10.0)));
        assert!(!event_matches(&f, "purchase", &attrs("pro"), &mets(9.5)));
        assert!(!event_matches(
            &f,
            "purchase",
            &BTreeMap::new(),
            &mets(10.0)
        ));
        assert!(!event_matches(
            &f,
            "purchase",
            &attrs("pro"),
            &BTreeMap::new()
        ));
        let any = CampaignEventFilter {
            filter_type: Some("SYSTEM".into()),
            dimensions: Some(EventDimensions::default()),
        };
        assert!(event_matches(
            &any,
            "_session.start",
            &BTreeMap::new(),
            &BTreeMap::new()
        ));
        let excl: CampaignEventFilter = serde_json::from_value(json!({
            "FilterType": "ENDPOINT",
            "Dimensions": {"EventType": {"DimensionType": "EXCLUSIVE", "Values": ["spam"]}}
        }))
        .unwrap();
        assert!(event_matches(
            &excl,
            "purchase",
            &BTreeMap::new(),
            &BTreeMap::new()
        ));
        assert!(!event_matches(
            &excl,
            "spam",
            &BTreeMap::new(),
            &BTreeMap::new()
        ));
    }

    fn shares(holdout: u32, sizes: &[u32], seed: u64) -> (f64, Vec<f64>) {
        const N: u32 = 20_000;
        let mut held = 0u32;
        let mut counts = vec![0u32; sizes.len() + 1];
        for i in 0..N {
            match assign("campaign-x", &format!("{seed:x}-{i}"), holdout, sizes) {
                Assignment::Holdout => held += 1,
                Assignment::Treatment(t) => counts[t] += 1,
            }
        }
        let pct = |n: u32| f64::from(n) * 100.0 / f64::from(N);
        (pct(held), counts.into_iter().map(pct).collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn assignment_is_deterministic(c in "\\PC{0,20}", e in "\\PC{0,20}",
                                       h in 0u32..=100, s in prop::collection::vec(0u32..=20, 0..5)) {
            prop_assert_eq!(assign(&c, &e, h, &s), assign(&c, &e, h, &s));
            if let Assignment::Treatment(t) = assign(&c, &e, h, &s) {
                prop_assert!(t <= s.len());
            }
        }

        #[test]
        fn proportions_follow_the_targets(
            holdout in 0u32..=50,
            sizes in prop::collection::vec(0u32..=20, 0..=5),
            seed in any::<u64>(),
        ) {
            let (held, got) = shares(holdout, &sizes, seed);
            prop_assert!((held - f64::from(holdout)).abs() <= 2.5, "holdout {held} vs {holdout}");
            let rest = f64::from(100 - holdout) / 100.0;
            let default = 100 - sizes.iter().sum::<u32>();
            let targets = std::iter::once(default).chain(sizes.iter().copied());
            for (i, t) in targets.enumerate() {
                let want = f64::from(t) * rest;
                prop_assert!((got[i] - want).abs() <= 2.5, "treatment {i}: {} vs {want}", got[i]);
            }
        }

        #[test]
        fn holdout_extremes(c in "[a-z0-9]{1,16}", e in "[a-z0-9-]{1,36}",
                            s in prop::collection::vec(0u32..=20, 0..5)) {
            prop_assert_ne!(assign(&c, &e, 0, &s), Assignment::Holdout);
            prop_assert_eq!(assign(&c, &e, 100, &s), Assignment::Holdout);
        }
    }
}

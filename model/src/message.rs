//! Direct sends: the wire shapes of `SendMessages` and `SendUsersMessages`,
//! and the pure rules that decide, per recipient, whether and what to send.
//!
//! A message id is a pure function of (app, request key, recipient): the
//! request key is the client's `TraceId` when it gave one, so a retried
//! request names the same messages and the send-once ledger recognises them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::hash::xxh3;
use crate::wire::EndpointResponse;

/// `map<string, list<string>>` of message variables.
pub type Substitutions = BTreeMap<String, Vec<String>>;

/// Body of `SendMessages`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MessageRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addresses: Option<BTreeMap<String, AddressConfiguration>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<BTreeMap<String, EndpointSendConfiguration>>,
    /// Required by the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_configuration: Option<DirectMessageConfiguration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_configuration: Option<TemplateConfiguration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

/// Body of `SendUsersMessages`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SendUsersMessageRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<BTreeMap<String, String>>,
    /// Required by the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_configuration: Option<DirectMessageConfiguration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_configuration: Option<TemplateConfiguration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// Required by the model: user id → per-user overrides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<BTreeMap<String, EndpointSendConfiguration>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AddressConfiguration {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_override: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub substitutions: Option<Substitutions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title_override: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointSendConfiguration {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_override: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub substitutions: Option<Substitutions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title_override: Option<String>,
}

/// The per-channel message of a direct send. Channels herald does not send
/// on yet are kept as raw JSON so a request naming them still parses.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DirectMessageConfiguration {
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
    pub default_message: Option<DefaultMessage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_push_notification_message: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_message: Option<EmailMessage>,
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
    pub voice_message: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DefaultMessage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub substitutions: Option<Substitutions>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EmailMessage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feedback_forwarding_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_email: Option<RawEmail>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to_addresses: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub simple_email: Option<SimpleEmail>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub substitutions: Option<Substitutions>,
}

/// A complete RFC 5322 message, base64 on the wire (`__blob`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RawEmail {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SimpleEmail {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html_part: Option<SimpleEmailPart>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<SimpleEmailPart>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_part: Option<SimpleEmailPart>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Vec<MessageHeader>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SimpleEmailPart {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charset: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MessageHeader {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TemplateConfiguration {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_template: Option<Template>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_template: Option<Template>,
    #[serde(
        rename = "SMSTemplate",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub sms_template: Option<Template>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice_template: Option<Template>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_app_template: Option<Template>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Template {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// Response of `SendMessages`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MessageResponse {
    pub application_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_result: Option<BTreeMap<String, EndpointMessageResult>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<BTreeMap<String, MessageResult>>,
}

/// Response of `SendUsersMessages`: user id → endpoint id → result.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SendUsersMessageResponse {
    pub application_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<BTreeMap<String, BTreeMap<String, EndpointMessageResult>>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MessageResult {
    pub delivery_status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    pub status_code: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_token: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointMessageResult {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    pub delivery_status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    pub status_code: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_token: Option<String>,
}

/// Pinpoint's `DeliveryStatus` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum DeliveryStatus {
    #[serde(rename = "SUCCESSFUL")]
    Successful,
    #[serde(rename = "THROTTLED")]
    Throttled,
    #[serde(rename = "TEMPORARY_FAILURE")]
    TemporaryFailure,
    #[serde(rename = "PERMANENT_FAILURE")]
    PermanentFailure,
    #[serde(rename = "UNKNOWN_FAILURE")]
    UnknownFailure,
    #[serde(rename = "OPT_OUT")]
    OptOut,
    #[serde(rename = "DUPLICATE")]
    Duplicate,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Successful => "SUCCESSFUL",
            DeliveryStatus::Throttled => "THROTTLED",
            DeliveryStatus::TemporaryFailure => "TEMPORARY_FAILURE",
            DeliveryStatus::PermanentFailure => "PERMANENT_FAILURE",
            DeliveryStatus::UnknownFailure => "UNKNOWN_FAILURE",
            DeliveryStatus::OptOut => "OPT_OUT",
            DeliveryStatus::Duplicate => "DUPLICATE",
        }
    }
}

/// Whether `channel` is a mobile push channel.
pub fn is_push(channel: &str) -> bool {
    channel.starts_with("APNS") || channel == "GCM"
}

/// The delivery events recorded on an endpoint for one message of
/// `channel` ("EMAIL", a push channel, or a custom channel) that ended in
/// `status`: for pushes `_push.send` then `_push.delivered` (the provider
/// accepted it) or `_push.failure`.
pub fn delivery_event_types(
    channel: &str,
    status: DeliveryStatus,
    hard_bounce: bool,
) -> &'static [&'static str] {
    match (channel, status) {
        ("EMAIL", DeliveryStatus::Successful) => &["_email.send", "_email.delivered"],
        ("EMAIL", DeliveryStatus::TemporaryFailure) => &["_email.send", "_email.softbounce"],
        ("EMAIL", DeliveryStatus::PermanentFailure) if hard_bounce => {
            &["_email.send", "_email.hardbounce"]
        }
        ("EMAIL", DeliveryStatus::PermanentFailure) => &["_email.send", "_email.rejected"],
        ("EMAIL", _) => &["_email.send"],
        // The SMSC took it; the receipt adds `_SMS.SUCCESS` or `_SMS.FAILURE`.
        ("SMS", DeliveryStatus::Successful) => &["_SMS.BUFFERED"],
        ("SMS", _) => &["_SMS.FAILURE"],
        (c, DeliveryStatus::Successful) if is_push(c) => &["_push.send", "_push.delivered"],
        (c, _) if is_push(c) => &["_push.send", "_push.failure"],
        (_, DeliveryStatus::Successful) => &["_custom.send", "_custom.delivered"],
        (_, _) => &["_custom.send", "_custom.failure"],
    }
}

/// The delivery events of one campaign message, as `(event id, event)`:
/// what the state machine stores on the endpoint and event streams
/// publish.
#[allow(clippy::too_many_arguments)]
pub fn campaign_delivery_events(
    message_id: &str,
    campaign_id: &str,
    activity_id: &str,
    treatment: u32,
    channel: &str,
    outcome: &Outcome,
    hard_bounce: bool,
    ts: &str,
) -> Vec<(String, crate::wire::Event)> {
    let status = outcome.status;
    delivery_event_types(channel, status, hard_bounce)
        .iter()
        .map(|et| {
            let attributes = BTreeMap::from([
                ("message_id".to_owned(), message_id.to_owned()),
                ("campaign_id".to_owned(), campaign_id.to_owned()),
                ("campaign_activity_id".to_owned(), activity_id.to_owned()),
                ("treatment_id".to_owned(), treatment.to_string()),
                ("delivery_status".to_owned(), status.as_str().to_owned()),
                ("status_code".to_owned(), outcome.code.to_string()),
            ]);
            (
                format!("{message_id}{et}"),
                crate::wire::Event {
                    event_type: Some((*et).to_owned()),
                    timestamp: Some(ts.to_owned()),
                    attributes: Some(attributes),
                    ..Default::default()
                },
            )
        })
        .collect()
}

/// The outcome of one recipient: what the API reports and the ledger keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub status: DeliveryStatus,
    pub code: u16,
    pub message: Option<String>,
}

impl Outcome {
    pub fn new(status: DeliveryStatus, code: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: Some(message.into()),
        }
    }

    pub fn address_result(&self, message_id: Option<&str>) -> MessageResult {
        MessageResult {
            delivery_status: self.status.as_str().into(),
            message_id: message_id.map(str::to_owned),
            status_code: self.code,
            status_message: self.message.clone(),
            updated_token: None,
        }
    }

    pub fn endpoint_result(
        &self,
        address: Option<&str>,
        message_id: Option<&str>,
    ) -> EndpointMessageResult {
        EndpointMessageResult {
            address: address.map(str::to_owned),
            delivery_status: self.status.as_str().into(),
            message_id: message_id.map(str::to_owned),
            status_code: self.code,
            status_message: self.message.clone(),
            updated_token: None,
        }
    }
}

/// Who a direct send addresses: a bare address or a stored endpoint.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum RecipientKey<'a> {
    Address(&'a str),
    Endpoint(&'a str),
}

/// The stable id of the message a request sends to one recipient:
/// 32 hex digits from xxh3 over (app, request key, recipient).
pub fn message_id(app_id: &str, request_key: &str, recipient: &RecipientKey<'_>) -> String {
    let (kind, id) = match recipient {
        RecipientKey::Address(a) => ("a", *a),
        RecipientKey::Endpoint(e) => ("e", *e),
    };
    let mut buf = Vec::with_capacity(app_id.len() + request_key.len() + id.len() + 8);
    for part in [app_id, request_key, kind, id] {
        buf.extend_from_slice(&(part.len() as u32).to_be_bytes());
        buf.extend_from_slice(part.as_bytes());
    }
    let hi = xxh3(&buf);
    buf.push(0x5a);
    let lo = xxh3(&buf);
    format!("{hi:016x}{lo:016x}")
}

/// Why an endpoint is not sent to, before any transport is involved.
pub fn endpoint_refusal(ep: &EndpointResponse, channel_available: bool) -> Option<Outcome> {
    if ep.opt_out.as_deref() == Some("ALL") {
        return Some(Outcome::new(
            DeliveryStatus::OptOut,
            400,
            "the endpoint has opted out of all messages (OptOut ALL)",
        ));
    }
    if ep.endpoint_status.as_deref() == Some("INACTIVE") {
        return Some(Outcome::new(
            DeliveryStatus::PermanentFailure,
            400,
            "the endpoint is INACTIVE; nothing was sent",
        ));
    }
    match ep.address.as_deref() {
        None | Some("") => {
            return Some(Outcome::new(
                DeliveryStatus::PermanentFailure,
                400,
                "the endpoint has no address",
            ))
        }
        Some(_) => {}
    }
    if !channel_available {
        return Some(Outcome::new(
            DeliveryStatus::PermanentFailure,
            400,
            format!(
                "no message for channel {} in this request, or the channel is not enabled",
                ep.channel_type.as_deref().unwrap_or("(none)")
            ),
        ));
    }
    None
}

/// The outcome for an address that an earlier recipient of the same request
/// already took (same channel and address, compared case-insensitively for
/// email).
pub fn duplicate() -> Outcome {
    Outcome::new(
        DeliveryStatus::Duplicate,
        400,
        "the same address appears earlier in this request; sent once",
    )
}

/// The key under which duplicates of one request are detected.
pub fn dedup_key(channel: &str, address: &str) -> String {
    if channel == "EMAIL" {
        format!("{channel}\0{}", address.trim().to_ascii_lowercase())
    } else {
        format!("{channel}\0{}", address.trim())
    }
}

/// Variables for one recipient, lowest precedence first: the message's own
/// `Substitutions`, then the recipient's (which win).
pub fn merged_substitutions(layers: &[Option<&Substitutions>]) -> Substitutions {
    let mut out = Substitutions::new();
    for layer in layers.iter().flatten() {
        for (k, v) in layer.iter() {
            out.insert(k.clone(), v.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_stable_and_distinct() {
        let a = message_id("app", "trace-1", &RecipientKey::Address("x@example.com"));
        assert_eq!(
            a,
            message_id("app", "trace-1", &RecipientKey::Address("x@example.com"))
        );
        assert_eq!(a.len(), 32);
        assert_ne!(
            a,
            message_id("app", "trace-2", &RecipientKey::Address("x@example.com"))
        );
        assert_ne!(
            a,
            message_id("app", "trace-1", &RecipientKey::Endpoint("x@example.com"))
        );
        assert_ne!(
            a,
            message_id("app2", "trace-1", &RecipientKey::Address("x@example.com"))
        );
        // length-prefixing: no ambiguity between ("ab","c") and ("a","bc")
        assert_ne!(
            message_id("ab", "c", &RecipientKey::Address("d")),
            message_id("a", "bc", &RecipientKey::Address("d"))
        );
    }

    #[test]
    fn refusals_follow_pinpoint() {
        let mut ep = EndpointResponse {
            address: Some("a@example.com".into()),
            channel_type: Some("EMAIL".into()),
            endpoint_status: Some("ACTIVE".into()),
            opt_out: Some("NONE".into()),
            ..Default::default()
        };
        assert_eq!(endpoint_refusal(&ep, true), None);
        assert_eq!(
            endpoint_refusal(&ep, false).unwrap().status,
            DeliveryStatus::PermanentFailure
        );
        ep.opt_out = Some("ALL".into());
        assert_eq!(
            endpoint_refusal(&ep, true).unwrap().status,
            DeliveryStatus::OptOut
        );
        ep.opt_out = Some("NONE".into());
        ep.endpoint_status = Some("INACTIVE".into());
        let r = endpoint_refusal(&ep, true).unwrap();
        assert_eq!(r.status, DeliveryStatus::PermanentFailure);
        assert!(r.message.unwrap().contains("INACTIVE"));
    }

    #[test]
    fn dedup_keys_fold_email_case_only() {
        assert_eq!(
            dedup_key("EMAIL", "A@Example.com"),
            dedup_key("EMAIL", "a@example.com")
        );
        assert_ne!(dedup_key("SMS", "+1"), dedup_key("EMAIL", "+1"));
    }

    #[test]
    fn recipient_substitutions_win() {
        let base: Substitutions = [("A".to_string(), vec!["1".to_string()])].into();
        let rec: Substitutions = [("A".to_string(), vec!["2".to_string()])].into();
        let m = merged_substitutions(&[Some(&base), None, Some(&rec)]);
        assert_eq!(m["A"], vec!["2".to_string()]);
    }

    #[test]
    fn delivery_status_wire_names() {
        for s in [
            DeliveryStatus::Successful,
            DeliveryStatus::Throttled,
            DeliveryStatus::TemporaryFailure,
            DeliveryStatus::PermanentFailure,
            DeliveryStatus::UnknownFailure,
            DeliveryStatus::OptOut,
            DeliveryStatus::Duplicate,
        ] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }
}

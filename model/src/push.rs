//! Mobile push messages: the `APNSMessage` and `DefaultPushNotificationMessage`
//! of a send, merged (the channel's own message wins field by field) and
//! turned into what APNs receives: the JSON payload and the `apns-*`
//! headers' values.
//!
//! Payload shape (Apple's "Generating a remote notification"):
//!
//! | message | payload |
//! |---|---|
//! | `RawContent` | sent as it is (a JSON object); nothing else is added |
//! | `Title`, `Body` | `aps.alert.title`, `aps.alert.body` |
//! | `Badge`, `Sound`, `Category`, `ThreadId` | `aps.badge`, `aps.sound`, `aps.category`, `aps.thread-id` |
//! | `SilentPush` | `aps.content-available: 1`, no alert, push type `background`, priority 5 |
//! | `MediaUrl` | `aps.mutable-content: 1` and `data.media-url` (for a notification service extension) |
//! | `Action` `URL` / `DEEP_LINK` with `Url` | `data.pinpoint.deeplink` |
//! | `Data` | `data.<key>` for each key |
//!
//! `Priority` is `high`/`10` or `normal`/`5`; `TimeToLive` (seconds) becomes
//! `apns-expiration` = now + TTL (0: deliver now or never). Payloads are at
//! most 4 KB (5 KB for VoIP), as APNs enforces.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::message::Substitutions;
use crate::validate::ValidationError;

/// Largest payload APNs accepts for a regular push.
pub const APNS_PAYLOAD_BYTES_MAX: usize = 4096;
/// Largest payload APNs accepts for a VoIP push.
pub const APNS_VOIP_PAYLOAD_BYTES_MAX: usize = 5120;
/// `apns-collapse-id` is at most 64 bytes.
pub const APNS_COLLAPSE_ID_BYTES_MAX: usize = 64;

/// Pinpoint's `APNSMessage`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ApnsMessage {
    #[serde(
        rename = "APNSPushType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub apns_push_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub badge: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collapse_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_authentication_method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silent_push: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sound: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub substitutions: Option<Substitutions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_to_live: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// Pinpoint's `DefaultPushNotificationMessage`: what every push channel
/// sends unless its own message says otherwise.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DefaultPushMessage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silent_push: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub substitutions: Option<Substitutions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// The APNs message a send uses: `apns` over `default`, field by field.
pub fn apns_merge(default: Option<&DefaultPushMessage>, apns: Option<&ApnsMessage>) -> ApnsMessage {
    let mut m = apns.cloned().unwrap_or_default();
    if let Some(d) = default {
        m.action = m.action.or_else(|| d.action.clone());
        m.body = m.body.or_else(|| d.body.clone());
        m.data = m.data.or_else(|| d.data.clone());
        m.silent_push = m.silent_push.or(d.silent_push);
        m.title = m.title.or_else(|| d.title.clone());
        m.url = m.url.or_else(|| d.url.clone());
        if m.substitutions.is_none() {
            m.substitutions = d.substitutions.clone();
        }
    }
    m
}

/// A campaign's APNs message: its `APNSMessage` over its `DefaultMessage`
/// (both Pinpoint's `Message` shape), field by field; `None` when it has
/// neither.
pub fn apns_from_campaign(
    default: Option<&crate::campaign::Message>,
    apns: Option<&crate::campaign::Message>,
) -> Option<ApnsMessage> {
    if default.is_none() && apns.is_none() {
        return None;
    }
    let pick = |f: fn(&crate::campaign::Message) -> Option<String>| {
        apns.and_then(f).or_else(|| default.and_then(f))
    };
    Some(ApnsMessage {
        action: pick(|m| m.action.clone()),
        body: pick(|m| m.body.clone()),
        media_url: pick(|m| m.media_url.clone()),
        raw_content: pick(|m| m.raw_content.clone()),
        title: pick(|m| m.title.clone()),
        url: pick(|m| m.url.clone()),
        silent_push: apns
            .and_then(|m| m.silent_push)
            .or_else(|| default.and_then(|m| m.silent_push)),
        time_to_live: apns
            .and_then(|m| m.time_to_live)
            .or_else(|| default.and_then(|m| m.time_to_live))
            .map(i64::from),
        ..Default::default()
    })
}

/// `top` with every field it leaves unset taken from `under`.
pub fn apns_over(top: ApnsMessage, under: ApnsMessage) -> ApnsMessage {
    ApnsMessage {
        apns_push_type: top.apns_push_type.or(under.apns_push_type),
        action: top.action.or(under.action),
        badge: top.badge.or(under.badge),
        body: top.body.or(under.body),
        category: top.category.or(under.category),
        collapse_id: top.collapse_id.or(under.collapse_id),
        data: top.data.or(under.data),
        media_url: top.media_url.or(under.media_url),
        preferred_authentication_method: top
            .preferred_authentication_method
            .or(under.preferred_authentication_method),
        priority: top.priority.or(under.priority),
        raw_content: top.raw_content.or(under.raw_content),
        silent_push: top.silent_push.or(under.silent_push),
        sound: top.sound.or(under.sound),
        substitutions: top.substitutions.or(under.substitutions),
        thread_id: top.thread_id.or(under.thread_id),
        time_to_live: top.time_to_live.or(under.time_to_live),
        title: top.title.or(under.title),
        url: top.url.or(under.url),
    }
}

/// The APNs message of a push template: its `APNS` slot over its `Default`
/// slot.
pub fn apns_from_template(t: &crate::template::PushNotificationTemplateRequest) -> ApnsMessage {
    let d = t.default.clone().unwrap_or_default();
    let base = ApnsMessage {
        action: d.action,
        body: d.body,
        sound: d.sound,
        title: d.title,
        url: d.url,
        ..Default::default()
    };
    match &t.apns {
        Some(a) => apns_over(
            ApnsMessage {
                action: a.action.clone(),
                body: a.body.clone(),
                media_url: a.media_url.clone(),
                raw_content: a.raw_content.clone(),
                sound: a.sound.clone(),
                title: a.title.clone(),
                url: a.url.clone(),
                ..Default::default()
            },
            base,
        ),
        None => base,
    }
}

/// `top` with every field it leaves unset taken from `under`.
pub fn gcm_over(top: GcmMessage, under: GcmMessage) -> GcmMessage {
    GcmMessage {
        action: top.action.or(under.action),
        body: top.body.or(under.body),
        collapse_key: top.collapse_key.or(under.collapse_key),
        data: top.data.or(under.data),
        icon_reference: top.icon_reference.or(under.icon_reference),
        image_icon_url: top.image_icon_url.or(under.image_icon_url),
        image_url: top.image_url.or(under.image_url),
        preferred_authentication_method: top
            .preferred_authentication_method
            .or(under.preferred_authentication_method),
        priority: top.priority.or(under.priority),
        raw_content: top.raw_content.or(under.raw_content),
        restricted_package_name: top
            .restricted_package_name
            .or(under.restricted_package_name),
        silent_push: top.silent_push.or(under.silent_push),
        small_image_icon_url: top.small_image_icon_url.or(under.small_image_icon_url),
        sound: top.sound.or(under.sound),
        substitutions: top.substitutions.or(under.substitutions),
        time_to_live: top.time_to_live.or(under.time_to_live),
        title: top.title.or(under.title),
        url: top.url.or(under.url),
    }
}

/// The FCM message of a push template: its `GCM` slot over its `Default`
/// slot.
pub fn gcm_from_template(t: &crate::template::PushNotificationTemplateRequest) -> GcmMessage {
    let d = t.default.clone().unwrap_or_default();
    let base = GcmMessage {
        action: d.action,
        body: d.body,
        sound: d.sound,
        title: d.title,
        url: d.url,
        ..Default::default()
    };
    match &t.gcm {
        Some(g) => gcm_over(
            GcmMessage {
                action: g.action.clone(),
                body: g.body.clone(),
                image_icon_url: g.image_icon_url.clone(),
                image_url: g.image_url.clone(),
                raw_content: g.raw_content.clone(),
                small_image_icon_url: g.small_image_icon_url.clone(),
                sound: g.sound.clone(),
                title: g.title.clone(),
                url: g.url.clone(),
                ..Default::default()
            },
            base,
        ),
        None => base,
    }
}

/// Push types APNs knows (`apns-push-type`).
pub const APNS_PUSH_TYPES: [&str; 8] = [
    "alert",
    "background",
    "voip",
    "complication",
    "fileprovider",
    "mdm",
    "liveactivity",
    "location",
];

/// Checks what can be checked before rendering: push type, priority,
/// collapse id, action, TTL, and that `RawContent` is a JSON object.
pub fn apns_check(m: &ApnsMessage) -> Result<(), ValidationError> {
    let bad = |m: String| Err(ValidationError(m));
    if let Some(t) = m.apns_push_type.as_deref() {
        if !APNS_PUSH_TYPES.contains(&t) {
            return bad(format!(
                "APNSPushType {t:?} is not one of {}",
                APNS_PUSH_TYPES.join(", ")
            ));
        }
    }
    if let Some(p) = m.priority.as_deref() {
        if priority_of(p).is_none() {
            return bad(format!("Priority {p:?} must be high, normal, 10 or 5"));
        }
    }
    if let Some(c) = m.collapse_id.as_deref() {
        if c.len() > APNS_COLLAPSE_ID_BYTES_MAX {
            return bad(format!(
                "CollapseId is {} bytes; APNs takes at most {APNS_COLLAPSE_ID_BYTES_MAX}",
                c.len()
            ));
        }
    }
    if let Some(a) = m.action.as_deref() {
        if !["OPEN_APP", "DEEP_LINK", "URL"].contains(&a) {
            return bad(format!("Action {a:?} must be OPEN_APP, DEEP_LINK or URL"));
        }
    }
    if m.time_to_live.is_some_and(|t| t < 0) {
        return bad("TimeToLive must not be negative".into());
    }
    if let Some(raw) = m.raw_content.as_deref() {
        match serde_json::from_str::<Value>(raw) {
            Ok(Value::Object(_)) => {}
            Ok(_) => return bad("RawContent must be a JSON object".into()),
            Err(e) => return bad(format!("RawContent is not JSON: {e}")),
        }
    }
    Ok(())
}

fn priority_of(p: &str) -> Option<u8> {
    match p.to_ascii_lowercase().as_str() {
        "high" | "10" => Some(10),
        "normal" | "5" => Some(5),
        _ => None,
    }
}

/// One push as APNs receives it: the body and the `apns-*` header values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApnsPush {
    pub payload: Vec<u8>,
    /// `apns-push-type`.
    pub push_type: String,
    /// `apns-priority`: 10 (now) or 5 (when the device sees fit).
    pub priority: u8,
    /// `apns-expiration` (unix seconds; 0 = now or never), when a TTL is set.
    pub expiration: Option<i64>,
    /// `apns-collapse-id`.
    pub collapse_id: Option<String>,
}

/// Builds the push of `m` (already rendered for its recipient) for a VoIP
/// channel or not, at `now_unix_secs`.
pub fn apns_push(
    m: &ApnsMessage,
    voip: bool,
    now_unix_secs: i64,
) -> Result<ApnsPush, ValidationError> {
    apns_check(m)?;
    let silent = m.silent_push.unwrap_or(false);
    let payload = match m.raw_content.as_deref() {
        Some(raw) => serde_json::from_str::<Value>(raw)
            .map_err(|e| ValidationError(format!("RawContent is not JSON: {e}")))?,
        None => payload_of(m, silent),
    };
    let payload = serde_json::to_vec(&payload).expect("JSON values serialize");
    let max = if voip {
        APNS_VOIP_PAYLOAD_BYTES_MAX
    } else {
        APNS_PAYLOAD_BYTES_MAX
    };
    if payload.len() > max {
        return Err(ValidationError(format!(
            "the APNs payload is {} bytes; APNs takes at most {max}",
            payload.len()
        )));
    }
    let push_type = match m.apns_push_type.as_deref() {
        Some(t) => t.to_owned(),
        None if voip => "voip".to_owned(),
        None if silent => "background".to_owned(),
        None => "alert".to_owned(),
    };
    // Apple refuses priority 10 for background pushes.
    let priority = match m.priority.as_deref().and_then(priority_of) {
        Some(p) => p,
        None if push_type == "background" => 5,
        None => 10,
    };
    Ok(ApnsPush {
        payload,
        push_type,
        priority,
        expiration: m.time_to_live.map(|ttl| {
            if ttl == 0 {
                0
            } else {
                now_unix_secs.saturating_add(ttl)
            }
        }),
        collapse_id: m.collapse_id.clone().filter(|c| !c.is_empty()),
    })
}

fn payload_of(m: &ApnsMessage, silent: bool) -> Value {
    let mut aps = Map::new();
    if silent {
        aps.insert("content-available".into(), json!(1));
    } else {
        let mut alert = Map::new();
        if let Some(t) = m.title.as_deref().filter(|t| !t.is_empty()) {
            alert.insert("title".into(), json!(t));
        }
        if let Some(b) = m.body.as_deref().filter(|b| !b.is_empty()) {
            alert.insert("body".into(), json!(b));
        }
        if !alert.is_empty() {
            aps.insert("alert".into(), Value::Object(alert));
        }
        if let Some(s) = m.sound.as_deref().filter(|s| !s.is_empty()) {
            aps.insert("sound".into(), json!(s));
        }
    }
    if let Some(b) = m.badge {
        aps.insert("badge".into(), json!(b));
    }
    if let Some(c) = m.category.as_deref().filter(|c| !c.is_empty()) {
        aps.insert("category".into(), json!(c));
    }
    if let Some(t) = m.thread_id.as_deref().filter(|t| !t.is_empty()) {
        aps.insert("thread-id".into(), json!(t));
    }
    let media = m.media_url.as_deref().filter(|u| !u.is_empty());
    if media.is_some() {
        aps.insert("mutable-content".into(), json!(1));
    }
    let mut data = Map::new();
    for (k, v) in m.data.iter().flatten() {
        data.insert(k.clone(), json!(v));
    }
    if let Some(u) = media {
        data.insert("media-url".into(), json!(u));
    }
    let link = matches!(m.action.as_deref(), Some("URL" | "DEEP_LINK"));
    if let Some(u) = m.url.as_deref().filter(|u| link && !u.is_empty()) {
        data.insert("pinpoint".into(), json!({ "deeplink": u }));
    }
    let mut payload = Map::new();
    payload.insert("aps".into(), Value::Object(aps));
    if !data.is_empty() {
        payload.insert("data".into(), Value::Object(data));
    }
    Value::Object(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert() -> ApnsMessage {
        ApnsMessage {
            title: Some("Sale".into()),
            body: Some("20% off today".into()),
            badge: Some(3),
            sound: Some("default".into()),
            ..Default::default()
        }
    }

    fn json_of(p: &ApnsPush) -> Value {
        serde_json::from_slice(&p.payload).unwrap()
    }

    #[test]
    fn an_alert_has_title_body_badge_and_sound() {
        let p = apns_push(&alert(), false, 1_000).unwrap();
        assert_eq!(
            json_of(&p),
            json!({"aps": {"alert": {"title": "Sale", "body": "20% off today"}, "badge": 3, "sound": "default"}})
        );
        assert_eq!((p.push_type.as_str(), p.priority), ("alert", 10));
        assert_eq!(p.expiration, None);
    }

    #[test]
    fn a_silent_push_is_a_background_push_without_alert() {
        let m = ApnsMessage {
            silent_push: Some(true),
            data: Some(BTreeMap::from([("k".into(), "v".into())])),
            ..alert()
        };
        let p = apns_push(&m, false, 0).unwrap();
        assert_eq!(
            json_of(&p),
            json!({"aps": {"content-available": 1, "badge": 3}, "data": {"k": "v"}})
        );
        assert_eq!((p.push_type.as_str(), p.priority), ("background", 5));
    }

    #[test]
    fn raw_content_is_sent_as_it_is() {
        let m = ApnsMessage {
            raw_content: Some(r#"{"aps":{"alert":"raw"},"x":1}"#.into()),
            ..alert()
        };
        let p = apns_push(&m, false, 0).unwrap();
        assert_eq!(json_of(&p), json!({"aps": {"alert": "raw"}, "x": 1}));
        let bad = ApnsMessage {
            raw_content: Some("[1]".into()),
            ..Default::default()
        };
        assert!(apns_push(&bad, false, 0).is_err());
    }

    #[test]
    fn headers_follow_priority_ttl_collapse_id_and_voip() {
        let m = ApnsMessage {
            priority: Some("normal".into()),
            time_to_live: Some(60),
            collapse_id: Some("score".into()),
            media_url: Some("https://example.com/a.png".into()),
            action: Some("DEEP_LINK".into()),
            url: Some("app://x".into()),
            ..alert()
        };
        let p = apns_push(&m, true, 1_000).unwrap();
        assert_eq!(p.push_type, "voip");
        assert_eq!(p.priority, 5);
        assert_eq!(p.expiration, Some(1_060));
        assert_eq!(p.collapse_id.as_deref(), Some("score"));
        let j = json_of(&p);
        assert_eq!(j["aps"]["mutable-content"], json!(1));
        assert_eq!(j["data"]["media-url"], json!("https://example.com/a.png"));
        assert_eq!(j["data"]["pinpoint"]["deeplink"], json!("app://x"));
        let now_or_never = ApnsMessage {
            time_to_live: Some(0),
            ..alert()
        };
        assert_eq!(
            apns_push(&now_or_never, false, 5).unwrap().expiration,
            Some(0)
        );
    }

    #[test]
    fn bad_fields_are_refused_with_their_name() {
        let cases = [
            ApnsMessage {
                priority: Some("urgent".into()),
                ..alert()
            },
            ApnsMessage {
                apns_push_type: Some("banner".into()),
                ..alert()
            },
            ApnsMessage {
                collapse_id: Some("x".repeat(65)),
                ..alert()
            },
            ApnsMessage {
                body: Some("x".repeat(5000)),
                ..alert()
            },
        ];
        let names = ["Priority", "APNSPushType", "CollapseId", "payload"];
        for (m, name) in cases.iter().zip(names) {
            let e = apns_push(m, false, 0).unwrap_err();
            assert!(e.0.contains(name), "{e:?} should name {name}");
        }
    }

    #[test]
    fn a_campaign_message_maps_onto_apns_fields() {
        use crate::campaign::Message;
        let d = Message {
            title: Some("t".into()),
            body: Some("default".into()),
            time_to_live: Some(30),
            ..Default::default()
        };
        let a = Message {
            body: Some("apns".into()),
            silent_push: Some(false),
            ..Default::default()
        };
        let m = apns_from_campaign(Some(&d), Some(&a)).unwrap();
        assert_eq!(
            (m.title.as_deref(), m.body.as_deref(), m.time_to_live),
            (Some("t"), Some("apns"), Some(30))
        );
        assert!(apns_from_campaign(None, None).is_none());
    }

    #[test]
    fn a_template_gives_what_the_message_leaves_unset() {
        use crate::template::{
            APNSPushNotificationTemplate, DefaultPushNotificationTemplate,
            PushNotificationTemplateRequest,
        };
        let t = PushNotificationTemplateRequest {
            default: Some(DefaultPushNotificationTemplate {
                title: Some("template title".into()),
                body: Some("template body".into()),
                ..Default::default()
            }),
            apns: Some(APNSPushNotificationTemplate {
                body: Some("apns template body".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let from_template = apns_from_template(&t);
        assert_eq!(from_template.body.as_deref(), Some("apns template body"));
        let request = ApnsMessage {
            title: Some("request title".into()),
            ..Default::default()
        };
        let m = apns_over(request, from_template);
        assert_eq!(m.title.as_deref(), Some("request title"));
        assert_eq!(m.body.as_deref(), Some("apns template body"));
        let g = gcm_from_template(&t);
        assert_eq!(
            (g.title.as_deref(), g.body.as_deref()),
            (Some("template title"), Some("template body"))
        );
    }

    #[test]
    fn the_channel_message_wins_over_the_default_field_by_field() {
        let d = DefaultPushMessage {
            title: Some("default title".into()),
            body: Some("default body".into()),
            url: Some("https://d".into()),
            ..Default::default()
        };
        let a = ApnsMessage {
            body: Some("apns body".into()),
            ..Default::default()
        };
        let m = apns_merge(Some(&d), Some(&a));
        assert_eq!(m.title.as_deref(), Some("default title"));
        assert_eq!(m.body.as_deref(), Some("apns body"));
        assert_eq!(m.url.as_deref(), Some("https://d"));
        assert_eq!(
            apns_merge(Some(&d), None).body.as_deref(),
            Some("default body")
        );
    }
}

/// Pinpoint's `GCMMessage` (FCM).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GcmMessage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collapse_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon_reference: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_icon_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_authentication_method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restricted_package_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silent_push: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub small_image_icon_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sound: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub substitutions: Option<Substitutions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_to_live: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// The FCM message a send uses: `gcm` over `default`, field by field.
pub fn gcm_merge(default: Option<&DefaultPushMessage>, gcm: Option<&GcmMessage>) -> GcmMessage {
    let mut m = gcm.cloned().unwrap_or_default();
    if let Some(d) = default {
        m.action = m.action.or_else(|| d.action.clone());
        m.body = m.body.or_else(|| d.body.clone());
        m.data = m.data.or_else(|| d.data.clone());
        m.silent_push = m.silent_push.or(d.silent_push);
        m.title = m.title.or_else(|| d.title.clone());
        m.url = m.url.or_else(|| d.url.clone());
        if m.substitutions.is_none() {
            m.substitutions = d.substitutions.clone();
        }
    }
    m
}

/// A campaign's FCM message: its `GCMMessage` over its `DefaultMessage`.
pub fn gcm_from_campaign(
    default: Option<&crate::campaign::Message>,
    gcm: Option<&crate::campaign::Message>,
) -> Option<GcmMessage> {
    if default.is_none() && gcm.is_none() {
        return None;
    }
    let pick = |f: fn(&crate::campaign::Message) -> Option<String>| {
        gcm.and_then(f).or_else(|| default.and_then(f))
    };
    Some(GcmMessage {
        action: pick(|m| m.action.clone()),
        body: pick(|m| m.body.clone()),
        image_icon_url: pick(|m| m.image_icon_url.clone()),
        image_url: pick(|m| m.image_url.clone()),
        small_image_icon_url: pick(|m| m.image_small_icon_url.clone()),
        raw_content: pick(|m| m.raw_content.clone()),
        title: pick(|m| m.title.clone()),
        url: pick(|m| m.url.clone()),
        silent_push: gcm
            .and_then(|m| m.silent_push)
            .or_else(|| default.and_then(|m| m.silent_push)),
        time_to_live: gcm
            .and_then(|m| m.time_to_live)
            .or_else(|| default.and_then(|m| m.time_to_live))
            .map(i64::from),
        ..Default::default()
    })
}

/// FCM keeps a message at most four weeks.
pub const FCM_TTL_SECS_MAX: i64 = 2_419_200;
/// FCM refuses messages larger than 4 KB.
pub const FCM_PAYLOAD_BYTES_MAX: usize = 4096;

/// Checks what can be checked before rendering.
pub fn gcm_check(m: &GcmMessage) -> Result<(), ValidationError> {
    let bad = |m: String| Err(ValidationError(m));
    if let Some(p) = m.priority.as_deref() {
        if !["high", "normal"].contains(&p.to_ascii_lowercase().as_str()) {
            return bad(format!("Priority {p:?} must be high or normal"));
        }
    }
    if let Some(a) = m.action.as_deref() {
        if !["OPEN_APP", "DEEP_LINK", "URL"].contains(&a) {
            return bad(format!("Action {a:?} must be OPEN_APP, DEEP_LINK or URL"));
        }
    }
    if m.time_to_live
        .is_some_and(|t| !(0..=FCM_TTL_SECS_MAX).contains(&t))
    {
        return bad(format!(
            "TimeToLive must be 0 to {FCM_TTL_SECS_MAX} seconds"
        ));
    }
    if let Some(raw) = m.raw_content.as_deref() {
        match serde_json::from_str::<Value>(raw) {
            Ok(Value::Object(_)) => {}
            Ok(_) => return bad("RawContent must be a JSON object".into()),
            Err(e) => return bad(format!("RawContent is not JSON: {e}")),
        }
    }
    Ok(())
}

/// The FCM HTTP v1 request body (`{"message": {...}}`) of `m` (already
/// rendered) to `device_token`:
///
/// | message | FCM |
/// |---|---|
/// | `RawContent` | the `message` object as given, `token` set |
/// | `Title`, `Body`, `ImageUrl` | `notification` (left out for `SilentPush`: a data message) |
/// | `Data` | `data`; Action URL/DEEP_LINK adds `data.pinpoint.deeplink` = Url |
/// | `Priority` | `android.priority` HIGH/NORMAL (silent: NORMAL) |
/// | `TimeToLive` | `android.ttl` ("Ns") |
/// | `CollapseKey`, `RestrictedPackageName` | `android.collapse_key`, `android.restricted_package_name` |
/// | `Sound`, `IconReference`, `ImageIconUrl` | `android.notification.sound`, `.icon`, `.image` |
pub fn fcm_body(m: &GcmMessage, device_token: &str) -> Result<Vec<u8>, ValidationError> {
    gcm_check(m)?;
    let message = match m.raw_content.as_deref() {
        Some(raw) => {
            let mut v = serde_json::from_str::<Value>(raw)
                .map_err(|e| ValidationError(format!("RawContent is not JSON: {e}")))?;
            if let Value::Object(o) = &mut v {
                o.insert("token".into(), json!(device_token));
            }
            v
        }
        None => {
            let silent = m.silent_push.unwrap_or(false);
            let mut msg = Map::new();
            msg.insert("token".into(), json!(device_token));
            if !silent {
                let mut n = Map::new();
                for (k, v) in [
                    ("title", &m.title),
                    ("body", &m.body),
                    ("image", &m.image_url),
                ] {
                    if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                        n.insert(k.into(), json!(v));
                    }
                }
                if !n.is_empty() {
                    msg.insert("notification".into(), Value::Object(n));
                }
            }
            let mut data = Map::new();
            for (k, v) in m.data.iter().flatten() {
                data.insert(k.clone(), json!(v));
            }
            let link = matches!(m.action.as_deref(), Some("URL" | "DEEP_LINK"));
            if let Some(u) = m.url.as_deref().filter(|u| link && !u.is_empty()) {
                // FCM data values are strings.
                data.insert("pinpoint.deeplink".into(), json!(u));
            }
            if !data.is_empty() {
                msg.insert("data".into(), Value::Object(data));
            }
            let mut android = Map::new();
            let high = match m.priority.as_deref() {
                Some(p) => p.eq_ignore_ascii_case("high"),
                None => !silent,
            };
            android.insert(
                "priority".into(),
                json!(if high { "HIGH" } else { "NORMAL" }),
            );
            if let Some(t) = m.time_to_live {
                android.insert("ttl".into(), json!(format!("{t}s")));
            }
            if let Some(c) = m.collapse_key.as_deref().filter(|c| !c.is_empty()) {
                android.insert("collapse_key".into(), json!(c));
            }
            if let Some(p) = m
                .restricted_package_name
                .as_deref()
                .filter(|p| !p.is_empty())
            {
                android.insert("restricted_package_name".into(), json!(p));
            }
            let mut an = Map::new();
            for (k, v) in [
                ("sound", &m.sound),
                ("icon", &m.icon_reference),
                ("image", &m.image_icon_url),
            ] {
                if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                    an.insert(k.into(), json!(v));
                }
            }
            if !an.is_empty() && !silent {
                android.insert("notification".into(), Value::Object(an));
            }
            msg.insert("android".into(), Value::Object(android));
            Value::Object(msg)
        }
    };
    let body = serde_json::to_vec(&json!({ "message": message })).expect("JSON values serialize");
    if body.len() > FCM_PAYLOAD_BYTES_MAX + 512 {
        return Err(ValidationError(format!(
            "the FCM message is {} bytes; FCM takes at most {FCM_PAYLOAD_BYTES_MAX}",
            body.len()
        )));
    }
    Ok(body)
}

#[cfg(test)]
mod fcm_tests {
    use super::*;

    #[test]
    fn a_notification_message_carries_android_options() {
        let m = GcmMessage {
            title: Some("T".into()),
            body: Some("B".into()),
            priority: Some("normal".into()),
            time_to_live: Some(60),
            collapse_key: Some("k".into()),
            sound: Some("default".into()),
            data: Some(BTreeMap::from([("a".into(), "1".into())])),
            action: Some("URL".into()),
            url: Some("https://x".into()),
            ..Default::default()
        };
        let v: Value = serde_json::from_slice(&fcm_body(&m, "tok").unwrap()).unwrap();
        assert_eq!(
            v,
            json!({"message": {
                "token": "tok",
                "notification": {"title": "T", "body": "B"},
                "data": {"a": "1", "pinpoint.deeplink": "https://x"},
                "android": {"priority": "NORMAL", "ttl": "60s", "collapse_key": "k",
                            "notification": {"sound": "default"}}
            }})
        );
    }

    #[test]
    fn a_silent_push_is_a_data_message_and_raw_content_is_kept() {
        let m = GcmMessage {
            silent_push: Some(true),
            title: Some("T".into()),
            data: Some(BTreeMap::from([("a".into(), "1".into())])),
            ..Default::default()
        };
        let v: Value = serde_json::from_slice(&fcm_body(&m, "tok").unwrap()).unwrap();
        assert!(v["message"].get("notification").is_none());
        assert_eq!(v["message"]["android"]["priority"], "NORMAL");
        let raw = GcmMessage {
            raw_content: Some(r#"{"data":{"x":"y"}}"#.into()),
            ..Default::default()
        };
        let v: Value = serde_json::from_slice(&fcm_body(&raw, "tok").unwrap()).unwrap();
        assert_eq!(v, json!({"message": {"data": {"x": "y"}, "token": "tok"}}));
        let bad = GcmMessage {
            priority: Some("urgent".into()),
            ..Default::default()
        };
        assert!(fcm_body(&bad, "t").unwrap_err().0.contains("Priority"));
    }
}

//! Message templates: the wire shapes of Pinpoint's 23 template operations and
//! their validation.
//!
//! Shapes follow `wire`'s conventions (one struct per botocore shape, with its
//! name; PascalCase members; `tags` lowercase; `Option` members omitted when
//! absent; required members of output-only shapes plain). Enum-valued members
//! stay `String` and are checked here. [`TemplateType`] maps between the
//! `TemplateType` enum (`EMAIL`…), the per-type route segments (`email`…) and
//! ARN suffixes.
//!
//! Every text member that is rendered per recipient is a *part*, named by its
//! JSON path (`Subject`, `HtmlPart`, `GCM.Body`, `Content[0].BodyConfig.Body`);
//! the `parts()` methods list them with their escaping, ready for
//! [`crate::render::Compiled::compile`]. Validation parses every part, so a
//! stored template always compiles.
//!
//! Size limits are Pinpoint's documented template quotas (developer guide,
//! "Amazon Pinpoint quotas", section "Message template quotas"; message headers
//! from the model doc of `MessageHeader`); figures marked "herald" are ours.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::limits::Limits;
use crate::render::{self, Escape};
use crate::validate::{self, ValidationError};

pub use crate::message::MessageHeader;

/// Longest template name (model doc of `TemplateName`).
pub const TEMPLATE_NAME_CHARS_MAX: usize = 128;
/// `Subject` + `TextPart` + `HtmlPart` of an email template (quotas: 500,000).
pub const EMAIL_TEMPLATE_CHARS_MAX: usize = 500_000;
/// `Body` of an SMS template (quotas: 1,600).
pub const SMS_TEMPLATE_CHARS_MAX: usize = 1_600;
/// `Body` of a voice template (quotas: 10,000).
pub const VOICE_TEMPLATE_CHARS_MAX: usize = 10_000;
/// `Title` + `Body` of the `Default` push slot (quotas: 2,000).
pub const PUSH_DEFAULT_CHARS_MAX: usize = 2_000;
/// `Title` + `Body` of the `APNS` push slot (quotas: 2,000).
pub const PUSH_APNS_CHARS_MAX: usize = 2_000;
/// `Title` + `Body` of the `ADM`, `Baidu` and `GCM` push slots (quotas: 4,000).
pub const PUSH_ANDROID_CHARS_MAX: usize = 4_000;
/// `RawContent` of one push slot (herald: the quotas do not say whether raw
/// content counts as a template part; 4 KB APNs/FCM payloads fit).
pub const PUSH_RAW_CONTENT_CHARS_MAX: usize = 16_384;
/// Email `Headers` (model doc: "up to 15").
pub const EMAIL_HEADERS_MAX: usize = 15;
/// Header name (model doc: "up to 126 characters").
pub const HEADER_NAME_CHARS_MAX: usize = 126;
/// Header value, before rendering (model doc: "up to 870 characters").
pub const HEADER_VALUE_CHARS_MAX: usize = 870;
/// In-app `Content` entries (model doc: "up to 5 modals").
pub const IN_APP_CONTENT_MAX: usize = 5;
/// `DefaultSubstitutions` JSON text (herald).
pub const DEFAULT_SUBSTITUTIONS_CHARS_MAX: usize = 100_000;
/// `TemplateDescription` (herald; undocumented by AWS).
pub const TEMPLATE_DESCRIPTION_CHARS_MAX: usize = 1_000;
/// Any other string member: URLs, sounds, colours, voice ids (herald).
pub const TEMPLATE_FIELD_CHARS_MAX: usize = 2_048;
/// Versions kept per template (quotas: 5,000). Enforced by the caller.
pub const TEMPLATE_VERSIONS_MAX: usize = 5_000;
/// Templates per account (quotas: 10,000). Enforced by the caller.
pub const TEMPLATES_MAX: usize = 10_000;

/// The `Action` enum of push templates.
pub const PUSH_ACTIONS: [&str; 3] = ["OPEN_APP", "DEEP_LINK", "URL"];
/// The `Layout` enum of in-app templates.
pub const IN_APP_LAYOUTS: [&str; 6] = [
    "BOTTOM_BANNER",
    "TOP_BANNER",
    "OVERLAYS",
    "MOBILE_FEED",
    "MIDDLE_BANNER",
    "CAROUSEL",
];
/// The `Alignment` enum of in-app header and body.
pub const IN_APP_ALIGNMENTS: [&str; 3] = ["LEFT", "CENTER", "RIGHT"];
/// The `ButtonAction` enum of in-app buttons.
pub const BUTTON_ACTIONS: [&str; 3] = ["LINK", "DEEP_LINK", "CLOSE"];

/// One renderable member: (JSON path, source, escaping).
pub type Part<'a> = (String, &'a str, Escape);

// ---------------------------------------------------------------------------
// Template type
// ---------------------------------------------------------------------------

/// The channel a template is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TemplateType {
    #[serde(rename = "EMAIL")]
    Email,
    #[serde(rename = "SMS")]
    Sms,
    #[serde(rename = "PUSH")]
    Push,
    #[serde(rename = "VOICE")]
    Voice,
    #[serde(rename = "INAPP")]
    InApp,
}

impl TemplateType {
    pub const ALL: [TemplateType; 5] = [
        TemplateType::Email,
        TemplateType::Sms,
        TemplateType::Push,
        TemplateType::Voice,
        TemplateType::InApp,
    ];

    /// The `TemplateType` enum value, also the ARN suffix
    /// (`templates/{name}/EMAIL`) and the `{template-type}` path variable.
    pub fn as_str(self) -> &'static str {
        match self {
            TemplateType::Email => "EMAIL",
            TemplateType::Sms => "SMS",
            TemplateType::Push => "PUSH",
            TemplateType::Voice => "VOICE",
            TemplateType::InApp => "INAPP",
        }
    }

    /// The literal segment of the per-type routes
    /// (`/v1/templates/{template-name}/email`).
    pub fn path_segment(self) -> &'static str {
        match self {
            TemplateType::Email => "email",
            TemplateType::Sms => "sms",
            TemplateType::Push => "push",
            TemplateType::Voice => "voice",
            TemplateType::InApp => "inapp",
        }
    }

    /// Parse the enum value exactly (`EMAIL`).
    pub fn from_wire(s: &str) -> Option<TemplateType> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Parse a per-type route segment exactly (`email`).
    pub fn from_path_segment(s: &str) -> Option<TemplateType> {
        Self::ALL.into_iter().find(|t| t.path_segment() == s)
    }
}

impl std::fmt::Display for TemplateType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for TemplateType {
    type Err = ValidationError;

    /// The enum value, as `ListTemplates?template-type=` and the
    /// `{template-type}` path variable carry it.
    fn from_str(s: &str) -> Result<TemplateType, ValidationError> {
        TemplateType::from_wire(s).ok_or_else(|| {
            ValidationError(format!(
                "TemplateType: {s:?} is not one of EMAIL, SMS, PUSH, VOICE, INAPP"
            ))
        })
    }
}

// ---------------------------------------------------------------------------
// Email
// ---------------------------------------------------------------------------

/// Body of `CreateEmailTemplate` / `UpdateEmailTemplate`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EmailTemplateRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_substitutions: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html_part: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recommender_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Vec<MessageHeader>>,
    #[serde(rename = "tags", default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_part: Option<String>,
}

/// Body of the `GetEmailTemplate` response.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EmailTemplateResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    #[serde(default)]
    pub creation_date: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_substitutions: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html_part: Option<String>,
    #[serde(default)]
    pub last_modified_date: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recommender_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Vec<MessageHeader>>,
    #[serde(rename = "tags", default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_description: Option<String>,
    #[serde(default)]
    pub template_name: String,
    /// `EMAIL`.
    #[serde(default)]
    pub template_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_part: Option<String>,
    /// A string: `"1"`, `"2"`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

fn email_parts<'a>(
    subject: Option<&'a str>,
    text: Option<&'a str>,
    html: Option<&'a str>,
    headers: Option<&'a [MessageHeader]>,
) -> Vec<Part<'a>> {
    let mut parts = Vec::new();
    push_part(&mut parts, "Subject".into(), subject, Escape::Plain);
    push_part(&mut parts, "TextPart".into(), text, Escape::Plain);
    push_part(&mut parts, "HtmlPart".into(), html, Escape::Html);
    for (i, h) in headers.unwrap_or_default().iter().enumerate() {
        push_part(
            &mut parts,
            format!("Headers[{i}].Value"),
            h.value.as_deref(),
            Escape::Plain,
        );
    }
    parts
}

impl EmailTemplateRequest {
    /// `Subject`, `TextPart`, `HtmlPart` (HTML-escaped) and `Headers[i].Value`.
    pub fn parts(&self) -> Vec<Part<'_>> {
        email_parts(
            self.subject.as_deref(),
            self.text_part.as_deref(),
            self.html_part.as_deref(),
            self.headers.as_deref(),
        )
    }
}

impl EmailTemplateResponse {
    /// As [`EmailTemplateRequest::parts`].
    pub fn parts(&self) -> Vec<Part<'_>> {
        email_parts(
            self.subject.as_deref(),
            self.text_part.as_deref(),
            self.html_part.as_deref(),
            self.headers.as_deref(),
        )
    }
}

// ---------------------------------------------------------------------------
// SMS and voice
// ---------------------------------------------------------------------------

/// Body of `CreateSmsTemplate` / `UpdateSmsTemplate`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SMSTemplateRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_substitutions: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recommender_id: Option<String>,
    #[serde(rename = "tags", default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_description: Option<String>,
}

/// Body of the `GetSmsTemplate` response.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SMSTemplateResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default)]
    pub creation_date: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_substitutions: Option<String>,
    #[serde(default)]
    pub last_modified_date: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recommender_id: Option<String>,
    #[serde(rename = "tags", default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_description: Option<String>,
    #[serde(default)]
    pub template_name: String,
    /// `SMS`.
    #[serde(default)]
    pub template_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

impl SMSTemplateRequest {
    /// `Body`.
    pub fn parts(&self) -> Vec<Part<'_>> {
        body_part(self.body.as_deref())
    }
}

impl SMSTemplateResponse {
    /// `Body`.
    pub fn parts(&self) -> Vec<Part<'_>> {
        body_part(self.body.as_deref())
    }
}

/// Body of `CreateVoiceTemplate` / `UpdateVoiceTemplate`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VoiceTemplateRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_substitutions: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language_code: Option<String>,
    #[serde(rename = "tags", default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice_id: Option<String>,
}

/// Body of the `GetVoiceTemplate` response.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VoiceTemplateResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default)]
    pub creation_date: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_substitutions: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language_code: Option<String>,
    #[serde(default)]
    pub last_modified_date: String,
    #[serde(rename = "tags", default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_description: Option<String>,
    #[serde(default)]
    pub template_name: String,
    /// `VOICE`.
    #[serde(default)]
    pub template_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice_id: Option<String>,
}

impl VoiceTemplateRequest {
    /// `Body`.
    pub fn parts(&self) -> Vec<Part<'_>> {
        body_part(self.body.as_deref())
    }
}

impl VoiceTemplateResponse {
    /// `Body`.
    pub fn parts(&self) -> Vec<Part<'_>> {
        body_part(self.body.as_deref())
    }
}

fn body_part(body: Option<&str>) -> Vec<Part<'_>> {
    let mut parts = Vec::new();
    push_part(&mut parts, "Body".into(), body, Escape::Plain);
    parts
}

// ---------------------------------------------------------------------------
// Push
// ---------------------------------------------------------------------------

/// Body of `CreatePushTemplate` / `UpdatePushTemplate`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PushNotificationTemplateRequest {
    #[serde(rename = "ADM", default, skip_serializing_if = "Option::is_none")]
    pub adm: Option<AndroidPushNotificationTemplate>,
    #[serde(rename = "APNS", default, skip_serializing_if = "Option::is_none")]
    pub apns: Option<APNSPushNotificationTemplate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baidu: Option<AndroidPushNotificationTemplate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<DefaultPushNotificationTemplate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_substitutions: Option<String>,
    #[serde(rename = "GCM", default, skip_serializing_if = "Option::is_none")]
    pub gcm: Option<AndroidPushNotificationTemplate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recommender_id: Option<String>,
    #[serde(rename = "tags", default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_description: Option<String>,
}

/// Body of the `GetPushTemplate` response.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PushNotificationTemplateResponse {
    #[serde(rename = "ADM", default, skip_serializing_if = "Option::is_none")]
    pub adm: Option<AndroidPushNotificationTemplate>,
    #[serde(rename = "APNS", default, skip_serializing_if = "Option::is_none")]
    pub apns: Option<APNSPushNotificationTemplate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baidu: Option<AndroidPushNotificationTemplate>,
    #[serde(default)]
    pub creation_date: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<DefaultPushNotificationTemplate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_substitutions: Option<String>,
    #[serde(rename = "GCM", default, skip_serializing_if = "Option::is_none")]
    pub gcm: Option<AndroidPushNotificationTemplate>,
    #[serde(default)]
    pub last_modified_date: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recommender_id: Option<String>,
    #[serde(rename = "tags", default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_description: Option<String>,
    #[serde(default)]
    pub template_name: String,
    /// `PUSH`.
    #[serde(default)]
    pub template_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// The `ADM`, `Baidu` and `GCM` slots of a push template.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AndroidPushNotificationTemplate {
    /// `OPEN_APP` | `DEEP_LINK` | `URL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_icon_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub small_image_icon_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sound: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// The `APNS` slot of a push template.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct APNSPushNotificationTemplate {
    /// `OPEN_APP` | `DEEP_LINK` | `URL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sound: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// The `Default` slot of a push template, used where no channel slot is set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DefaultPushNotificationTemplate {
    /// `OPEN_APP` | `DEEP_LINK` | `URL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sound: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// The members of one push slot, whatever its shape.
struct Slot<'a> {
    name: &'static str,
    action: Option<&'a str>,
    title: Option<&'a str>,
    body: Option<&'a str>,
    raw_content: Option<&'a str>,
    sound: Option<&'a str>,
    /// URL-ish members, by member name.
    urls: Vec<(&'static str, Option<&'a str>)>,
    text_max: usize,
}

impl AndroidPushNotificationTemplate {
    fn slot(&self, name: &'static str) -> Slot<'_> {
        Slot {
            name,
            action: self.action.as_deref(),
            title: self.title.as_deref(),
            body: self.body.as_deref(),
            raw_content: self.raw_content.as_deref(),
            sound: self.sound.as_deref(),
            urls: vec![
                ("Url", self.url.as_deref()),
                ("ImageUrl", self.image_url.as_deref()),
                ("ImageIconUrl", self.image_icon_url.as_deref()),
                ("SmallImageIconUrl", self.small_image_icon_url.as_deref()),
            ],
            text_max: PUSH_ANDROID_CHARS_MAX,
        }
    }
}

impl APNSPushNotificationTemplate {
    fn slot(&self) -> Slot<'_> {
        Slot {
            name: "APNS",
            action: self.action.as_deref(),
            title: self.title.as_deref(),
            body: self.body.as_deref(),
            raw_content: self.raw_content.as_deref(),
            sound: self.sound.as_deref(),
            urls: vec![
                ("Url", self.url.as_deref()),
                ("MediaUrl", self.media_url.as_deref()),
            ],
            text_max: PUSH_APNS_CHARS_MAX,
        }
    }
}

impl DefaultPushNotificationTemplate {
    fn slot(&self) -> Slot<'_> {
        Slot {
            name: "Default",
            action: self.action.as_deref(),
            title: self.title.as_deref(),
            body: self.body.as_deref(),
            raw_content: None,
            sound: self.sound.as_deref(),
            urls: vec![("Url", self.url.as_deref())],
            text_max: PUSH_DEFAULT_CHARS_MAX,
        }
    }
}

fn push_slots<'a>(
    adm: Option<&'a AndroidPushNotificationTemplate>,
    apns: Option<&'a APNSPushNotificationTemplate>,
    baidu: Option<&'a AndroidPushNotificationTemplate>,
    default: Option<&'a DefaultPushNotificationTemplate>,
    gcm: Option<&'a AndroidPushNotificationTemplate>,
) -> Vec<Slot<'a>> {
    let mut slots = Vec::new();
    slots.extend(adm.map(|s| s.slot("ADM")));
    slots.extend(apns.map(APNSPushNotificationTemplate::slot));
    slots.extend(baidu.map(|s| s.slot("Baidu")));
    slots.extend(default.map(DefaultPushNotificationTemplate::slot));
    slots.extend(gcm.map(|s| s.slot("GCM")));
    slots
}

/// `{slot}.Title`, `.Body`, `.RawContent` and the URL members; not `Action`
/// or `Sound`.
fn slot_parts<'a>(slots: &[Slot<'a>]) -> Vec<Part<'a>> {
    let mut parts = Vec::new();
    for s in slots {
        push_part(
            &mut parts,
            format!("{}.Title", s.name),
            s.title,
            Escape::Plain,
        );
        push_part(
            &mut parts,
            format!("{}.Body", s.name),
            s.body,
            Escape::Plain,
        );
        for (member, value) in &s.urls {
            push_part(
                &mut parts,
                format!("{}.{member}", s.name),
                *value,
                Escape::Plain,
            );
        }
        push_part(
            &mut parts,
            format!("{}.RawContent", s.name),
            s.raw_content,
            Escape::Plain,
        );
    }
    parts
}

impl PushNotificationTemplateRequest {
    fn slots(&self) -> Vec<Slot<'_>> {
        push_slots(
            self.adm.as_ref(),
            self.apns.as_ref(),
            self.baidu.as_ref(),
            self.default.as_ref(),
            self.gcm.as_ref(),
        )
    }

    /// `{slot}.Title`, `{slot}.Body`, `{slot}.RawContent` and the slot's URL
    /// members, for slots `ADM`, `APNS`, `Baidu`, `Default`, `GCM`.
    pub fn parts(&self) -> Vec<Part<'_>> {
        slot_parts(&self.slots())
    }
}

impl PushNotificationTemplateResponse {
    /// As [`PushNotificationTemplateRequest::parts`].
    pub fn parts(&self) -> Vec<Part<'_>> {
        slot_parts(&push_slots(
            self.adm.as_ref(),
            self.apns.as_ref(),
            self.baidu.as_ref(),
            self.default.as_ref(),
            self.gcm.as_ref(),
        ))
    }
}

// ---------------------------------------------------------------------------
// In-app
// ---------------------------------------------------------------------------

/// Body of `CreateInAppTemplate` / `UpdateInAppTemplate`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InAppTemplateRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Vec<InAppMessageContent>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_config: Option<BTreeMap<String, String>>,
    /// See [`IN_APP_LAYOUTS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout: Option<String>,
    #[serde(rename = "tags", default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_description: Option<String>,
}

/// Body of the `GetInAppTemplate` response.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InAppTemplateResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Vec<InAppMessageContent>>,
    #[serde(default)]
    pub creation_date: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_config: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub last_modified_date: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout: Option<String>,
    #[serde(rename = "tags", default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_description: Option<String>,
    #[serde(default)]
    pub template_name: String,
    /// `INAPP`.
    #[serde(default)]
    pub template_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// One modal of an in-app message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InAppMessageContent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub background_color: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_config: Option<InAppMessageBodyConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_config: Option<InAppMessageHeaderConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_btn: Option<InAppMessageButton>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secondary_btn: Option<InAppMessageButton>,
}

/// Body text of an in-app modal. `Alignment`, `Body`, `TextColor` are required.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InAppMessageBodyConfig {
    /// `LEFT` | `CENTER` | `RIGHT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alignment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_color: Option<String>,
}

/// Header of an in-app modal. `Alignment`, `Header`, `TextColor` are required.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InAppMessageHeaderConfig {
    /// `LEFT` | `CENTER` | `RIGHT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alignment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_color: Option<String>,
}

/// A button of an in-app modal, with per-platform overrides.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InAppMessageButton {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub android: Option<OverrideButtonConfiguration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_config: Option<DefaultButtonConfiguration>,
    #[serde(rename = "IOS", default, skip_serializing_if = "Option::is_none")]
    pub ios: Option<OverrideButtonConfiguration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web: Option<OverrideButtonConfiguration>,
}

/// A button's default look and action. `ButtonAction` and `Text` are required.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DefaultButtonConfiguration {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub background_color: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub border_radius: Option<i32>,
    /// `LINK` | `DEEP_LINK` | `CLOSE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub button_action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_color: Option<String>,
}

/// A platform's override of a button's action. `ButtonAction` is required.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct OverrideButtonConfiguration {
    /// `LINK` | `DEEP_LINK` | `CLOSE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub button_action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

fn in_app_parts(content: Option<&[InAppMessageContent]>) -> Vec<Part<'_>> {
    let mut parts = Vec::new();
    for (i, c) in content.unwrap_or_default().iter().enumerate() {
        let p = format!("Content[{i}]");
        push_part(
            &mut parts,
            format!("{p}.HeaderConfig.Header"),
            c.header_config.as_ref().and_then(|h| h.header.as_deref()),
            Escape::Plain,
        );
        push_part(
            &mut parts,
            format!("{p}.BodyConfig.Body"),
            c.body_config.as_ref().and_then(|b| b.body.as_deref()),
            Escape::Plain,
        );
        push_part(
            &mut parts,
            format!("{p}.ImageUrl"),
            c.image_url.as_deref(),
            Escape::Plain,
        );
        for (which, btn) in [
            ("PrimaryBtn", &c.primary_btn),
            ("SecondaryBtn", &c.secondary_btn),
        ] {
            let Some(btn) = btn else { continue };
            let b = format!("{p}.{which}");
            if let Some(d) = &btn.default_config {
                push_part(
                    &mut parts,
                    format!("{b}.DefaultConfig.Text"),
                    d.text.as_deref(),
                    Escape::Plain,
                );
                push_part(
                    &mut parts,
                    format!("{b}.DefaultConfig.Link"),
                    d.link.as_deref(),
                    Escape::Plain,
                );
            }
            for (platform, o) in [
                ("Android", &btn.android),
                ("IOS", &btn.ios),
                ("Web", &btn.web),
            ] {
                push_part(
                    &mut parts,
                    format!("{b}.{platform}.Link"),
                    o.as_ref().and_then(|o| o.link.as_deref()),
                    Escape::Plain,
                );
            }
        }
    }
    parts
}

impl InAppTemplateRequest {
    /// Per modal `i`: `Content[i].HeaderConfig.Header`, `.BodyConfig.Body`,
    /// `.ImageUrl`, and per button the default `Text` and `Link` and the
    /// platform override `Link`s.
    pub fn parts(&self) -> Vec<Part<'_>> {
        in_app_parts(self.content.as_deref())
    }
}

impl InAppTemplateResponse {
    /// As [`InAppTemplateRequest::parts`].
    pub fn parts(&self) -> Vec<Part<'_>> {
        in_app_parts(self.content.as_deref())
    }
}

// ---------------------------------------------------------------------------
// Listing, versions, acknowledgements
// ---------------------------------------------------------------------------

/// One item of `ListTemplates`. AWS leaves out `Arn`, `DefaultSubstitutions`,
/// `tags` and `TemplateDescription` here (model doc).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TemplateResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    #[serde(default)]
    pub creation_date: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_substitutions: Option<String>,
    #[serde(default)]
    pub last_modified_date: String,
    #[serde(rename = "tags", default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_description: Option<String>,
    #[serde(default)]
    pub template_name: String,
    #[serde(default)]
    pub template_type: String,
    /// The active version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// Body of the `ListTemplates` response.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TemplatesResponse {
    #[serde(default)]
    pub item: Vec<TemplateResponse>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// One item of `ListTemplateVersions`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TemplateVersionResponse {
    #[serde(default)]
    pub creation_date: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_substitutions: Option<String>,
    #[serde(default)]
    pub last_modified_date: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_description: Option<String>,
    #[serde(default)]
    pub template_name: String,
    #[serde(default)]
    pub template_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// Body of the `ListTemplateVersions` response.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TemplateVersionsResponse {
    #[serde(default)]
    pub item: Vec<TemplateVersionResponse>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
    #[serde(rename = "RequestID", default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// Body of the `Create{Email,Sms,Push,Voice}Template` responses.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateTemplateMessageBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(rename = "RequestID", default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// Body of the `CreateInAppTemplate` response: the model's separate shape
/// with the same members as [`CreateTemplateMessageBody`].
pub type TemplateCreateMessageBody = CreateTemplateMessageBody;

/// Body of `UpdateTemplateActiveVersion`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TemplateActiveVersionRequest {
    /// Required here (checked by [`template_active_version_request`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

// ---------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------

type Res = Result<(), ValidationError>;

fn err(path: &str, msg: impl std::fmt::Display) -> ValidationError {
    ValidationError(format!("{path}: {msg}"))
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

fn push_part<'a>(parts: &mut Vec<Part<'a>>, name: String, source: Option<&'a str>, e: Escape) {
    if let Some(s) = source {
        parts.push((name, s, e));
    }
}

fn one_of(path: &str, value: &str, allowed: &[&str]) -> Res {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(err(
            path,
            format!("{value:?} is not one of {}", allowed.join(", ")),
        ))
    }
}

fn at_most(path: &str, value: Option<&str>, max: usize) -> Res {
    match value {
        Some(v) if chars(v) > max => Err(err(path, format!("longer than {max} characters"))),
        _ => Ok(()),
    }
}

fn required<'a>(path: &str, value: Option<&'a str>) -> Result<&'a str, ValidationError> {
    match value {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(err(path, "required")),
    }
}

/// A template name (path segment `{template-name}`): 1 to 128 characters,
/// starting with an ASCII letter or digit, then letters, digits, `_` or `-`
/// (model doc of `TemplateName`; names are case sensitive).
pub fn template_name(name: &str) -> Res {
    let Some(first) = name.chars().next() else {
        return Err(err("TemplateName", "required"));
    };
    if chars(name) > TEMPLATE_NAME_CHARS_MAX {
        return Err(err(
            "TemplateName",
            format!("longer than {TEMPLATE_NAME_CHARS_MAX} characters"),
        ));
    }
    if !first.is_ascii_alphanumeric() {
        return Err(err("TemplateName", "must start with a letter or digit"));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        return Err(err(
            "TemplateName",
            format!("{bad:?} is not allowed: use letters, digits, _ and -"),
        ));
    }
    Ok(())
}

/// A template version (`?version=`, `TemplateActiveVersionRequest.Version`):
/// a positive integer without sign or leading zeros, as Pinpoint numbers
/// versions (`"1"`, `"2"`, …).
pub fn template_version(path: &str, version: &str) -> Res {
    let ok = !version.is_empty()
        && version.len() <= 10
        && version.bytes().all(|b| b.is_ascii_digit())
        && !version.starts_with('0');
    if ok {
        Ok(())
    } else {
        Err(err(path, format!("{version:?} is not a template version")))
    }
}

/// `DefaultSubstitutions`: a JSON object (as a string) of variable name →
/// default value, at most [`DEFAULT_SUBSTITUTIONS_CHARS_MAX`] characters.
/// Returns the parsed object for [`crate::render::context`].
pub fn parse_default_substitutions(s: &str) -> Result<Value, ValidationError> {
    const PATH: &str = "DefaultSubstitutions";
    if chars(s) > DEFAULT_SUBSTITUTIONS_CHARS_MAX {
        return Err(err(
            PATH,
            format!("longer than {DEFAULT_SUBSTITUTIONS_CHARS_MAX} characters"),
        ));
    }
    match serde_json::from_str::<Value>(s) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(err(PATH, "must be a JSON object")),
        Err(e) => Err(err(PATH, format!("is not valid JSON: {e}"))),
    }
}

/// Members every template request has.
fn common(
    default_substitutions: Option<&str>,
    description: Option<&str>,
    tags: Option<&BTreeMap<String, String>>,
    limits: &Limits,
) -> Res {
    if let Some(d) = default_substitutions {
        parse_default_substitutions(d)?;
    }
    at_most(
        "TemplateDescription",
        description,
        TEMPLATE_DESCRIPTION_CHARS_MAX,
    )?;
    if let Some(tags) = tags {
        validate::tags(tags, limits)?;
    }
    Ok(())
}

/// Every part parses as a template that renders within herald's bounds (see
/// [`crate::render::check`]).
pub fn parts_parse(parts: &[Part<'_>]) -> Res {
    for (name, source, _) in parts {
        render::check(name, source)?;
    }
    Ok(())
}

/// An email template: `Subject` + `TextPart` + `HtmlPart` within
/// [`EMAIL_TEMPLATE_CHARS_MAX`]; at most [`EMAIL_HEADERS_MAX`] headers, each
/// with a name (printable ASCII without `:`, at most 126 characters) and a value
/// (no line breaks, at most 870 characters); `DefaultSubstitutions` a JSON
/// object; tags; every part parses.
pub fn email_template_request(req: &EmailTemplateRequest, limits: &Limits) -> Res {
    common(
        req.default_substitutions.as_deref(),
        req.template_description.as_deref(),
        req.tags.as_ref(),
        limits,
    )?;
    let total: usize = [&req.subject, &req.text_part, &req.html_part]
        .into_iter()
        .flatten()
        .map(|s| chars(s))
        .sum();
    if total > EMAIL_TEMPLATE_CHARS_MAX {
        return Err(ValidationError(format!(
            "Subject, TextPart and HtmlPart have {total} characters, more than {EMAIL_TEMPLATE_CHARS_MAX}"
        )));
    }
    at_most(
        "RecommenderId",
        req.recommender_id.as_deref(),
        TEMPLATE_FIELD_CHARS_MAX,
    )?;
    if let Some(headers) = &req.headers {
        headers_ok(headers)?;
    }
    parts_parse(&req.parts())
}

fn headers_ok(headers: &[MessageHeader]) -> Res {
    if headers.len() > EMAIL_HEADERS_MAX {
        return Err(err(
            "Headers",
            format!(
                "{} headers exceed the limit of {EMAIL_HEADERS_MAX}",
                headers.len()
            ),
        ));
    }
    for (i, h) in headers.iter().enumerate() {
        let path = format!("Headers[{i}].Name");
        let name = required(&path, h.name.as_deref())?;
        at_most(&path, Some(name), HEADER_NAME_CHARS_MAX)?;
        if !name.bytes().all(|b| (33..=126).contains(&b) && b != b':') {
            return Err(err(&path, "must be printable ASCII without spaces or ':'"));
        }
        crate::validate::custom_header_name(&path, name)?;
        let path = format!("Headers[{i}].Value");
        let value = h.value.as_deref().ok_or_else(|| err(&path, "required"))?;
        at_most(&path, Some(value), HEADER_VALUE_CHARS_MAX)?;
        if value.contains(['\r', '\n']) {
            return Err(err(&path, "must not contain line breaks"));
        }
    }
    Ok(())
}

/// An SMS template: `Body` within [`SMS_TEMPLATE_CHARS_MAX`], common members,
/// and the body parses.
pub fn sms_template_request(req: &SMSTemplateRequest, limits: &Limits) -> Res {
    common(
        req.default_substitutions.as_deref(),
        req.template_description.as_deref(),
        req.tags.as_ref(),
        limits,
    )?;
    at_most("Body", req.body.as_deref(), SMS_TEMPLATE_CHARS_MAX)?;
    at_most(
        "RecommenderId",
        req.recommender_id.as_deref(),
        TEMPLATE_FIELD_CHARS_MAX,
    )?;
    parts_parse(&req.parts())
}

/// A voice template: `Body` within [`VOICE_TEMPLATE_CHARS_MAX`], common
/// members, and the body parses. `LanguageCode` and `VoiceId` are Amazon Polly
/// names and are not checked against a list.
pub fn voice_template_request(req: &VoiceTemplateRequest, limits: &Limits) -> Res {
    common(
        req.default_substitutions.as_deref(),
        req.template_description.as_deref(),
        req.tags.as_ref(),
        limits,
    )?;
    at_most("Body", req.body.as_deref(), VOICE_TEMPLATE_CHARS_MAX)?;
    at_most(
        "LanguageCode",
        req.language_code.as_deref(),
        TEMPLATE_FIELD_CHARS_MAX,
    )?;
    at_most("VoiceId", req.voice_id.as_deref(), TEMPLATE_FIELD_CHARS_MAX)?;
    parts_parse(&req.parts())
}

/// A push template: per slot, `Action` is `OPEN_APP`, `DEEP_LINK` or `URL`;
/// `Title` + `Body` within the slot's quota (2,000 for `Default` and `APNS`,
/// 4,000 for `ADM`, `Baidu`, `GCM`); `RawContent` within
/// [`PUSH_RAW_CONTENT_CHARS_MAX`]; common members; every part parses.
pub fn push_template_request(req: &PushNotificationTemplateRequest, limits: &Limits) -> Res {
    common(
        req.default_substitutions.as_deref(),
        req.template_description.as_deref(),
        req.tags.as_ref(),
        limits,
    )?;
    at_most(
        "RecommenderId",
        req.recommender_id.as_deref(),
        TEMPLATE_FIELD_CHARS_MAX,
    )?;
    for s in req.slots() {
        if let Some(a) = s.action {
            one_of(&format!("{}.Action", s.name), a, &PUSH_ACTIONS)?;
        }
        let text = s.title.map_or(0, chars) + s.body.map_or(0, chars);
        if text > s.text_max {
            return Err(err(
                s.name,
                format!(
                    "Title and Body have {text} characters, more than {}",
                    s.text_max
                ),
            ));
        }
        at_most(
            &format!("{}.RawContent", s.name),
            s.raw_content,
            PUSH_RAW_CONTENT_CHARS_MAX,
        )?;
        at_most(
            &format!("{}.Sound", s.name),
            s.sound,
            TEMPLATE_FIELD_CHARS_MAX,
        )?;
        for (member, value) in &s.urls {
            at_most(
                &format!("{}.{member}", s.name),
                *value,
                TEMPLATE_FIELD_CHARS_MAX,
            )?;
        }
    }
    parts_parse(&req.parts())
}

/// An in-app template: `Layout` from [`IN_APP_LAYOUTS`]; at most
/// [`IN_APP_CONTENT_MAX`] modals; where present, `HeaderConfig` and
/// `BodyConfig` have their required members and an `Alignment` from
/// [`IN_APP_ALIGNMENTS`]; buttons have a `ButtonAction` from [`BUTTON_ACTIONS`]
/// and default buttons a `Text`; common members; every part parses.
pub fn in_app_template_request(req: &InAppTemplateRequest, limits: &Limits) -> Res {
    common(
        None,
        req.template_description.as_deref(),
        req.tags.as_ref(),
        limits,
    )?;
    if let Some(layout) = &req.layout {
        one_of("Layout", layout, &IN_APP_LAYOUTS)?;
    }
    let content = req.content.as_deref().unwrap_or_default();
    if content.len() > IN_APP_CONTENT_MAX {
        return Err(err(
            "Content",
            format!(
                "{} modals exceed the limit of {IN_APP_CONTENT_MAX}",
                content.len()
            ),
        ));
    }
    for (i, c) in content.iter().enumerate() {
        let p = format!("Content[{i}]");
        at_most(
            &format!("{p}.BackgroundColor"),
            c.background_color.as_deref(),
            TEMPLATE_FIELD_CHARS_MAX,
        )?;
        at_most(
            &format!("{p}.ImageUrl"),
            c.image_url.as_deref(),
            TEMPLATE_FIELD_CHARS_MAX,
        )?;
        if let Some(h) = &c.header_config {
            let hp = format!("{p}.HeaderConfig");
            let a = required(&format!("{hp}.Alignment"), h.alignment.as_deref())?;
            one_of(&format!("{hp}.Alignment"), a, &IN_APP_ALIGNMENTS)?;
            required(&format!("{hp}.Header"), h.header.as_deref())?;
            at_most(
                &format!("{hp}.Header"),
                h.header.as_deref(),
                TEMPLATE_FIELD_CHARS_MAX,
            )?;
            required(&format!("{hp}.TextColor"), h.text_color.as_deref())?;
            at_most(
                &format!("{hp}.TextColor"),
                h.text_color.as_deref(),
                TEMPLATE_FIELD_CHARS_MAX,
            )?;
        }
        if let Some(b) = &c.body_config {
            let bp = format!("{p}.BodyConfig");
            let a = required(&format!("{bp}.Alignment"), b.alignment.as_deref())?;
            one_of(&format!("{bp}.Alignment"), a, &IN_APP_ALIGNMENTS)?;
            required(&format!("{bp}.Body"), b.body.as_deref())?;
            at_most(
                &format!("{bp}.Body"),
                b.body.as_deref(),
                TEMPLATE_FIELD_CHARS_MAX,
            )?;
            required(&format!("{bp}.TextColor"), b.text_color.as_deref())?;
            at_most(
                &format!("{bp}.TextColor"),
                b.text_color.as_deref(),
                TEMPLATE_FIELD_CHARS_MAX,
            )?;
        }
        for (which, btn) in [
            ("PrimaryBtn", &c.primary_btn),
            ("SecondaryBtn", &c.secondary_btn),
        ] {
            if let Some(btn) = btn {
                button_ok(&format!("{p}.{which}"), btn)?;
            }
        }
    }
    for (k, v) in req.custom_config.iter().flatten() {
        at_most(
            &format!("CustomConfig[{k}]"),
            Some(v),
            TEMPLATE_FIELD_CHARS_MAX,
        )?;
    }
    parts_parse(&req.parts())
}

fn button_ok(path: &str, btn: &InAppMessageButton) -> Res {
    if let Some(d) = &btn.default_config {
        let dp = format!("{path}.DefaultConfig");
        let a = required(&format!("{dp}.ButtonAction"), d.button_action.as_deref())?;
        one_of(&format!("{dp}.ButtonAction"), a, &BUTTON_ACTIONS)?;
        required(&format!("{dp}.Text"), d.text.as_deref())?;
        for (member, value) in [
            ("Text", &d.text),
            ("Link", &d.link),
            ("BackgroundColor", &d.background_color),
            ("TextColor", &d.text_color),
        ] {
            at_most(
                &format!("{dp}.{member}"),
                value.as_deref(),
                TEMPLATE_FIELD_CHARS_MAX,
            )?;
        }
        if d.border_radius.is_some_and(|r| r < 0) {
            return Err(err(&format!("{dp}.BorderRadius"), "must not be negative"));
        }
    }
    for (platform, o) in [
        ("Android", &btn.android),
        ("IOS", &btn.ios),
        ("Web", &btn.web),
    ] {
        if let Some(o) = o {
            let op = format!("{path}.{platform}");
            let a = required(&format!("{op}.ButtonAction"), o.button_action.as_deref())?;
            one_of(&format!("{op}.ButtonAction"), a, &BUTTON_ACTIONS)?;
            at_most(
                &format!("{op}.Link"),
                o.link.as_deref(),
                TEMPLATE_FIELD_CHARS_MAX,
            )?;
        }
    }
    Ok(())
}

/// `UpdateTemplateActiveVersion`'s body: `Version` is required and a
/// template version.
pub fn template_active_version_request(req: &TemplateActiveVersionRequest) -> Res {
    let v = required("Version", req.version.as_deref())?;
    template_version("Version", v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::{context, Compiled};
    use serde_json::json;

    fn limits() -> Limits {
        Limits::default()
    }

    #[test]
    fn template_type_strings() {
        for t in TemplateType::ALL {
            assert_eq!(TemplateType::from_wire(t.as_str()), Some(t));
            assert_eq!(TemplateType::from_path_segment(t.path_segment()), Some(t));
            assert_eq!(t.as_str().to_ascii_lowercase(), t.path_segment());
            assert_eq!(serde_json::to_value(t).unwrap(), json!(t.as_str()));
            assert_eq!(t.to_string().parse::<TemplateType>().unwrap(), t);
        }
        assert_eq!(TemplateType::InApp.as_str(), "INAPP");
        assert_eq!(TemplateType::InApp.path_segment(), "inapp");
        assert_eq!(TemplateType::from_wire("email"), None);
        assert_eq!(TemplateType::from_path_segment("EMAIL"), None);
        assert_eq!(
            "IN_APP".parse::<TemplateType>().unwrap_err().0,
            "TemplateType: \"IN_APP\" is not one of EMAIL, SMS, PUSH, VOICE, INAPP"
        );
    }

    #[test]
    fn template_names() {
        for ok in ["a", "Welcome_Email-2", "9lives", &"x".repeat(128)] {
            template_name(ok).unwrap();
        }
        let cases = [
            ("", "TemplateName: required"),
            ("_lead", "TemplateName: must start with a letter or digit"),
            ("-lead", "TemplateName: must start with a letter or digit"),
            (
                "has space",
                "TemplateName: ' ' is not allowed: use letters, digits, _ and -",
            ),
            (
                "dot.ted",
                "TemplateName: '.' is not allowed: use letters, digits, _ and -",
            ),
            ("ünicode", "TemplateName: must start with a letter or digit"),
        ];
        for (name, want) in cases {
            assert_eq!(template_name(name).unwrap_err().0, want, "{name}");
        }
        assert_eq!(
            template_name(&"x".repeat(129)).unwrap_err().0,
            "TemplateName: longer than 128 characters"
        );
    }

    #[test]
    fn versions() {
        template_version("Version", "1").unwrap();
        template_version("Version", "5000").unwrap();
        for bad in ["", "0", "01", "-1", "1.0", "abc", "99999999999"] {
            assert!(template_version("Version", bad).is_err(), "{bad}");
        }
        let err = template_active_version_request(&TemplateActiveVersionRequest::default());
        assert_eq!(err.unwrap_err().0, "Version: required");
        template_active_version_request(&TemplateActiveVersionRequest {
            version: Some("3".into()),
        })
        .unwrap();
    }

    #[test]
    fn default_substitutions_must_be_a_json_object() {
        let v =
            parse_default_substitutions(r#"{"User.UserAttributes.FirstName":"friend"}"#).unwrap();
        assert_eq!(v["User.UserAttributes.FirstName"], "friend");
        assert_eq!(
            parse_default_substitutions("[1]").unwrap_err().0,
            "DefaultSubstitutions: must be a JSON object"
        );
        assert!(parse_default_substitutions("{nope")
            .unwrap_err()
            .0
            .starts_with("DefaultSubstitutions: is not valid JSON: "));
        let big = format!(
            "{{\"a\":\"{}\"}}",
            "x".repeat(DEFAULT_SUBSTITUTIONS_CHARS_MAX)
        );
        assert!(parse_default_substitutions(&big)
            .unwrap_err()
            .0
            .contains("longer than"));
        let req = SMSTemplateRequest {
            body: Some("hi".into()),
            default_substitutions: Some("\"str\"".into()),
            ..Default::default()
        };
        assert_eq!(
            sms_template_request(&req, &limits()).unwrap_err().0,
            "DefaultSubstitutions: must be a JSON object"
        );
    }

    #[test]
    fn email_request_round_trips_and_validates() {
        let body = json!({
            "DefaultSubstitutions": "{\"User.UserAttributes.FirstName\":\"friend\"}",
            "HtmlPart": "<p>Hi {{User.UserAttributes.FirstName}}</p>",
            "Subject": "Welcome {{User.UserAttributes.FirstName}}",
            "TextPart": "Hi {{User.UserAttributes.FirstName}}",
            "Headers": [{"Name": "X-Campaign", "Value": "{{Attributes.Campaign}}"}],
            "tags": {"team": "growth"},
            "TemplateDescription": "welcome mail"
        });
        let req: EmailTemplateRequest = serde_json::from_value(body.clone()).unwrap();
        assert_eq!(serde_json::to_value(&req).unwrap(), body);
        email_template_request(&req, &limits()).unwrap();
        let names: Vec<_> = req.parts().into_iter().map(|p| (p.0, p.2)).collect();
        assert_eq!(
            names,
            [
                ("Subject".to_string(), Escape::Plain),
                ("TextPart".to_string(), Escape::Plain),
                ("HtmlPart".to_string(), Escape::Html),
                ("Headers[0].Value".to_string(), Escape::Plain),
            ]
        );

        // parts compile and render with defaults
        let defaults =
            parse_default_substitutions(req.default_substitutions.as_deref().unwrap()).unwrap();
        let c = Compiled::compile(&req.parts()).unwrap();
        let ctx = context(
            None,
            "a@example.com",
            "EMAIL",
            Some(&defaults),
            &BTreeMap::new(),
        );
        assert_eq!(c.render("Subject", &ctx).unwrap(), "Welcome friend");
        assert_eq!(c.render("HtmlPart", &ctx).unwrap(), "<p>Hi friend</p>");
    }

    #[test]
    fn email_parts_must_parse() {
        let req = EmailTemplateRequest {
            subject: Some("ok".into()),
            html_part: Some("<html>\n<body>\n  {{#if x}}\n</body>".into()),
            ..Default::default()
        };
        let e = email_template_request(&req, &limits()).unwrap_err().0;
        assert!(e.starts_with("HtmlPart does not parse at line "), "{e}");
        let req = EmailTemplateRequest {
            subject: Some("Hi {{Name".into()),
            ..Default::default()
        };
        let e = email_template_request(&req, &limits()).unwrap_err().0;
        assert!(
            e.starts_with("Subject does not parse at line 1, column "),
            "{e}"
        );
        let req = EmailTemplateRequest {
            headers: Some(vec![MessageHeader {
                name: Some("X-A".into()),
                value: Some("{{#each}}".into()),
            }]),
            ..Default::default()
        };
        let e = email_template_request(&req, &limits()).unwrap_err().0;
        assert!(e.starts_with("Headers[0].Value does not parse"), "{e}");
    }

    #[test]
    fn email_sizes_and_headers() {
        let req = EmailTemplateRequest {
            html_part: Some("x".repeat(EMAIL_TEMPLATE_CHARS_MAX)),
            subject: Some("y".into()),
            ..Default::default()
        };
        assert!(email_template_request(&req, &limits())
            .unwrap_err()
            .0
            .contains("more than 500000"));
        let header = |n: &str, v: &str| MessageHeader {
            name: Some(n.into()),
            value: Some(v.into()),
        };
        let cases: Vec<(Vec<MessageHeader>, &str)> = vec![
            (
                vec![header("X-A", "v"); 16],
                "Headers: 16 headers exceed the limit of 15",
            ),
            (vec![header("", "v")], "Headers[0].Name: required"),
            (
                vec![header("Bad Name", "v")],
                "Headers[0].Name: must be printable ASCII without spaces or ':'",
            ),
            (
                vec![header("X-A:", "v")],
                "Headers[0].Name: must be printable ASCII without spaces or ':'",
            ),
            (
                vec![header(&"n".repeat(127), "v")],
                "Headers[0].Name: longer than 126 characters",
            ),
            (
                vec![header("X-A", "a\r\nBcc: x@y")],
                "Headers[0].Value: must not contain line breaks",
            ),
            (
                vec![header("X-A", &"v".repeat(871))],
                "Headers[0].Value: longer than 870 characters",
            ),
            (
                vec![MessageHeader {
                    name: Some("X-A".into()),
                    value: None,
                }],
                "Headers[0].Value: required",
            ),
        ];
        for (headers, want) in cases {
            let req = EmailTemplateRequest {
                headers: Some(headers),
                ..Default::default()
            };
            assert_eq!(email_template_request(&req, &limits()).unwrap_err().0, want);
        }
    }

    #[test]
    fn sms_and_voice() {
        let req: SMSTemplateRequest = serde_json::from_value(
            json!({"Body": "Code {{Attributes.Code}}", "RecommenderId": "r"}),
        )
        .unwrap();
        sms_template_request(&req, &limits()).unwrap();
        assert_eq!(
            req.parts(),
            [(
                "Body".to_string(),
                "Code {{Attributes.Code}}",
                Escape::Plain
            )]
        );
        let long = SMSTemplateRequest {
            body: Some("x".repeat(SMS_TEMPLATE_CHARS_MAX + 1)),
            ..Default::default()
        };
        assert_eq!(
            sms_template_request(&long, &limits()).unwrap_err().0,
            "Body: longer than 1600 characters"
        );
        let bad = SMSTemplateRequest {
            body: Some("{{/if}}".into()),
            ..Default::default()
        };
        assert!(sms_template_request(&bad, &limits())
            .unwrap_err()
            .0
            .starts_with("Body does not parse at line 1, column "));

        let v: VoiceTemplateRequest = serde_json::from_value(
            json!({"Body": "Hello {{User.UserAttributes.FirstName}}", "LanguageCode": "en-US", "VoiceId": "Joanna"}),
        )
        .unwrap();
        voice_template_request(&v, &limits()).unwrap();
        let long = VoiceTemplateRequest {
            body: Some("x".repeat(VOICE_TEMPLATE_CHARS_MAX + 1)),
            ..Default::default()
        };
        assert_eq!(
            voice_template_request(&long, &limits()).unwrap_err().0,
            "Body: longer than 10000 characters"
        );
    }

    #[test]
    fn push_request() {
        let body = json!({
            "ADM": {"Body": "adm {{Address}}", "Action": "OPEN_APP"},
            "APNS": {"Title": "T {{User.UserId}}", "Body": "B", "MediaUrl": "https://m/{{Id}}", "Sound": "default"},
            "Baidu": {"Body": "baidu"},
            "Default": {"Title": "Hi", "Body": "there", "Action": "URL", "Url": "https://x/{{Id}}"},
            "GCM": {"Title": "g", "Body": "b", "ImageUrl": "https://i", "ImageIconUrl": "https://ii", "SmallImageIconUrl": "https://s", "RawContent": "{\"data\":{\"id\":\"{{Id}}\"}}"},
            "DefaultSubstitutions": "{}",
            "TemplateDescription": "push"
        });
        let req: PushNotificationTemplateRequest = serde_json::from_value(body.clone()).unwrap();
        assert_eq!(serde_json::to_value(&req).unwrap(), body);
        push_template_request(&req, &limits()).unwrap();
        let names: Vec<String> = req.parts().into_iter().map(|p| p.0).collect();
        assert_eq!(
            names,
            [
                "ADM.Body",
                "APNS.Title",
                "APNS.Body",
                "APNS.MediaUrl",
                "Baidu.Body",
                "Default.Title",
                "Default.Body",
                "Default.Url",
                "GCM.Title",
                "GCM.Body",
                "GCM.ImageUrl",
                "GCM.ImageIconUrl",
                "GCM.SmallImageIconUrl",
                "GCM.RawContent",
            ]
        );

        let mut bad = req.clone();
        bad.gcm.as_mut().unwrap().action = Some("OPEN".into());
        assert_eq!(
            push_template_request(&bad, &limits()).unwrap_err().0,
            "GCM.Action: \"OPEN\" is not one of OPEN_APP, DEEP_LINK, URL"
        );
        let mut bad = req.clone();
        bad.default.as_mut().unwrap().body = Some("x".repeat(PUSH_DEFAULT_CHARS_MAX));
        assert_eq!(
            push_template_request(&bad, &limits()).unwrap_err().0,
            "Default: Title and Body have 2002 characters, more than 2000"
        );
        let mut ok = req.clone();
        ok.gcm.as_mut().unwrap().body = Some("x".repeat(PUSH_ANDROID_CHARS_MAX - 1));
        push_template_request(&ok, &limits()).unwrap();
        let mut bad = req.clone();
        bad.apns.as_mut().unwrap().title = Some("{{#if a}}".into());
        assert!(push_template_request(&bad, &limits())
            .unwrap_err()
            .0
            .starts_with("APNS.Title does not parse"));
    }

    #[test]
    fn in_app_request() {
        let body = json!({
            "Layout": "MIDDLE_BANNER",
            "Content": [{
                "BackgroundColor": "#FFFFFF",
                "HeaderConfig": {"Alignment": "CENTER", "Header": "Hi {{User.UserAttributes.FirstName}}", "TextColor": "#000000"},
                "BodyConfig": {"Alignment": "LEFT", "Body": "Your plan: {{Attributes.Plan}}", "TextColor": "#000000"},
                "ImageUrl": "https://img/{{Id}}.png",
                "PrimaryBtn": {
                    "DefaultConfig": {"ButtonAction": "LINK", "Text": "Go", "Link": "https://x/{{Id}}", "BorderRadius": 4},
                    "IOS": {"ButtonAction": "DEEP_LINK", "Link": "app://{{Id}}"}
                },
                "SecondaryBtn": {"DefaultConfig": {"ButtonAction": "CLOSE", "Text": "Later"}}
            }],
            "CustomConfig": {"k": "v"},
            "tags": {}
        });
        let req: InAppTemplateRequest = serde_json::from_value(body.clone()).unwrap();
        assert_eq!(serde_json::to_value(&req).unwrap(), body);
        in_app_template_request(&req, &limits()).unwrap();
        let names: Vec<String> = req.parts().into_iter().map(|p| p.0).collect();
        assert_eq!(
            names,
            [
                "Content[0].HeaderConfig.Header",
                "Content[0].BodyConfig.Body",
                "Content[0].ImageUrl",
                "Content[0].PrimaryBtn.DefaultConfig.Text",
                "Content[0].PrimaryBtn.DefaultConfig.Link",
                "Content[0].PrimaryBtn.IOS.Link",
                "Content[0].SecondaryBtn.DefaultConfig.Text",
            ]
        );

        let mut bad = req.clone();
        bad.layout = Some("SIDEBAR".into());
        assert!(in_app_template_request(&bad, &limits())
            .unwrap_err()
            .0
            .starts_with("Layout: \"SIDEBAR\" is not one of"));
        let mut bad = req.clone();
        bad.content = Some(vec![InAppMessageContent::default(); 6]);
        assert_eq!(
            in_app_template_request(&bad, &limits()).unwrap_err().0,
            "Content: 6 modals exceed the limit of 5"
        );
        let mut bad = req.clone();
        bad.content.as_mut().unwrap()[0]
            .body_config
            .as_mut()
            .unwrap()
            .alignment = None;
        assert_eq!(
            in_app_template_request(&bad, &limits()).unwrap_err().0,
            "Content[0].BodyConfig.Alignment: required"
        );
        let mut bad = req.clone();
        bad.content.as_mut().unwrap()[0]
            .primary_btn
            .as_mut()
            .unwrap()
            .ios
            .as_mut()
            .unwrap()
            .button_action = Some("OPEN".into());
        assert_eq!(
            in_app_template_request(&bad, &limits()).unwrap_err().0,
            "Content[0].PrimaryBtn.IOS.ButtonAction: \"OPEN\" is not one of LINK, DEEP_LINK, CLOSE"
        );
        let mut bad = req.clone();
        bad.content.as_mut().unwrap()[0]
            .header_config
            .as_mut()
            .unwrap()
            .header = Some("{{x".into());
        assert!(in_app_template_request(&bad, &limits())
            .unwrap_err()
            .0
            .starts_with("Content[0].HeaderConfig.Header does not parse at line 1"));
    }

    #[test]
    fn tags_and_description_are_checked() {
        let req = SMSTemplateRequest {
            tags: Some(BTreeMap::from([("aws:x".to_string(), "v".to_string())])),
            ..Default::default()
        };
        assert!(sms_template_request(&req, &limits())
            .unwrap_err()
            .0
            .contains("reserved prefix"));
        let req = SMSTemplateRequest {
            template_description: Some("d".repeat(TEMPLATE_DESCRIPTION_CHARS_MAX + 1)),
            ..Default::default()
        };
        assert_eq!(
            sms_template_request(&req, &limits()).unwrap_err().0,
            "TemplateDescription: longer than 1000 characters"
        );
    }

    #[test]
    fn responses_and_listings_serialize_like_aws() {
        let r = SMSTemplateResponse {
            arn: Some("arn:aws:mobiletargeting:us-east-1:1:templates/TestTemplate/SMS".into()),
            body: Some("hello".into()),
            creation_date: "2019-10-08T18:40:16.581Z".into(),
            last_modified_date: "2019-10-08T18:40:16.581Z".into(),
            tags: Some(BTreeMap::new()),
            template_name: "TestTemplate".into(),
            template_type: TemplateType::Sms.to_string(),
            version: Some("1".into()),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({
                "Arn": "arn:aws:mobiletargeting:us-east-1:1:templates/TestTemplate/SMS",
                "Body": "hello",
                "CreationDate": "2019-10-08T18:40:16.581Z",
                "LastModifiedDate": "2019-10-08T18:40:16.581Z",
                "tags": {},
                "TemplateName": "TestTemplate",
                "TemplateType": "SMS",
                "Version": "1"
            })
        );
        let versions = TemplateVersionsResponse {
            item: vec![TemplateVersionResponse {
                creation_date: "c".into(),
                last_modified_date: "m".into(),
                template_name: "t".into(),
                template_type: "EMAIL".into(),
                version: Some("2".into()),
                ..Default::default()
            }],
            request_id: Some("r".into()),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&versions).unwrap(),
            json!({"Item": [{"CreationDate": "c", "LastModifiedDate": "m", "TemplateName": "t", "TemplateType": "EMAIL", "Version": "2"}], "RequestID": "r"})
        );
        let created = TemplateCreateMessageBody {
            arn: Some("a".into()),
            message: Some("Created".into()),
            request_id: Some("r".into()),
        };
        assert_eq!(
            serde_json::to_value(&created).unwrap(),
            json!({"Arn": "a", "Message": "Created", "RequestID": "r"})
        );
        let list = TemplatesResponse {
            item: vec![TemplateResponse {
                template_name: "w".into(),
                template_type: "PUSH".into(),
                ..Default::default()
            }],
            next_token: None,
        };
        assert_eq!(
            serde_json::to_value(&list).unwrap(),
            json!({"Item": [{"CreationDate": "", "LastModifiedDate": "", "TemplateName": "w", "TemplateType": "PUSH"}]})
        );
        let resp: EmailTemplateResponse = serde_json::from_value(json!({
            "TemplateName": "w", "TemplateType": "EMAIL", "HtmlPart": "<b>{{x}}</b>",
            "CreationDate": "c", "LastModifiedDate": "m", "Version": "1"
        }))
        .unwrap();
        assert_eq!(
            resp.parts(),
            [("HtmlPart".to_string(), "<b>{{x}}</b>", Escape::Html)]
        );
    }
}

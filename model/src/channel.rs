//! Channel configuration rules: how an update request becomes the stored
//! channel, and the summary `GetChannels` lists. Pure; the state machine
//! applies them so that every replica decides the same.
//!
//! | field | on update |
//! |---|---|
//! | `CreationDate` | kept from the stored channel, else now |
//! | `Version` | stored version + 1, starting at 1 |
//! | `Enabled` | the request's value, else `true` |
//! | `FromAddress`, `Identity`, `ConfigurationSet`, role ARNs | the request's values (a PUT replaces them) |
//! | `Id` | `"email"`; `Platform` `"EMAIL"` |
//! | `HasCredential`, `IsArchived` | `false` |
//! | `LastModifiedDate` | now |

use crate::wire::{ChannelResponse, EmailChannelRequest, EmailChannelResponse};

/// The email channel after `req` is applied to `existing`.
pub fn email_update(
    existing: Option<&EmailChannelResponse>,
    app_id: &str,
    req: &EmailChannelRequest,
    now_iso: &str,
) -> EmailChannelResponse {
    EmailChannelResponse {
        application_id: Some(app_id.to_owned()),
        configuration_set: req.configuration_set.clone(),
        creation_date: Some(
            existing
                .and_then(|e| e.creation_date.clone())
                .unwrap_or_else(|| now_iso.to_owned()),
        ),
        enabled: Some(req.enabled.unwrap_or(true)),
        from_address: req.from_address.clone(),
        has_credential: Some(false),
        id: Some("email".into()),
        identity: req.identity.clone(),
        is_archived: Some(false),
        last_modified_by: None,
        last_modified_date: Some(now_iso.to_owned()),
        messages_per_second: None,
        platform: "EMAIL".into(),
        role_arn: req.role_arn.clone(),
        orchestration_sending_role_arn: req.orchestration_sending_role_arn.clone(),
        version: Some(
            existing
                .and_then(|e| e.version)
                .unwrap_or(0)
                .saturating_add(1),
        ),
    }
}

/// The `GetChannels` entry of an email channel.
pub fn email_summary(ch: &EmailChannelResponse) -> ChannelResponse {
    ChannelResponse {
        application_id: ch.application_id.clone(),
        creation_date: ch.creation_date.clone(),
        enabled: ch.enabled,
        has_credential: ch.has_credential,
        id: ch.id.clone(),
        is_archived: ch.is_archived,
        last_modified_by: ch.last_modified_by.clone(),
        last_modified_date: ch.last_modified_date.clone(),
        version: ch.version,
    }
}

/// herald's custom channel (`/herald/v1/apps/{app}/channels/custom`): where
/// direct sends to `CUSTOM` recipients are POSTed. Pinpoint names a
/// `CustomDeliveryConfiguration.DeliveryUri` per campaign or journey
/// activity; direct sends have none, so the app keeps a default here.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CustomChannelRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CustomChannelResponse {
    pub application_id: String,
    pub delivery_uri: String,
    pub enabled: bool,
    pub creation_date: String,
    pub last_modified_date: String,
    pub version: u32,
    /// The key receivers check `X-Herald-Signature` with; filled in by the
    /// service on reads, never stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_secret: Option<String>,
}

/// The custom channel after `req` is applied to `existing` (rules as for
/// email: creation date kept, version + 1, enabled by default).
pub fn custom_update(
    existing: Option<&CustomChannelResponse>,
    app_id: &str,
    req: &CustomChannelRequest,
    now_iso: &str,
) -> CustomChannelResponse {
    CustomChannelResponse {
        application_id: app_id.to_owned(),
        delivery_uri: req.delivery_uri.clone().unwrap_or_default(),
        enabled: req.enabled.unwrap_or(true),
        creation_date: existing
            .map(|e| e.creation_date.clone())
            .unwrap_or_else(|| now_iso.to_owned()),
        last_modified_date: now_iso.to_owned(),
        version: existing.map_or(0, |e| e.version).saturating_add(1),
        signing_secret: None,
    }
}

/// `DeliveryUri` must be an absolute `http://` or `https://` URL of at most
/// 2,048 characters.
pub fn custom_channel_request(
    req: &CustomChannelRequest,
) -> Result<(), crate::validate::ValidationError> {
    let bad = |m: &str| {
        Err(crate::validate::ValidationError(format!(
            "DeliveryUri: {m}"
        )))
    };
    match req.delivery_uri.as_deref() {
        None | Some("") => bad("required"),
        Some(u) if u.len() > 2048 => bad("at most 2048 characters"),
        Some(u)
            if !["http://", "https://"]
                .iter()
                .any(|s| u.starts_with(s) && u.len() > s.len()) =>
        {
            bad("must be an http:// or https:// URL")
        }
        Some(u) if u.chars().any(|c| c.is_whitespace() || c.is_control()) => {
            bad("must not contain spaces or control characters")
        }
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_channels_need_an_http_uri() {
        let r = |u: &str| CustomChannelRequest {
            delivery_uri: Some(u.into()),
            enabled: None,
        };
        assert!(custom_channel_request(&r("http://127.0.0.1:9000/hook")).is_ok());
        assert!(custom_channel_request(&r("https://hooks.example.com/h")).is_ok());
        for bad in ["", "https://", "ftp://x", "http://", "http://a b"] {
            assert!(custom_channel_request(&r(bad)).is_err(), "{bad}");
        }
        let first = custom_update(None, "app", &r("http://a/"), "T1");
        let second = custom_update(Some(&first), "app", &r("http://b/"), "T2");
        assert_eq!((first.version, second.version), (1, 2));
        assert_eq!(second.creation_date, "T1");
        assert!(second.enabled);
    }

    fn req(from: &str) -> EmailChannelRequest {
        EmailChannelRequest {
            from_address: Some(from.into()),
            identity: Some("arn:aws:ses:us-east-1:123456789012:identity/example.com".into()),
            ..Default::default()
        }
    }

    #[test]
    fn first_update_creates_version_one_enabled() {
        let ch = email_update(
            None,
            "app",
            &req("a@example.com"),
            "2026-11-29T10:00:00.000Z",
        );
        assert_eq!(ch.version, Some(1));
        assert_eq!(ch.enabled, Some(true));
        assert_eq!(ch.platform, "EMAIL");
        assert_eq!(
            ch.creation_date.as_deref(),
            Some("2026-11-29T10:00:00.000Z")
        );
        assert_eq!(ch.application_id.as_deref(), Some("app"));
    }

    #[test]
    fn later_updates_keep_creation_date_and_bump_version() {
        let first = email_update(
            None,
            "app",
            &req("a@example.com"),
            "2026-11-29T10:00:00.000Z",
        );
        let mut r = req("b@example.com");
        r.enabled = Some(false);
        let second = email_update(Some(&first), "app", &r, "2026-11-29T11:00:00.000Z");
        assert_eq!(second.version, Some(2));
        assert_eq!(second.creation_date, first.creation_date);
        assert_eq!(
            second.last_modified_date.as_deref(),
            Some("2026-11-29T11:00:00.000Z")
        );
        assert_eq!(second.from_address.as_deref(), Some("b@example.com"));
        assert_eq!(second.enabled, Some(false));
        assert_eq!(email_summary(&second).version, Some(2));
    }
}

/// The APNs channel types and the path segment of each one's API.
pub const APNS_CHANNELS: [(&str, &str); 4] = [
    ("APNS", "apns"),
    ("APNS_SANDBOX", "apns_sandbox"),
    ("APNS_VOIP", "apns_voip"),
    ("APNS_VOIP_SANDBOX", "apns_voip_sandbox"),
];

/// Pinpoint's `APNSChannelRequest` (and its sandbox and VoIP twins).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ApnsChannelRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_authentication_method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_key_id: Option<String>,
}

/// Pinpoint's `APNSChannelResponse`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ApnsChannelResponse {
    pub application_id: String,
    pub creation_date: String,
    pub default_authentication_method: String,
    pub enabled: bool,
    pub has_credential: bool,
    pub has_token_key: bool,
    pub id: String,
    pub is_archived: bool,
    pub last_modified_date: String,
    pub platform: String,
    pub version: u32,
}

/// Which credentials an APNs channel request brings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApnsCredentialsGiven {
    pub token: bool,
    pub certificate: bool,
}

/// Checks an APNs channel request against the stored channel: token auth
/// needs `TokenKey`, `TokenKeyId`, `TeamId` and `BundleId` together;
/// certificate auth `Certificate` and `PrivateKey` together (and `BundleId`,
/// the topic herald sends to); a channel is created with one of them, and
/// later updates may leave credentials out (the stored ones are kept).
/// Answers the authentication method to use.
pub fn apns_channel_check(
    req: &ApnsChannelRequest,
    existing: Option<&ApnsChannelResponse>,
    stored: ApnsCredentialsGiven,
) -> Result<(String, ApnsCredentialsGiven), crate::validate::ValidationError> {
    let bad = |m: &str| Err(crate::validate::ValidationError(m.to_owned()));
    let set = |f: &Option<String>| f.as_deref().is_some_and(|v| !v.trim().is_empty());
    let token_fields = [&req.token_key, &req.token_key_id, &req.team_id];
    let token = token_fields.iter().all(|f| set(f));
    if !token && token_fields.iter().any(|f| set(f)) {
        return bad("token authentication needs TokenKey, TokenKeyId and TeamId together");
    }
    let certificate = set(&req.certificate) && set(&req.private_key);
    if !certificate && (set(&req.certificate) || set(&req.private_key)) {
        return bad("certificate authentication needs Certificate and PrivateKey together");
    }
    let given = ApnsCredentialsGiven { token, certificate };
    let has = ApnsCredentialsGiven {
        token: token || (!certificate && stored.token),
        certificate: certificate || (!token && stored.certificate),
    };
    if !has.token && !has.certificate {
        return bad(
            "an APNs channel needs credentials: TokenKey, TokenKeyId, TeamId and BundleId, or Certificate and PrivateKey",
        );
    }
    if (token || certificate || existing.is_none()) && !set(&req.bundle_id) {
        return bad("BundleId is required: it is the apns-topic herald sends to");
    }
    let method = match req.default_authentication_method.as_deref() {
        Some(m) if m.eq_ignore_ascii_case("token") => "TOKEN",
        Some(m) if m.eq_ignore_ascii_case("certificate") => "CERTIFICATE",
        Some(m) => {
            return bad(&format!(
                "DefaultAuthenticationMethod {m:?} must be TOKEN or CERTIFICATE"
            ))
        }
        None if token => "TOKEN",
        None if certificate => "CERTIFICATE",
        None => existing.map_or(if has.token { "TOKEN" } else { "CERTIFICATE" }, |e| {
            e.default_authentication_method.as_str()
        }),
    };
    if (method == "TOKEN" && !has.token) || (method == "CERTIFICATE" && !has.certificate) {
        return bad(&format!(
            "DefaultAuthenticationMethod is {method} but the channel has no such credentials"
        ));
    }
    Ok((method.to_owned(), given))
}

/// The APNs channel `platform` after an update (rules as for email:
/// creation date kept, version + 1, enabled by default).
pub fn apns_update(
    existing: Option<&ApnsChannelResponse>,
    app_id: &str,
    platform: &str,
    enabled: Option<bool>,
    method: &str,
    has_token_key: bool,
    now_iso: &str,
) -> ApnsChannelResponse {
    ApnsChannelResponse {
        application_id: app_id.to_owned(),
        creation_date: existing
            .map(|e| e.creation_date.clone())
            .unwrap_or_else(|| now_iso.to_owned()),
        default_authentication_method: method.to_owned(),
        enabled: enabled.unwrap_or(true),
        has_credential: true,
        has_token_key,
        id: platform.to_ascii_lowercase(),
        is_archived: false,
        last_modified_date: now_iso.to_owned(),
        platform: platform.to_owned(),
        version: existing.map_or(0, |e| e.version).saturating_add(1),
    }
}

/// The `GetChannels` entry of an APNs channel.
pub fn apns_summary(ch: &ApnsChannelResponse) -> ChannelResponse {
    ChannelResponse {
        application_id: Some(ch.application_id.clone()),
        creation_date: Some(ch.creation_date.clone()),
        enabled: Some(ch.enabled),
        has_credential: Some(ch.has_credential),
        id: Some(ch.id.clone()),
        is_archived: Some(ch.is_archived),
        last_modified_by: None,
        last_modified_date: Some(ch.last_modified_date.clone()),
        version: Some(ch.version as i32),
    }
}

#[cfg(test)]
mod apns_tests {
    use super::*;

    fn token_req() -> ApnsChannelRequest {
        ApnsChannelRequest {
            bundle_id: Some("com.example.app".into()),
            team_id: Some("T".into()),
            token_key: Some("pem".into()),
            token_key_id: Some("K".into()),
            ..Default::default()
        }
    }

    const NONE: ApnsCredentialsGiven = ApnsCredentialsGiven {
        token: false,
        certificate: false,
    };

    #[test]
    fn a_new_channel_needs_whole_credentials_and_a_bundle_id() {
        let (method, given) = apns_channel_check(&token_req(), None, NONE).unwrap();
        assert_eq!(method, "TOKEN");
        assert!(given.token && !given.certificate);
        let half = ApnsChannelRequest {
            token_key_id: None,
            ..token_req()
        };
        assert!(apns_channel_check(&half, None, NONE)
            .unwrap_err()
            .0
            .contains("TokenKeyId"));
        let no_bundle = ApnsChannelRequest {
            bundle_id: None,
            ..token_req()
        };
        assert!(apns_channel_check(&no_bundle, None, NONE)
            .unwrap_err()
            .0
            .contains("BundleId"));
        assert!(apns_channel_check(&ApnsChannelRequest::default(), None, NONE).is_err());
        let cert = ApnsChannelRequest {
            bundle_id: Some("b".into()),
            certificate: Some("c".into()),
            private_key: Some("k".into()),
            ..Default::default()
        };
        assert_eq!(
            apns_channel_check(&cert, None, NONE).unwrap().0,
            "CERTIFICATE"
        );
        let wrong = ApnsChannelRequest {
            default_authentication_method: Some("TOKEN".into()),
            ..cert
        };
        assert!(apns_channel_check(&wrong, None, NONE).is_err());
    }

    #[test]
    fn an_update_without_credentials_keeps_the_stored_ones() {
        let stored = apns_update(None, "a", "APNS", None, "TOKEN", true, "t0");
        let disable = ApnsChannelRequest {
            enabled: Some(false),
            ..Default::default()
        };
        let had = ApnsCredentialsGiven {
            token: true,
            certificate: false,
        };
        let (method, given) = apns_channel_check(&disable, Some(&stored), had).unwrap();
        assert_eq!((method.as_str(), given), ("TOKEN", NONE));
        let next = apns_update(Some(&stored), "a", "APNS", Some(false), &method, true, "t1");
        assert_eq!(
            (next.version, next.enabled, next.creation_date.as_str()),
            (2, false, "t0")
        );
        assert_eq!(next.id, "apns");
    }
}

/// Pinpoint's `GCMChannelRequest` (FCM).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GcmChannelRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_authentication_method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_json: Option<String>,
}

/// Pinpoint's `GCMChannelResponse`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GcmChannelResponse {
    pub application_id: String,
    pub creation_date: String,
    pub default_authentication_method: String,
    pub enabled: bool,
    pub has_credential: bool,
    pub has_fcm_service_credentials: bool,
    pub id: String,
    pub is_archived: bool,
    pub last_modified_date: String,
    pub platform: String,
    pub version: u32,
}

/// Checks a GCM channel request: the legacy server key (`ApiKey`) is
/// refused (Google turned that API off), a new channel needs
/// `ServiceJson`, and `DefaultAuthenticationMethod` can only be `TOKEN`.
pub fn gcm_channel_check(
    req: &GcmChannelRequest,
    existing: Option<&GcmChannelResponse>,
) -> Result<(), crate::validate::ValidationError> {
    let bad = |m: &str| Err(crate::validate::ValidationError(m.to_owned()));
    if req.api_key.as_deref().is_some_and(|k| !k.is_empty()) {
        return bad(
            "ApiKey (the legacy FCM server key) is no longer accepted: Google turned the legacy API off; give ServiceJson, the service account JSON of the FCM HTTP v1 API",
        );
    }
    if let Some(m) = req.default_authentication_method.as_deref() {
        if !m.eq_ignore_ascii_case("token") {
            return bad("DefaultAuthenticationMethod must be TOKEN (ServiceJson); KEY is the retired legacy API");
        }
    }
    let has_json = req
        .service_json
        .as_deref()
        .is_some_and(|j| !j.trim().is_empty());
    if existing.is_none() && !has_json {
        return bad("ServiceJson is required: the service account JSON of the FCM HTTP v1 API");
    }
    Ok(())
}

/// The GCM channel after an update (creation date kept, version + 1,
/// enabled by default).
pub fn gcm_update(
    existing: Option<&GcmChannelResponse>,
    app_id: &str,
    enabled: Option<bool>,
    now_iso: &str,
) -> GcmChannelResponse {
    GcmChannelResponse {
        application_id: app_id.to_owned(),
        creation_date: existing
            .map(|e| e.creation_date.clone())
            .unwrap_or_else(|| now_iso.to_owned()),
        default_authentication_method: "TOKEN".into(),
        enabled: enabled.unwrap_or(true),
        has_credential: true,
        has_fcm_service_credentials: true,
        id: "gcm".into(),
        is_archived: false,
        last_modified_date: now_iso.to_owned(),
        platform: "GCM".into(),
        version: existing.map_or(0, |e| e.version).saturating_add(1),
    }
}

/// The `GetChannels` entry of the GCM channel.
pub fn gcm_summary(ch: &GcmChannelResponse) -> ChannelResponse {
    ChannelResponse {
        application_id: Some(ch.application_id.clone()),
        creation_date: Some(ch.creation_date.clone()),
        enabled: Some(ch.enabled),
        has_credential: Some(ch.has_credential),
        id: Some(ch.id.clone()),
        is_archived: Some(ch.is_archived),
        last_modified_by: None,
        last_modified_date: Some(ch.last_modified_date.clone()),
        version: Some(ch.version as i32),
    }
}

#[cfg(test)]
mod gcm_tests {
    use super::*;

    #[test]
    fn the_legacy_key_is_refused_and_a_new_channel_needs_service_json() {
        let legacy = GcmChannelRequest {
            api_key: Some("AIza".into()),
            ..Default::default()
        };
        assert!(gcm_channel_check(&legacy, None)
            .unwrap_err()
            .0
            .contains("legacy"));
        assert!(gcm_channel_check(&GcmChannelRequest::default(), None).is_err());
        let json = GcmChannelRequest {
            service_json: Some("{}".into()),
            ..Default::default()
        };
        assert!(gcm_channel_check(&json, None).is_ok());
        let stored = gcm_update(None, "a", None, "t0");
        let off = GcmChannelRequest {
            enabled: Some(false),
            ..Default::default()
        };
        assert!(gcm_channel_check(&off, Some(&stored)).is_ok());
        let next = gcm_update(Some(&stored), "a", Some(false), "t1");
        assert_eq!(
            (next.version, next.enabled, next.creation_date.as_str()),
            (2, false, "t0")
        );
    }
}

/// Pinpoint's `SMSChannelRequest`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SmsChannelRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub short_code: Option<String>,
}

/// Pinpoint's `SMSChannelResponse`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SmsChannelResponse {
    pub application_id: String,
    pub creation_date: String,
    pub enabled: bool,
    pub has_credential: bool,
    pub id: String,
    pub is_archived: bool,
    pub last_modified_date: String,
    pub platform: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotional_messages_per_second: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub short_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transactional_messages_per_second: Option<u32>,
    pub version: u32,
}

/// Checks an SMS channel request: `SenderId` is an alphanumeric sender
/// (1–11 characters, a letter among them), `ShortCode` 3 to 8 digits.
pub fn sms_channel_check(req: &SmsChannelRequest) -> Result<(), crate::validate::ValidationError> {
    if let Some(id) = req.sender_id.as_deref().filter(|s| !s.is_empty()) {
        crate::sms::sender_id_check(id)?;
    }
    if let Some(code) = req.short_code.as_deref().filter(|s| !s.is_empty()) {
        if !(3..=8).contains(&code.len()) || !code.chars().all(|c| c.is_ascii_digit()) {
            return Err(crate::validate::ValidationError(format!(
                "ShortCode {code:?}: 3 to 8 digits"
            )));
        }
    }
    Ok(())
}

/// The SMS channel after an update: a PUT replaces `SenderId` and
/// `ShortCode`; the rates are the node's (`[sms] messages_per_second`).
pub fn sms_update(
    existing: Option<&SmsChannelResponse>,
    app_id: &str,
    req: &SmsChannelRequest,
    messages_per_second: u32,
    now_iso: &str,
) -> SmsChannelResponse {
    let given = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
    SmsChannelResponse {
        application_id: app_id.to_owned(),
        creation_date: existing
            .map(|e| e.creation_date.clone())
            .unwrap_or_else(|| now_iso.to_owned()),
        enabled: req.enabled.unwrap_or(true),
        has_credential: false,
        id: "sms".into(),
        is_archived: false,
        last_modified_date: now_iso.to_owned(),
        platform: "SMS".into(),
        promotional_messages_per_second: Some(messages_per_second),
        sender_id: given(&req.sender_id),
        short_code: given(&req.short_code),
        transactional_messages_per_second: Some(messages_per_second),
        version: existing.map_or(0, |e| e.version).saturating_add(1),
    }
}

/// The `GetChannels` entry of the SMS channel.
pub fn sms_summary(ch: &SmsChannelResponse) -> ChannelResponse {
    ChannelResponse {
        application_id: Some(ch.application_id.clone()),
        creation_date: Some(ch.creation_date.clone()),
        enabled: Some(ch.enabled),
        has_credential: Some(ch.has_credential),
        id: Some(ch.id.clone()),
        is_archived: Some(ch.is_archived),
        last_modified_by: None,
        last_modified_date: Some(ch.last_modified_date.clone()),
        version: Some(ch.version as i32),
    }
}

#[cfg(test)]
mod sms_tests {
    use super::*;

    #[test]
    fn sms_channel_requests_are_checked_and_versioned() {
        let ok = SmsChannelRequest {
            enabled: None,
            sender_id: Some("Herald".into()),
            short_code: Some("22333".into()),
        };
        assert!(sms_channel_check(&ok).is_ok());
        for bad in [
            SmsChannelRequest {
                sender_id: Some("TooLongSender1".into()),
                ..Default::default()
            },
            SmsChannelRequest {
                sender_id: Some("12345".into()),
                ..Default::default()
            },
            SmsChannelRequest {
                short_code: Some("12".into()),
                ..Default::default()
            },
            SmsChannelRequest {
                short_code: Some("22a33".into()),
                ..Default::default()
            },
        ] {
            assert!(sms_channel_check(&bad).is_err(), "{bad:?}");
        }
        let first = sms_update(None, "a", &ok, 20, "t0");
        assert_eq!(
            (first.version, first.enabled, first.platform.as_str()),
            (1, true, "SMS")
        );
        let off = SmsChannelRequest {
            enabled: Some(false),
            ..Default::default()
        };
        let next = sms_update(Some(&first), "a", &off, 20, "t1");
        assert_eq!(
            (next.version, next.enabled, next.creation_date.as_str()),
            (2, false, "t0")
        );
        assert_eq!(next.sender_id, None);
    }
}

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

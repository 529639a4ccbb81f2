//! Size and count limits on API input.
//!
//! `Limits::default()` is Amazon Pinpoint's documented quota set (developer
//! guide "Amazon Pinpoint quotas" and the service model's doc strings; see
//! `/work/shared/reference/PINPOINT_API.md` §5.1 and §3.4). Operators may raise
//! or lower them in config; every field has a default, so a partial table
//! deserializes. Figures that AWS does not document and herald chose are marked
//! "herald" and are constants, not config.

use serde::{Deserialize, Serialize};

/// Longest endpoint id herald accepts. AWS documents no figure (only "can't
/// contain `$`, `{` or `}`"); herald: 256 characters.
pub const ENDPOINT_ID_CHARS_MAX: usize = 256;
/// Longest `User.UserId` herald accepts. Undocumented by AWS; herald: 256 characters.
pub const USER_ID_CHARS_MAX: usize = 256;
/// Longest project (app) name: 64 characters (Pinpoint user guide, "Creating a project").
pub const APP_NAME_CHARS_MAX: usize = 64;
/// Longest client event id (the key in `EventsBatch.Events`). Undocumented by AWS;
/// herald: 256 characters.
pub const EVENT_ID_CHARS_MAX: usize = 256;

/// Configurable quotas. Defaults are Pinpoint's documented values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// `EndpointBatchItem`s per `UpdateEndpointsBatch` (model doc and quotas: 100).
    pub batch_items_max: usize,
    /// Events per `PutEvents` request, across all endpoints (quotas: 100).
    pub events_per_request_max: usize,
    /// Body size of a `PutEvents` request (quotas: 4 MB).
    pub events_request_bytes_max: usize,
    /// Serialized size of one event (quotas: 1,000 KB).
    pub event_bytes_max: usize,
    /// Attribute keys plus metric keys in one event (quotas: 40).
    pub event_attribute_and_metric_keys_max: usize,
    /// Characters in an event attribute or metric key (quotas: 50).
    pub event_attribute_key_chars_max: usize,
    /// Characters in an event attribute value (quotas: 200; AWS drops such events).
    pub event_attribute_value_chars_max: usize,
    /// Distinct custom event types per app (quotas: 1,500). Enforced by the caller.
    pub event_types_per_app_max: usize,
    /// Distinct custom event attribute keys per app (quotas: 500). Enforced by the caller.
    pub event_attribute_keys_per_app_max: usize,
    /// Distinct custom event metric keys per app (quotas: 500). Enforced by the caller.
    pub event_metric_keys_per_app_max: usize,
    /// Keys in `Attributes` + `Metrics` + `User.UserAttributes` of one endpoint
    /// (quotas: 250).
    pub endpoint_attributes_max: usize,
    /// Serialized size of one endpoint (quotas: 15 KB, cannot be increased at AWS).
    pub endpoint_bytes_max: usize,
    /// Endpoints sharing one `UserId` (quotas: 15). Enforced by the caller.
    pub endpoints_per_user_max: usize,
    /// Values in one endpoint/user attribute list (quotas: 50).
    pub attribute_values_per_key_max: usize,
    /// Characters in an endpoint/user attribute or metric name (model doc: 50).
    pub attribute_name_chars_max: usize,
    /// Characters in an endpoint/user attribute value (model doc: 100).
    pub attribute_value_chars_max: usize,
    /// Tags on one resource (model doc of `TagsModel`: 50).
    pub tags_per_resource_max: usize,
    /// Characters in a tag key (model doc: 128).
    pub tag_key_chars_max: usize,
    /// Characters in a tag value (model doc: 256).
    pub tag_value_chars_max: usize,
    /// Apps (projects) per region (quotas: 100). Enforced by the caller.
    pub apps_max: usize,
    /// Any request or response body (quotas: 7 MB invocation payload).
    pub request_bytes_max: usize,
    /// `Addresses` plus `Endpoints` of one `SendMessages` request, and users
    /// of one `SendUsersMessages` request (quotas: 100 per request).
    pub send_recipients_max: usize,
    /// Headers in a `SimpleEmail` (SES: 15).
    pub email_headers_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            batch_items_max: 100,
            events_per_request_max: 100,
            events_request_bytes_max: 4 * 1024 * 1024,
            event_bytes_max: 1000 * 1024,
            event_attribute_and_metric_keys_max: 40,
            event_attribute_key_chars_max: 50,
            event_attribute_value_chars_max: 200,
            event_types_per_app_max: 1500,
            event_attribute_keys_per_app_max: 500,
            event_metric_keys_per_app_max: 500,
            endpoint_attributes_max: 250,
            endpoint_bytes_max: 15 * 1024,
            endpoints_per_user_max: 15,
            attribute_values_per_key_max: 50,
            attribute_name_chars_max: 50,
            attribute_value_chars_max: 100,
            tags_per_resource_max: 50,
            tag_key_chars_max: 128,
            tag_value_chars_max: 256,
            apps_max: 100,
            request_bytes_max: 7 * 1024 * 1024,
            send_recipients_max: 100,
            email_headers_max: 15,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_pinpoint_quotas() {
        let l = Limits::default();
        assert_eq!(l.batch_items_max, 100);
        assert_eq!(l.events_per_request_max, 100);
        assert_eq!(l.events_request_bytes_max, 4_194_304);
        assert_eq!(l.event_bytes_max, 1_024_000);
        assert_eq!(l.event_attribute_and_metric_keys_max, 40);
        assert_eq!(l.endpoint_attributes_max, 250);
        assert_eq!(l.endpoint_bytes_max, 15_360);
        assert_eq!(l.endpoints_per_user_max, 15);
        assert_eq!(l.attribute_values_per_key_max, 50);
        assert_eq!(
            (l.attribute_name_chars_max, l.attribute_value_chars_max),
            (50, 100)
        );
        assert_eq!((l.tag_key_chars_max, l.tag_value_chars_max), (128, 256));
        assert_eq!(l.tags_per_resource_max, 50);
    }

    #[test]
    fn partial_config_fills_in_defaults() {
        let l: Limits = serde_json::from_str(r#"{"batch_items_max": 500}"#).unwrap();
        assert_eq!(l.batch_items_max, 500);
        assert_eq!(l.events_per_request_max, 100);
        let back: Limits = serde_json::from_str(&serde_json::to_string(&l).unwrap()).unwrap();
        assert_eq!(back, l);
    }
}

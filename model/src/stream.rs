//! Event streams (PutEventStream, GetEventStream, DeleteEventStream): where
//! an app's events are published, and the record each event becomes.
//!
//! Pinpoint names a Kinesis or Firehose ARN; herald takes an `http://` or
//! `https://` URL (batches POSTed as JSON, signed like webhooks) or a
//! `file:///dir` directory (NDJSON files). Records follow Pinpoint's
//! event-stream JSON: `event_type`, `event_timestamp` and
//! `arrival_timestamp` (epoch ms), `event_version`, `application`,
//! `client`, `device`, `session`, `attributes`, `metrics`, `awsAccountId`.

use serde_json::{json, Value};

use crate::validate::ValidationError;
use crate::wire::Event;

/// Pinpoint's `WriteEventStream`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WriteEventStream {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_stream_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
}

/// Pinpoint's `EventStream`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EventStream {
    pub application_id: String,
    pub destination_stream_arn: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    pub last_modified_date: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated_by: Option<String>,
    pub role_arn: String,
}

/// Where a stream's records go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// POSTed in batches.
    Http(String),
    /// Appended to NDJSON files in this directory.
    Dir(String),
}

/// Reads `DestinationStreamArn`.
pub fn destination(arn: &str) -> Result<Destination, ValidationError> {
    let bad = |why: &str| {
        Err(ValidationError(format!(
            "DestinationStreamArn {arn:?}: {why} (herald publishes to an http(s):// URL or a file:///directory, not to Kinesis)"
        )))
    };
    if let Some(path) = arn.strip_prefix("file://") {
        if !path.starts_with('/') || path.split('/').any(|c| c == "..") {
            return bad("a file:// destination must be an absolute path without ..");
        }
        return Ok(Destination::Dir(path.trim_end_matches('/').to_owned()));
    }
    let lower = arn.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        let host = arn
            .split("://")
            .nth(1)
            .and_then(|r| r.split(['/', '?', '#']).next());
        if host.is_none_or(str::is_empty) || arn.chars().any(char::is_whitespace) {
            return bad("not a URL");
        }
        return Ok(Destination::Http(arn.to_owned()));
    }
    bad("unsupported destination")
}

/// Checks a `WriteEventStream`: both members are required (as in
/// Pinpoint); the role is stored, not used.
pub fn write_check(w: &WriteEventStream) -> Result<Destination, ValidationError> {
    let arn = w
        .destination_stream_arn
        .as_deref()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ValidationError("DestinationStreamArn is required".into()))?;
    if w.role_arn.as_deref().is_none_or(str::is_empty) {
        return Err(ValidationError("RoleArn is required".into()));
    }
    destination(arn)
}

/// The stream record of one event of `endpoint_id`.
pub fn record(
    account: &str,
    app_id: &str,
    endpoint_id: &str,
    event: &Event,
    event_ms: i64,
    arrival_ms: i64,
) -> Value {
    let mut r = json!({
        "event_type": event.event_type.clone().unwrap_or_default(),
        "event_timestamp": event_ms,
        "arrival_timestamp": arrival_ms,
        "event_version": "3.1",
        "application": {
            "app_id": app_id,
            "package_name": event.app_package_name,
            "title": event.app_title,
            "version_code": event.app_version_code,
            "sdk": {"name": event.sdk_name, "version": event.client_sdk_version},
        },
        "client": {"client_id": endpoint_id},
        "attributes": event.attributes.clone().unwrap_or_default(),
        "metrics": event.metrics.clone().unwrap_or_default(),
        "awsAccountId": account,
    });
    if let Some(s) = &event.session {
        r["session"] = json!({
            "session_id": s.id,
            "start_timestamp": s.start_timestamp.as_deref().and_then(|t| crate::time::parse_iso8601_ms(t).ok()),
            "stop_timestamp": s.stop_timestamp.as_deref().and_then(|t| crate::time::parse_iso8601_ms(t).ok()),
        });
    }
    strip_nulls(&mut r);
    r
}

fn strip_nulls(v: &mut Value) {
    if let Value::Object(m) = v {
        m.retain(|_, x| !x.is_null());
        for x in m.values_mut() {
            strip_nulls(x);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_are_urls_or_absolute_directories() {
        assert_eq!(
            destination("https://hooks.example.com/pinpoint").unwrap(),
            Destination::Http("https://hooks.example.com/pinpoint".into())
        );
        assert_eq!(
            destination("file:///var/lib/herald/streams/").unwrap(),
            Destination::Dir("/var/lib/herald/streams".into())
        );
        for bad in [
            "arn:aws:kinesis:us-east-1:123456789012:stream/x",
            "file://relative/dir",
            "file:///a/../etc",
            "https://",
            "ftp://x",
        ] {
            assert!(destination(bad).is_err(), "{bad}");
        }
        let w = WriteEventStream {
            destination_stream_arn: Some("https://x.example".into()),
            role_arn: None,
        };
        assert!(write_check(&w).unwrap_err().0.contains("RoleArn"));
    }

    #[test]
    fn records_follow_the_stream_format() {
        let ev: Event = serde_json::from_value(json!({
            "EventType": "purchase", "Timestamp": "2026-12-07T10:00:00Z",
            "Attributes": {"sku": "a1"}, "Metrics": {"price": 9.5},
            "Session": {"Id": "s1", "StartTimestamp": "2026-12-07T09:59:00Z"},
            "AppPackageName": "com.example"
        }))
        .unwrap();
        let r = record("000000000000", "app", "ep", &ev, 1_000, 2_000);
        assert_eq!(r["event_type"], "purchase");
        assert_eq!(
            (
                r["event_timestamp"].as_i64(),
                r["arrival_timestamp"].as_i64()
            ),
            (Some(1_000), Some(2_000))
        );
        assert_eq!(r["client"]["client_id"], "ep");
        assert_eq!(r["application"]["app_id"], "app");
        assert_eq!(r["application"]["package_name"], "com.example");
        assert_eq!(r["attributes"]["sku"], "a1");
        assert_eq!(r["metrics"]["price"], 9.5);
        assert_eq!(r["session"]["session_id"], "s1");
        assert!(
            r["session"].get("stop_timestamp").is_none(),
            "nulls are left out"
        );
        assert!(r["application"].get("title").is_none());
    }
}

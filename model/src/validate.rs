//! Input validation for the Pinpoint API.
//!
//! Every check returns a [`ValidationError`] whose message starts with the JSON
//! path of the offending member, e.g. `Item[3].Demographic.Timezone: ...` or
//! `BatchItem[ep-1].Events[evt-1].Timestamp: ...`, so the HTTP layer can return
//! it verbatim as a BadRequest message. The first error found is returned;
//! members are visited in a fixed order (maps in key order), so the same input
//! always yields the same message.
//!
//! Limits come from [`Limits`]; see that module for sources. Byte sizes are the
//! length of the value's compact JSON serialization.
//!
//! `PutEvents` is special: Pinpoint answers 202 and reports invalid endpoints
//! and events per item (status 400 inside the body). Use [`events_envelope`]
//! for the request-level checks and [`events_items`] for per-item verdicts;
//! [`events_request`] combines both into one pass/fail for callers that want
//! all-or-nothing.

use std::collections::BTreeMap;

use crate::limits::{
    Limits, APP_NAME_CHARS_MAX, ENDPOINT_ID_CHARS_MAX, EVENT_ID_CHARS_MAX, USER_ID_CHARS_MAX,
};
use crate::message::{
    DirectMessageConfiguration, MessageRequest, SendUsersMessageRequest, TemplateConfiguration,
};
use crate::time::{parse_hh_mm, parse_iso8601_ms, quote_short};
use crate::wire::{
    AttributeMap, EmailChannelRequest, EndpointBatchItem, EndpointBatchRequest, EndpointLocation,
    EndpointRequest, EndpointResponse, EndpointUser, Event, EventsBatch, EventsRequest,
    PublicEndpoint, UpdateAttributesRequest, WriteApplicationSettingsRequest,
};

/// A request is invalid; the message names the member (see the module doc).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct ValidationError(pub String);

/// The `ChannelType` enum of the service model.
pub const CHANNEL_TYPES: [&str; 13] = [
    "PUSH",
    "GCM",
    "APNS",
    "APNS_SANDBOX",
    "APNS_VOIP",
    "APNS_VOIP_SANDBOX",
    "ADM",
    "SMS",
    "VOICE",
    "EMAIL",
    "BAIDU",
    "CUSTOM",
    "IN_APP",
];
/// Documented values of `EndpointStatus`.
pub const ENDPOINT_STATUSES: [&str; 2] = ["ACTIVE", "INACTIVE"];
/// Documented values of an endpoint's `OptOut`.
pub const OPT_OUTS: [&str; 2] = ["ALL", "NONE"];
/// The `Mode` enum (`CampaignHook.Mode`).
pub const HOOK_MODES: [&str; 2] = ["DELIVERY", "FILTER"];
/// Path values of `RemoveAttributes {attribute-type}`.
pub const ATTRIBUTE_TYPES: [&str; 3] = [
    "endpoint-custom-attributes",
    "endpoint-metric-attributes",
    "endpoint-user-attributes",
];

type Res = Result<(), ValidationError>;

fn err(path: &str, msg: impl std::fmt::Display) -> ValidationError {
    if path.is_empty() {
        ValidationError(msg.to_string())
    } else {
        ValidationError(format!("{path}: {msg}"))
    }
}

fn join(prefix: &str, member: &str) -> String {
    if prefix.is_empty() {
        member.to_string()
    } else {
        format!("{prefix}.{member}")
    }
}

/// `prefix[key]`, with the key cut short so paths stay readable.
fn index(prefix: &str, key: &str) -> String {
    const KEEP: usize = 64;
    if key.chars().count() <= KEEP {
        format!("{prefix}[{key}]")
    } else {
        let cut: String = key.chars().take(KEEP).collect();
        format!("{prefix}[{cut}…]")
    }
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
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

fn iso_date(path: &str, value: &str) -> Res {
    parse_iso8601_ms(value)
        .map(|_| ())
        .map_err(|e| err(path, e))
}

/// Compact JSON length of `value`, without building the string.
pub fn json_len<T: serde::Serialize + ?Sized>(value: &T) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    // Wire types hold only strings, maps and numbers: serialization cannot fail.
    let _ = serde_json::to_writer(&mut c, value);
    c.0
}

fn size(path: &str, what: &str, bytes: usize, max: usize) -> Res {
    if bytes > max {
        Err(err(
            path,
            format!("{what} is {bytes} bytes, over the limit of {max} bytes"),
        ))
    } else {
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Endpoints
// ---------------------------------------------------------------------------

/// An endpoint id (path parameter, batch `Id`, or `PutEvents` key): non-empty,
/// at most [`ENDPOINT_ID_CHARS_MAX`] characters, no `$`, `{`, `}` (documented
/// by AWS) and no control characters (herald).
pub fn endpoint_id(id: &str) -> Res {
    endpoint_id_at("endpoint id", id)
}

fn endpoint_id_at(path: &str, id: &str) -> Res {
    if id.is_empty() {
        return Err(err(path, "must not be empty"));
    }
    if chars(id) > ENDPOINT_ID_CHARS_MAX {
        return Err(err(
            path,
            format!("longer than {ENDPOINT_ID_CHARS_MAX} characters"),
        ));
    }
    if id.contains(['$', '{', '}']) {
        return Err(err(
            path,
            format!("{} must not contain '$', '{{' or '}}'", quote_short(id)),
        ));
    }
    if has_control(id) {
        return Err(err(path, "must not contain control characters"));
    }
    Ok(())
}

/// The members shared by `EndpointRequest`, `EndpointBatchItem`, `PublicEndpoint`
/// and `EndpointResponse`.
struct Fields<'a> {
    attributes: Option<&'a AttributeMap>,
    channel_type: Option<&'a str>,
    effective_date: Option<&'a str>,
    endpoint_status: Option<&'a str>,
    location: Option<&'a EndpointLocation>,
    metrics: Option<&'a BTreeMap<String, f64>>,
    opt_out: Option<&'a str>,
    user: Option<&'a EndpointUser>,
}

macro_rules! fields_of {
    ($e:expr) => {
        Fields {
            attributes: $e.attributes.as_ref(),
            channel_type: $e.channel_type.as_deref(),
            effective_date: $e.effective_date.as_deref(),
            endpoint_status: $e.endpoint_status.as_deref(),
            location: $e.location.as_ref(),
            metrics: $e.metrics.as_ref(),
            opt_out: $e.opt_out.as_deref(),
            user: $e.user.as_ref(),
        }
    };
}

fn endpoint_fields(prefix: &str, f: &Fields<'_>, limits: &Limits) -> Res {
    if let Some(ct) = f.channel_type {
        one_of(&join(prefix, "ChannelType"), ct, &CHANNEL_TYPES)?;
    }
    if let Some(s) = f.endpoint_status {
        one_of(&join(prefix, "EndpointStatus"), s, &ENDPOINT_STATUSES)?;
    }
    if let Some(o) = f.opt_out {
        one_of(&join(prefix, "OptOut"), o, &OPT_OUTS)?;
    }
    if let Some(d) = f.effective_date {
        iso_date(&join(prefix, "EffectiveDate"), d)?;
    }
    if let Some(loc) = f.location {
        location(&join(prefix, "Location"), loc)?;
    }
    let mut keys = 0;
    if let Some(a) = f.attributes {
        attribute_map(&join(prefix, "Attributes"), a, limits)?;
        keys += a.len();
    }
    if let Some(m) = f.metrics {
        metric_map(&join(prefix, "Metrics"), m, limits.attribute_name_chars_max)?;
        keys += m.len();
    }
    if let Some(u) = f.user {
        if let Some(id) = u.user_id.as_deref() {
            let path = join(prefix, "User.UserId");
            if chars(id) > USER_ID_CHARS_MAX {
                return Err(err(
                    &path,
                    format!("longer than {USER_ID_CHARS_MAX} characters"),
                ));
            }
            if has_control(id) {
                return Err(err(&path, "must not contain control characters"));
            }
        }
        if let Some(a) = u.user_attributes.as_ref() {
            attribute_map(&join(prefix, "User.UserAttributes"), a, limits)?;
            keys += a.len();
        }
    }
    if keys > limits.endpoint_attributes_max {
        return Err(err(
            &join(prefix, "Attributes"),
            format!(
                "{keys} keys in Attributes, Metrics and User.UserAttributes exceed the limit of {} per endpoint",
                limits.endpoint_attributes_max
            ),
        ));
    }
    Ok(())
}

fn location(path: &str, loc: &EndpointLocation) -> Res {
    if let Some(lat) = loc.latitude {
        if !(-90.0..=90.0).contains(&lat) {
            return Err(err(
                &join(path, "Latitude"),
                format!("{lat} is outside -90..=90"),
            ));
        }
    }
    if let Some(lon) = loc.longitude {
        if !(-180.0..=180.0).contains(&lon) {
            return Err(err(
                &join(path, "Longitude"),
                format!("{lon} is outside -180..=180"),
            ));
        }
    }
    Ok(())
}

fn attribute_name(path: &str, name: &str, max: usize) -> Res {
    if name.is_empty() {
        return Err(err(path, "attribute names must not be empty"));
    }
    if chars(name) > max {
        return Err(err(
            path,
            format!(
                "attribute name {} is longer than {max} characters",
                quote_short(name)
            ),
        ));
    }
    Ok(())
}

/// `map<string, list<string>>`: names 1..=50 characters, at most 50 values of
/// at most 100 characters each. An empty list is allowed (it removes the
/// attribute, see `endpoint::merge_update`).
fn attribute_map(path: &str, map: &AttributeMap, limits: &Limits) -> Res {
    for (name, values) in map {
        let at = index(path, name);
        attribute_name(path, name, limits.attribute_name_chars_max)?;
        if values.len() > limits.attribute_values_per_key_max {
            return Err(err(
                &at,
                format!(
                    "{} values exceed the limit of {} per attribute",
                    values.len(),
                    limits.attribute_values_per_key_max
                ),
            ));
        }
        for v in values {
            if chars(v) > limits.attribute_value_chars_max {
                return Err(err(
                    &at,
                    format!(
                        "value {} is longer than {} characters",
                        quote_short(v),
                        limits.attribute_value_chars_max
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn metric_map(path: &str, map: &BTreeMap<String, f64>, name_max: usize) -> Res {
    for (name, v) in map {
        attribute_name(path, name, name_max)?;
        if !v.is_finite() {
            return Err(err(
                &index(path, name),
                "metric values must be finite numbers",
            ));
        }
    }
    Ok(())
}

/// An `UpdateEndpoint` body: enum members (`ChannelType`, `EndpointStatus`,
/// `OptOut`), `EffectiveDate` as ISO-8601, `Location` ranges, attribute and
/// metric names/values/counts, `User.UserId` length, and the body's JSON size
/// (at most `endpoint_bytes_max`). Limits that depend on the stored endpoint
/// (total keys after the merge) are checked by [`stored_endpoint`].
pub fn endpoint_request(req: &EndpointRequest, limits: &Limits) -> Res {
    endpoint_fields("", &fields_of!(req), limits)?;
    size("", "the endpoint", json_len(req), limits.endpoint_bytes_max)
}

/// `PutEvents` endpoint data, checked like an `EndpointRequest`.
pub fn public_endpoint(ep: &PublicEndpoint, limits: &Limits) -> Res {
    public_endpoint_at("Endpoint", ep, limits)
}

fn public_endpoint_at(path: &str, ep: &PublicEndpoint, limits: &Limits) -> Res {
    endpoint_fields(path, &fields_of!(ep), limits)?;
    size(
        path,
        "the endpoint",
        json_len(ep),
        limits.endpoint_bytes_max,
    )
}

fn batch_item(path: &str, item: &EndpointBatchItem, limits: &Limits) -> Res {
    match item.id.as_deref() {
        None => return Err(err(&join(path, "Id"), "required")),
        Some(id) => endpoint_id_at(&join(path, "Id"), id)?,
    }
    endpoint_fields(path, &fields_of!(item), limits)?;
    size(
        path,
        "the endpoint",
        json_len(item),
        limits.endpoint_bytes_max,
    )
}

/// An `UpdateEndpointsBatch` body: 1..=`batch_items_max` items, each with a
/// valid `Id` and valid fields (errors are prefixed `Item[i]`).
///
/// Duplicate ids are allowed, as in a stream of single `UpdateEndpoint` calls:
/// the caller applies items in list order, so a later item with the same id
/// updates the result of the earlier one (callers that split a batch by shard
/// must keep the relative order of items).
pub fn endpoint_batch(req: &EndpointBatchRequest, limits: &Limits) -> Res {
    let items = req.item.as_ref().ok_or_else(|| err("Item", "required"))?;
    if items.is_empty() {
        return Err(err("Item", "must contain at least one endpoint"));
    }
    if items.len() > limits.batch_items_max {
        return Err(err(
            "Item",
            format!(
                "{} items exceed the limit of {} per request",
                items.len(),
                limits.batch_items_max
            ),
        ));
    }
    for (i, item) in items.iter().enumerate() {
        batch_item(&format!("Item[{i}]"), item, limits)?;
    }
    Ok(())
}

/// A stored endpoint after `endpoint::merge_update`: at most
/// `endpoint_attributes_max` keys across `Attributes`, `Metrics` and
/// `User.UserAttributes`, and at most `endpoint_bytes_max` bytes of JSON.
/// The caller rejects the update (BadRequest) when this fails.
pub fn stored_endpoint(ep: &EndpointResponse, limits: &Limits) -> Res {
    let keys = ep.attributes.as_ref().map_or(0, BTreeMap::len)
        + ep.metrics.as_ref().map_or(0, BTreeMap::len)
        + ep.user
            .as_ref()
            .and_then(|u| u.user_attributes.as_ref())
            .map_or(0, BTreeMap::len);
    if keys > limits.endpoint_attributes_max {
        return Err(err(
            "Attributes",
            format!(
                "the endpoint would have {keys} keys in Attributes, Metrics and User.UserAttributes, over the limit of {}",
                limits.endpoint_attributes_max
            ),
        ));
    }
    size("", "the endpoint", json_len(ep), limits.endpoint_bytes_max)
}

// ---------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------

/// Per-item outcome of a `PutEvents` batch, for building `EventsResponse`
/// (`Ok` → 202 "Accepted", `Err` → 400 with the message).
#[derive(Debug, Clone, PartialEq)]
pub struct BatchVerdict {
    /// The endpoint data (`EndpointItemResponse`). When it is `Err`, the caller
    /// does not upsert the endpoint.
    pub endpoint: Res,
    /// Client event id → outcome (`EventsItemResponse`).
    pub events: BTreeMap<String, Res>,
}

/// Request-level `PutEvents` checks, failing the whole request: `BatchItem`
/// present and non-empty, every batch has its model-required `Endpoint` and
/// `Events`, and at most `events_per_request_max` events in total. The body
/// size limit (`events_request_bytes_max`) is the HTTP layer's: it has the
/// raw length.
pub fn events_envelope(req: &EventsRequest, limits: &Limits) -> Res {
    let batches = req
        .batch_item
        .as_ref()
        .ok_or_else(|| err("BatchItem", "required"))?;
    if batches.is_empty() {
        return Err(err("BatchItem", "must contain at least one endpoint"));
    }
    let mut total = 0;
    for (id, batch) in batches {
        let path = index("BatchItem", id);
        if batch.endpoint.is_none() {
            return Err(err(&join(&path, "Endpoint"), "required"));
        }
        let events = batch
            .events
            .as_ref()
            .ok_or_else(|| err(&join(&path, "Events"), "required"))?;
        total += events.len();
    }
    if total > limits.events_per_request_max {
        return Err(err(
            "BatchItem",
            format!(
                "{total} events exceed the limit of {} per request",
                limits.events_per_request_max
            ),
        ));
    }
    Ok(())
}

/// Per-item `PutEvents` checks, in key order. An invalid endpoint id (the map
/// key) fails the endpoint and every event of its batch; invalid endpoint data
/// fails only the endpoint (its events are still judged on their own).
/// Assumes [`events_envelope`] passed; missing members are reported per item.
pub fn events_items(req: &EventsRequest, limits: &Limits) -> BTreeMap<String, BatchVerdict> {
    let mut out = BTreeMap::new();
    let empty = BTreeMap::new();
    for (id, batch) in req.batch_item.iter().flatten() {
        let path = index("BatchItem", id);
        let events = batch.events.as_ref().unwrap_or(&empty);
        let verdict = match endpoint_id_at(&path, id) {
            Err(e) => BatchVerdict {
                endpoint: Err(e.clone()),
                events: events.keys().map(|k| (k.clone(), Err(e.clone()))).collect(),
            },
            Ok(()) => batch_verdict(&path, batch, events, limits),
        };
        out.insert(id.clone(), verdict);
    }
    out
}

fn batch_verdict(
    path: &str,
    batch: &EventsBatch,
    events: &BTreeMap<String, Event>,
    limits: &Limits,
) -> BatchVerdict {
    let endpoint = match batch.endpoint.as_ref() {
        None => Err(err(&join(path, "Endpoint"), "required")),
        Some(ep) => public_endpoint_at(&join(path, "Endpoint"), ep, limits),
    };
    let events = events
        .iter()
        .map(|(eid, ev)| {
            let at = index(&join(path, "Events"), eid);
            (
                eid.clone(),
                event_id_at(&at, eid).and_then(|()| event_at(&at, ev, limits)),
            )
        })
        .collect();
    BatchVerdict { endpoint, events }
}

/// A whole `PutEvents` body, all-or-nothing: [`events_envelope`] and then the
/// first failing item of [`events_items`] (endpoint before its events).
pub fn events_request(req: &EventsRequest, limits: &Limits) -> Res {
    events_envelope(req, limits)?;
    for verdict in events_items(req, limits).into_values() {
        verdict.endpoint?;
        for r in verdict.events.into_values() {
            r?;
        }
    }
    Ok(())
}

fn event_id_at(path: &str, id: &str) -> Res {
    if id.is_empty() {
        return Err(err(path, "event ids must not be empty"));
    }
    if chars(id) > EVENT_ID_CHARS_MAX {
        return Err(err(
            path,
            format!("event id longer than {EVENT_ID_CHARS_MAX} characters"),
        ));
    }
    Ok(())
}

/// One event: `EventType` and `Timestamp` (ISO-8601) required; attribute keys
/// 1..=50 characters and values ≤ 200; metric keys 1..=50 and finite values;
/// at most 40 attribute + metric keys; `Session` with `Id` and
/// `StartTimestamp` when present; at most `event_bytes_max` bytes of JSON.
pub fn event(ev: &Event, limits: &Limits) -> Res {
    event_at("", ev, limits)
}

fn event_at(path: &str, ev: &Event, limits: &Limits) -> Res {
    match ev.event_type.as_deref() {
        None => return Err(err(&join(path, "EventType"), "required")),
        Some("") => return Err(err(&join(path, "EventType"), "must not be empty")),
        Some(_) => {}
    }
    match ev.timestamp.as_deref() {
        None => return Err(err(&join(path, "Timestamp"), "required")),
        Some(t) => iso_date(&join(path, "Timestamp"), t)?,
    }
    let key_max = limits.event_attribute_key_chars_max;
    let mut keys = 0;
    if let Some(attrs) = ev.attributes.as_ref() {
        let apath = join(path, "Attributes");
        for (k, v) in attrs {
            attribute_name(&apath, k, key_max)?;
            if chars(v) > limits.event_attribute_value_chars_max {
                return Err(err(
                    &index(&apath, k),
                    format!(
                        "value is longer than {} characters",
                        limits.event_attribute_value_chars_max
                    ),
                ));
            }
        }
        keys += attrs.len();
    }
    if let Some(m) = ev.metrics.as_ref() {
        metric_map(&join(path, "Metrics"), m, key_max)?;
        keys += m.len();
    }
    if keys > limits.event_attribute_and_metric_keys_max {
        return Err(err(
            &join(path, "Attributes"),
            format!(
                "{keys} attribute and metric keys exceed the limit of {} per event",
                limits.event_attribute_and_metric_keys_max
            ),
        ));
    }
    if let Some(s) = ev.session.as_ref() {
        let spath = join(path, "Session");
        match s.id.as_deref() {
            None => return Err(err(&join(&spath, "Id"), "required")),
            Some("") => return Err(err(&join(&spath, "Id"), "must not be empty")),
            Some(_) => {}
        }
        match s.start_timestamp.as_deref() {
            None => return Err(err(&join(&spath, "StartTimestamp"), "required")),
            Some(t) => iso_date(&join(&spath, "StartTimestamp"), t)?,
        }
        if let Some(t) = s.stop_timestamp.as_deref() {
            iso_date(&join(&spath, "StopTimestamp"), t)?;
        }
        if let Some(d) = s.duration {
            if d < 0 {
                return Err(err(&join(&spath, "Duration"), "must not be negative"));
            }
        }
    }
    size(path, "the event", json_len(ev), limits.event_bytes_max)
}

// ---------------------------------------------------------------------------
// Apps, settings, tags, attributes
// ---------------------------------------------------------------------------

/// `CreateApplicationRequest.Name`: required, not blank, at most
/// [`APP_NAME_CHARS_MAX`] characters, no control characters.
pub fn app_name(name: Option<&str>) -> Res {
    let name = name.ok_or_else(|| err("Name", "required"))?;
    if name.trim().is_empty() {
        return Err(err("Name", "must not be blank"));
    }
    if chars(name) > APP_NAME_CHARS_MAX {
        return Err(err(
            "Name",
            format!("longer than {APP_NAME_CHARS_MAX} characters"),
        ));
    }
    if has_control(name) {
        return Err(err("Name", "must not contain control characters"));
    }
    Ok(())
}

/// A resource's tags (as they will be stored: callers merging `TagResource`
/// into existing tags validate the merged map): at most
/// `tags_per_resource_max`; keys 1..=128 characters, not starting with the
/// reserved `aws:` (any case); values at most 256 characters (AWS tagging rules).
pub fn tags(tags: &BTreeMap<String, String>, limits: &Limits) -> Res {
    if tags.len() > limits.tags_per_resource_max {
        return Err(err(
            "tags",
            format!(
                "{} tags exceed the limit of {} per resource",
                tags.len(),
                limits.tags_per_resource_max
            ),
        ));
    }
    for (k, v) in tags {
        tag_key(k, limits)?;
        if chars(v) > limits.tag_value_chars_max {
            return Err(err(
                &index("tags", k),
                format!(
                    "value is longer than {} characters",
                    limits.tag_value_chars_max
                ),
            ));
        }
        if has_control(v) {
            return Err(err(
                &index("tags", k),
                "value must not contain control characters",
            ));
        }
    }
    Ok(())
}

/// `UntagResource`'s `tagKeys`: at least one, each a valid tag key.
pub fn tag_keys(keys: &[String], limits: &Limits) -> Res {
    if keys.is_empty() {
        return Err(err("tagKeys", "required"));
    }
    keys.iter().try_for_each(|k| tag_key(k, limits))
}

fn tag_key(k: &str, limits: &Limits) -> Res {
    if k.is_empty() {
        return Err(err("tags", "tag keys must not be empty"));
    }
    if chars(k) > limits.tag_key_chars_max {
        return Err(err(
            "tags",
            format!(
                "tag key {} is longer than {} characters",
                quote_short(k),
                limits.tag_key_chars_max
            ),
        ));
    }
    if k.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("aws:")) {
        return Err(err(
            "tags",
            format!("tag key {} uses the reserved prefix aws:", quote_short(k)),
        ));
    }
    if has_control(k) {
        return Err(err("tags", "tag keys must not contain control characters"));
    }
    Ok(())
}

/// An `UpdateApplicationSettings` body:
/// * `CampaignHook.Mode` is `DELIVERY` or `FILTER`;
/// * `Limits`: `Daily` and `Total` 0..=100, `MessagesPerSecond` 1..=20,000,
///   `MaximumDuration` ≥ 60 seconds, `Session` ≥ 0 (0 means "no limit" where
///   Pinpoint allows it, as in AWS's own responses);
/// * `JourneyLimits`: `DailyCap`, `TotalCap`, `TimeframeCap.Cap` 0..=100,
///   `TimeframeCap.Days` 0..=30;
/// * `QuietTime`: `Start` and `End` both `HH:MM`, or both absent/empty (which
///   clears quiet time); one without the other is rejected.
pub fn application_settings(req: &WriteApplicationSettingsRequest) -> Res {
    if let Some(mode) = req.campaign_hook.as_ref().and_then(|h| h.mode.as_deref()) {
        one_of("CampaignHook.Mode", mode, &HOOK_MODES)?;
    }
    if let Some(l) = req.limits.as_ref() {
        range("Limits.Daily", l.daily, 0, 100)?;
        range("Limits.Total", l.total, 0, 100)?;
        range("Limits.MessagesPerSecond", l.messages_per_second, 1, 20_000)?;
        range("Limits.MaximumDuration", l.maximum_duration, 60, i32::MAX)?;
        range("Limits.Session", l.session, 0, i32::MAX)?;
    }
    if let Some(j) = req.journey_limits.as_ref() {
        range("JourneyLimits.DailyCap", j.daily_cap, 0, 100)?;
        range("JourneyLimits.TotalCap", j.total_cap, 0, 100)?;
        if let Some(t) = j.timeframe_cap.as_ref() {
            range("JourneyLimits.TimeframeCap.Cap", t.cap, 0, 100)?;
            range("JourneyLimits.TimeframeCap.Days", t.days, 0, 30)?;
        }
    }
    if let Some(q) = req.quiet_time.as_ref() {
        let start = q.start.as_deref().filter(|s| !s.is_empty());
        let end = q.end.as_deref().filter(|s| !s.is_empty());
        match (start, end) {
            (None, None) => {}
            (Some(s), Some(e)) => {
                parse_hh_mm(s).map_err(|x| err("QuietTime.Start", x))?;
                parse_hh_mm(e).map_err(|x| err("QuietTime.End", x))?;
            }
            (Some(_), None) => return Err(err("QuietTime.End", "required when Start is set")),
            (None, Some(_)) => return Err(err("QuietTime.Start", "required when End is set")),
        }
    }
    Ok(())
}

fn range(path: &str, v: Option<i32>, min: i32, max: i32) -> Res {
    match v {
        Some(v) if v < min || v > max => {
            if max == i32::MAX {
                Err(err(path, format!("{v} is below the minimum of {min}")))
            } else {
                Err(err(path, format!("{v} is outside {min}..={max}")))
            }
        }
        _ => Ok(()),
    }
}

/// `RemoveAttributes {attribute-type}`: one of [`ATTRIBUTE_TYPES`].
pub fn attribute_type(t: &str) -> Res {
    one_of("attribute-type", t, &ATTRIBUTE_TYPES)
}

/// A `RemoveAttributes` body: every `Blacklist` entry is a non-empty name or
/// glob pattern. An absent or empty list is valid and removes nothing.
pub fn update_attributes_request(req: &UpdateAttributesRequest) -> Res {
    for (i, p) in req.blacklist.iter().flatten().enumerate() {
        if p.is_empty() {
            return Err(err(&format!("Blacklist[{i}]"), "must not be empty"));
        }
    }
    Ok(())
}

/// Longest email address RFC 5321 allows in a path.
const EMAIL_ADDRESS_MAX: usize = 254;

/// `addr-spec` in its plain form: `local@domain`, no spaces or angle
/// brackets, a dot-separated domain of non-empty labels.
fn email_address(path: &str, v: &str) -> Res {
    let bad = |why: &str| {
        Err(err(
            path,
            format!("{} is not an email address: {why}", quote_short(v)),
        ))
    };
    if v.len() > EMAIL_ADDRESS_MAX {
        return bad("longer than 254 bytes");
    }
    if v.chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>')
    {
        return bad("it contains spaces, control characters or angle brackets");
    }
    let Some((local, domain)) = v.rsplit_once('@') else {
        return bad("no @");
    };
    if local.is_empty() || domain.is_empty() || domain.split('.').any(str::is_empty) {
        return bad("an empty local part, domain or domain label");
    }
    Ok(())
}

/// `UpdateEmailChannel`: `FromAddress` and `Identity` are required.
pub fn email_channel_request(req: &EmailChannelRequest) -> Res {
    match req.from_address.as_deref() {
        None | Some("") => return Err(err("FromAddress", "required")),
        Some(a) => email_address("FromAddress", a)?,
    }
    match req.identity.as_deref() {
        None | Some("") => Err(err("Identity", "required")),
        Some(_) => Ok(()),
    }
}

// ---------------------------------------------------------------------------
// Direct sends
// ---------------------------------------------------------------------------

fn direct_message(dm: Option<&DirectMessageConfiguration>, limits: &Limits) -> Res {
    let Some(dm) = dm else {
        return Err(err("MessageConfiguration", "required"));
    };
    if let Some(em) = &dm.email_message {
        if let Some(from) = em.from_address.as_deref() {
            // `Name <address>` is allowed, as in SES.
            let addr = match (from.rfind('<'), from.strip_suffix('>')) {
                (Some(i), Some(inner)) => &inner[i + 1..],
                _ => from,
            };
            email_address("MessageConfiguration.EmailMessage.FromAddress", addr)?;
        }
        for (i, r) in em.reply_to_addresses.iter().flatten().enumerate() {
            email_address(
                &format!("MessageConfiguration.EmailMessage.ReplyToAddresses[{i}]"),
                r,
            )?;
        }
        if em.raw_email.is_some() {
            return Err(err(
                "MessageConfiguration.EmailMessage.RawEmail",
                "raw MIME messages are not supported by herald; use SimpleEmail",
            ));
        }
        if let Some(se) = &em.simple_email {
            let headers = se.headers.as_deref().unwrap_or_default();
            if headers.len() > limits.email_headers_max {
                return Err(err(
                    "MessageConfiguration.EmailMessage.SimpleEmail.Headers",
                    format!("at most {} headers", limits.email_headers_max),
                ));
            }
            for (i, h) in headers.iter().enumerate() {
                let path = format!("MessageConfiguration.EmailMessage.SimpleEmail.Headers[{i}]");
                let name = h.name.as_deref().unwrap_or_default();
                if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
                    return Err(err(&path, "Name must be printable ASCII without ':'"));
                }
                custom_header_name(&format!("{path}.Name"), name)?;
                let value = h.value.as_deref().unwrap_or_default();
                if value.chars().any(|c| c == '\r' || c == '\n') {
                    return Err(err(&path, "Value must not contain line breaks"));
                }
            }
            if se
                .subject
                .as_ref()
                .and_then(|p| p.data.as_deref())
                .is_none()
                && se.text_part.is_none()
                && se.html_part.is_none()
            {
                return Err(err(
                    "MessageConfiguration.EmailMessage.SimpleEmail",
                    "needs a Subject, TextPart or HtmlPart",
                ));
            }
        }
    }
    Ok(())
}

/// Headers herald sets itself or that decide where a message goes: a
/// request may not set them (a `Bcc` header would add a recipient that the
/// ledger and opt-outs never saw).
pub const RESERVED_HEADERS: [&str; 14] = [
    "to",
    "cc",
    "bcc",
    "from",
    "sender",
    "reply-to",
    "return-path",
    "message-id",
    "date",
    "mime-version",
    "subject",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "content-transfer-encoding",
];

/// A header a request or template may add (see [`RESERVED_HEADERS`];
/// `Content-*` headers are refused too).
pub fn custom_header_name(path: &str, name: &str) -> Res {
    let lower = name.to_ascii_lowercase();
    if RESERVED_HEADERS.contains(&lower.as_str()) || lower.starts_with("content-") {
        return Err(err(
            path,
            format!("{name} is set by herald (or by the message's own fields) and cannot be given as a header"),
        ));
    }
    Ok(())
}

fn template_configuration(tc: Option<&TemplateConfiguration>) -> Res {
    let Some(tc) = tc else { return Ok(()) };
    for (name, t) in [
        ("EmailTemplate", &tc.email_template),
        ("SMSTemplate", &tc.sms_template),
        ("PushTemplate", &tc.push_template),
        ("VoiceTemplate", &tc.voice_template),
        ("InAppTemplate", &tc.in_app_template),
    ] {
        if let Some(t) = t {
            if t.name.as_deref().unwrap_or_default().is_empty() {
                return Err(err(
                    &format!("TemplateConfiguration.{name}.Name"),
                    "required",
                ));
            }
            if let Some(v) = t.version.as_deref() {
                if v.parse::<u32>().map_or(true, |n| n == 0) {
                    return Err(err(
                        &format!("TemplateConfiguration.{name}.Version"),
                        "must be a positive whole number",
                    ));
                }
            }
        }
    }
    Ok(())
}

fn trace_id(t: Option<&str>) -> Res {
    match t {
        Some(t) if t.is_empty() || t.chars().count() > 256 => {
            Err(err("TraceId", "must be 1 to 256 characters"))
        }
        _ => Ok(()),
    }
}

/// `SendMessages`: a message configuration, 1 to `send_recipients_max`
/// recipients, a valid channel type for every address.
pub fn message_request(req: &MessageRequest, limits: &Limits) -> Res {
    direct_message(req.message_configuration.as_ref(), limits)?;
    template_configuration(req.template_configuration.as_ref())?;
    trace_id(req.trace_id.as_deref())?;
    let addresses = req.addresses.as_ref().map_or(0, |a| a.len());
    let endpoints = req.endpoints.as_ref().map_or(0, |e| e.len());
    if addresses + endpoints == 0 {
        return Err(err(
            "Addresses",
            "the request names no Addresses and no Endpoints",
        ));
    }
    if addresses + endpoints > limits.send_recipients_max {
        return Err(err(
            "Addresses",
            format!(
                "{} recipients; a request may name at most {} Addresses and Endpoints together",
                addresses + endpoints,
                limits.send_recipients_max
            ),
        ));
    }
    for (address, cfg) in req.addresses.iter().flatten() {
        let path = format!("Addresses[{}]", quote_short(address));
        if address.trim().is_empty() {
            return Err(err(&path, "an address must not be empty"));
        }
        match cfg.channel_type.as_deref() {
            None => return Err(err(&join(&path, "ChannelType"), "required")),
            Some(ct) => one_of(&join(&path, "ChannelType"), ct, &CHANNEL_TYPES)?,
        }
        if cfg.channel_type.as_deref() == Some("EMAIL") {
            email_address(&path, address)?;
        }
    }
    for id in req.endpoints.iter().flatten().map(|(k, _)| k) {
        endpoint_id_at(&format!("Endpoints[{}]", quote_short(id)), id)?;
    }
    Ok(())
}

/// `SendUsersMessages`: a message configuration and 1 to
/// `send_recipients_max` users.
pub fn send_users_message_request(req: &SendUsersMessageRequest, limits: &Limits) -> Res {
    direct_message(req.message_configuration.as_ref(), limits)?;
    template_configuration(req.template_configuration.as_ref())?;
    trace_id(req.trace_id.as_deref())?;
    let users = req.users.as_ref().map_or(0, |u| u.len());
    if users == 0 {
        return Err(err("Users", "required: at least one user id"));
    }
    if users > limits.send_recipients_max {
        return Err(err(
            "Users",
            format!(
                "{users} users; at most {} per request",
                limits.send_recipients_max
            ),
        ));
    }
    for id in req.users.iter().flatten().map(|(k, _)| k) {
        if id.is_empty() || id.chars().count() > USER_ID_CHARS_MAX {
            return Err(err(
                &format!("Users[{}]", quote_short(id)),
                format!("a user id is 1 to {USER_ID_CHARS_MAX} characters"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{CampaignHook, CampaignLimits, JourneyTimeframeCap, QuietTime, Session};
    use serde_json::json;

    fn l() -> Limits {
        Limits::default()
    }

    fn req(v: serde_json::Value) -> EndpointRequest {
        serde_json::from_value(v).unwrap()
    }

    fn msg(r: Res) -> String {
        r.expect_err("expected an error").0
    }

    #[test]
    fn endpoint_ids() {
        assert!(endpoint_id("ep-1").is_ok());
        assert!(endpoint_id("user@example.com").is_ok());
        assert!(endpoint_id("with space/and%").is_ok());
        assert!(endpoint_id(&"x".repeat(ENDPOINT_ID_CHARS_MAX)).is_ok());
        assert!(msg(endpoint_id("")).starts_with("endpoint id: must not be empty"));
        assert!(endpoint_id(&"x".repeat(ENDPOINT_ID_CHARS_MAX + 1)).is_err());
        for bad in ["a$b", "{x", "x}", "a\nb", "\0"] {
            assert!(endpoint_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn documented_example_is_valid() {
        let r = req(json!({
            "Address": "user@example.com", "ChannelType": "EMAIL", "EndpointStatus": "ACTIVE",
            "OptOut": "NONE", "EffectiveDate": "2024-05-01T12:00:00.000Z",
            "Attributes": {"Interests": ["cooking", "travel"]}, "Metrics": {"purchases": 3.0},
            "Demographic": {"Platform": "ios", "Timezone": "America/Los_Angeles", "Locale": "en_US"},
            "Location": {"Country": "US", "Latitude": 47.6, "Longitude": -122.3},
            "User": {"UserId": "user-42", "UserAttributes": {"Plan": ["gold"]}}
        }));
        endpoint_request(&r, &l()).unwrap();
        endpoint_request(&EndpointRequest::default(), &l()).unwrap();
    }

    #[test]
    fn endpoint_enums_dates_and_ranges() {
        for ct in CHANNEL_TYPES {
            endpoint_request(&req(json!({"ChannelType": ct})), &l()).unwrap();
        }
        assert_eq!(
            msg(endpoint_request(
                &req(json!({"ChannelType": "email"})),
                &l()
            )),
            "ChannelType: \"email\" is not one of PUSH, GCM, APNS, APNS_SANDBOX, APNS_VOIP, \
             APNS_VOIP_SANDBOX, ADM, SMS, VOICE, EMAIL, BAIDU, CUSTOM, IN_APP"
        );
        assert!(msg(endpoint_request(
            &req(json!({"EndpointStatus": "DISABLED"})),
            &l()
        ))
        .starts_with("EndpointStatus: "));
        assert!(
            msg(endpoint_request(&req(json!({"OptOut": "SOME"})), &l())).starts_with("OptOut: ")
        );
        assert!(msg(endpoint_request(
            &req(json!({"EffectiveDate": "yesterday"})),
            &l()
        ))
        .starts_with("EffectiveDate: \"yesterday\" is not an ISO-8601"));
        assert!(msg(endpoint_request(
            &req(json!({"Location": {"Latitude": 90.5}})),
            &l()
        ))
        .starts_with("Location.Latitude: "));
        assert!(msg(endpoint_request(
            &req(json!({"Location": {"Longitude": -180.1}})),
            &l()
        ))
        .starts_with("Location.Longitude: "));
        endpoint_request(
            &req(json!({"Location": {"Latitude": -90.0, "Longitude": 180.0}})),
            &l(),
        )
        .unwrap();
        let mut nan = EndpointRequest {
            location: Some(EndpointLocation {
                latitude: Some(f64::NAN),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(endpoint_request(&nan, &l()).is_err());
        nan.location = None;
        nan.metrics = Some(BTreeMap::from([("m".into(), f64::INFINITY)]));
        assert_eq!(
            msg(endpoint_request(&nan, &l())),
            "Metrics[m]: metric values must be finite numbers"
        );
    }

    #[test]
    fn attribute_limits() {
        let name51 = "n".repeat(51);
        assert!(msg(endpoint_request(
            &req(json!({"Attributes": {name51.clone(): ["v"]}})),
            &l()
        ))
        .starts_with("Attributes: attribute name \"nnn"));
        assert!(endpoint_request(&req(json!({"Attributes": {"": ["v"]}})), &l()).is_err());
        let v101 = "v".repeat(101);
        assert!(msg(endpoint_request(
            &req(json!({"Attributes": {"a": [v101]}})),
            &l()
        ))
        .starts_with("Attributes[a]: value \"vvv"));
        assert!(
            endpoint_request(&req(json!({"Attributes": {"a": ["v".repeat(100)]}})), &l()).is_ok()
        );
        let values51: Vec<String> = (0..51).map(|i| i.to_string()).collect();
        assert_eq!(
            msg(endpoint_request(
                &req(json!({"Attributes": {"a": values51}})),
                &l()
            )),
            "Attributes[a]: 51 values exceed the limit of 50 per attribute"
        );
        assert!(endpoint_request(&req(json!({"Attributes": {"a": []}})), &l()).is_ok());
        assert!(msg(endpoint_request(
            &req(json!({"User": {"UserAttributes": {name51.clone(): ["v"]}}})),
            &l()
        ))
        .starts_with("User.UserAttributes: "));
        assert!(msg(endpoint_request(
            &req(json!({"Metrics": {name51: 1.0}})),
            &l()
        ))
        .starts_with("Metrics: "));
        assert!(msg(endpoint_request(
            &req(json!({"User": {"UserId": "u".repeat(257)}})),
            &l()
        ))
        .starts_with("User.UserId: "));
        assert!(endpoint_request(&req(json!({"User": {"UserId": ""}})), &l()).is_ok());
    }

    #[test]
    fn total_keys_and_size() {
        let limits = l();
        // 100 + 100 + 50 = 250 keys is fine, one more is not.
        let attrs: BTreeMap<String, Vec<String>> =
            (0..100).map(|i| (format!("a{i}"), vec![])).collect();
        let metrics: BTreeMap<String, f64> = (0..100).map(|i| (format!("m{i}"), 1.0)).collect();
        let mut user: BTreeMap<String, Vec<String>> =
            (0..50).map(|i| (format!("u{i}"), vec![])).collect();
        let mut r = EndpointRequest {
            attributes: Some(attrs),
            metrics: Some(metrics),
            user: Some(EndpointUser {
                user_attributes: Some(user.clone()),
                user_id: None,
            }),
            ..Default::default()
        };
        endpoint_request(&r, &limits).unwrap();
        user.insert("u50".into(), vec![]);
        r.user = Some(EndpointUser {
            user_attributes: Some(user),
            user_id: None,
        });
        assert!(msg(endpoint_request(&r, &limits)).contains("251 keys"));

        // 15 KB JSON limit.
        let big = req(json!({"Address": "x".repeat(15 * 1024)}));
        assert!(msg(endpoint_request(&big, &limits)).starts_with("the endpoint is 15"));
        let ok = req(json!({"Address": "x".repeat(15 * 1024 - 14)}));
        assert_eq!(json_len(&ok), 15 * 1024);
        endpoint_request(&ok, &limits).unwrap();
    }

    #[test]
    fn json_len_matches_serialization() {
        let r = req(json!({"Address": "é\"x", "Metrics": {"a": 1.5}}));
        assert_eq!(json_len(&r), serde_json::to_vec(&r).unwrap().len());
    }

    #[test]
    fn batches() {
        let limits = l();
        let batch =
            |v: serde_json::Value| -> EndpointBatchRequest { serde_json::from_value(v).unwrap() };
        endpoint_batch(
            &batch(json!({"Item": [{"Id": "ep-2", "ChannelType": "SMS"}, {"Id": "ep-3"}]})),
            &limits,
        )
        .unwrap();
        assert_eq!(
            msg(endpoint_batch(&batch(json!({})), &limits)),
            "Item: required"
        );
        assert_eq!(
            msg(endpoint_batch(&batch(json!({"Item": []})), &limits)),
            "Item: must contain at least one endpoint"
        );
        let many: Vec<_> = (0..101).map(|i| json!({"Id": format!("e{i}")})).collect();
        assert_eq!(
            msg(endpoint_batch(&batch(json!({"Item": many})), &limits)),
            "Item: 101 items exceed the limit of 100 per request"
        );
        let hundred: Vec<_> = (0..100).map(|i| json!({"Id": format!("e{i}")})).collect();
        endpoint_batch(&batch(json!({"Item": hundred})), &limits).unwrap();
        assert_eq!(
            msg(endpoint_batch(
                &batch(json!({"Item": [{"Id": "a"}, {"ChannelType": "SMS"}]})),
                &limits
            )),
            "Item[1].Id: required"
        );
        assert!(msg(endpoint_batch(
            &batch(json!({"Item": [{"Id": "a{b}"}]})),
            &limits
        ))
        .starts_with("Item[0].Id: "));
        assert!(msg(endpoint_batch(
            &batch(json!({"Item": [{"Id": "a"}, {"Id": "b"}, {"Id": "c"}, {"Id": "d", "Demographic": {}, "Location": {"Latitude": 100.0}}]})),
            &limits
        ))
        .starts_with("Item[3].Location.Latitude: "));
        // Duplicate ids are applied in order, not rejected.
        endpoint_batch(&batch(json!({"Item": [{"Id": "a"}, {"Id": "a"}]})), &limits).unwrap();
    }

    #[test]
    fn stored_endpoint_limits() {
        let limits = l();
        let mut ep = EndpointResponse {
            attributes: Some((0..200).map(|i| (format!("a{i}"), vec![])).collect()),
            metrics: Some((0..50).map(|i| (format!("m{i}"), 0.0)).collect()),
            ..Default::default()
        };
        stored_endpoint(&ep, &limits).unwrap();
        ep.user = Some(EndpointUser {
            user_attributes: Some(BTreeMap::from([("x".into(), vec![])])),
            user_id: None,
        });
        assert!(msg(stored_endpoint(&ep, &limits)).contains("251 keys"));
        let big = EndpointResponse {
            address: Some("x".repeat(16_000)),
            ..Default::default()
        };
        assert!(stored_endpoint(&big, &limits).is_err());
    }

    fn events(v: serde_json::Value) -> EventsRequest {
        serde_json::from_value(v).unwrap()
    }

    fn good_event() -> serde_json::Value {
        json!({"EventType": "purchase", "Timestamp": "2024-05-01T12:00:00.000Z",
               "Attributes": {"sku": "A1"}, "Metrics": {"price": 9.99},
               "Session": {"Id": "s-1", "StartTimestamp": "2024-05-01T11:59:00.000Z"}})
    }

    #[test]
    fn events_valid_example() {
        let r = events(json!({"BatchItem": {"ep-1": {
            "Endpoint": {"ChannelType": "EMAIL", "Address": "user@example.com"},
            "Events": {"evt-1": good_event()}}}}));
        events_request(&r, &l()).unwrap();
        let v = events_items(&r, &l());
        assert_eq!(v["ep-1"].endpoint, Ok(()));
        assert_eq!(v["ep-1"].events["evt-1"], Ok(()));
    }

    #[test]
    fn events_envelope_checks() {
        let limits = l();
        assert_eq!(
            msg(events_envelope(&events(json!({})), &limits)),
            "BatchItem: required"
        );
        assert_eq!(
            msg(events_envelope(&events(json!({"BatchItem": {}})), &limits)),
            "BatchItem: must contain at least one endpoint"
        );
        assert_eq!(
            msg(events_envelope(
                &events(json!({"BatchItem": {"e": {"Events": {}}}})),
                &limits
            )),
            "BatchItem[e].Endpoint: required"
        );
        assert_eq!(
            msg(events_envelope(
                &events(json!({"BatchItem": {"e": {"Endpoint": {}}}})),
                &limits
            )),
            "BatchItem[e].Events: required"
        );
        // 100 events across two endpoints pass; 101 fail.
        let evs = |n: usize, p: &str| -> serde_json::Value {
            (0..n)
                .map(|i| (format!("{p}{i}"), good_event()))
                .collect::<serde_json::Map<_, _>>()
                .into()
        };
        let ok = events(json!({"BatchItem": {
            "a": {"Endpoint": {}, "Events": evs(60, "x")},
            "b": {"Endpoint": {}, "Events": evs(40, "y")}}}));
        events_request(&ok, &limits).unwrap();
        let over = events(json!({"BatchItem": {
            "a": {"Endpoint": {}, "Events": evs(60, "x")},
            "b": {"Endpoint": {}, "Events": evs(41, "y")}}}));
        assert_eq!(
            msg(events_envelope(&over, &limits)),
            "BatchItem: 101 events exceed the limit of 100 per request"
        );
    }

    #[test]
    fn events_per_item_verdicts() {
        let limits = l();
        let r = events(json!({"BatchItem": {
            "bad$id": {"Endpoint": {}, "Events": {"e1": good_event()}},
            "ep": {"Endpoint": {"ChannelType": "FAX"}, "Events": {
                "ok": good_event(),
                "no-type": {"Timestamp": "2024-05-01T12:00:00Z"},
                "no-ts": {"EventType": "x"},
                "bad-ts": {"EventType": "x", "Timestamp": "2024-13-01"},
                "": good_event()}}}}));
        let v = events_items(&r, &limits);
        assert!(v["bad$id"].endpoint.is_err());
        assert!(v["bad$id"].events["e1"].is_err());
        let ep = &v["ep"];
        assert!(ep
            .endpoint
            .as_ref()
            .unwrap_err()
            .0
            .starts_with("BatchItem[ep].Endpoint.ChannelType: "));
        assert_eq!(ep.events["ok"], Ok(()));
        assert_eq!(
            msg(ep.events["no-type"].clone()),
            "BatchItem[ep].Events[no-type].EventType: required"
        );
        assert_eq!(
            msg(ep.events["no-ts"].clone()),
            "BatchItem[ep].Events[no-ts].Timestamp: required"
        );
        assert!(msg(ep.events["bad-ts"].clone())
            .starts_with("BatchItem[ep].Events[bad-ts].Timestamp: "));
        assert!(ep.events[""].is_err());
        // All-or-nothing reports the first problem in key order.
        assert!(msg(events_request(&r, &limits)).starts_with("BatchItem[bad$id]: "));
    }

    #[test]
    fn event_rules() {
        let limits = l();
        let ev = |v: serde_json::Value| -> Event { serde_json::from_value(v).unwrap() };
        let base = || good_event().as_object().unwrap().clone();
        event(&ev(good_event()), &limits).unwrap();

        let mut e = base();
        e.insert("EventType".into(), json!(""));
        assert_eq!(
            msg(event(&ev(e.into()), &limits)),
            "EventType: must not be empty"
        );

        // 40 keys pass, 41 fail.
        let mut e = base();
        let attrs: serde_json::Map<_, _> = (0..20).map(|i| (format!("a{i}"), json!("v"))).collect();
        let metrics: serde_json::Map<_, _> = (0..20).map(|i| (format!("m{i}"), json!(1))).collect();
        e.insert("Attributes".into(), attrs.clone().into());
        e.insert("Metrics".into(), metrics.into());
        event(&ev(e.clone().into()), &limits).unwrap();
        let mut attrs = attrs;
        attrs.insert("extra".into(), json!("v"));
        e.insert("Attributes".into(), attrs.into());
        assert_eq!(
            msg(event(&ev(e.into()), &limits)),
            "Attributes: 41 attribute and metric keys exceed the limit of 40 per event"
        );

        let mut e = base();
        e.insert("Attributes".into(), json!({"k": "v".repeat(201)}));
        assert_eq!(
            msg(event(&ev(e.clone().into()), &limits)),
            "Attributes[k]: value is longer than 200 characters"
        );
        e.insert("Attributes".into(), json!({"k": "v".repeat(200)}));
        event(&ev(e.into()), &limits).unwrap();

        let mut e = base();
        e.insert("Attributes".into(), json!({"k".repeat(51): "v"}));
        assert!(msg(event(&ev(e.into()), &limits)).starts_with("Attributes: attribute name"));

        let mut e = ev(good_event());
        e.session = Some(Session {
            id: None,
            ..Default::default()
        });
        assert_eq!(msg(event(&e, &limits)), "Session.Id: required");
        e.session = Some(Session {
            id: Some("s".into()),
            ..Default::default()
        });
        assert_eq!(msg(event(&e, &limits)), "Session.StartTimestamp: required");
        e.session = Some(Session {
            id: Some("s".into()),
            start_timestamp: Some("2024-05-01T11:59:00Z".into()),
            stop_timestamp: Some("later".into()),
            duration: None,
        });
        assert!(msg(event(&e, &limits)).starts_with("Session.StopTimestamp: "));
        e.session.as_mut().unwrap().stop_timestamp = None;
        e.session.as_mut().unwrap().duration = Some(-1);
        assert_eq!(
            msg(event(&e, &limits)),
            "Session.Duration: must not be negative"
        );

        let small = Limits {
            event_bytes_max: 100,
            ..Limits::default()
        };
        assert!(msg(event(&ev(good_event()), &small)).starts_with("the event is "));
    }

    #[test]
    fn app_names() {
        app_name(Some("my-project")).unwrap();
        app_name(Some(&"é".repeat(64))).unwrap();
        assert_eq!(msg(app_name(None)), "Name: required");
        assert_eq!(msg(app_name(Some("  "))), "Name: must not be blank");
        assert!(app_name(Some(&"x".repeat(65))).is_err());
        assert!(app_name(Some("a\u{0}b")).is_err());
    }

    #[test]
    fn tag_rules() {
        let limits = l();
        let t = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        tags(&t(&[("env", "dev"), ("empty", "")]), &limits).unwrap();
        tags(&t(&[(&"k".repeat(128), &"v".repeat(256))]), &limits).unwrap();
        assert!(tags(&t(&[(&"k".repeat(129), "v")]), &limits).is_err());
        assert!(msg(tags(&t(&[("k", &"v".repeat(257))]), &limits)).starts_with("tags[k]: "));
        assert!(tags(&t(&[("", "v")]), &limits).is_err());
        assert!(msg(tags(&t(&[("aws:owner", "v")]), &limits)).contains("reserved prefix aws:"));
        assert!(tags(&t(&[("AWS:owner", "v")]), &limits).is_err());
        tags(&t(&[("awsome", "v")]), &limits).unwrap();
        let fifty: BTreeMap<String, String> =
            (0..50).map(|i| (format!("k{i}"), "v".into())).collect();
        tags(&fifty, &limits).unwrap();
        let mut fifty_one = fifty;
        fifty_one.insert("k50".into(), "v".into());
        assert_eq!(
            msg(tags(&fifty_one, &limits)),
            "tags: 51 tags exceed the limit of 50 per resource"
        );
        tag_keys(&["a".into(), "b".into()], &limits).unwrap();
        assert!(tag_keys(&[], &limits).is_err());
        assert!(tag_keys(&["aws:x".into()], &limits).is_err());
    }

    #[test]
    fn settings_rules() {
        let ok = WriteApplicationSettingsRequest {
            campaign_hook: Some(CampaignHook {
                mode: Some("FILTER".into()),
                ..Default::default()
            }),
            limits: Some(CampaignLimits {
                daily: Some(10),
                maximum_duration: Some(600),
                messages_per_second: Some(50),
                total: Some(100),
                session: Some(5),
            }),
            quiet_time: Some(QuietTime {
                start: Some("22:00".into()),
                end: Some("07:00".into()),
            }),
            journey_limits: Some(crate::wire::ApplicationSettingsJourneyLimits {
                daily_cap: Some(0),
                total_cap: Some(100),
                timeframe_cap: Some(JourneyTimeframeCap {
                    cap: Some(100),
                    days: Some(30),
                }),
            }),
            ..Default::default()
        };
        application_settings(&ok).unwrap();
        application_settings(&WriteApplicationSettingsRequest::default()).unwrap();

        let with = |f: &dyn Fn(&mut WriteApplicationSettingsRequest)| {
            let mut r = ok.clone();
            f(&mut r);
            application_settings(&r)
        };
        assert!(msg(with(
            &|r| r.campaign_hook.as_mut().unwrap().mode = Some("SYNC".into())
        ))
        .starts_with("CampaignHook.Mode: "));
        assert_eq!(
            msg(with(&|r| r.limits.as_mut().unwrap().daily = Some(101))),
            "Limits.Daily: 101 is outside 0..=100"
        );
        assert!(with(&|r| r.limits.as_mut().unwrap().total = Some(-1)).is_err());
        assert!(with(&|r| r.limits.as_mut().unwrap().messages_per_second = Some(0)).is_err());
        assert!(with(&|r| r.limits.as_mut().unwrap().messages_per_second = Some(20_001)).is_err());
        assert!(with(&|r| r.limits.as_mut().unwrap().messages_per_second = Some(20_000)).is_ok());
        assert_eq!(
            msg(with(
                &|r| r.limits.as_mut().unwrap().maximum_duration = Some(59)
            )),
            "Limits.MaximumDuration: 59 is below the minimum of 60"
        );
        assert!(with(&|r| r.limits.as_mut().unwrap().session = Some(-1)).is_err());
        assert!(with(&|r| r.journey_limits.as_mut().unwrap().daily_cap = Some(101)).is_err());
        assert!(with(&|r| r
            .journey_limits
            .as_mut()
            .unwrap()
            .timeframe_cap
            .as_mut()
            .unwrap()
            .days = Some(31))
        .is_err());
        assert!(msg(with(
            &|r| r.quiet_time.as_mut().unwrap().start = Some("25:00".into())
        ))
        .starts_with("QuietTime.Start: "));
        assert_eq!(
            msg(with(&|r| r.quiet_time.as_mut().unwrap().end = None)),
            "QuietTime.End: required when Start is set"
        );
        assert!(with(&|r| r.quiet_time = Some(QuietTime {
            start: Some(String::new()),
            end: Some(String::new())
        }))
        .is_ok());
    }

    #[test]
    fn attribute_types_and_blacklists() {
        for t in ATTRIBUTE_TYPES {
            attribute_type(t).unwrap();
        }
        assert!(msg(attribute_type("endpoint-attributes")).starts_with("attribute-type: "));
        update_attributes_request(&UpdateAttributesRequest::default()).unwrap();
        update_attributes_request(&UpdateAttributesRequest {
            blacklist: Some(vec!["a*".into()]),
        })
        .unwrap();
        assert_eq!(
            msg(update_attributes_request(&UpdateAttributesRequest {
                blacklist: Some(vec!["a".into(), String::new()])
            })),
            "Blacklist[1]: must not be empty"
        );
    }

    #[test]
    fn email_channel_needs_a_from_address_and_an_identity() {
        let ok = EmailChannelRequest {
            from_address: Some("news@example.com".into()),
            identity: Some("arn:aws:ses:us-east-1:1:identity/example.com".into()),
            ..Default::default()
        };
        assert!(email_channel_request(&ok).is_ok());
        for bad in [
            "",
            "no-at",
            "a@",
            "@b.com",
            "a b@c.com",
            "a@b..com",
            "<a@b.com>",
        ] {
            let r = EmailChannelRequest {
                from_address: Some(bad.into()),
                ..ok.clone()
            };
            let e = email_channel_request(&r).unwrap_err();
            assert!(e.0.starts_with("FromAddress"), "{bad}: {e}");
        }
        let r = EmailChannelRequest {
            identity: None,
            ..ok
        };
        assert_eq!(
            email_channel_request(&r).unwrap_err().0,
            "Identity: required"
        );
    }
}

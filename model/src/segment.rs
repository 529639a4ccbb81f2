//! Segment definitions and the pure rules that decide membership.
//!
//! * Dimension primitives (`AttributeDimension`, `SetDimension`,
//!   `MetricDimension`) and their matchers, shared with campaign event
//!   filters.
//! * The segment wire shapes (`WriteSegmentRequest`, `SegmentResponse`, ...),
//!   following the conventions of [`crate::wire`]: required members of input
//!   shapes are `Option` so [`validate_write_segment`] can report them, enum
//!   members stay `String`.
//! * [`validate_write_segment`]: request checks for `CreateSegment` /
//!   `UpdateSegment`.
//! * Per-endpoint membership: [`SegmentDimensions::matches`],
//!   [`SegmentGroupList::matches`] and [`segment_matches`], evaluated against
//!   an [`EndpointFacts`] view at a caller-supplied `now_ms`. Matchers assume
//!   a validated definition; an enum value they do not know matches nothing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::time::{self, parse_iso8601_ms, quote_short};
use crate::validate::ValidationError;
use crate::wire::{AttributeMap, EndpointLocation, EndpointResponse};

/// `AttributeDimension`: a test on a multi-valued string attribute.
/// `AttributeType` is INCLUSIVE (default), EXCLUSIVE, CONTAINS, BEFORE,
/// AFTER, ON or BETWEEN.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AttributeDimension {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribute_type: Option<String>,
    #[serde(default)]
    pub values: Vec<String>,
}

/// `SetDimension`: a value in (INCLUSIVE, default) or not in (EXCLUSIVE)
/// a set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SetDimension {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimension_type: Option<String>,
    #[serde(default)]
    pub values: Vec<String>,
}

/// `MetricDimension`: a numeric comparison. `ComparisonOperator` is
/// GREATER_THAN, LESS_THAN, GREATER_THAN_OR_EQUAL, LESS_THAN_OR_EQUAL or
/// EQUAL.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MetricDimension {
    #[serde(default)]
    pub comparison_operator: String,
    #[serde(default)]
    pub value: f64,
}

/// Whether a set dimension admits `value` (`None`: the field is absent,
/// which only an EXCLUSIVE set admits). Values compare ASCII
/// case-insensitively.
pub fn set_matches(dim: &SetDimension, value: Option<&str>) -> bool {
    let hit = value.is_some_and(|v| dim.values.iter().any(|x| x.eq_ignore_ascii_case(v)));
    if dim.dimension_type.as_deref() == Some("EXCLUSIVE") {
        !hit
    } else {
        hit
    }
}

/// Whether a metric dimension admits `value` (an absent metric matches
/// nothing; an unknown operator matches nothing).
pub fn metric_matches(dim: &MetricDimension, value: Option<f64>) -> bool {
    let Some(v) = value else { return false };
    match dim.comparison_operator.as_str() {
        "GREATER_THAN" => v > dim.value,
        "LESS_THAN" => v < dim.value,
        "GREATER_THAN_OR_EQUAL" => v >= dim.value,
        "LESS_THAN_OR_EQUAL" => v <= dim.value,
        "EQUAL" => v == dim.value,
        _ => false,
    }
}

/// Whether an attribute dimension admits an attribute's values (`None`:
/// the endpoint lacks the attribute).
///
/// INCLUSIVE: some value equals one of the dimension's; EXCLUSIVE: none
/// does (an absent attribute is admitted); CONTAINS: some value contains
/// one of the dimension's as a substring. BEFORE / AFTER / ON compare the
/// values as ISO-8601 date-times against the dimension's first value
/// (ON: the same UTC day); BETWEEN: within the first two values,
/// inclusive. A value that is not a date never matches a date test.
pub fn attribute_matches(dim: &AttributeDimension, values: Option<&[String]>) -> bool {
    let kind = dim.attribute_type.as_deref().unwrap_or("INCLUSIVE");
    let vals = values.unwrap_or(&[]);
    match kind {
        "INCLUSIVE" => vals.iter().any(|v| dim.values.contains(v)),
        "EXCLUSIVE" => !vals.iter().any(|v| dim.values.contains(v)),
        "CONTAINS" => vals
            .iter()
            .any(|v| dim.values.iter().any(|x| v.contains(x.as_str()))),
        "BEFORE" | "AFTER" | "ON" | "BETWEEN" => {
            let bound = |i: usize| {
                dim.values
                    .get(i)
                    .and_then(|s| time::parse_iso8601_ms(s).ok())
            };
            vals.iter()
                .filter_map(|v| time::parse_iso8601_ms(v).ok())
                .any(|t| match kind {
                    "BEFORE" => bound(0).is_some_and(|b| t < b),
                    "AFTER" => bound(0).is_some_and(|b| t > b),
                    "ON" => bound(0)
                        .is_some_and(|b| t.div_euclid(time::DAY_MS) == b.div_euclid(time::DAY_MS)),
                    _ => match (bound(0), bound(1)) {
                        (Some(lo), Some(hi)) => lo <= t && t <= hi,
                        _ => false,
                    },
                })
        }
        _ => false,
    }
}

// ---------------------------------------------------------------------------
// Wire shapes
// ---------------------------------------------------------------------------

/// Body of `CreateSegment` and `UpdateSegment`. The model doc allows
/// `Dimensions` or `SegmentGroups` but not both; herald accepts both and
/// ANDs them (see [`segment_matches`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WriteSegmentRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<SegmentDimensions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment_groups: Option<SegmentGroupList>,
    /// Deprecated by AWS for updates (ignored there); not checked here.
    #[serde(rename = "tags", default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
}

/// One version of a segment, as returned by the segment operations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SegmentResponse {
    #[serde(default)]
    pub application_id: String,
    #[serde(default)]
    pub arn: String,
    #[serde(default)]
    pub creation_date: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<SegmentDimensions>,
    #[serde(default)]
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import_definition: Option<SegmentImportResource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment_groups: Option<SegmentGroupList>,
    /// One of [`SEGMENT_TYPES`].
    #[serde(default)]
    pub segment_type: String,
    #[serde(rename = "tags", default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i32>,
}

/// Body of `GetSegments` and `GetSegmentVersions`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SegmentsResponse {
    #[serde(default)]
    pub item: Vec<SegmentResponse>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// The criteria of a dynamic segment. Every present member must match
/// (see [`SegmentDimensions::matches`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SegmentDimensions {
    /// Endpoint custom attribute name → test.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<BTreeMap<String, AttributeDimension>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behavior: Option<SegmentBehaviors>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub demographic: Option<SegmentDemographics>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<SegmentLocation>,
    /// Endpoint metric name → test.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<BTreeMap<String, MetricDimension>>,
    /// User attribute name → test.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_attributes: Option<BTreeMap<String, AttributeDimension>>,
}

/// Behavior-based criteria.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SegmentBehaviors {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recency: Option<RecencyDimension>,
}

/// Whether an endpoint was (ACTIVE) or was not (INACTIVE) active within
/// `Duration` before now.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RecencyDimension {
    /// Required; one of [`DURATIONS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// Required; one of [`RECENCY_TYPES`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recency_type: Option<String>,
}

/// Device criteria, each a set test on one endpoint field.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SegmentDemographics {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_version: Option<SetDimension>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<SetDimension>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_type: Option<SetDimension>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub make: Option<SetDimension>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<SetDimension>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<SetDimension>,
}

/// Geographic criteria.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SegmentLocation {
    /// Country codes, compared case-insensitively with
    /// `Location.Country` of the endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<SetDimension>,
    #[serde(rename = "GPSPoint", default, skip_serializing_if = "Option::is_none")]
    pub gps_point: Option<GPSPointDimension>,
}

/// Endpoints within `RangeInKilometers` of `Coordinates`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GPSPointDimension {
    /// Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coordinates: Option<GPSCoordinates>,
    /// Absent means [`DEFAULT_GPS_RANGE_KM`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range_in_kilometers: Option<f64>,
}

/// A point in degrees (WGS 84).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GPSCoordinates {
    /// Required; -90..=90.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latitude: Option<f64>,
    /// Required; -180..=180.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub longitude: Option<f64>,
}

/// Segment groups and how they combine (see [`SegmentGroupList::matches`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SegmentGroupList {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<SegmentGroup>>,
    /// One of [`INCLUDES`]; absent means ALL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include: Option<String>,
}

/// Base segments filtered by dimension sets (see [`SegmentGroup::matches`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SegmentGroup {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<Vec<SegmentDimensions>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_segments: Option<Vec<SegmentReference>>,
    /// One of [`SOURCE_TYPES`]; absent means ALL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_type: Option<String>,
    /// One of [`GROUP_TYPES`]; absent means ALL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#type: Option<String>,
}

/// A segment id and, optionally, one of its versions (absent: the latest).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SegmentReference {
    /// Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i32>,
}

/// Read-only description of the import job that created an IMPORT segment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SegmentImportResource {
    /// Channel type → number of imported endpoints of that type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_counts: Option<BTreeMap<String, i32>>,
    /// Deprecated by AWS; kept for wire compatibility.
    #[serde(default)]
    pub external_id: String,
    /// CSV or JSON.
    #[serde(default)]
    pub format: String,
    #[serde(default)]
    pub role_arn: String,
    #[serde(default)]
    pub s3_url: String,
    #[serde(default)]
    pub size: i32,
}

// ---------------------------------------------------------------------------
// Enums and limits
// ---------------------------------------------------------------------------

/// The `AttributeType` enum.
pub const ATTRIBUTE_DIMENSION_TYPES: [&str; 7] = [
    "INCLUSIVE",
    "EXCLUSIVE",
    "CONTAINS",
    "BEFORE",
    "AFTER",
    "ON",
    "BETWEEN",
];
/// The `DimensionType` enum (of a `SetDimension`).
pub const DIMENSION_TYPES: [&str; 2] = ["INCLUSIVE", "EXCLUSIVE"];
/// `MetricDimension.ComparisonOperator` values (model doc).
pub const COMPARISON_OPERATORS: [&str; 5] = [
    "GREATER_THAN",
    "LESS_THAN",
    "GREATER_THAN_OR_EQUAL",
    "LESS_THAN_OR_EQUAL",
    "EQUAL",
];
/// The `Duration` enum (of a `RecencyDimension`).
pub const DURATIONS: [&str; 4] = ["HR_24", "DAY_7", "DAY_14", "DAY_30"];
/// The `RecencyType` enum.
pub const RECENCY_TYPES: [&str; 2] = ["ACTIVE", "INACTIVE"];
/// The `Include` enum (of a `SegmentGroupList`).
pub const INCLUDES: [&str; 3] = ["ALL", "ANY", "NONE"];
/// `SegmentGroup.SourceType` values herald accepts. The service model's
/// enum also lists NONE, which the API reference does not document and
/// herald does not support.
pub const SOURCE_TYPES: [&str; 2] = ["ALL", "ANY"];
/// The `Type` enum (of a `SegmentGroup`).
pub const GROUP_TYPES: [&str; 3] = ["ALL", "ANY", "NONE"];
/// The `SegmentType` enum.
pub const SEGMENT_TYPES: [&str; 2] = ["DIMENSIONAL", "IMPORT"];

/// Longest segment name. AWS documents no figure; herald: 64 characters,
/// as for project names.
pub const SEGMENT_NAME_CHARS_MAX: usize = 64;
/// Entries in one `Attributes`, `UserAttributes` or `Metrics` map
/// (Pinpoint quotas: 100 dimensions per segment).
pub const DIMENSIONS_PER_MAP_MAX: usize = 100;
/// Groups in one `SegmentGroupList`. The model doc says a request "can
/// include only one segment group"; herald: up to 5.
pub const SEGMENT_GROUPS_MAX: usize = 5;
/// `SourceSegments` in one group. Undocumented by AWS; herald: 10.
pub const SOURCE_SEGMENTS_PER_GROUP_MAX: usize = 10;
/// Range of a `GPSPoint` dimension without `RangeInKilometers`
/// (undocumented by AWS; herald: 100 km).
pub const DEFAULT_GPS_RANGE_KM: f64 = 100.0;
/// Mean Earth radius (IUGG) used for GPS distances.
pub const EARTH_RADIUS_KM: f64 = 6371.0088;
/// The endpoint attribute read for `Demographic.DeviceType` (the endpoint
/// model has no device-type field).
pub const DEVICE_TYPE_ATTRIBUTE: &str = "DeviceType";

// ---------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------

type Res = Result<(), ValidationError>;

/// Checks a `WriteSegmentRequest` (`CreateSegment` / `UpdateSegment`).
///
/// Messages start with the JSON path of the offending member, as in
/// [`crate::validate`] (e.g. `Dimensions.Attributes[plan].AttributeType:
/// "X" is not one of INCLUSIVE, ...`); the first error in member order
/// (maps in key order) is returned. Rules:
///
/// * `Name`: at most [`SEGMENT_NAME_CHARS_MAX`] characters.
/// * `Dimensions` or `SegmentGroups` is required (a dynamic segment needs
///   criteria; imported segments come from import jobs).
/// * Every enum member is one of its constants ([`ATTRIBUTE_DIMENSION_TYPES`],
///   [`DIMENSION_TYPES`], [`COMPARISON_OPERATORS`], [`DURATIONS`],
///   [`RECENCY_TYPES`], [`INCLUDES`], [`SOURCE_TYPES`], [`GROUP_TYPES`]);
///   members the model requires must be present.
/// * Attribute dimensions: INCLUSIVE / EXCLUSIVE / CONTAINS need at least one
///   value; BEFORE / AFTER / ON exactly one ISO-8601 date-time; BETWEEN
///   exactly two, start not after end. Set dimensions need at least one
///   value. Maps hold at most [`DIMENSIONS_PER_MAP_MAX`] entries with
///   non-empty names.
/// * Metric dimensions: a known operator and a finite `Value`.
/// * `GPSPoint`: latitude in -90..=90, longitude in -180..=180, range (if
///   given) finite and positive.
/// * `SegmentGroups`: 1..=[`SEGMENT_GROUPS_MAX`] groups, each with at most
///   [`SOURCE_SEGMENTS_PER_GROUP_MAX`] source segments, each with a
///   non-empty `Id` and a positive `Version` if given.
pub fn validate_write_segment(req: &WriteSegmentRequest) -> Res {
    if let Some(name) = &req.name {
        if name.chars().count() > SEGMENT_NAME_CHARS_MAX {
            return Err(err(
                "Name",
                format!("longer than {SEGMENT_NAME_CHARS_MAX} characters"),
            ));
        }
    }
    if req.dimensions.is_none() && req.segment_groups.is_none() {
        return Err(err(
            "",
            "a dynamic segment needs Dimensions or SegmentGroups",
        ));
    }
    if let Some(dims) = &req.dimensions {
        check_dimensions("Dimensions", dims)?;
    }
    if let Some(groups) = &req.segment_groups {
        check_group_list("SegmentGroups", groups)?;
    }
    Ok(())
}

fn err(path: &str, msg: impl std::fmt::Display) -> ValidationError {
    if path.is_empty() {
        ValidationError(msg.to_string())
    } else {
        ValidationError(format!("{path}: {msg}"))
    }
}

fn join(prefix: &str, member: &str) -> String {
    format!("{prefix}.{member}")
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

/// An optional enum member: absent is fine (the caller applies the default).
fn opt_one_of(path: &str, value: Option<&str>, allowed: &[&str]) -> Res {
    value.map_or(Ok(()), |v| one_of(path, v, allowed))
}

/// A required enum member.
fn req_one_of(path: &str, value: Option<&str>, allowed: &[&str]) -> Res {
    match value {
        None => Err(err(path, "required")),
        Some(v) => one_of(path, v, allowed),
    }
}

fn check_dimensions(path: &str, d: &SegmentDimensions) -> Res {
    if let Some(attrs) = &d.attributes {
        check_attribute_map(&join(path, "Attributes"), attrs)?;
    }
    if let Some(recency) = d.behavior.as_ref().and_then(|b| b.recency.as_ref()) {
        let p = join(path, "Behavior.Recency");
        req_one_of(
            &join(&p, "Duration"),
            recency.duration.as_deref(),
            &DURATIONS,
        )?;
        req_one_of(
            &join(&p, "RecencyType"),
            recency.recency_type.as_deref(),
            &RECENCY_TYPES,
        )?;
    }
    if let Some(demo) = &d.demographic {
        let p = join(path, "Demographic");
        for (member, dim) in [
            ("AppVersion", &demo.app_version),
            ("Channel", &demo.channel),
            ("DeviceType", &demo.device_type),
            ("Make", &demo.make),
            ("Model", &demo.model),
            ("Platform", &demo.platform),
        ] {
            if let Some(dim) = dim {
                check_set(&join(&p, member), dim)?;
            }
        }
    }
    if let Some(loc) = &d.location {
        let p = join(path, "Location");
        if let Some(country) = &loc.country {
            check_set(&join(&p, "Country"), country)?;
        }
        if let Some(gps) = &loc.gps_point {
            check_gps(&join(&p, "GPSPoint"), gps)?;
        }
    }
    if let Some(metrics) = &d.metrics {
        let p = join(path, "Metrics");
        check_map_size(&p, metrics)?;
        for (name, dim) in metrics {
            let mp = index(&p, name);
            if name.is_empty() {
                return Err(err(&mp, "a metric name must not be empty"));
            }
            check_metric(&mp, dim)?;
        }
    }
    if let Some(attrs) = &d.user_attributes {
        check_attribute_map(&join(path, "UserAttributes"), attrs)?;
    }
    Ok(())
}

fn check_map_size<V>(path: &str, map: &BTreeMap<String, V>) -> Res {
    if map.len() > DIMENSIONS_PER_MAP_MAX {
        return Err(err(
            path,
            format!(
                "{} dimensions exceed the limit of {DIMENSIONS_PER_MAP_MAX}",
                map.len()
            ),
        ));
    }
    Ok(())
}

fn check_attribute_map(path: &str, map: &BTreeMap<String, AttributeDimension>) -> Res {
    check_map_size(path, map)?;
    for (name, dim) in map {
        let p = index(path, name);
        if name.is_empty() {
            return Err(err(&p, "an attribute name must not be empty"));
        }
        check_attribute(&p, dim)?;
    }
    Ok(())
}

fn check_attribute(path: &str, dim: &AttributeDimension) -> Res {
    let kind = dim.attribute_type.as_deref().unwrap_or("INCLUSIVE");
    one_of(
        &join(path, "AttributeType"),
        kind,
        &ATTRIBUTE_DIMENSION_TYPES,
    )?;
    let vp = join(path, "Values");
    let n = dim.values.len();
    let (want, what) = match kind {
        "BEFORE" | "AFTER" | "ON" => (1, "one ISO-8601 date-time"),
        "BETWEEN" => (2, "two ISO-8601 date-times (start and end)"),
        // INCLUSIVE, EXCLUSIVE, CONTAINS: any non-empty list of strings.
        _ if n == 0 => return Err(err(&vp, "must hold at least one value")),
        _ => return Ok(()),
    };
    if n != want {
        return Err(err(&vp, format!("{kind} takes exactly {what}, got {n}")));
    }
    let mut bounds = Vec::with_capacity(n);
    for (i, v) in dim.values.iter().enumerate() {
        bounds.push(parse_iso8601_ms(v).map_err(|e| err(&format!("{vp}[{i}]"), e))?);
    }
    if let [start, end] = bounds[..] {
        if start > end {
            return Err(err(&vp, "the BETWEEN start is after its end"));
        }
    }
    Ok(())
}

fn check_set(path: &str, dim: &SetDimension) -> Res {
    opt_one_of(
        &join(path, "DimensionType"),
        dim.dimension_type.as_deref(),
        &DIMENSION_TYPES,
    )?;
    if dim.values.is_empty() {
        return Err(err(&join(path, "Values"), "must hold at least one value"));
    }
    Ok(())
}

fn check_metric(path: &str, dim: &MetricDimension) -> Res {
    let op = join(path, "ComparisonOperator");
    if dim.comparison_operator.is_empty() {
        return Err(err(&op, "required"));
    }
    one_of(&op, &dim.comparison_operator, &COMPARISON_OPERATORS)?;
    if !dim.value.is_finite() {
        return Err(err(&join(path, "Value"), "must be a finite number"));
    }
    Ok(())
}

fn check_gps(path: &str, gps: &GPSPointDimension) -> Res {
    let cp = join(path, "Coordinates");
    let c = gps
        .coordinates
        .as_ref()
        .ok_or_else(|| err(&cp, "required"))?;
    for (member, value, limit) in [
        ("Latitude", c.latitude, 90.0),
        ("Longitude", c.longitude, 180.0),
    ] {
        let p = join(&cp, member);
        let v = value.ok_or_else(|| err(&p, "required"))?;
        if !(-limit..=limit).contains(&v) {
            return Err(err(&p, format!("{v} is outside -{limit}..={limit}")));
        }
    }
    if let Some(r) = gps.range_in_kilometers {
        if !(r.is_finite() && r > 0.0) {
            return Err(err(
                &join(path, "RangeInKilometers"),
                "must be a positive number",
            ));
        }
    }
    Ok(())
}

fn check_group_list(path: &str, list: &SegmentGroupList) -> Res {
    let groups = list.groups.as_deref().unwrap_or_default();
    let gp = join(path, "Groups");
    if groups.is_empty() {
        return Err(err(&gp, "must hold at least one segment group"));
    }
    if groups.len() > SEGMENT_GROUPS_MAX {
        return Err(err(
            &gp,
            format!(
                "{} groups exceed the limit of {SEGMENT_GROUPS_MAX}",
                groups.len()
            ),
        ));
    }
    for (i, group) in groups.iter().enumerate() {
        check_group(&format!("{gp}[{i}]"), group)?;
    }
    opt_one_of(&join(path, "Include"), list.include.as_deref(), &INCLUDES)
}

fn check_group(path: &str, group: &SegmentGroup) -> Res {
    if let Some(dims) = &group.dimensions {
        for (i, d) in dims.iter().enumerate() {
            check_dimensions(&format!("{path}.Dimensions[{i}]"), d)?;
        }
    }
    if let Some(sources) = &group.source_segments {
        let sp = join(path, "SourceSegments");
        if sources.len() > SOURCE_SEGMENTS_PER_GROUP_MAX {
            return Err(err(
                &sp,
                format!(
                    "{} source segments exceed the limit of {SOURCE_SEGMENTS_PER_GROUP_MAX}",
                    sources.len()
                ),
            ));
        }
        for (i, s) in sources.iter().enumerate() {
            let p = format!("{sp}[{i}]");
            match s.id.as_deref() {
                None => return Err(err(&join(&p, "Id"), "required")),
                Some("") => return Err(err(&join(&p, "Id"), "must not be empty")),
                Some(_) => {}
            }
            if s.version.is_some_and(|v| v < 1) {
                return Err(err(&join(&p, "Version"), "must be at least 1"));
            }
        }
    }
    opt_one_of(
        &join(path, "SourceType"),
        group.source_type.as_deref(),
        &SOURCE_TYPES,
    )?;
    opt_one_of(&join(path, "Type"), group.r#type.as_deref(), &GROUP_TYPES)
}

// ---------------------------------------------------------------------------
// Membership: dimensions
// ---------------------------------------------------------------------------

/// What membership rules see of one endpoint.
#[derive(Debug, Clone, Copy)]
pub struct EndpointFacts<'a> {
    pub endpoint: &'a EndpointResponse,
    /// Last activity (events or sessions) of the endpoint, Unix ms, if any.
    pub last_active_ms: Option<i64>,
}

impl SegmentDimensions {
    /// Whether the endpoint meets every present criterion (an empty
    /// `SegmentDimensions` matches every endpoint):
    ///
    /// * `Attributes` / `UserAttributes`: [`attribute_matches`] on the
    ///   endpoint's `Attributes[name]` / `User.UserAttributes[name]`;
    /// * `Behavior.Recency`: [`RecencyDimension::matches`];
    /// * `Demographic`: [`SegmentDemographics::matches`];
    /// * `Location`: [`SegmentLocation::matches`];
    /// * `Metrics`: [`metric_matches`] on the endpoint's `Metrics[name]`.
    pub fn matches(&self, facts: &EndpointFacts, now_ms: i64) -> bool {
        let ep = facts.endpoint;
        let user_attrs = ep.user.as_ref().and_then(|u| u.user_attributes.as_ref());
        self.attributes
            .as_ref()
            .is_none_or(|dims| attribute_map_matches(dims, ep.attributes.as_ref()))
            && self
                .behavior
                .as_ref()
                .and_then(|b| b.recency.as_ref())
                .is_none_or(|r| r.matches(facts.last_active_ms, now_ms))
            && self.demographic.as_ref().is_none_or(|d| d.matches(ep))
            && self.location.as_ref().is_none_or(|l| l.matches(ep))
            && self.metrics.as_ref().is_none_or(|dims| {
                dims.iter().all(|(name, dim)| {
                    let value = ep.metrics.as_ref().and_then(|m| m.get(name)).copied();
                    metric_matches(dim, value)
                })
            })
            && self
                .user_attributes
                .as_ref()
                .is_none_or(|dims| attribute_map_matches(dims, user_attrs))
    }
}

fn attribute_map_matches(
    dims: &BTreeMap<String, AttributeDimension>,
    have: Option<&AttributeMap>,
) -> bool {
    dims.iter().all(|(name, dim)| {
        attribute_matches(dim, have.and_then(|m| m.get(name)).map(Vec::as_slice))
    })
}

/// The window of a recency `Duration` in milliseconds (HR_24, DAY_7,
/// DAY_14, DAY_30); `None` for any other value.
pub fn recency_window_ms(duration: &str) -> Option<i64> {
    match duration {
        "HR_24" => Some(24 * time::HOUR_MS),
        "DAY_7" => Some(7 * time::DAY_MS),
        "DAY_14" => Some(14 * time::DAY_MS),
        "DAY_30" => Some(30 * time::DAY_MS),
        _ => None,
    }
}

impl RecencyDimension {
    /// ACTIVE: the endpoint was last active at `t` with `now_ms - t` at most
    /// the window (the edge is inside). INACTIVE: the negation, so endpoints
    /// never active are INACTIVE. An unknown duration or type matches
    /// nothing.
    pub fn matches(&self, last_active_ms: Option<i64>, now_ms: i64) -> bool {
        let Some(window) = self.duration.as_deref().and_then(recency_window_ms) else {
            return false;
        };
        let active = last_active_ms.is_some_and(|t| now_ms.saturating_sub(t) <= window);
        match self.recency_type.as_deref() {
            Some("ACTIVE") => active,
            Some("INACTIVE") => !active,
            _ => false,
        }
    }
}

impl SegmentDemographics {
    /// Every present member admits its endpoint field ([`set_matches`]):
    /// `AppVersion`, `Make`, `Model` and `Platform` read
    /// `Demographic.<same name>`, `Channel` reads `ChannelType`.
    /// `DeviceType` reads the first value of the endpoint attribute
    /// [`DEVICE_TYPE_ATTRIBUTE`], since Pinpoint's endpoint model has no
    /// device-type field.
    pub fn matches(&self, endpoint: &EndpointResponse) -> bool {
        let demo = endpoint.demographic.as_ref();
        let device_type = endpoint
            .attributes
            .as_ref()
            .and_then(|a| a.get(DEVICE_TYPE_ATTRIBUTE))
            .and_then(|v| v.first())
            .map(String::as_str);
        [
            (
                &self.app_version,
                demo.and_then(|d| d.app_version.as_deref()),
            ),
            (&self.channel, endpoint.channel_type.as_deref()),
            (&self.device_type, device_type),
            (&self.make, demo.and_then(|d| d.make.as_deref())),
            (&self.model, demo.and_then(|d| d.model.as_deref())),
            (&self.platform, demo.and_then(|d| d.platform.as_deref())),
        ]
        .into_iter()
        .all(|(dim, value)| dim.as_ref().is_none_or(|d| set_matches(d, value)))
    }
}

impl SegmentLocation {
    /// `Country` admits `Location.Country` ([`set_matches`]) and the
    /// endpoint is within `GPSPoint` ([`GPSPointDimension::matches`]).
    pub fn matches(&self, endpoint: &EndpointResponse) -> bool {
        let loc = endpoint.location.as_ref();
        self.country
            .as_ref()
            .is_none_or(|c| set_matches(c, loc.and_then(|l| l.country.as_deref())))
            && self.gps_point.as_ref().is_none_or(|g| g.matches(loc))
    }
}

impl GPSPointDimension {
    /// The great-circle distance ([`haversine_km`]) from `Coordinates` to the
    /// endpoint's `Latitude`/`Longitude` is at most `RangeInKilometers`
    /// ([`DEFAULT_GPS_RANGE_KM`] if absent). Endpoints without both
    /// coordinates, or a dimension without them, match nothing.
    pub fn matches(&self, location: Option<&EndpointLocation>) -> bool {
        let center = self
            .coordinates
            .as_ref()
            .and_then(|c| Some((c.latitude?, c.longitude?)));
        let here = location.and_then(|l| Some((l.latitude?, l.longitude?)));
        let range = self.range_in_kilometers.unwrap_or(DEFAULT_GPS_RANGE_KM);
        match (center, here) {
            (Some(c), Some(h)) => haversine_km(c, h) <= range,
            _ => false,
        }
    }
}

/// Great-circle distance in km between two `(latitude, longitude)` points in
/// degrees, by the haversine formula on a sphere of radius
/// [`EARTH_RADIUS_KM`]. Always within `0..=π·R` for finite input.
pub fn haversine_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (lat1, lat2) = (a.0.to_radians(), b.0.to_radians());
    let dlat = lat2 - lat1;
    let dlon = (b.1 - a.1).to_radians();
    let h = (dlat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (dlon / 2.0).sin().powi(2);
    // Rounding can push `h` a hair past 1 for antipodal points.
    2.0 * EARTH_RADIUS_KM * h.sqrt().min(1.0).asin()
}

// ---------------------------------------------------------------------------
// Membership: segment groups
// ---------------------------------------------------------------------------

/// Combines per-item outcomes: ALL = every one holds (true when empty),
/// ANY = at least one, NONE = none does; an unknown mode matches nothing.
fn combine(mode: &str, mut outcomes: impl Iterator<Item = bool>) -> bool {
    match mode {
        "ALL" => outcomes.all(|o| o),
        "ANY" => outcomes.any(|o| o),
        "NONE" => !outcomes.any(|o| o),
        _ => false,
    }
}

impl SegmentGroup {
    /// Whether the endpoint is in this group.
    ///
    /// Base set: with no `SourceSegments`, every endpoint; otherwise the
    /// intersection (`SourceType` ALL, the default) or union (ANY) of the
    /// source segments' members, as told by `in_source`.
    ///
    /// Within the base, `Dimensions` filter by `Type`: ALL (default) = every
    /// dimension set matches, ANY = at least one does, NONE = none does. An
    /// empty `Dimensions` list passes for every `Type`.
    pub fn matches(
        &self,
        facts: &EndpointFacts,
        now_ms: i64,
        in_source: &dyn Fn(&SegmentReference) -> bool,
    ) -> bool {
        let sources = self.source_segments.as_deref().unwrap_or_default();
        let in_base = sources.is_empty()
            || combine(
                self.source_type.as_deref().unwrap_or("ALL"),
                sources.iter().map(in_source),
            );
        let dims = self.dimensions.as_deref().unwrap_or_default();
        in_base
            && (dims.is_empty()
                || combine(
                    self.r#type.as_deref().unwrap_or("ALL"),
                    dims.iter().map(|d| d.matches(facts, now_ms)),
                ))
    }
}

impl SegmentGroupList {
    /// Whether the endpoint is in the combination of `Groups` by `Include`:
    /// ALL (default) = in every group, ANY = in at least one, NONE = in no
    /// group. `in_source` tells whether the endpoint belongs to a source
    /// segment (see [`SegmentGroup::matches`]).
    pub fn matches(
        &self,
        facts: &EndpointFacts,
        now_ms: i64,
        in_source: &dyn Fn(&SegmentReference) -> bool,
    ) -> bool {
        let groups = self.groups.as_deref().unwrap_or_default();
        combine(
            self.include.as_deref().unwrap_or("ALL"),
            groups.iter().map(|g| g.matches(facts, now_ms, in_source)),
        )
    }
}

/// Whether an endpoint belongs to a dynamic segment: it meets `dimensions`
/// and `groups`, ANDed when both are present; with neither, every endpoint
/// matches. (Imported segments' members are stored, not computed.)
pub fn segment_matches(
    dimensions: Option<&SegmentDimensions>,
    groups: Option<&SegmentGroupList>,
    facts: &EndpointFacts,
    now_ms: i64,
    in_source: &dyn Fn(&SegmentReference) -> bool,
) -> bool {
    dimensions.is_none_or(|d| d.matches(facts, now_ms))
        && groups.is_none_or(|g| g.matches(facts, now_ms, in_source))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{EndpointDemographic, EndpointUser};
    use proptest::prelude::*;
    use serde_json::json;

    const NOW: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn attr(kind: &str, values: &[&str]) -> AttributeDimension {
        AttributeDimension {
            attribute_type: Some(kind.to_string()),
            values: strings(values),
        }
    }

    fn set(kind: Option<&str>, values: &[&str]) -> SetDimension {
        SetDimension {
            dimension_type: kind.map(str::to_string),
            values: strings(values),
        }
    }

    fn metric(op: &str, value: f64) -> MetricDimension {
        MetricDimension {
            comparison_operator: op.to_string(),
            value,
        }
    }

    fn dims(v: serde_json::Value) -> SegmentDimensions {
        serde_json::from_value(v).unwrap()
    }

    fn endpoint(v: serde_json::Value) -> EndpointResponse {
        serde_json::from_value(v).unwrap()
    }

    fn facts(ep: &EndpointResponse) -> EndpointFacts<'_> {
        EndpointFacts {
            endpoint: ep,
            last_active_ms: None,
        }
    }

    fn check(v: serde_json::Value) -> Result<(), ValidationError> {
        validate_write_segment(&serde_json::from_value(v).unwrap())
    }

    fn check_err(v: serde_json::Value) -> String {
        match check(v.clone()) {
            Ok(()) => panic!("accepted {v}"),
            Err(e) => e.0,
        }
    }

    // --- wire -------------------------------------------------------------

    #[test]
    fn wire_names_follow_the_model() {
        let req: WriteSegmentRequest = serde_json::from_value(json!({
            "Name": "active-ios",
            "Dimensions": {
                "Attributes": {"Interests": {"AttributeType": "INCLUSIVE", "Values": ["cooking"]}},
                "Behavior": {"Recency": {"Duration": "DAY_30", "RecencyType": "ACTIVE"}},
                "Demographic": {"Make": {"Values": ["Apple"]}},
                "Location": {"Country": {"Values": ["US"]},
                             "GPSPoint": {"Coordinates": {"Latitude": 47.6, "Longitude": -122.3},
                                          "RangeInKilometers": 50.0}},
                "Metrics": {"purchases": {"ComparisonOperator": "EQUAL", "Value": 1.0}},
                "UserAttributes": {"Plan": {"AttributeType": "EXCLUSIVE", "Values": ["free"]}}
            },
            "tags": {"team": "growth"}
        }))
        .unwrap();
        let d = req.dimensions.as_ref().unwrap();
        let gps = d.location.as_ref().unwrap().gps_point.as_ref().unwrap();
        assert_eq!(gps.range_in_kilometers, Some(50.0));
        assert_eq!(req.tags.as_ref().unwrap()["team"], "growth");
        let back = serde_json::to_value(&req).unwrap();
        assert!(back["Dimensions"]["Location"]["GPSPoint"].is_object());
        assert!(back["tags"].is_object());
        assert_eq!(
            serde_json::from_value::<WriteSegmentRequest>(back).unwrap(),
            req
        );
        assert_eq!(check(serde_json::to_value(&req).unwrap()), Ok(()));

        let resp = SegmentsResponse {
            item: vec![SegmentResponse {
                id: "s".into(),
                segment_type: "IMPORT".into(),
                import_definition: Some(SegmentImportResource {
                    s3_url: "s3://b/k".into(),
                    format: "CSV".into(),
                    size: 3,
                    ..Default::default()
                }),
                segment_groups: Some(SegmentGroupList {
                    groups: Some(vec![SegmentGroup {
                        r#type: Some("ANY".into()),
                        ..Default::default()
                    }]),
                    include: None,
                }),
                version: Some(2),
                ..Default::default()
            }],
            next_token: None,
        };
        let v = serde_json::to_value(&resp).unwrap();
        assert_eq!(v["Item"][0]["ImportDefinition"]["S3Url"], "s3://b/k");
        assert_eq!(v["Item"][0]["SegmentGroups"]["Groups"][0]["Type"], "ANY");
        assert_eq!(v["Item"][0]["SegmentType"], "IMPORT");
        assert!(v.get("NextToken").is_none());
        assert_eq!(serde_json::from_value::<SegmentsResponse>(v).unwrap(), resp);
    }

    // --- attribute, set and metric primitives -----------------------------

    #[test]
    fn attribute_inclusive_exclusive_contains() {
        let have = strings(&["gold", "beta"]);
        let have = Some(have.as_slice());
        assert!(attribute_matches(&attr("INCLUSIVE", &["gold", "x"]), have));
        assert!(!attribute_matches(&attr("INCLUSIVE", &["Gold"]), have)); // case-sensitive
        assert!(!attribute_matches(&attr("INCLUSIVE", &["gold"]), None));
        let default_kind = AttributeDimension {
            attribute_type: None,
            values: strings(&["beta"]),
        };
        assert!(attribute_matches(&default_kind, have));
        assert!(!attribute_matches(&attr("EXCLUSIVE", &["beta"]), have));
        assert!(attribute_matches(&attr("EXCLUSIVE", &["free"]), have));
        assert!(attribute_matches(&attr("EXCLUSIVE", &["free"]), None));
        assert!(attribute_matches(&attr("CONTAINS", &["ol"]), have));
        assert!(!attribute_matches(&attr("CONTAINS", &["plat"]), have));
        assert!(!attribute_matches(&attr("NOPE", &["gold"]), have));
    }

    #[test]
    fn attribute_dates_compare_as_instants() {
        let one = |s: &str| vec![s.to_string()];
        let m = |kind: &str, bounds: &[&str], v: &str| {
            attribute_matches(&attr(kind, bounds), Some(one(v).as_slice()))
        };
        // A bare date is midnight UTC.
        assert!(m("BEFORE", &["2026-01-05T10:00:00Z"], "2026-01-05"));
        assert!(!m("BEFORE", &["2026-01-05"], "2026-01-05T00:00:00Z")); // strict
        assert!(m("AFTER", &["2026-01-05"], "2026-01-05T00:00:00.001Z"));
        assert!(!m("AFTER", &["2026-01-05"], "2026-01-05"));
        // Offsets are honoured: 01:00+02:00 is 23:00Z the day before.
        assert!(m("BEFORE", &["2026-01-05"], "2026-01-05T01:00:00+02:00"));
        // ON: same UTC day, any time.
        assert!(m("ON", &["2026-01-05T23:59:59Z"], "2026-01-05T00:00:01Z"));
        assert!(m("ON", &["2026-01-05"], "2026-01-05T18:30:00Z"));
        assert!(!m("ON", &["2026-01-05"], "2026-01-06T00:00:00Z"));
        // BETWEEN is inclusive at both ends.
        let range = ["2026-01-01", "2026-01-31T00:00:00Z"];
        assert!(m("BETWEEN", &range, "2026-01-01T00:00:00Z"));
        assert!(m("BETWEEN", &range, "2026-01-31"));
        assert!(m("BETWEEN", &range, "2026-01-15T12:00:00Z"));
        assert!(!m("BETWEEN", &range, "2026-01-31T00:00:00.001Z"));
        assert!(!m("BETWEEN", &range[..1], "2026-01-15"));
        // Not a date: never matches a date test.
        assert!(!m("BEFORE", &["2030-01-01"], "yesterday"));
        assert!(!m("AFTER", &["garbage"], "2026-01-05"));
        // Any of several values may match.
        let many = strings(&["junk", "2020-01-01"]);
        assert!(attribute_matches(
            &attr("BEFORE", &["2021-01-01"]),
            Some(many.as_slice())
        ));
    }

    #[test]
    fn set_dimension_is_case_insensitive() {
        assert!(set_matches(&set(None, &["ios"]), Some("iOS")));
        assert!(!set_matches(&set(Some("INCLUSIVE"), &["ios"]), None));
        assert!(!set_matches(&set(Some("EXCLUSIVE"), &["ios"]), Some("IOS")));
        assert!(set_matches(&set(Some("EXCLUSIVE"), &["ios"]), None));
    }

    #[test]
    fn metric_operators() {
        let cases = [
            ("GREATER_THAN", [false, false, true]),
            ("LESS_THAN", [true, false, false]),
            ("GREATER_THAN_OR_EQUAL", [false, true, true]),
            ("LESS_THAN_OR_EQUAL", [true, true, false]),
            ("EQUAL", [false, true, false]),
        ];
        for (op, want) in cases {
            for (v, w) in [1.0, 2.0, 3.0].into_iter().zip(want) {
                assert_eq!(metric_matches(&metric(op, 2.0), Some(v)), w, "{v} {op} 2");
            }
            assert!(!metric_matches(&metric(op, 2.0), None));
        }
        assert!(!metric_matches(&metric("NOT_EQUAL", 2.0), Some(3.0)));
    }

    // --- SegmentDimensions::matches ---------------------------------------

    #[test]
    fn empty_dimensions_match_everything() {
        let ep = EndpointResponse::default();
        assert!(SegmentDimensions::default().matches(&facts(&ep), NOW));
    }

    #[test]
    fn attributes_user_attributes_and_metrics() {
        let ep = endpoint(json!({
            "Attributes": {"plan": ["gold"]},
            "User": {"UserAttributes": {"tier": ["vip"]}},
            "Metrics": {"purchases": 3.0}
        }));
        let f = facts(&ep);
        assert!(dims(json!({"Attributes": {"plan": {"Values": ["gold"]}}})).matches(&f, NOW));
        assert!(!dims(json!({"Attributes": {"tier": {"Values": ["vip"]}}})).matches(&f, NOW));
        assert!(dims(json!({"UserAttributes": {"tier": {"Values": ["vip"]}}})).matches(&f, NOW));
        assert!(!dims(json!({"UserAttributes": {"plan": {"Values": ["gold"]}}})).matches(&f, NOW));
        assert!(dims(
            json!({"Metrics": {"purchases": {"ComparisonOperator": "GREATER_THAN", "Value": 2}}})
        )
        .matches(&f, NOW));
        assert!(!dims(
            json!({"Metrics": {"visits": {"ComparisonOperator": "LESS_THAN", "Value": 2}}})
        )
        .matches(&f, NOW));
        // Every member must hold.
        let both = dims(json!({
            "Attributes": {"plan": {"Values": ["gold"]}},
            "Metrics": {"purchases": {"ComparisonOperator": "EQUAL", "Value": 4}}
        }));
        assert!(!both.matches(&f, NOW));
    }

    #[test]
    fn each_demographic_field() {
        let ep = EndpointResponse {
            channel_type: Some("APNS".into()),
            attributes: Some(BTreeMap::from([(
                "DeviceType".to_string(),
                strings(&["PHONE", "TABLET"]),
            )])),
            demographic: Some(EndpointDemographic {
                app_version: Some("1.2.3".into()),
                make: Some("Apple".into()),
                model: Some("iPhone".into()),
                platform: Some("ios".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let f = facts(&ep);
        for (member, hit, miss) in [
            ("AppVersion", "1.2.3", "1.2.4"),
            ("Channel", "apns", "GCM"),
            ("DeviceType", "PHONE", "TABLET"), // only the first value counts
            ("Make", "apple", "Samsung"),
            ("Model", "iPhone", "Pixel"),
            ("Platform", "iOS", "android"),
        ] {
            let d = |v: &str, kind: &str| {
                dims(json!({"Demographic": {member: {"DimensionType": kind, "Values": [v]}}}))
            };
            assert!(d(hit, "INCLUSIVE").matches(&f, NOW), "{member} {hit}");
            assert!(!d(miss, "INCLUSIVE").matches(&f, NOW), "{member} {miss}");
            assert!(!d(hit, "EXCLUSIVE").matches(&f, NOW), "{member} !{hit}");
            assert!(d(miss, "EXCLUSIVE").matches(&f, NOW), "{member} !{miss}");
            // An endpoint without the field only passes EXCLUSIVE.
            let bare = EndpointResponse::default();
            assert!(!d(hit, "INCLUSIVE").matches(&facts(&bare), NOW));
            assert!(d(hit, "EXCLUSIVE").matches(&facts(&bare), NOW));
        }
    }

    #[test]
    fn country() {
        let ep = endpoint(json!({"Location": {"Country": "FR"}}));
        let d = |v: serde_json::Value| dims(json!({"Location": {"Country": v}}));
        assert!(d(json!({"Values": ["fr", "DE"]})).matches(&facts(&ep), NOW));
        assert!(!d(json!({"Values": ["US"]})).matches(&facts(&ep), NOW));
        assert!(
            !d(json!({"DimensionType": "EXCLUSIVE", "Values": ["FR"]})).matches(&facts(&ep), NOW)
        );
        let nowhere = EndpointResponse::default();
        assert!(!d(json!({"Values": ["FR"]})).matches(&facts(&nowhere), NOW));
    }

    const PARIS: (f64, f64) = (48.8566, 2.3522);
    const LONDON: (f64, f64) = (51.5074, -0.1278);

    fn gps(center: (f64, f64), range: Option<f64>) -> SegmentDimensions {
        let mut g = json!({"Coordinates": {"Latitude": center.0, "Longitude": center.1}});
        if let Some(r) = range {
            g["RangeInKilometers"] = json!(r);
        }
        dims(json!({"Location": {"GPSPoint": g}}))
    }

    fn at(p: (f64, f64)) -> EndpointResponse {
        endpoint(json!({"Location": {"Latitude": p.0, "Longitude": p.1}}))
    }

    #[test]
    fn gps_point() {
        let d = haversine_km(PARIS, LONDON);
        assert!((d - 343.6).abs() < 1.0, "{d}");
        let london = at(LONDON);
        assert!(gps(PARIS, Some(350.0)).matches(&facts(&london), NOW));
        assert!(!gps(PARIS, Some(300.0)).matches(&facts(&london), NOW));
        // Default range: 100 km. Versailles is ~17 km from Paris.
        let versailles = at((48.8049, 2.1204));
        assert!(gps(PARIS, None).matches(&facts(&versailles), NOW));
        assert!(!gps(PARIS, None).matches(&facts(&london), NOW));
        // No coordinates: no match, however wide the range.
        let half = endpoint(json!({"Location": {"Latitude": 51.5}}));
        assert!(!gps(PARIS, Some(20_000.0)).matches(&facts(&half), NOW));
        let none = EndpointResponse::default();
        assert!(!gps(PARIS, Some(20_000.0)).matches(&facts(&none), NOW));
    }

    #[test]
    fn recency_windows_and_edges() {
        assert_eq!(recency_window_ms("HR_24"), Some(86_400_000));
        assert_eq!(recency_window_ms("DAY_7"), Some(7 * 86_400_000));
        assert_eq!(recency_window_ms("DAY_14"), Some(14 * 86_400_000));
        assert_eq!(recency_window_ms("DAY_30"), Some(30 * 86_400_000));
        assert_eq!(recency_window_ms("DAY_1"), None);
        let r = |kind: &str| RecencyDimension {
            duration: Some("HR_24".into()),
            recency_type: Some(kind.into()),
        };
        let edge = NOW - time::DAY_MS;
        assert!(r("ACTIVE").matches(Some(edge), NOW));
        assert!(!r("INACTIVE").matches(Some(edge), NOW));
        assert!(!r("ACTIVE").matches(Some(edge - 1), NOW));
        assert!(r("INACTIVE").matches(Some(edge - 1), NOW));
        assert!(r("ACTIVE").matches(Some(NOW), NOW));
        assert!(!r("ACTIVE").matches(None, NOW));
        assert!(r("INACTIVE").matches(None, NOW)); // never active
        let odd = RecencyDimension {
            duration: Some("DAY_2".into()),
            recency_type: Some("INACTIVE".into()),
        };
        assert!(!odd.matches(None, NOW));

        let ep = EndpointResponse::default();
        let d =
            dims(json!({"Behavior": {"Recency": {"Duration": "DAY_7", "RecencyType": "ACTIVE"}}}));
        let f = EndpointFacts {
            endpoint: &ep,
            last_active_ms: Some(NOW - 7 * time::DAY_MS),
        };
        assert!(d.matches(&f, NOW));
        assert!(!d.matches(&f, NOW + 1));
    }

    // --- groups -----------------------------------------------------------

    fn src(id: &str) -> SegmentReference {
        SegmentReference {
            id: Some(id.into()),
            version: None,
        }
    }

    fn group(
        sources: &[&str],
        source_type: Option<&str>,
        d: Vec<SegmentDimensions>,
        kind: Option<&str>,
    ) -> SegmentGroup {
        SegmentGroup {
            dimensions: Some(d),
            source_segments: Some(sources.iter().map(|s| src(s)).collect()),
            source_type: source_type.map(str::to_string),
            r#type: kind.map(str::to_string),
        }
    }

    fn list(include: Option<&str>, groups: Vec<SegmentGroup>) -> SegmentGroupList {
        SegmentGroupList {
            groups: Some(groups),
            include: include.map(str::to_string),
        }
    }

    /// The endpoint belongs to source segments `a` and `b` only.
    fn member_of_a_b(r: &SegmentReference) -> bool {
        matches!(r.id.as_deref(), Some("a" | "b"))
    }

    #[test]
    fn group_base_by_source_type() {
        let ep = EndpointResponse::default();
        let f = facts(&ep);
        let g = |s: &[&str], t: Option<&str>| {
            group(s, t, vec![], None).matches(&f, NOW, &member_of_a_b)
        };
        assert!(g(&[], None)); // no sources: everyone
        assert!(g(&["a", "b"], None));
        assert!(!g(&["a", "c"], None));
        assert!(!g(&["a", "c"], Some("ALL")));
        assert!(g(&["a", "c"], Some("ANY")));
        assert!(!g(&["c", "d"], Some("ANY")));
        assert!(!g(&["a"], Some("NONE"))); // unsupported
    }

    #[test]
    fn group_dimensions_by_type() {
        let ep = endpoint(json!({"Demographic": {"Platform": "ios"}}));
        let f = facts(&ep);
        let ios = dims(json!({"Demographic": {"Platform": {"Values": ["ios"]}}}));
        let android = dims(json!({"Demographic": {"Platform": {"Values": ["android"]}}}));
        let g = |d: Vec<SegmentDimensions>, t: Option<&str>| {
            group(&[], None, d, t).matches(&f, NOW, &member_of_a_b)
        };
        let mixed = || vec![ios.clone(), android.clone()];
        assert!(!g(mixed(), None));
        assert!(!g(mixed(), Some("ALL")));
        assert!(g(vec![ios.clone()], Some("ALL")));
        assert!(g(mixed(), Some("ANY")));
        assert!(!g(vec![android.clone()], Some("ANY")));
        assert!(!g(mixed(), Some("NONE")));
        assert!(g(vec![android.clone()], Some("NONE")));
        for t in ["ALL", "ANY", "NONE"] {
            assert!(g(vec![], Some(t)), "empty Dimensions, Type {t}");
        }
        // Dimensions filter the base; they do not widen it.
        let outside = group(&["c"], None, vec![ios.clone()], Some("ANY"));
        assert!(!outside.matches(&f, NOW, &member_of_a_b));
    }

    #[test]
    fn groups_combine_by_include() {
        let ep = EndpointResponse::default();
        let f = facts(&ep);
        let yes = || group(&["a"], None, vec![], None);
        let no = || group(&["c"], None, vec![], None);
        let m = |inc: Option<&str>, gs: Vec<SegmentGroup>| {
            list(inc, gs).matches(&f, NOW, &member_of_a_b)
        };
        assert!(m(None, vec![yes(), yes()]));
        assert!(!m(None, vec![yes(), no()]));
        assert!(!m(Some("ALL"), vec![yes(), no()]));
        assert!(m(Some("ANY"), vec![yes(), no()]));
        assert!(!m(Some("ANY"), vec![no(), no()]));
        assert!(m(Some("NONE"), vec![no(), no()]));
        assert!(!m(Some("NONE"), vec![no(), yes()]));
        assert!(!m(Some("SOME"), vec![yes()]));
    }

    #[test]
    fn segment_matches_ands_dimensions_and_groups() {
        let ep = endpoint(json!({"ChannelType": "SMS"}));
        let f = facts(&ep);
        let sms = dims(json!({"Demographic": {"Channel": {"Values": ["SMS"]}}}));
        let email = dims(json!({"Demographic": {"Channel": {"Values": ["EMAIL"]}}}));
        let in_a = list(None, vec![group(&["a"], None, vec![], None)]);
        let in_c = list(None, vec![group(&["c"], None, vec![], None)]);
        let m = |d, g| segment_matches(d, g, &f, NOW, &member_of_a_b);
        assert!(m(None, None));
        assert!(m(Some(&sms), None));
        assert!(m(None, Some(&in_a)));
        assert!(m(Some(&sms), Some(&in_a)));
        assert!(!m(Some(&email), Some(&in_a)));
        assert!(!m(Some(&sms), Some(&in_c)));
    }

    // --- validation -------------------------------------------------------

    #[test]
    fn accepts_valid_requests() {
        let ok = |v: serde_json::Value| check(v.clone()).unwrap_or_else(|e| panic!("{v}: {e}"));
        ok(json!({"Dimensions": {}}));
        ok(
            json!({"Name": "n".repeat(64), "Dimensions": {"Attributes": {
                "a": {"AttributeType": "BEFORE", "Values": ["2026-01-01"]},
                "b": {"AttributeType": "BETWEEN", "Values": ["2026-01-01", "2026-01-01T00:00:00Z"]},
                "c": {"AttributeType": "CONTAINS", "Values": ["x"]},
                "d": {"Values": ["x"]}
            }}}),
        );
        ok(json!({"SegmentGroups": {"Include": "ALL", "Groups": [{
            "Type": "ANY", "SourceType": "ANY",
            "SourceSegments": [{"Id": "seg-imported-1", "Version": 1}],
            "Dimensions": [{"Demographic": {"Platform": {"Values": ["ios"]}}}]
        }]}}));
        ok(json!({"Dimensions": {"Location": {"GPSPoint": {
            "Coordinates": {"Latitude": -90.0, "Longitude": 180.0}
        }}}}));
    }

    #[test]
    fn rejects_invalid_requests() {
        let cases = [
            (json!({"Name": "x"}), "a dynamic segment needs Dimensions or SegmentGroups"),
            (
                json!({"Name": "n".repeat(65), "Dimensions": {}}),
                "Name: longer than 64 characters",
            ),
            (
                json!({"Dimensions": {"Attributes": {"plan": {"AttributeType": "inclusive", "Values": ["a"]}}}}),
                "Dimensions.Attributes[plan].AttributeType: \"inclusive\" is not one of \
                 INCLUSIVE, EXCLUSIVE, CONTAINS, BEFORE, AFTER, ON, BETWEEN",
            ),
            (
                json!({"Dimensions": {"Attributes": {"plan": {"Values": []}}}}),
                "Dimensions.Attributes[plan].Values: must hold at least one value",
            ),
            (
                json!({"Dimensions": {"UserAttributes": {"d": {"AttributeType": "ON", "Values": ["2026-01-01", "2026-01-02"]}}}}),
                "Dimensions.UserAttributes[d].Values: ON takes exactly one ISO-8601 date-time, got 2",
            ),
            (
                json!({"Dimensions": {"UserAttributes": {"d": {"AttributeType": "BETWEEN", "Values": ["2026-01-01"]}}}}),
                "Dimensions.UserAttributes[d].Values: BETWEEN takes exactly two ISO-8601 date-times (start and end), got 1",
            ),
            (
                json!({"Dimensions": {"UserAttributes": {"d": {"AttributeType": "BETWEEN", "Values": ["2026-01-02", "2026-01-01"]}}}}),
                "Dimensions.UserAttributes[d].Values: the BETWEEN start is after its end",
            ),
            (
                json!({"Dimensions": {"Attributes": {"": {"Values": ["a"]}}}}),
                "Dimensions.Attributes[]: an attribute name must not be empty",
            ),
            (
                json!({"Dimensions": {"Behavior": {"Recency": {"Duration": "DAY_1", "RecencyType": "ACTIVE"}}}}),
                "Dimensions.Behavior.Recency.Duration: \"DAY_1\" is not one of HR_24, DAY_7, DAY_14, DAY_30",
            ),
            (
                json!({"Dimensions": {"Behavior": {"Recency": {"Duration": "DAY_7"}}}}),
                "Dimensions.Behavior.Recency.RecencyType: required",
            ),
            (
                json!({"Dimensions": {"Demographic": {"Platform": {"DimensionType": "CONTAINS", "Values": ["x"]}}}}),
                "Dimensions.Demographic.Platform.DimensionType: \"CONTAINS\" is not one of INCLUSIVE, EXCLUSIVE",
            ),
            (
                json!({"Dimensions": {"Demographic": {"Channel": {}}}}),
                "Dimensions.Demographic.Channel.Values: must hold at least one value",
            ),
            (
                json!({"Dimensions": {"Location": {"Country": {"Values": []}}}}),
                "Dimensions.Location.Country.Values: must hold at least one value",
            ),
            (
                json!({"Dimensions": {"Location": {"GPSPoint": {"RangeInKilometers": 5}}}}),
                "Dimensions.Location.GPSPoint.Coordinates: required",
            ),
            (
                json!({"Dimensions": {"Location": {"GPSPoint": {"Coordinates": {"Latitude": 90.5, "Longitude": 0}}}}}),
                "Dimensions.Location.GPSPoint.Coordinates.Latitude: 90.5 is outside -90..=90",
            ),
            (
                json!({"Dimensions": {"Location": {"GPSPoint": {"Coordinates": {"Latitude": 0, "Longitude": -180.5}}}}}),
                "Dimensions.Location.GPSPoint.Coordinates.Longitude: -180.5 is outside -180..=180",
            ),
            (
                json!({"Dimensions": {"Location": {"GPSPoint": {"Coordinates": {"Latitude": 0}}}}}),
                "Dimensions.Location.GPSPoint.Coordinates.Longitude: required",
            ),
            (
                json!({"Dimensions": {"Location": {"GPSPoint": {"Coordinates": {"Latitude": 0, "Longitude": 0}, "RangeInKilometers": 0}}}}),
                "Dimensions.Location.GPSPoint.RangeInKilometers: must be a positive number",
            ),
            (
                json!({"Dimensions": {"Metrics": {"m": {"Value": 1}}}}),
                "Dimensions.Metrics[m].ComparisonOperator: required",
            ),
            (
                json!({"Dimensions": {"Metrics": {"m": {"ComparisonOperator": "NOT_EQUAL", "Value": 1}}}}),
                "Dimensions.Metrics[m].ComparisonOperator: \"NOT_EQUAL\" is not one of GREATER_THAN, \
                 LESS_THAN, GREATER_THAN_OR_EQUAL, LESS_THAN_OR_EQUAL, EQUAL",
            ),
            (
                json!({"SegmentGroups": {"Groups": []}}),
                "SegmentGroups.Groups: must hold at least one segment group",
            ),
            (
                json!({"SegmentGroups": {"Groups": [{}, {}, {}, {}, {}, {}]}}),
                "SegmentGroups.Groups: 6 groups exceed the limit of 5",
            ),
            (
                json!({"SegmentGroups": {"Groups": [{}], "Include": "SOME"}}),
                "SegmentGroups.Include: \"SOME\" is not one of ALL, ANY, NONE",
            ),
            (
                json!({"SegmentGroups": {"Groups": [{"Type": "EVERY"}]}}),
                "SegmentGroups.Groups[0].Type: \"EVERY\" is not one of ALL, ANY, NONE",
            ),
            (
                json!({"SegmentGroups": {"Groups": [{"SourceType": "NONE"}]}}),
                "SegmentGroups.Groups[0].SourceType: \"NONE\" is not one of ALL, ANY",
            ),
            (
                json!({"SegmentGroups": {"Groups": [{}, {"SourceSegments": [{"Id": "a"}, {"Id": ""}]}]}}),
                "SegmentGroups.Groups[1].SourceSegments[1].Id: must not be empty",
            ),
            (
                json!({"SegmentGroups": {"Groups": [{"SourceSegments": [{"Version": 1}]}]}}),
                "SegmentGroups.Groups[0].SourceSegments[0].Id: required",
            ),
            (
                json!({"SegmentGroups": {"Groups": [{"SourceSegments": [{"Id": "a", "Version": 0}]}]}}),
                "SegmentGroups.Groups[0].SourceSegments[0].Version: must be at least 1",
            ),
            (
                json!({"SegmentGroups": {"Groups": [{"SourceSegments": vec![json!({"Id": "a"}); 11]}]}}),
                "SegmentGroups.Groups[0].SourceSegments: 11 source segments exceed the limit of 10",
            ),
            (
                json!({"SegmentGroups": {"Groups": [{"Dimensions": [{}, {"Behavior": {"Recency": {"RecencyType": "ACTIVE"}}}]}]}}),
                "SegmentGroups.Groups[0].Dimensions[1].Behavior.Recency.Duration: required",
            ),
        ];
        for (req, want) in cases {
            assert_eq!(check_err(req), want);
        }
    }

    #[test]
    fn rejects_bad_dates_and_values() {
        let e = check_err(
            json!({"Dimensions": {"Attributes": {"d": {"AttributeType": "AFTER", "Values": ["soon"]}}}}),
        );
        assert!(
            e.starts_with("Dimensions.Attributes[d].Values[0]: \"soon\" is not an ISO-8601"),
            "{e}"
        );
        let mut req = WriteSegmentRequest {
            dimensions: Some(SegmentDimensions {
                metrics: Some(BTreeMap::from([(
                    "m".to_string(),
                    metric("EQUAL", f64::NAN),
                )])),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            validate_write_segment(&req).unwrap_err().0,
            "Dimensions.Metrics[m].Value: must be a finite number"
        );
        let many: BTreeMap<String, AttributeDimension> = (0..101)
            .map(|i| (format!("a{i:03}"), attr("INCLUSIVE", &["x"])))
            .collect();
        req.dimensions = Some(SegmentDimensions {
            attributes: Some(many.clone()),
            ..Default::default()
        });
        assert_eq!(
            validate_write_segment(&req).unwrap_err().0,
            "Dimensions.Attributes: 101 dimensions exceed the limit of 100"
        );
        let mut hundred = many;
        hundred.remove("a100");
        req.dimensions = Some(SegmentDimensions {
            user_attributes: Some(hundred),
            ..Default::default()
        });
        assert_eq!(validate_write_segment(&req), Ok(()));
        // A user without attributes is fine input for matching too.
        let ep = EndpointResponse {
            user: Some(EndpointUser::default()),
            ..Default::default()
        };
        assert!(!req.dimensions.as_ref().unwrap().matches(&facts(&ep), NOW));
    }

    // --- properties -------------------------------------------------------

    fn small_strings() -> impl Strategy<Value = Vec<String>> {
        prop::collection::vec("[abc]{0,2}", 0..4)
    }

    proptest! {
        #[test]
        fn exclusive_negates_inclusive(
            want in small_strings(),
            have in prop::option::of(small_strings()),
        ) {
            let have = have.as_deref();
            let inc = attribute_matches(&AttributeDimension { attribute_type: Some("INCLUSIVE".into()), values: want.clone() }, have);
            let exc = attribute_matches(&AttributeDimension { attribute_type: Some("EXCLUSIVE".into()), values: want }, have);
            prop_assert_eq!(exc, !inc);
        }

        #[test]
        fn set_exclusive_negates_inclusive(
            want in small_strings(),
            have in prop::option::of("[abcAB]{0,2}"),
        ) {
            let inc = set_matches(&SetDimension { dimension_type: Some("INCLUSIVE".into()), values: want.clone() }, have.as_deref());
            let exc = set_matches(&SetDimension { dimension_type: Some("EXCLUSIVE".into()), values: want }, have.as_deref());
            prop_assert_eq!(exc, !inc);
        }

        #[test]
        fn between_is_after_or_on_start_and_before_or_on_end(
            a in 0i64..4_000_000_000_000,
            b in 0i64..4_000_000_000_000,
            t in 0i64..4_000_000_000_000,
            pick in 0usize..3,
        ) {
            // Also probe the bounds themselves.
            let t = [t, a, b][pick];
            let s = |ms: i64| time::format_iso8601_ms(ms);
            let have = vec![s(t)];
            let have = Some(have.as_slice());
            let test = |kind: &str, bounds: Vec<String>| attribute_matches(
                &AttributeDimension { attribute_type: Some(kind.into()), values: bounds },
                have,
            );
            let between = test("BETWEEN", vec![s(a), s(b)]);
            let from_a = test("AFTER", vec![s(a)]) || t == a;
            let to_b = test("BEFORE", vec![s(b)]) || t == b;
            prop_assert_eq!(between, from_a && to_b);
        }

        #[test]
        fn haversine_is_a_bounded_symmetric_distance(
            lat1 in -90.0f64..=90.0, lon1 in -180.0f64..=180.0,
            lat2 in -90.0f64..=90.0, lon2 in -180.0f64..=180.0,
        ) {
            let (p, q) = ((lat1, lon1), (lat2, lon2));
            let d = haversine_km(p, q);
            prop_assert!(d >= 0.0);
            prop_assert!(d <= std::f64::consts::PI * EARTH_RADIUS_KM);
            prop_assert!((d - haversine_km(q, p)).abs() < 1e-6);
            prop_assert_eq!(haversine_km(p, p), 0.0);
        }

        #[test]
        fn include_none_is_not_include_any(outcomes in prop::collection::vec(any::<bool>(), 0..6)) {
            let ep = EndpointResponse::default();
            let f = facts(&ep);
            let groups: Vec<SegmentGroup> = outcomes
                .iter()
                .map(|&o| group(&[if o { "a" } else { "c" }], None, vec![], None))
                .collect();
            let any = list(Some("ANY"), groups.clone()).matches(&f, NOW, &member_of_a_b);
            let none = list(Some("NONE"), groups.clone()).matches(&f, NOW, &member_of_a_b);
            let all = list(Some("ALL"), groups).matches(&f, NOW, &member_of_a_b);
            prop_assert_eq!(none, !any);
            prop_assert_eq!(any, outcomes.iter().any(|&o| o));
            prop_assert_eq!(all, outcomes.iter().all(|&o| o));
        }

        #[test]
        fn metric_operators_agree_with_f64(v in -1e6f64..1e6, x in -1e6f64..1e6, same in any::<bool>()) {
            let v = if same { x } else { v };
            let m = |op: &str| metric_matches(&metric(op, x), Some(v));
            prop_assert_eq!(m("GREATER_THAN"), v > x);
            prop_assert_eq!(m("LESS_THAN"), v < x);
            prop_assert_eq!(m("GREATER_THAN_OR_EQUAL"), v >= x);
            prop_assert_eq!(m("LESS_THAN_OR_EQUAL"), v <= x);
            prop_assert_eq!(m("EQUAL"), v == x);
        }
    }
}

//! Segment definitions and the pure rules that decide membership.
//!
//! The dimension primitives (`AttributeDimension`, `SetDimension`,
//! `MetricDimension`) are shared with campaign event filters.

use serde::{Deserialize, Serialize};

use crate::time;

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
            let bound = |i: usize| dim.values.get(i).and_then(|s| time::parse_iso8601_ms(s).ok());
            vals.iter()
                .filter_map(|v| time::parse_iso8601_ms(v).ok())
                .any(|t| match kind {
                    "BEFORE" => bound(0).is_some_and(|b| t < b),
                    "AFTER" => bound(0).is_some_and(|b| t > b),
                    "ON" => bound(0).is_some_and(|b| {
                        t.div_euclid(time::DAY_MS) == b.div_euclid(time::DAY_MS)
                    }),
                    _ => match (bound(0), bound(1)) {
                        (Some(lo), Some(hi)) => lo <= t && t <= hi,
                        _ => false,
                    },
                })
        }
        _ => false,
    }
}

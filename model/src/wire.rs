//! Serde types for Pinpoint's JSON bodies (restJson1, API 2016-12-01).
//!
//! One Rust struct per botocore shape, with the shape's name. JSON member names
//! are the model's member names (PascalCase) or their `locationName` where it
//! differs (`tags`; `MessageBody.RequestID`). Members are `Option` with absent
//! values omitted on output, except required members of output-only shapes.
//! Required members of *input* shapes are still `Option`, so a missing value is
//! reported by `validate` as a clear BadRequest rather than a serde error.
//! Enum-valued members stay `String` here and are checked in `validate`.
//! Maps are `BTreeMap` so serialized bytes are deterministic.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `map<string, list<string>>` as used by endpoint and user attributes.
pub type AttributeMap = BTreeMap<String, Vec<String>>;

// ---------------------------------------------------------------------------
// Apps and application settings
// ---------------------------------------------------------------------------

/// Body of `CreateApp`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateApplicationRequest {
    /// Required by the model; checked by `validate::app_name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(rename = "tags", default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
}

/// Body of `CreateApp`, `GetApp`, `DeleteApp` responses.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ApplicationResponse {
    #[serde(default)]
    pub arn: String,
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub name: String,
    /// AWS returns `"tags": {}` for an untagged app: set `Some(empty)`.
    #[serde(rename = "tags", default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_date: Option<String>,
}

/// Body of the `GetApps` response.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ApplicationsResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<Vec<ApplicationResponse>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// Body of `GetApplicationSettings` / `UpdateApplicationSettings` responses.
/// Note: it has no `CloudWatchMetricsEnabled` / `EventTaggingEnabled`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ApplicationSettingsResource {
    #[serde(default)]
    pub application_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign_hook: Option<CampaignHook>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<CampaignLimits>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_time: Option<QuietTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journey_limits: Option<ApplicationSettingsJourneyLimits>,
}

/// Body of `UpdateApplicationSettings`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WriteApplicationSettingsRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign_hook: Option<CampaignHook>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_watch_metrics_enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_tagging_enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<CampaignLimits>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_time: Option<QuietTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journey_limits: Option<ApplicationSettingsJourneyLimits>,
}

/// Lambda / web hook for campaigns. `Mode` is `DELIVERY` | `FILTER`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CampaignHook {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lambda_function_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_url: Option<String>,
}

/// Sending limits of a campaign, or an app's defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CampaignLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum_duration: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages_per_second: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<i32>,
}

/// Quiet time as `HH:MM` strings, in the endpoint's local time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct QuietTime {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
}

/// Default journey limits of an app.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ApplicationSettingsJourneyLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_cap: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeframe_cap: Option<JourneyTimeframeCap>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_cap: Option<i32>,
}

/// Messages all journeys may send to an endpoint within `Days` days.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JourneyTimeframeCap {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days: Option<i32>,
}

// ---------------------------------------------------------------------------
// Endpoints and users
// ---------------------------------------------------------------------------

/// Body of `UpdateEndpoint`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<AttributeMap>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub demographic: Option<EndpointDemographic>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<EndpointLocation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<BTreeMap<String, f64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opt_out: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<EndpointUser>,
}

/// A stored endpoint, as `GetEndpoint` returns it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<AttributeMap>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_type: Option<String>,
    /// `"0"`..`"99"`; see `hash::cohort_of`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cohort_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub demographic: Option<EndpointDemographic>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<EndpointLocation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<BTreeMap<String, f64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opt_out: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<EndpointUser>,
}

/// Body of `UpdateEndpointsBatch`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointBatchRequest {
    /// Required by the model; checked by `validate::endpoint_batch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<Vec<EndpointBatchItem>>,
}

/// One item of `UpdateEndpointsBatch`: an `EndpointRequest` plus its `Id`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointBatchItem {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<AttributeMap>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub demographic: Option<EndpointDemographic>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<EndpointLocation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<BTreeMap<String, f64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opt_out: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<EndpointUser>,
}

impl EndpointBatchItem {
    /// The item's endpoint fields as an `EndpointRequest` (everything but `Id`).
    pub fn to_request(&self) -> EndpointRequest {
        EndpointRequest {
            address: self.address.clone(),
            attributes: self.attributes.clone(),
            channel_type: self.channel_type.clone(),
            demographic: self.demographic.clone(),
            effective_date: self.effective_date.clone(),
            endpoint_status: self.endpoint_status.clone(),
            location: self.location.clone(),
            metrics: self.metrics.clone(),
            opt_out: self.opt_out.clone(),
            request_id: self.request_id.clone(),
            user: self.user.clone(),
        }
    }
}

/// Device and locale facts about an endpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointDemographic {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub make: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform_version: Option<String>,
    /// A tz database name such as `America/Los_Angeles`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
}

/// Geographic facts about an endpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointLocation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// ISO 3166-1 alpha-2 per the docs; AWS itself returns alpha-3 (`USA`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latitude: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub longitude: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// The user an endpoint belongs to, and the user's attributes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointUser {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_attributes: Option<AttributeMap>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
}

/// Body of `GetUserEndpoints` / `DeleteUserEndpoints` responses.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointsResponse {
    #[serde(default)]
    pub item: Vec<EndpointResponse>,
}

/// Body of `RemoveAttributes`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateAttributesRequest {
    /// Exact attribute names or glob patterns (`*`, `?`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blacklist: Option<Vec<String>>,
}

/// Body of the `RemoveAttributes` response.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AttributesResource {
    #[serde(default)]
    pub application_id: String,
    #[serde(default)]
    pub attribute_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<Vec<String>>,
}

/// Generic acknowledgement (`{"Message": "Accepted", "RequestID": "..."}`); also
/// the body of every error response.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MessageBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(rename = "RequestID", default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

// ---------------------------------------------------------------------------
// Events (PutEvents)
// ---------------------------------------------------------------------------

/// Body of `PutEvents`: endpoint id → batch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EventsRequest {
    /// Required by the model; checked by `validate::events_request`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_item: Option<BTreeMap<String, EventsBatch>>,
}

/// The endpoint data and the events (client event id → event) of one endpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EventsBatch {
    /// Required by the model; checked by `validate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<PublicEndpoint>,
    /// Required by the model; checked by `validate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<BTreeMap<String, Event>>,
}

/// Endpoint data sent along with events; upserted as a side effect.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PublicEndpoint {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<AttributeMap>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub demographic: Option<EndpointDemographic>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<EndpointLocation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<BTreeMap<String, f64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opt_out: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<EndpointUser>,
}

impl PublicEndpoint {
    /// The same fields as an `EndpointRequest`, for `endpoint::merge_update`.
    pub fn to_request(&self) -> EndpointRequest {
        EndpointRequest {
            address: self.address.clone(),
            attributes: self.attributes.clone(),
            channel_type: self.channel_type.clone(),
            demographic: self.demographic.clone(),
            effective_date: self.effective_date.clone(),
            endpoint_status: self.endpoint_status.clone(),
            location: self.location.clone(),
            metrics: self.metrics.clone(),
            opt_out: self.opt_out.clone(),
            request_id: self.request_id.clone(),
            user: self.user.clone(),
        }
    }
}

/// One app event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Event {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_package_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_version_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_sdk_version: Option<String>,
    /// Required by the model; checked by `validate::event`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<BTreeMap<String, f64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdk_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<Session>,
    /// Required by the model (ISO 8601); checked by `validate::event`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
}

/// The client's view of the session an event belongs to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Session {
    /// Milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<i32>,
    /// Required by the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Required by the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_timestamp: Option<String>,
}

/// Body of the `PutEvents` response: endpoint id → result.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EventsResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub results: Option<BTreeMap<String, ItemResponse>>,
}

/// Result for one endpoint of a `PutEvents` request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ItemResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_item_response: Option<EndpointItemResponse>,
    /// Client event id → result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_item_response: Option<BTreeMap<String, EventItemResponse>>,
}

/// Status of the endpoint part of a `PutEvents` batch (202 or 400).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointItemResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<i32>,
}

/// Status of one event of a `PutEvents` batch (202 or 400).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EventItemResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<i32>,
}

// ---------------------------------------------------------------------------
// Tags
// ---------------------------------------------------------------------------

/// Body of `TagResource` and of the `ListTagsForResource` response.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TagsModel {
    /// Required by the model; a missing map is a BadRequest on `TagResource`.
    #[serde(rename = "tags", default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn update_endpoint_example_round_trips_with_model_names() {
        let body = json!({
            "Address": "user@example.com",
            "ChannelType": "EMAIL",
            "EndpointStatus": "ACTIVE",
            "OptOut": "NONE",
            "EffectiveDate": "2024-05-01T12:00:00.000Z",
            "Attributes": {"Interests": ["cooking", "travel"]},
            "Metrics": {"purchases": 3.0},
            "Demographic": {"Platform": "ios", "PlatformVersion": "17.4", "Make": "Apple",
                "Model": "iPhone", "ModelVersion": "15", "Timezone": "America/Los_Angeles",
                "Locale": "en_US", "AppVersion": "1.2.3"},
            "Location": {"Country": "US", "City": "Seattle", "PostalCode": "98101",
                "Region": "WA", "Latitude": 47.6, "Longitude": -122.3},
            "RequestId": "r-1",
            "User": {"UserId": "user-42", "UserAttributes": {"Plan": ["gold"]}}
        });
        let req: EndpointRequest = serde_json::from_value(body.clone()).unwrap();
        assert_eq!(req.channel_type.as_deref(), Some("EMAIL"));
        assert_eq!(
            req.demographic.as_ref().unwrap().model_version.as_deref(),
            Some("15")
        );
        assert_eq!(req.location.as_ref().unwrap().latitude, Some(47.6));
        assert_eq!(
            req.user.as_ref().unwrap().user_id.as_deref(),
            Some("user-42")
        );
        assert_eq!(serde_json::to_value(&req).unwrap(), body);
    }

    #[test]
    fn absent_members_are_omitted_and_null_is_absent() {
        let req: EndpointRequest =
            serde_json::from_value(json!({"Address": null, "ChannelType": "SMS"})).unwrap();
        assert_eq!(req.address, None);
        assert_eq!(
            serde_json::to_string(&req).unwrap(),
            r#"{"ChannelType":"SMS"}"#
        );
        assert_eq!(
            serde_json::to_string(&EndpointResponse::default()).unwrap(),
            "{}"
        );
    }

    #[test]
    fn lowercase_tags_and_request_id_spelling() {
        let app: CreateApplicationRequest =
            serde_json::from_value(json!({"Name": "my-project", "tags": {"env": "dev"}})).unwrap();
        assert_eq!(app.name.as_deref(), Some("my-project"));
        assert_eq!(app.tags.unwrap()["env"], "dev");

        let tags = TagsModel {
            tags: Some(BTreeMap::from([("a".into(), "1".into())])),
        };
        assert_eq!(
            serde_json::to_value(&tags).unwrap(),
            json!({"tags": {"a": "1"}})
        );

        let ack = MessageBody {
            message: Some("Accepted".into()),
            request_id: Some("r".into()),
        };
        assert_eq!(
            serde_json::to_value(&ack).unwrap(),
            json!({"Message": "Accepted", "RequestID": "r"})
        );

        let resp = ApplicationResponse {
            arn: "arn".into(),
            id: "id".into(),
            name: "n".into(),
            tags: Some(BTreeMap::new()),
            creation_date: None,
        };
        assert_eq!(
            serde_json::to_value(&resp).unwrap(),
            json!({"Arn": "arn", "Id": "id", "Name": "n", "tags": {}})
        );
    }

    #[test]
    fn settings_example_parses() {
        let body = json!({
            "CampaignHook": {"LambdaFunctionName": "arn:aws:lambda:us-east-1:123456789012:function:hook", "Mode": "FILTER", "WebUrl": "https://x"},
            "CloudWatchMetricsEnabled": true,
            "EventTaggingEnabled": false,
            "Limits": {"Daily": 10, "MaximumDuration": 600, "MessagesPerSecond": 50, "Total": 100, "Session": 5},
            "QuietTime": {"Start": "22:00", "End": "07:00"},
            "JourneyLimits": {"DailyCap": 3, "TimeframeCap": {"Cap": 5, "Days": 7}, "TotalCap": 9}
        });
        let req: WriteApplicationSettingsRequest = serde_json::from_value(body.clone()).unwrap();
        assert_eq!(req.limits.as_ref().unwrap().messages_per_second, Some(50));
        assert_eq!(
            req.journey_limits
                .as_ref()
                .unwrap()
                .timeframe_cap
                .as_ref()
                .unwrap()
                .days,
            Some(7)
        );
        assert_eq!(serde_json::to_value(&req).unwrap(), body);

        let res = ApplicationSettingsResource {
            application_id: "a".into(),
            limits: req.limits.clone(),
            ..Default::default()
        };
        let v = serde_json::to_value(&res).unwrap();
        assert_eq!(v["ApplicationId"], "a");
        assert_eq!(v["Limits"]["Daily"], 10);
        assert!(v.get("CloudWatchMetricsEnabled").is_none());
    }

    #[test]
    fn put_events_example_parses_and_response_serializes() {
        let body = json!({"BatchItem": {"ep-1": {
            "Endpoint": {"ChannelType": "EMAIL", "Address": "user@example.com"},
            "Events": {"evt-1": {"EventType": "purchase", "Timestamp": "2024-05-01T12:00:00.000Z",
                "Attributes": {"sku": "A1"}, "Metrics": {"price": 9.99},
                "Session": {"Id": "s-1", "StartTimestamp": "2024-05-01T11:59:00.000Z", "Duration": 10},
                "AppPackageName": "com.example", "AppVersionCode": "123", "SdkName": "custom",
                "AppTitle": "t", "ClientSdkVersion": "1"}}}}});
        let req: EventsRequest = serde_json::from_value(body.clone()).unwrap();
        let batch = &req.batch_item.as_ref().unwrap()["ep-1"];
        let ev = &batch.events.as_ref().unwrap()["evt-1"];
        assert_eq!(ev.session.as_ref().unwrap().duration, Some(10));
        assert_eq!(serde_json::to_value(&req).unwrap(), body);

        let resp = EventsResponse {
            results: Some(BTreeMap::from([(
                "ep-1".to_string(),
                ItemResponse {
                    endpoint_item_response: Some(EndpointItemResponse {
                        message: Some("Accepted".into()),
                        status_code: Some(202),
                    }),
                    events_item_response: Some(BTreeMap::from([(
                        "evt-1".to_string(),
                        EventItemResponse {
                            message: Some("Accepted".into()),
                            status_code: Some(202),
                        },
                    )])),
                },
            )])),
        };
        assert_eq!(
            serde_json::to_value(&resp).unwrap(),
            json!({"Results":{"ep-1":{"EndpointItemResponse":{"Message":"Accepted","StatusCode":202},
                "EventsItemResponse":{"evt-1":{"Message":"Accepted","StatusCode":202}}}}})
        );
    }

    #[test]
    fn batch_item_and_public_endpoint_convert_to_request() {
        let item: EndpointBatchItem = serde_json::from_value(json!({
            "Id": "ep-2", "ChannelType": "SMS", "Address": "+12065550100",
            "User": {"UserId": "user-42"}
        }))
        .unwrap();
        let req = item.to_request();
        assert_eq!(item.id.as_deref(), Some("ep-2"));
        assert_eq!(req.address.as_deref(), Some("+12065550100"));
        assert_eq!(
            serde_json::to_value(&req).unwrap(),
            json!({"ChannelType": "SMS", "Address": "+12065550100", "User": {"UserId": "user-42"}})
        );
        let public: PublicEndpoint =
            serde_json::from_value(serde_json::to_value(&req).unwrap()).unwrap();
        assert_eq!(public.to_request(), req);
    }

    #[test]
    fn output_shapes_with_required_members() {
        let v = json!({"Item": [{"Id": "e", "CohortId": "3"}]});
        let r: EndpointsResponse = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(r.item.len(), 1);
        assert_eq!(serde_json::to_value(&r).unwrap(), v);
        assert_eq!(
            serde_json::to_value(EndpointsResponse::default()).unwrap(),
            json!({"Item": []})
        );

        let a = AttributesResource {
            application_id: "app".into(),
            attribute_type: "endpoint-custom-attributes".into(),
            attributes: Some(vec!["Interests".into()]),
        };
        assert_eq!(
            serde_json::to_value(&a).unwrap(),
            json!({"ApplicationId": "app", "AttributeType": "endpoint-custom-attributes", "Attributes": ["Interests"]})
        );
        let u: UpdateAttributesRequest =
            serde_json::from_value(json!({"Blacklist": ["a*"]})).unwrap();
        assert_eq!(u.blacklist.unwrap(), vec!["a*".to_string()]);

        let apps = ApplicationsResponse {
            item: Some(vec![]),
            next_token: None,
        };
        assert_eq!(serde_json::to_value(&apps).unwrap(), json!({"Item": []}));
    }
}

// ---- channels -------------------------------------------------------------------

/// Body of `UpdateEmailChannel`. `Identity`, `RoleArn` and
/// `OrchestrationSendingRoleArn` name AWS resources: herald stores and
/// returns them but sends through its own SMTP configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EmailChannelRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration_set: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orchestration_sending_role_arn: Option<String>,
}

/// Body of the email channel responses.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EmailChannelResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration_set: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub has_credential: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_archived: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages_per_second: Option<i32>,
    #[serde(default)]
    pub platform: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orchestration_sending_role_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i32>,
}

/// One channel's summary in `GetChannels`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ChannelResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub has_credential: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_archived: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i32>,
}

/// Body of `GetChannels`: channel type (`EMAIL`, `SMS`, ...) to summary.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ChannelsResponse {
    #[serde(default)]
    pub channels: BTreeMap<String, ChannelResponse>,
}

//! The HTTP API: Pinpoint's REST routes (restJson1 bodies, status codes per
//! botocore's model), `/health` and `/metrics`, behind SigV4 verification.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::body::{Body, Bytes};
use axum::extract::{Extension, Path, Query, RawQuery, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use herald_actors::sends::RequestKeys;
use herald_actors::Herald;
use herald_channels::outbox::Outbox;
use herald_model::channel::CustomChannelRequest;
use herald_model::import::{ExportJobRequest, ImportJobRequest};
use herald_model::message::{MessageRequest, SendUsersMessageRequest};
use herald_model::template::{
    CreateTemplateMessageBody, TemplateActiveVersionRequest, TemplateType,
};
use herald_model::tracking::TrackKind;
use herald_model::wire::{
    ApplicationResponse, ApplicationsResponse, AttributesResource, CreateApplicationRequest,
    EmailChannelRequest, EndpointBatchRequest, EndpointRequest, EndpointsResponse, EventsRequest,
    MessageBody, TagsModel, UpdateAttributesRequest, WriteApplicationSettingsRequest,
};
use herald_storage::{AppRecord, RocksEngine};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{render, ApiError, ErrorBody, ErrorType};
use crate::sigv4::{SigV4Verifier, Verified};

pub struct AppState {
    pub herald: Arc<Herald<RocksEngine>>,
    pub verifier: SigV4Verifier,
    pub metrics: PrometheusHandle,
    /// Largest request body accepted at all.
    pub body_bytes_max: usize,
    /// The dev outbox, when no SMTP server is configured.
    pub outbox: Option<Arc<Outbox>>,
}

type St = State<Arc<AppState>>;
type ApiResult = Result<Response, ApiError>;

pub fn router(state: Arc<AppState>) -> Router {
    let pinpoint = Router::new()
        .route("/v1/apps", post(create_app).get(get_apps))
        .route("/v1/apps/{app}", get(get_app).delete(delete_app))
        .route(
            "/v1/apps/{app}/settings",
            get(get_settings).put(update_settings),
        )
        .route("/v1/apps/{app}/channels", get(get_channels))
        .route(
            "/v1/apps/{app}/channels/email",
            get(get_email_channel)
                .put(update_email_channel)
                .delete(delete_email_channel),
        )
        .route("/v1/apps/{app}/endpoints", put(update_endpoints_batch))
        .route(
            "/v1/apps/{app}/endpoints/{endpoint}",
            put(update_endpoint)
                .get(get_endpoint)
                .delete(delete_endpoint),
        )
        .route(
            "/v1/apps/{app}/users/{user}",
            get(get_user_endpoints).delete(delete_user_endpoints),
        )
        .route("/v1/apps/{app}/events", post(put_events))
        .route(
            "/v1/apps/{app}/attributes/{attribute_type}",
            put(remove_attributes),
        )
        .route(
            "/v1/apps/{app}/segments",
            post(create_segment).get(get_segments),
        )
        .route(
            "/v1/apps/{app}/segments/{id}",
            get(get_segment).put(update_segment).delete(delete_segment),
        )
        .route(
            "/v1/apps/{app}/segments/{id}/versions",
            get(get_segment_versions),
        )
        .route(
            "/v1/apps/{app}/segments/{id}/versions/{version}",
            get(get_segment_version),
        )
        .route(
            "/v1/apps/{app}/segments/{id}/jobs/import",
            get(get_segment_import_jobs),
        )
        .route(
            "/v1/apps/{app}/segments/{id}/jobs/export",
            get(get_segment_export_jobs),
        )
        .route(
            "/v1/apps/{app}/jobs/import",
            post(create_import_job).get(get_import_jobs),
        )
        .route("/v1/apps/{app}/jobs/import/{id}", get(get_import_job))
        .route(
            "/v1/apps/{app}/jobs/export",
            post(create_export_job).get(get_export_jobs),
        )
        .route("/v1/apps/{app}/jobs/export/{id}", get(get_export_job))
        .route(
            "/v1/apps/{app}/campaigns",
            post(create_campaign).get(get_campaigns),
        )
        .route(
            "/v1/apps/{app}/campaigns/{id}",
            get(get_campaign)
                .put(update_campaign)
                .delete(delete_campaign),
        )
        .route(
            "/v1/apps/{app}/campaigns/{id}/versions",
            get(get_campaign_versions),
        )
        .route(
            "/v1/apps/{app}/campaigns/{id}/versions/{version}",
            get(get_campaign_version),
        )
        .route(
            "/v1/apps/{app}/campaigns/{id}/activities",
            get(get_campaign_activities),
        )
        .route("/v1/templates", get(list_templates))
        .route(
            "/v1/templates/{name}/{kind}",
            post(create_template)
                .get(get_template)
                .put(update_template)
                .delete(delete_template),
        )
        .route(
            "/v1/templates/{name}/{kind}/versions",
            get(list_template_versions),
        )
        .route(
            "/v1/templates/{name}/{kind}/active-version",
            put(update_template_active_version),
        )
        .route("/v1/apps/{app}/messages", post(send_messages))
        .route("/v1/apps/{app}/otp", post(send_otp))
        .route(
            "/v1/apps/{app}/eventstream",
            get(get_event_stream)
                .post(put_event_stream)
                .delete(delete_event_stream),
        )
        .route(
            "/v1/apps/{app}/endpoints/{endpoint}/inappmessages",
            get(get_in_app_messages),
        )
        .route("/v1/apps/{app}/verify-otp", post(verify_otp))
        .route("/v1/apps/{app}/users-messages", post(send_users_messages))
        .route("/herald/v1/outbox", get(list_outbox))
        .route("/herald/v1/cluster", get(cluster_status))
        .route(
            "/herald/v1/cluster/nodes/{node}",
            axum::routing::delete(remove_node),
        )
        .route(
            "/herald/v1/apps/{app}/segments/{id}/size",
            get(get_segment_size),
        )
        .route(
            "/herald/v1/apps/{app}/channels/custom",
            get(get_custom_channel)
                .put(update_custom_channel)
                .delete(delete_custom_channel),
        )
        .route(
            "/herald/v1/apps/{app}/endpoints/{endpoint}/events",
            get(get_endpoint_events),
        )
        .route(
            "/herald/v1/apps/{app}/analytics/{report}",
            get(get_analytics),
        )
        .route(
            "/herald/v1/apps/{app}/analytics/campaigns/{campaign}",
            get(get_campaign_results),
        )
        .route(
            "/herald/v1/apps/{app}/settings/event-retention",
            get(get_event_retention)
                .put(put_event_retention)
                .delete(delete_event_retention),
        )
        .route(
            "/v1/apps/{app}/kpis/daterange/{kpi}",
            get(get_application_kpi),
        )
        .route(
            "/v1/apps/{app}/campaigns/{id}/kpis/daterange/{kpi}",
            get(get_campaign_kpi),
        )
        .route(
            "/v1/apps/{app}/journeys/{id}/kpis/daterange/{kpi}",
            get(get_journey_kpi),
        )
        .route(
            "/v1/tags/{arn}",
            get(list_tags).post(tag_resource).delete(untag_resource),
        )
        .merge(apns_channel_routes())
        .route(
            "/v1/apps/{app}/channels/sms",
            get(get_sms_channel)
                .put(update_sms_channel)
                .delete(delete_sms_channel),
        )
        .route(
            "/v1/apps/{app}/channels/gcm",
            get(get_gcm_channel)
                .put(update_gcm_channel)
                .delete(delete_gcm_channel),
        )
        .fallback(not_found)
        // Bodies are bounded by `authenticate`, which buffers them.
        .layer(axum::extract::DefaultBodyLimit::disable())
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), authenticate));
    // Tracking URLs are opened by recipients' mail clients: no SigV4, the
    // signed token is the credential.
    let tracking = Router::new()
        .route("/herald/v1/t/o/{token}", get(track_open))
        .route("/herald/v1/t/c/{token}", get(track_click))
        .route(
            "/herald/v1/t/u/{token}",
            get(unsubscribe_page).post(unsubscribe_one_click),
        );
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics_text))
        .merge(tracking)
        .merge(pinpoint)
        .layer(middleware::from_fn(request_id))
        .with_state(state)
}

// ---- middleware ---------------------------------------------------------------

/// Gives every request an id, renders error bodies with it, and records
/// request metrics.
/// The id of the request being served.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// A request served slower than this is logged at warn level.
const SLOW_REQUEST: std::time::Duration = std::time::Duration::from_secs(1);

async fn request_id(mut req: Request, next: Next) -> Response {
    let id = uuid::Uuid::new_v4().to_string();
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let started = Instant::now();
    let mut resp = next.run(req).await;
    let status = resp.status();
    if let Some(ErrorBody(err)) = resp.extensions_mut().remove::<ErrorBody>() {
        let body = render(&err, &id);
        resp.headers_mut()
            .insert("content-type", HeaderValue::from_static("application/json"));
        *resp.body_mut() = Body::from(body);
        if status.is_server_error() {
            tracing::error!(request_id = %id, %method, %path, status = status.as_u16(), message = %err.message, "request failed");
        } else {
            tracing::info!(request_id = %id, %method, %path, status = status.as_u16(), message = %err.message, "request rejected");
        }
    } else if started.elapsed() >= SLOW_REQUEST {
        let ms = started.elapsed().as_millis() as u64;
        tracing::warn!(request_id = %id, %method, %path, status = status.as_u16(), ms, "slow request served");
    } else {
        tracing::debug!(request_id = %id, %method, %path, status = status.as_u16(), "request served");
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-amzn-requestid", v);
    }
    let status_label = status.as_u16().to_string();
    metrics::counter!("herald_http_requests_total", "method" => method.to_string(), "status" => status_label)
        .increment(1);
    metrics::histogram!("herald_http_request_seconds", "method" => method.to_string())
        .record(started.elapsed().as_secs_f64());
    resp
}

/// Buffers the body (bounded) and verifies the SigV4 signature over it.
async fn authenticate(State(st): St, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, st.body_bytes_max).await {
        Ok(b) => b,
        Err(_) => {
            return ApiError::new(
                ErrorType::PayloadTooLarge,
                format!("request body is larger than {} bytes", st.body_bytes_max),
            )
            .into_response()
        }
    };
    let verified = match st.verifier.verify(
        &parts.method,
        &parts.uri,
        &parts.headers,
        &bytes,
        SystemTime::now(),
    ) {
        Ok(v) => v,
        Err(e) => {
            metrics::counter!("herald_http_auth_failures_total").increment(1);
            return ApiError::new(ErrorType::Forbidden, e.to_string()).into_response();
        }
    };
    let mut req = Request::from_parts(parts, Body::from(bytes));
    req.extensions_mut().insert(verified);
    next.run(req).await
}

async fn not_found() -> ApiError {
    ApiError::new(ErrorType::NotFound, "no such resource")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ErrorType::MethodNotAllowed,
        "method not allowed on this resource",
    )
}

// ---- helpers --------------------------------------------------------------------

/// Parses a request body: a JSON object of the operation's payload shape.
fn json<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    if body.is_empty() {
        return Err(ApiError::bad_request("the request body is empty"));
    }
    // The whole body must be UTF-8 (also in members the shape ignores) and
    // an object, as restJson1 requires; then it is parsed once, straight
    // into the shape (parsing through a serde_json::Value cost PutEvents a
    // tenth of its CPU).
    let text = std::str::from_utf8(body)
        .map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")))?;
    if !text.trim_start().starts_with('{') {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    }
    serde_json::from_str(text)
        .map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")))
}

fn reply<T: Serialize>(status: StatusCode, body: &T) -> ApiResult {
    let bytes = serde_json::to_vec(body)
        .map_err(|e| ApiError::new(ErrorType::InternalServerError, e.to_string()))?;
    Ok((status, [("content-type", "application/json")], bytes).into_response())
}

fn accepted(rid: String) -> ApiResult {
    reply(
        StatusCode::ACCEPTED,
        &MessageBody {
            message: Some("Accepted".into()),
            request_id: Some(rid),
        },
    )
}

fn app_response(a: AppRecord) -> ApplicationResponse {
    ApplicationResponse {
        arn: a.arn,
        id: a.id,
        name: a.name,
        tags: Some(a.tags),
        creation_date: Some(a.creation_date),
    }
}

// ---- handlers -------------------------------------------------------------------------

async fn health(State(st): St) -> Response {
    let status = st.herald.host().status();
    let ready = status.iter().all(|g| g.leader.is_some());
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({ "status": if ready { "ok" } else { "starting" }, "groups": status.len() });
    (code, axum::Json(body)).into_response()
}

/// This node's view of the cluster: per group, its voters, learners,
/// leader, term, log and applied indexes, and (where this node leads) how
/// far each replica lags.
async fn cluster_status(State(st): St) -> Response {
    let host = st.herald.host();
    let groups = host.status();
    let mut nodes: std::collections::BTreeSet<u64> = std::collections::BTreeSet::new();
    for g in &groups {
        nodes.extend(g.voters.iter().chain(&g.learners).copied());
    }
    let body = serde_json::json!({
        "NodeId": host.node_id(),
        "Shards": host.shards(),
        "Nodes": nodes,
        "LeaderOf": groups.iter().filter(|g| g.leader == Some(host.node_id())).count(),
        "Groups": groups,
    });
    axum::Json(body).into_response()
}

/// Removes a node from every group (a no-op where it is no member), one at a time,
/// through each group's leader. Answers once every group has committed the
/// change; the node can then be stopped for good.
async fn remove_node(State(st): St, Path(node): Path<String>) -> ApiResult {
    let node: u64 = node
        .parse()
        .map_err(|_| ApiError::bad_request(format!("{node} is not a node id")))?;
    let host = st.herald.host();
    let status = host.status();
    if !status
        .iter()
        .any(|g| g.voters.contains(&node) || g.learners.contains(&node))
    {
        return Err(ApiError::new(
            crate::error::ErrorType::NotFound,
            format!("node {node} is not in the cluster"),
        ));
    }
    if status
        .iter()
        .any(|g| g.voters.len() <= 1 && g.voters.contains(&node))
    {
        return Err(ApiError::bad_request(format!(
            "node {node} is the last voter of a group; add another node first"
        )));
    }
    host.remove_node(node).await.map_err(|e| match e {
        herald_cluster::ClusterError::Config(m) => ApiError::bad_request(m),
        e => ApiError::from(herald_actors::ServiceError::from(e)),
    })?;
    let changed = status.len();
    tracing::info!(node, groups = changed, "node removed from the cluster");
    Ok(axum::Json(serde_json::json!({ "NodeId": node, "Groups": changed })).into_response())
}

async fn metrics_text(State(st): St) -> Response {
    (
        [("content-type", "text/plain; version=0.0.4")],
        st.metrics.render(),
    )
        .into_response()
}

async fn create_app(State(st): St, Extension(who): Extension<Verified>, body: Bytes) -> ApiResult {
    let req: CreateApplicationRequest = json(&body)?;
    let id = uuid::Uuid::new_v4().simple().to_string();
    // The ARN names the region the client signed for, as AWS's regional
    // endpoints do.
    let app = st.herald.create_app(id, &who.region, req).await?;
    tracing::info!(app_id = %app.id, name = %app.name, "app created");
    reply(StatusCode::CREATED, &app_response(app))
}

async fn get_apps(State(st): St, Query(q): Query<BTreeMap<String, String>>) -> ApiResult {
    let (apps, next) = st
        .herald
        .list_apps(
            q.get("page-size").map(String::as_str),
            q.get("token").map(String::as_str),
        )
        .await?;
    let body = ApplicationsResponse {
        item: Some(apps.into_iter().map(app_response).collect()),
        next_token: next,
    };
    reply(StatusCode::OK, &body)
}

async fn get_app(State(st): St, Path(app): Path<String>) -> ApiResult {
    reply(StatusCode::OK, &app_response(st.herald.app(&app).await?))
}

async fn delete_app(State(st): St, Path(app): Path<String>) -> ApiResult {
    let rec = st.herald.delete_app(&app).await?;
    tracing::info!(app_id = %app, "app deleted");
    reply(StatusCode::OK, &app_response(rec))
}

async fn get_settings(State(st): St, Path(app): Path<String>) -> ApiResult {
    reply(StatusCode::OK, &st.herald.settings(&app).await?)
}

async fn update_settings(State(st): St, Path(app): Path<String>, body: Bytes) -> ApiResult {
    let req: WriteApplicationSettingsRequest = json(&body)?;
    reply(StatusCode::OK, &st.herald.update_settings(&app, req).await?)
}

async fn get_channels(State(st): St, Path(app): Path<String>) -> ApiResult {
    reply(StatusCode::OK, &st.herald.channels(&app).await?)
}

async fn get_email_channel(State(st): St, Path(app): Path<String>) -> ApiResult {
    reply(StatusCode::OK, &st.herald.email_channel(&app).await?)
}

async fn update_email_channel(State(st): St, Path(app): Path<String>, body: Bytes) -> ApiResult {
    let req: EmailChannelRequest = json(&body)?;
    reply(
        StatusCode::OK,
        &st.herald.update_email_channel(&app, req).await?,
    )
}

async fn delete_email_channel(State(st): St, Path(app): Path<String>) -> ApiResult {
    reply(StatusCode::OK, &st.herald.delete_email_channel(&app).await?)
}

async fn get_sms_channel(State(st): St, Path(app): Path<String>) -> ApiResult {
    reply(StatusCode::OK, &st.herald.sms_channel(&app).await?)
}

async fn update_sms_channel(State(st): St, Path(app): Path<String>, body: Bytes) -> ApiResult {
    let req: herald_model::channel::SmsChannelRequest = json(&body)?;
    reply(
        StatusCode::OK,
        &st.herald.update_sms_channel(&app, req).await?,
    )
}

async fn delete_sms_channel(State(st): St, Path(app): Path<String>) -> ApiResult {
    reply(StatusCode::OK, &st.herald.delete_sms_channel(&app).await?)
}

async fn get_gcm_channel(State(st): St, Path(app): Path<String>) -> ApiResult {
    reply(StatusCode::OK, &st.herald.gcm_channel(&app).await?)
}

async fn update_gcm_channel(State(st): St, Path(app): Path<String>, body: Bytes) -> ApiResult {
    let req: herald_model::channel::GcmChannelRequest = json(&body)?;
    reply(
        StatusCode::OK,
        &st.herald.update_gcm_channel(&app, req).await?,
    )
}

async fn delete_gcm_channel(State(st): St, Path(app): Path<String>) -> ApiResult {
    reply(StatusCode::OK, &st.herald.delete_gcm_channel(&app).await?)
}

/// Get, Update and Delete of the four APNs channels, one path each.
fn apns_channel_routes() -> Router<Arc<AppState>> {
    let mut r = Router::new();
    for (platform, segment) in herald_model::channel::APNS_CHANNELS {
        r = r.route(
            &format!("/v1/apps/{{app}}/channels/{segment}"),
            get(move |State(st): St, Path(app): Path<String>| async move {
                reply(
                    StatusCode::OK,
                    &st.herald.apns_channel(&app, platform).await?,
                )
            })
            .put(
                move |State(st): St, Path(app): Path<String>, body: Bytes| async move {
                    let req: herald_model::channel::ApnsChannelRequest = json(&body)?;
                    reply(
                        StatusCode::OK,
                        &st.herald.update_apns_channel(&app, platform, req).await?,
                    )
                },
            )
            .delete(move |State(st): St, Path(app): Path<String>| async move {
                reply(
                    StatusCode::OK,
                    &st.herald.delete_apns_channel(&app, platform).await?,
                )
            }),
        );
    }
    r
}

async fn update_endpoint(
    State(st): St,
    Extension(RequestId(rid)): Extension<RequestId>,
    Path((app, endpoint)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let req: EndpointRequest = json(&body)?;
    st.herald
        .update_endpoint(&app, &endpoint, req, &rid)
        .await?;
    accepted(rid)
}

async fn update_endpoints_batch(
    State(st): St,
    Extension(RequestId(rid)): Extension<RequestId>,
    Path(app): Path<String>,
    body: Bytes,
) -> ApiResult {
    let req: EndpointBatchRequest = json(&body)?;
    st.herald.update_endpoints_batch(&app, req, &rid).await?;
    accepted(rid)
}

async fn get_endpoint(State(st): St, Path((app, endpoint)): Path<(String, String)>) -> ApiResult {
    reply(StatusCode::OK, &st.herald.endpoint(&app, &endpoint).await?)
}

async fn delete_endpoint(
    State(st): St,
    Path((app, endpoint)): Path<(String, String)>,
) -> ApiResult {
    reply(
        StatusCode::ACCEPTED,
        &st.herald.delete_endpoint(&app, &endpoint).await?,
    )
}

async fn get_user_endpoints(State(st): St, Path((app, user)): Path<(String, String)>) -> ApiResult {
    let item = st.herald.user_endpoints(&app, &user).await?;
    reply(StatusCode::OK, &EndpointsResponse { item })
}

async fn delete_user_endpoints(
    State(st): St,
    Path((app, user)): Path<(String, String)>,
) -> ApiResult {
    let item = st.herald.delete_user_endpoints(&app, &user).await?;
    reply(StatusCode::ACCEPTED, &EndpointsResponse { item })
}

async fn put_events(
    State(st): St,
    Extension(RequestId(rid)): Extension<RequestId>,
    Path(app): Path<String>,
    body: Bytes,
) -> ApiResult {
    let max = st.herald.config().limits.events_request_bytes_max;
    if body.len() > max {
        return Err(ApiError::new(
            ErrorType::PayloadTooLarge,
            format!(
                "a PutEvents request may be at most {max} bytes, this one is {}",
                body.len()
            ),
        ));
    }
    let req: EventsRequest = json(&body)?;
    reply(
        StatusCode::ACCEPTED,
        &st.herald.put_events(&app, req, &rid).await?,
    )
}

async fn remove_attributes(
    State(st): St,
    Path((app, attribute_type)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let req: UpdateAttributesRequest = json(&body)?;
    let names = req.blacklist.unwrap_or_default();
    st.herald
        .remove_attributes(&app, &attribute_type, names.clone())
        .await?;
    reply(
        StatusCode::OK,
        &AttributesResource {
            application_id: app,
            attribute_type,
            attributes: Some(names),
        },
    )
}

/// The type in a template path: `email` ... `inapp` (Create/Get/Update/
/// Delete) or `EMAIL` ... `INAPP` (versions, active-version).
fn template_kind(segment: &str) -> Result<TemplateType, ApiError> {
    TemplateType::from_path_segment(&segment.to_ascii_lowercase())
        .ok_or_else(|| ApiError::new(ErrorType::NotFound, "no such resource"))
}

// ---- segments ---------------------------------------------------------------

fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

async fn create_segment(
    State(st): St,
    Extension(who): Extension<Verified>,
    Path(app): Path<String>,
    body: Bytes,
) -> ApiResult {
    let req: serde_json::Value = json(&body)?;
    let r = st
        .herald
        .create_segment(&app, new_id(), &who.region, req)
        .await?;
    tracing::info!(app_id = %app, segment_id = %r.id, "segment created");
    reply(StatusCode::CREATED, &r)
}

async fn update_segment(
    State(st): St,
    Path((app, id)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let req: serde_json::Value = json(&body)?;
    let r = st.herald.update_segment(&app, &id, req).await?;
    tracing::info!(app_id = %app, segment_id = %id, version = ?r.version, "segment updated");
    reply(StatusCode::OK, &r)
}

async fn get_segment(State(st): St, Path((app, id)): Path<(String, String)>) -> ApiResult {
    reply(StatusCode::OK, &st.herald.segment(&app, &id, None).await?)
}

async fn get_segment_version(
    State(st): St,
    Path((app, id, version)): Path<(String, String, String)>,
) -> ApiResult {
    reply(
        StatusCode::OK,
        &st.herald.segment(&app, &id, Some(&version)).await?,
    )
}

async fn get_segments(
    State(st): St,
    Path(app): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
) -> ApiResult {
    let g = |k: &str| q.get(k).map(String::as_str);
    let r = st.herald.segments(&app, g("page-size"), g("token")).await?;
    reply(StatusCode::OK, &r)
}

async fn get_segment_versions(
    State(st): St,
    Path((app, id)): Path<(String, String)>,
    Query(q): Query<BTreeMap<String, String>>,
) -> ApiResult {
    let g = |k: &str| q.get(k).map(String::as_str);
    let r = st
        .herald
        .segment_versions(&app, &id, g("page-size"), g("token"))
        .await?;
    reply(StatusCode::OK, &r)
}

/// herald's extension: how many endpoints are in a segment now.
async fn get_segment_size(
    State(st): St,
    Path((app, id)): Path<(String, String)>,
    Query(q): Query<BTreeMap<String, String>>,
) -> ApiResult {
    let version = match q.get("version") {
        None => None,
        Some(v) => Some(v.parse::<u32>().map_err(|_| {
            ApiError::bad_request(format!("version must be a positive number, not {v:?}"))
        })?),
    };
    let n = st.herald.segment_size(&app, &id, version).await?;
    reply(StatusCode::OK, &serde_json::json!({ "Size": n }))
}

fn retention_body(app: &str, (days, default): (u32, bool)) -> serde_json::Value {
    serde_json::json!({ "ApplicationId": app, "Days": days, "Default": default })
}

async fn get_event_retention(State(st): St, Path(app): Path<String>) -> ApiResult {
    let r = st.herald.event_retention(&app).await?;
    reply(StatusCode::OK, &retention_body(&app, r))
}

async fn put_event_retention(State(st): St, Path(app): Path<String>, body: Bytes) -> ApiResult {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Req {
        #[serde(rename = "Days")]
        days: u32,
    }
    let req: Req = json(&body)?;
    let r = st.herald.set_event_retention(&app, Some(req.days)).await?;
    reply(StatusCode::OK, &retention_body(&app, r))
}

async fn delete_event_retention(State(st): St, Path(app): Path<String>) -> ApiResult {
    let r = st.herald.set_event_retention(&app, None).await?;
    reply(StatusCode::OK, &retention_body(&app, r))
}

async fn date_range_kpi(
    st: &AppState,
    app: &str,
    scope: herald_model::kpi::Scope,
    id: Option<&str>,
    kpi: &str,
    q: &BTreeMap<String, String>,
) -> ApiResult {
    // page-size and next-token are accepted and, as in Pinpoint, unused:
    // every row comes in one page.
    let r = st
        .herald
        .date_range_kpi(
            app,
            scope,
            id,
            kpi,
            q.get("start-time").map(String::as_str),
            q.get("end-time").map(String::as_str),
        )
        .await?;
    reply(StatusCode::OK, &r)
}

async fn get_application_kpi(
    State(st): St,
    Path((app, kpi)): Path<(String, String)>,
    Query(q): Query<BTreeMap<String, String>>,
) -> ApiResult {
    date_range_kpi(
        &st,
        &app,
        herald_model::kpi::Scope::Application,
        None,
        &kpi,
        &q,
    )
    .await
}

async fn get_campaign_kpi(
    State(st): St,
    Path((app, id, kpi)): Path<(String, String, String)>,
    Query(q): Query<BTreeMap<String, String>>,
) -> ApiResult {
    date_range_kpi(
        &st,
        &app,
        herald_model::kpi::Scope::Campaign,
        Some(&id),
        &kpi,
        &q,
    )
    .await
}

async fn get_journey_kpi(
    State(st): St,
    Path((app, id, kpi)): Path<(String, String, String)>,
    Query(q): Query<BTreeMap<String, String>>,
) -> ApiResult {
    date_range_kpi(
        &st,
        &app,
        herald_model::kpi::Scope::Journey,
        Some(&id),
        &kpi,
        &q,
    )
    .await
}

/// herald's analytics reports (`herald_actors::analytics`).
async fn get_analytics(
    State(st): St,
    Path((app, report)): Path<(String, String)>,
    Query(q): Query<BTreeMap<String, String>>,
) -> ApiResult {
    use herald_actors::analytics::{parse_kind, EventFilter};
    let p = |k: &str| q.get(k).map(String::as_str);
    let known: &[&str] = match report.as_str() {
        "active-users" | "retention" => &["tz", "from", "to", "by"],
        "sessions" => &["tz", "from", "to"],
        "events" => &["tz", "from", "to", "event-type", "attribute"],
        "funnel" => &["tz", "from", "to", "steps", "window"],
        "demographics" => &["tz", "from", "to", "dimension"],
        other => {
            return Err(ApiError::new(
                crate::error::ErrorType::NotFound,
                format!(
                    "no analytics report {other:?}: active-users, retention, sessions, events, \
                 funnel and demographics exist"
                ),
            ))
        }
    };
    if let Some(k) = q.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(ApiError::bad_request(format!(
            "unknown parameter {k:?} for {report} (known: {})",
            known.join(", ")
        )));
    }
    let range = st.herald.analytics_range(p("tz"), p("from"), p("to"))?;
    let head = serde_json::json!({
        "ApplicationId": app,
        "TimeZone": range.tz.name(),
        "From": range.from.to_string(),
        "To": range.to.to_string(),
    });
    let body = match report.as_str() {
        "active-users" => {
            let kind = parse_kind(p("by"))?;
            serde_json::json!({ "Days": st.herald.analytics(&app).await?.active(&app, range, kind)? })
        }
        "retention" => {
            let kind = parse_kind(p("by"))?;
            serde_json::json!({ "Cohorts": st.herald.analytics(&app).await?.retention(&app, range, kind)? })
        }
        "sessions" => {
            serde_json::json!({ "Days": st.herald.analytics(&app).await?.sessions(&app, range)? })
        }
        "events" => {
            let attribute = match p("attribute") {
                None => None,
                Some(a) => Some(
                    a.split_once(':')
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .ok_or_else(|| {
                            ApiError::bad_request(format!(
                                "attribute must be name:value, not {a:?}"
                            ))
                        })?,
                ),
            };
            let filter = EventFilter {
                event_type: p("event-type").map(str::to_owned),
                attribute,
            };
            serde_json::json!({ "EventTypes": st.herald.analytics(&app).await?.events(&app, range, &filter)? })
        }
        "funnel" => {
            let steps: Vec<String> = p("steps")
                .unwrap_or_default()
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            let window = match p("window") {
                None => 86_400,
                Some(w) => w.parse::<i64>().map_err(|_| {
                    ApiError::bad_request(format!("window must be a number of seconds, not {w:?}"))
                })?,
            };
            serde_json::json!({
                "WindowSeconds": window,
                "Steps": st.herald.analytics(&app).await?.funnel(&app, range, &steps, window)?,
            })
        }
        _ => {
            let dimension = p("dimension").unwrap_or("platform");
            serde_json::json!({
                "Dimension": dimension,
                "Counts": st.herald.analytics(&app).await?.demographics(&app, range, dimension)?,
            })
        }
    };
    let mut out = head;
    if let (Some(o), serde_json::Value::Object(b)) = (out.as_object_mut(), body) {
        o.extend(b);
    }
    reply(StatusCode::OK, &out)
}

/// A campaign's results per day and treatment (`herald_actors::analytics`).
async fn get_campaign_results(
    State(st): St,
    Path((app, campaign)): Path<(String, String)>,
    Query(q): Query<BTreeMap<String, String>>,
) -> ApiResult {
    let known = ["tz", "from", "to", "by"];
    if let Some(k) = q.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(ApiError::bad_request(format!(
            "unknown parameter {k:?} for campaign results (known: {})",
            known.join(", ")
        )));
    }
    let p = |k: &str| q.get(k).map(String::as_str);
    let by_activity = match p("by") {
        None | Some("treatment") => false,
        Some("activity") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "by must be treatment or activity, not {other:?}"
            )))
        }
    };
    let range = st.herald.analytics_range(p("tz"), p("from"), p("to"))?;
    st.herald.campaign(&app, &campaign, None).await?;
    let report =
        st.herald
            .analytics(&app)
            .await?
            .campaign_results(&app, &campaign, range, by_activity)?;
    let out = serde_json::json!({
        "ApplicationId": app,
        "CampaignId": campaign,
        "TimeZone": range.tz.name(),
        "From": range.from.to_string(),
        "To": range.to.to_string(),
        "AttributionWindowSeconds": herald_model::analytics::ATTRIBUTION_WINDOW_MS / 1000,
        "Days": report.days,
        "Total": report.total,
    });
    reply(StatusCode::OK, &out)
}

async fn delete_segment(State(st): St, Path((app, id)): Path<(String, String)>) -> ApiResult {
    let r = st.herald.delete_segment(&app, &id).await?;
    tracing::info!(app_id = %app, segment_id = %id, "segment deleted");
    reply(StatusCode::OK, &r)
}

// ---- import and export jobs ---------------------------------------------------

async fn create_import_job(
    State(st): St,
    Extension(who): Extension<Verified>,
    Path(app): Path<String>,
    body: Bytes,
) -> ApiResult {
    let req: ImportJobRequest = json(&body)?;
    let r = st
        .herald
        .create_import_job(&app, new_id(), new_id(), &who.region, req)
        .await?;
    reply(StatusCode::CREATED, &r)
}

async fn get_import_job(State(st): St, Path((app, id)): Path<(String, String)>) -> ApiResult {
    reply(StatusCode::OK, &st.herald.import_job(&app, &id).await?)
}

async fn get_import_jobs(
    State(st): St,
    Path(app): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
) -> ApiResult {
    let g = |k: &str| q.get(k).map(String::as_str);
    let r = st
        .herald
        .import_jobs(&app, None, g("page-size"), g("token"))
        .await?;
    reply(StatusCode::OK, &r)
}

async fn get_segment_import_jobs(
    State(st): St,
    Path((app, id)): Path<(String, String)>,
    Query(q): Query<BTreeMap<String, String>>,
) -> ApiResult {
    let g = |k: &str| q.get(k).map(String::as_str);
    let r = st
        .herald
        .import_jobs(&app, Some(&id), g("page-size"), g("token"))
        .await?;
    reply(StatusCode::OK, &r)
}

async fn create_export_job(State(st): St, Path(app): Path<String>, body: Bytes) -> ApiResult {
    let req: ExportJobRequest = json(&body)?;
    let r = st.herald.create_export_job(&app, new_id(), req).await?;
    reply(StatusCode::ACCEPTED, &r)
}

async fn get_export_job(State(st): St, Path((app, id)): Path<(String, String)>) -> ApiResult {
    reply(StatusCode::OK, &st.herald.export_job(&app, &id).await?)
}

async fn get_export_jobs(
    State(st): St,
    Path(app): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
) -> ApiResult {
    let g = |k: &str| q.get(k).map(String::as_str);
    let r = st
        .herald
        .export_jobs(&app, None, g("page-size"), g("token"))
        .await?;
    reply(StatusCode::OK, &r)
}

async fn get_segment_export_jobs(
    State(st): St,
    Path((app, id)): Path<(String, String)>,
    Query(q): Query<BTreeMap<String, String>>,
) -> ApiResult {
    let g = |k: &str| q.get(k).map(String::as_str);
    let r = st
        .herald
        .export_jobs(&app, Some(&id), g("page-size"), g("token"))
        .await?;
    reply(StatusCode::OK, &r)
}

// ---- campaigns --------------------------------------------------------------

async fn create_campaign(
    State(st): St,
    Extension(who): Extension<Verified>,
    Path(app): Path<String>,
    body: Bytes,
) -> ApiResult {
    let req: serde_json::Value = json(&body)?;
    let r = st
        .herald
        .create_campaign(&app, new_id(), &who.region, req)
        .await?;
    tracing::info!(app_id = %app, campaign_id = %r.id, "campaign created");
    reply(StatusCode::CREATED, &r)
}

async fn update_campaign(
    State(st): St,
    Path((app, id)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let req: serde_json::Value = json(&body)?;
    let r = st.herald.update_campaign(&app, &id, req).await?;
    tracing::info!(app_id = %app, campaign_id = %id, version = ?r.version, "campaign updated");
    reply(StatusCode::OK, &r)
}

async fn get_campaign(State(st): St, Path((app, id)): Path<(String, String)>) -> ApiResult {
    reply(StatusCode::OK, &st.herald.campaign(&app, &id, None).await?)
}

async fn get_campaign_version(
    State(st): St,
    Path((app, id, version)): Path<(String, String, String)>,
) -> ApiResult {
    reply(
        StatusCode::OK,
        &st.herald.campaign(&app, &id, Some(&version)).await?,
    )
}

async fn get_campaigns(
    State(st): St,
    Path(app): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
) -> ApiResult {
    let g = |k: &str| q.get(k).map(String::as_str);
    let r = st
        .herald
        .campaigns(&app, g("page-size"), g("token"))
        .await?;
    reply(StatusCode::OK, &r)
}

async fn get_campaign_versions(
    State(st): St,
    Path((app, id)): Path<(String, String)>,
    Query(q): Query<BTreeMap<String, String>>,
) -> ApiResult {
    let g = |k: &str| q.get(k).map(String::as_str);
    let r = st
        .herald
        .campaign_versions(&app, &id, g("page-size"), g("token"))
        .await?;
    reply(StatusCode::OK, &r)
}

async fn get_campaign_activities(
    State(st): St,
    Path((app, id)): Path<(String, String)>,
    Query(q): Query<BTreeMap<String, String>>,
) -> ApiResult {
    let g = |k: &str| q.get(k).map(String::as_str);
    let r = st
        .herald
        .campaign_activities(&app, &id, g("page-size"), g("token"))
        .await?;
    reply(StatusCode::OK, &r)
}

async fn delete_campaign(State(st): St, Path((app, id)): Path<(String, String)>) -> ApiResult {
    let r = st.herald.delete_campaign(&app, &id).await?;
    tracing::info!(app_id = %app, campaign_id = %id, "campaign deleted");
    reply(StatusCode::OK, &r)
}

async fn create_template(
    State(st): St,
    Extension(who): Extension<Verified>,
    Extension(RequestId(rid)): Extension<RequestId>,
    Path((name, kind)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let kind = template_kind(&kind)?;
    let req: serde_json::Value = json(&body)?;
    let arn = st
        .herald
        .create_template(kind, &name, &who.region, req)
        .await?;
    tracing::info!(template = %name, kind = kind.as_str(), "template created");
    reply(
        StatusCode::CREATED,
        &CreateTemplateMessageBody {
            arn: Some(arn),
            message: Some("Created".into()),
            request_id: Some(rid),
        },
    )
}

async fn get_template(
    State(st): St,
    Path((name, kind)): Path<(String, String)>,
    Query(q): Query<BTreeMap<String, String>>,
) -> ApiResult {
    let kind = template_kind(&kind)?;
    let t = st
        .herald
        .template(kind, &name, q.get("version").map(String::as_str))
        .await?;
    reply(StatusCode::OK, &t)
}

async fn update_template(
    State(st): St,
    Extension(RequestId(rid)): Extension<RequestId>,
    Path((name, kind)): Path<(String, String)>,
    Query(q): Query<BTreeMap<String, String>>,
    body: Bytes,
) -> ApiResult {
    let kind = template_kind(&kind)?;
    let req: serde_json::Value = json(&body)?;
    st.herald
        .update_template(
            kind,
            &name,
            req,
            q.get("create-new-version").map(String::as_str),
            q.get("version").map(String::as_str),
        )
        .await?;
    accepted(rid)
}

async fn delete_template(
    State(st): St,
    Extension(RequestId(rid)): Extension<RequestId>,
    Path((name, kind)): Path<(String, String)>,
    Query(q): Query<BTreeMap<String, String>>,
) -> ApiResult {
    let kind = template_kind(&kind)?;
    st.herald
        .delete_template(kind, &name, q.get("version").map(String::as_str))
        .await?;
    accepted(rid)
}

async fn list_templates(State(st): St, Query(q): Query<BTreeMap<String, String>>) -> ApiResult {
    let g = |k: &str| q.get(k).map(String::as_str);
    let r = st
        .herald
        .list_templates(
            g("page-size"),
            g("next-token"),
            g("prefix"),
            g("template-type"),
        )
        .await?;
    reply(StatusCode::OK, &r)
}

async fn list_template_versions(
    State(st): St,
    Extension(RequestId(rid)): Extension<RequestId>,
    Path((name, kind)): Path<(String, String)>,
    Query(q): Query<BTreeMap<String, String>>,
) -> ApiResult {
    let kind = template_kind(&kind)?;
    let g = |k: &str| q.get(k).map(String::as_str);
    let r = st
        .herald
        .list_template_versions(kind, &name, g("page-size"), g("next-token"), &rid)
        .await?;
    reply(StatusCode::OK, &r)
}

async fn update_template_active_version(
    State(st): St,
    Extension(RequestId(rid)): Extension<RequestId>,
    Path((name, kind)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let kind = template_kind(&kind)?;
    let req: TemplateActiveVersionRequest = json(&body)?;
    st.herald
        .set_template_active_version(kind, &name, req)
        .await?;
    reply(
        StatusCode::OK,
        &MessageBody {
            message: Some("Updated".into()),
            request_id: Some(rid),
        },
    )
}

/// The keys that recognise a retried send: the request id, and the AWS
/// SDKs' `amz-sdk-invocation-id`, which every retry of one call repeats.
fn request_keys(rid: String, headers: &axum::http::HeaderMap) -> RequestKeys {
    RequestKeys {
        request_id: rid,
        invocation_id: headers
            .get("amz-sdk-invocation-id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= 128)
            .map(str::to_owned),
    }
}

async fn send_messages(
    State(st): St,
    Path(app): Path<String>,
    Extension(RequestId(rid)): Extension<RequestId>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> ApiResult {
    let req: MessageRequest = json(&body)?;
    reply(
        StatusCode::OK,
        &st.herald
            .send_messages(&app, req, request_keys(rid, &headers))
            .await?,
    )
}

async fn get_in_app_messages(
    State(st): St,
    Path((app, endpoint)): Path<(String, String)>,
) -> ApiResult {
    reply(
        StatusCode::OK,
        &st.herald.in_app_messages(&app, &endpoint).await?,
    )
}

async fn get_event_stream(State(st): St, Path(app): Path<String>) -> ApiResult {
    reply(StatusCode::OK, &st.herald.event_stream(&app).await?)
}

async fn put_event_stream(State(st): St, Path(app): Path<String>, body: Bytes) -> ApiResult {
    let req: herald_model::stream::WriteEventStream = json(&body)?;
    reply(
        StatusCode::OK,
        &st.herald.put_event_stream(&app, req).await?,
    )
}

async fn delete_event_stream(State(st): St, Path(app): Path<String>) -> ApiResult {
    reply(StatusCode::OK, &st.herald.delete_event_stream(&app).await?)
}

async fn send_otp(
    State(st): St,
    Path(app): Path<String>,
    Extension(RequestId(rid)): Extension<RequestId>,
    body: Bytes,
) -> ApiResult {
    let req: herald_model::otp::SendOtpRequest = json(&body)?;
    reply(StatusCode::OK, &st.herald.send_otp(&app, req, &rid).await?)
}

async fn verify_otp(State(st): St, Path(app): Path<String>, body: Bytes) -> ApiResult {
    let req: herald_model::otp::VerifyOtpRequest = json(&body)?;
    reply(StatusCode::OK, &st.herald.verify_otp(&app, req).await?)
}

async fn send_users_messages(
    State(st): St,
    Path(app): Path<String>,
    Extension(RequestId(rid)): Extension<RequestId>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> ApiResult {
    let req: SendUsersMessageRequest = json(&body)?;
    reply(
        StatusCode::OK,
        &st.herald
            .send_users_messages(&app, req, request_keys(rid, &headers))
            .await?,
    )
}

async fn get_custom_channel(State(st): St, Path(app): Path<String>) -> ApiResult {
    reply(StatusCode::OK, &st.herald.custom_channel(&app).await?)
}

async fn update_custom_channel(State(st): St, Path(app): Path<String>, body: Bytes) -> ApiResult {
    let req: CustomChannelRequest = json(&body)?;
    reply(
        StatusCode::OK,
        &st.herald.update_custom_channel(&app, req).await?,
    )
}

async fn delete_custom_channel(State(st): St, Path(app): Path<String>) -> ApiResult {
    reply(
        StatusCode::OK,
        &st.herald.delete_custom_channel(&app).await?,
    )
}

/// `GET /herald/v1/outbox?limit=N&before=SEQ`: the dev outbox, newest first.
async fn list_outbox(State(st): St, Query(q): Query<BTreeMap<String, String>>) -> ApiResult {
    let Some(outbox) = &st.outbox else {
        return Err(ApiError::new(
            ErrorType::NotFound,
            "this node sends through SMTP; the dev outbox is only used when no SMTP server is configured",
        ));
    };
    let num = |k: &str| -> Result<Option<u64>, ApiError> {
        q.get(k)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| ApiError::bad_request(format!("{k} must be a whole number")))
            })
            .transpose()
    };
    let limit = num("limit")?.unwrap_or(50).clamp(1, 1000) as usize;
    let before = num("before")?;
    let entries = outbox.list(limit, before).map_err(|e| {
        ApiError::new(
            ErrorType::InternalServerError,
            format!("reading the outbox: {e}"),
        )
    })?;
    let next = if entries.len() == limit {
        entries.last().map(|e| e.seq)
    } else {
        None
    };
    reply(
        StatusCode::OK,
        &serde_json::json!({ "Item": entries, "NextBefore": next }),
    )
}

/// `GET /herald/v1/apps/{app}/endpoints/{id}/events?limit=N`: the events
/// stored for one endpoint, oldest first (`limit` 1..=1000, default 100).
async fn get_endpoint_events(
    State(st): St,
    Path((app, endpoint)): Path<(String, String)>,
    Query(q): Query<BTreeMap<String, String>>,
) -> ApiResult {
    let limit = match q.get("limit") {
        None => 100,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            _ => {
                return Err(ApiError::bad_request(
                    "limit must be a whole number from 1 to 1000",
                ))
            }
        },
    };
    let rows = st.herald.endpoint_events(&app, &endpoint, limit).await?;
    let item: Vec<serde_json::Value> = rows
        .into_iter()
        .map(|r| serde_json::json!({ "EventId": r.event_id, "EndpointId": r.endpoint_id, "Event": r.event }))
        .collect();
    reply(StatusCode::OK, &serde_json::json!({ "Item": item }))
}

/// A 1×1 transparent GIF.
const PIXEL: &[u8] = &[
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];

async fn track_open(State(st): St, Path(token): Path<String>) -> Response {
    // The pixel is served whatever happens: a mail client shows no errors.
    if let Err(e) = st.herald.record_tracking(&token, TrackKind::Open).await {
        tracing::info!(error = %e, "open pixel not recorded");
    }
    (
        [
            ("content-type", "image/gif"),
            ("cache-control", "no-store, max-age=0"),
        ],
        PIXEL,
    )
        .into_response()
}

async fn track_click(State(st): St, Path(token): Path<String>) -> ApiResult {
    let t = st.herald.record_tracking(&token, TrackKind::Click).await?;
    match (t.kind, t.url) {
        (TrackKind::Click, Some(url)) => Ok((
            StatusCode::FOUND,
            [("location", url), ("cache-control", "no-store".into())],
        )
            .into_response()),
        _ => Err(ApiError::new(ErrorType::NotFound, "not a click link")),
    }
}

/// A GET only shows a confirmation form, so link scanners that fetch every
/// URL in a message do not unsubscribe anyone; the POST (from the form or
/// from a mail client's one-click, RFC 8058) does.
async fn unsubscribe_page(Path(token): Path<String>) -> Response {
    let page = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Unsubscribe</title></head><body>\
         <form method=\"post\" action=\"{}\"><input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">\
         <p>Stop receiving these messages?</p><button type=\"submit\">Unsubscribe</button></form></body></html>",
        html_escape(&token)
    );
    ([("content-type", "text/html; charset=utf-8")], page).into_response()
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

async fn unsubscribe_one_click(State(st): St, Path(token): Path<String>) -> ApiResult {
    st.herald
        .record_tracking(&token, TrackKind::Unsubscribe)
        .await?;
    Ok((
        StatusCode::OK,
        [("content-type", "text/html; charset=utf-8")],
        "<!doctype html><html><body><p>You are unsubscribed.</p></body></html>",
    )
        .into_response())
}

async fn list_tags(State(st): St, Path(arn): Path<String>) -> ApiResult {
    let tags = st.herald.tags(&arn).await?;
    reply(StatusCode::OK, &TagsModel { tags: Some(tags) })
}

async fn tag_resource(State(st): St, Path(arn): Path<String>, body: Bytes) -> ApiResult {
    let req: TagsModel = json(&body)?;
    st.herald.tag(&arn, req.tags).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn untag_resource(
    State(st): St,
    Path(arn): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    // tagKeys repeats: ?tagKeys=a&tagKeys=b
    let keys: Vec<String> = form_pairs(q.as_deref().unwrap_or(""))
        .into_iter()
        .filter(|(k, _)| k == "tagKeys")
        .map(|(_, v)| v)
        .collect();
    st.herald.untag(&arn, keys).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn form_pairs(q: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(q.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

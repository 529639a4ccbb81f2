//! The request-level service the HTTP API calls: validation, placement of
//! each write on its shard, proposals, linearizable reads, and assembly of
//! Pinpoint-shaped results. One method per API operation.
//!
//! A request is validated whole before anything is proposed, so a rejected
//! request changes nothing. A batch that spans shards is checked against the
//! stored state of every shard it touches before the first proposal.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use futures::future::join_all;
use herald_cluster::{ClusterError, RaftHost};
use herald_model::channel::{CustomChannelRequest, CustomChannelResponse};
use herald_model::limits::Limits;
use herald_model::wire::{
    ApplicationSettingsResource, ChannelsResponse, CreateApplicationRequest, EmailChannelRequest,
    EmailChannelResponse, EndpointBatchRequest, EndpointItemResponse, EndpointRequest,
    EndpointResponse, EventItemResponse, EventsRequest, EventsResponse, ItemResponse,
    WriteApplicationSettingsRequest,
};
use herald_model::{endpoint, ids, time, validate};
use herald_storage::{
    AppRecord, ApplyLimits, CmdResult, Command, EndpointUpsert, EventsItem, GroupId, KvEngine,
    META_GROUP,
};

use crate::clock::Clock;
use crate::delivery::Dispatcher;

/// Errors in the terms of Pinpoint's error types.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    TooManyRequests(String),
    #[error("{0}")]
    Internal(String),
}

pub type Result<T> = std::result::Result<T, ServiceError>;

impl From<ClusterError> for ServiceError {
    fn from(e: ClusterError) -> Self {
        match e {
            ClusterError::Timeout(_)
            | ClusterError::NotLeader { .. }
            | ClusterError::Unavailable(_) => ServiceError::TooManyRequests(format!(
                "the cluster cannot serve this request now: {e}"
            )),
            other => ServiceError::Internal(other.to_string()),
        }
    }
}

impl From<herald_storage::StorageError> for ServiceError {
    fn from(e: herald_storage::StorageError) -> Self {
        ServiceError::Internal(e.to_string())
    }
}

impl From<validate::ValidationError> for ServiceError {
    fn from(e: validate::ValidationError) -> Self {
        ServiceError::BadRequest(e.0)
    }
}

#[derive(Debug, Clone)]
pub struct ServiceConfig {
    pub limits: Limits,
    /// Account id used in ARNs (the region is the one the client signed for).
    pub account: String,
    pub session_idle_timeout_ms: i64,
    pub tracking: TrackingConfig,
    /// A direct send repeated with the same TraceId within this window is a
    /// retry and is not sent again; later, it is a new send.
    pub send_dedup_window_ms: i64,
    /// Import and export jobs.
    pub jobs: crate::jobs::JobsConfig,
    /// Origination numbers and keyword answers of the SMS channel.
    pub sms: crate::sms::SmsConfig,
    /// Maintain analytics rollups as events are stored.
    pub analytics_rollups: bool,
    /// Days raw events are kept when an app sets nothing (the shards'
    /// sweep applies it; this is what the API reports).
    pub event_retention_days: u32,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            account: "000000000000".into(),
            session_idle_timeout_ms: 30 * 60 * 1000,
            tracking: TrackingConfig::default(),
            send_dedup_window_ms: 24 * 60 * 60 * 1000,
            jobs: crate::jobs::JobsConfig::default(),
            sms: crate::sms::SmsConfig::default(),
            analytics_rollups: true,
            event_retention_days: 90,
        }
    }
}

/// Email engagement tracking (see `model::tracking`).
#[derive(Debug, Clone, Default)]
pub struct TrackingConfig {
    /// The public base URL tracking links point at (e.g.
    /// `https://herald.example.com`); no tracking at all without one.
    pub base_url: Option<String>,
    /// Signs tracking tokens; the same on every node of a cluster.
    pub secret: Vec<u8>,
    /// Add an open pixel to HTML mail.
    pub opens: bool,
    /// Route links of HTML mail through click redirects.
    pub clicks: bool,
    /// Add `List-Unsubscribe` (one-click, RFC 8058) to direct sends to
    /// endpoints too (campaign and journey mail always carries it).
    pub list_unsubscribe_on_direct: bool,
}

/// Operations of the Pinpoint API core on one cluster node.
pub struct Herald<E: KvEngine> {
    pub(crate) host: Arc<RaftHost<E>>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) cfg: ServiceConfig,
    /// Shard-local -> query-wide analytics ordinals (see `analytics`).
    pub(crate) analytics_ords: crate::analytics::OrdinalCache,
    /// Event types known per app (a cache of the shards' event type tables).
    event_types: Mutex<BTreeMap<String, BTreeSet<String>>>,
    /// The node's channel actors; sends are refused until it is set.
    dispatcher: std::sync::OnceLock<Arc<Dispatcher>>,
    /// The node's event stream publisher (set by `set_streamer`).
    pub(crate) streamer: std::sync::OnceLock<Arc<crate::streams::EventStreamer>>,
    /// Wakes the campaign scheduler.
    pub(crate) campaign_wake: tokio::sync::Notify,
    /// The node's segment indexes (absent in tests that build a bare
    /// service: segments are then evaluated by scanning).
    pub(crate) indexes: std::sync::OnceLock<Arc<crate::segment_indexes::SegmentIndexes>>,
    /// Apps with event-triggered campaigns (refreshed by the scheduler).
    pub(crate) event_apps: std::sync::RwLock<BTreeSet<String>>,
    /// PutEvents batches for event-triggered campaigns, to the scheduler.
    #[allow(clippy::type_complexity)]
    pub(crate) triggers: (
        tokio::sync::mpsc::Sender<crate::campaign_run::Trigger>,
        tokio::sync::Mutex<tokio::sync::mpsc::Receiver<crate::campaign_run::Trigger>>,
    ),
    /// Import and export jobs running on this node at once, at most.
    pub(crate) job_slots: Arc<tokio::sync::Semaphore>,
    /// Shard runs going on on this node, whoever asked for them.
    pub(crate) shard_runs: crate::node_calls::Running,
    /// The service itself, for work that outlives its caller (set by
    /// [`crate::node_calls::NodeService::new`]).
    pub(crate) this: std::sync::OnceLock<std::sync::Weak<Herald<E>>>,
}

fn not_found_app(app_id: &str) -> ServiceError {
    ServiceError::NotFound(format!("application {app_id} not found"))
}

fn no_channel(app_id: &str, channel: &str) -> ServiceError {
    ServiceError::NotFound(format!(
        "the {channel} channel of application {app_id} is not configured"
    ))
}

fn rejected(r: CmdResult) -> Result<CmdResult> {
    match r {
        CmdResult::Rejected(reason) => Err(ServiceError::BadRequest(reason)),
        other => Ok(other),
    }
}

/// How far under the endpoints-per-user limit a count from this node's
/// replicas must be to be trusted without read barriers on every shard.
const USER_COUNT_MARGIN: usize = 4;

pub const PAGE_SIZE_DEFAULT: usize = 100;
pub const PAGE_SIZE_MAX: usize = 1000;

impl<E: KvEngine> Herald<E> {
    pub fn new(host: Arc<RaftHost<E>>, clock: Arc<dyn Clock>, cfg: ServiceConfig) -> Self {
        Self {
            job_slots: Arc::new(tokio::sync::Semaphore::new(cfg.jobs.running_max.max(1))),
            shard_runs: Default::default(),
            this: std::sync::OnceLock::new(),
            host,
            clock,
            cfg,
            event_types: Mutex::new(BTreeMap::new()),
            analytics_ords: Default::default(),
            dispatcher: std::sync::OnceLock::new(),
            streamer: std::sync::OnceLock::new(),
            campaign_wake: tokio::sync::Notify::new(),
            indexes: std::sync::OnceLock::new(),
            event_apps: std::sync::RwLock::new(BTreeSet::new()),
            triggers: {
                let (tx, rx) = tokio::sync::mpsc::channel(crate::campaign_run::TRIGGER_QUEUE_MAX);
                (tx, tokio::sync::Mutex::new(rx))
            },
        }
    }

    /// Gives the service the node's segment indexes (once).
    pub fn set_segment_indexes(&self, i: Arc<crate::segment_indexes::SegmentIndexes>) {
        let _ = self.indexes.set(i);
    }

    /// Gives the service the node's channel actors (once).
    pub fn set_dispatcher(&self, d: Arc<Dispatcher>) {
        let _ = self.dispatcher.set(d);
    }

    pub(crate) fn dispatcher(&self) -> Result<&Arc<Dispatcher>> {
        self.dispatcher.get().ok_or_else(|| {
            ServiceError::Internal("this node has no delivery channels configured".into())
        })
    }

    pub fn host(&self) -> &Arc<RaftHost<E>> {
        &self.host
    }

    pub fn config(&self) -> &ServiceConfig {
        &self.cfg
    }

    pub(crate) fn now_iso(&self) -> String {
        time::format_iso8601_ms(self.clock.now_ms())
    }

    pub(crate) fn apply_limits(&self) -> ApplyLimits {
        ApplyLimits {
            endpoint_bytes_max: self.cfg.limits.endpoint_bytes_max,
            endpoint_attributes_max: self.cfg.limits.endpoint_attributes_max,
            session_idle_timeout_ms: self.cfg.session_idle_timeout_ms,
            rollups: self.cfg.analytics_rollups,
        }
    }

    // ---- apps ---------------------------------------------------------------

    /// Creates an app whose ARN names `region`.
    pub async fn create_app(
        &self,
        id: String,
        region: &str,
        req: CreateApplicationRequest,
    ) -> Result<AppRecord> {
        validate::app_name(req.name.as_deref())?;
        let tags = req.tags.unwrap_or_default();
        validate::tags(&tags, &self.cfg.limits)?;
        let now = self.now_iso();
        let rec = AppRecord {
            arn: ids::app_arn(region, &self.cfg.account, &id),
            name: req.name.unwrap_or_default(),
            creation_date: now.clone(),
            tags,
            settings: ApplicationSettingsResource {
                application_id: id.clone(),
                last_modified_date: Some(now),
                ..Default::default()
            },
            email_channel: None,
            custom_channel: None,
            apns_channels: Default::default(),
            gcm_channel: None,
            sms_channel: None,
            event_stream: None,
            deleting: false,
            event_retention_days: None,
            id,
        };
        match rejected(
            self.host
                .propose(META_GROUP, Command::CreateApp(Box::new(rec)))
                .await?,
        )? {
            CmdResult::App(Some(a)) => Ok(*a),
            other => Err(ServiceError::Internal(format!(
                "unexpected result {other:?}"
            ))),
        }
    }

    /// Checks that an app exists before data is written to its shards.
    ///
    /// An app found on this node's replica of the meta group is taken as is,
    /// without a read barrier (a meta read index per write was a third of
    /// the cluster's RPCs under PutEvents). Only a miss is read again through
    /// the barrier, so an app just created through another node is found.
    /// What this gives up is small: a write racing a DeleteApp through
    /// another node may land for as long as this replica lags (usually
    /// milliseconds), a window that exists anyway between any app check and
    /// the shard write it guards.
    async fn require_app_for_write(&self, app_id: &str) -> Result<AppRecord> {
        if let Some(app) = self.host.reader().app(app_id)? {
            return Ok(app);
        }
        self.app(app_id).await
    }

    pub async fn app(&self, app_id: &str) -> Result<AppRecord> {
        self.host.read_barrier(META_GROUP).await?;
        self.host
            .reader()
            .app(app_id)?
            .ok_or_else(|| not_found_app(app_id))
    }

    /// A page of apps in id order; the token is the last id of the previous page.
    pub async fn list_apps(
        &self,
        page_size: Option<&str>,
        token: Option<&str>,
    ) -> Result<(Vec<AppRecord>, Option<String>)> {
        let size = parse_page_size(page_size)?;
        if let Some(t) = token.filter(|t| !t.is_empty()) {
            // Tokens are the last app id of the previous page.
            if !ids::is_valid_app_id(t) {
                return Err(ServiceError::BadRequest(format!(
                    "{t} is not a valid pagination token"
                )));
            }
        }
        self.host.read_barrier(META_GROUP).await?;
        let mut apps = self
            .host
            .reader()
            .apps(token.filter(|t| !t.is_empty()), size + 1, false)?;
        let next = if apps.len() > size {
            apps.truncate(size);
            apps.last().map(|a| a.id.clone())
        } else {
            None
        };
        Ok((apps, next))
    }

    /// Deletes an app and every row it owns in every shard.
    pub async fn delete_app(&self, app_id: &str) -> Result<AppRecord> {
        let rec = match self
            .host
            .propose(
                META_GROUP,
                Command::MarkAppDeleting {
                    app_id: app_id.to_owned(),
                },
            )
            .await?
        {
            CmdResult::App(Some(a)) => *a,
            _ => return Err(not_found_app(app_id)),
        };
        self.purge_app(app_id).await?;
        Ok(rec)
    }

    async fn purge_app(&self, app_id: &str) -> Result<()> {
        let purges = self.host.data_groups().map(|g| {
            self.host.propose(
                g,
                Command::PurgeApp {
                    app_id: app_id.to_owned(),
                },
            )
        });
        for r in join_all(purges).await {
            r?;
        }
        self.event_types
            .lock()
            .expect("event types lock")
            .remove(app_id);
        self.host
            .propose(
                META_GROUP,
                Command::RemoveApp {
                    app_id: app_id.to_owned(),
                },
            )
            .await?;
        Ok(())
    }

    /// Finishes purges that a crash interrupted. Called at start.
    pub async fn resume_deletions(&self) -> Result<usize> {
        self.host.read_barrier(META_GROUP).await?;
        let mut n = 0;
        let mut after: Option<String> = None;
        loop {
            let page = self.host.reader().apps(after.as_deref(), 100, true)?;
            let Some(last) = page.last() else { break };
            after = Some(last.id.clone());
            for a in page.iter().filter(|a| a.deleting) {
                tracing::info!(app_id = %a.id, "finishing an interrupted app deletion");
                self.purge_app(&a.id).await?;
                n += 1;
            }
        }
        Ok(n)
    }

    pub async fn settings(&self, app_id: &str) -> Result<ApplicationSettingsResource> {
        Ok(self.app(app_id).await?.settings)
    }

    pub async fn update_settings(
        &self,
        app_id: &str,
        req: WriteApplicationSettingsRequest,
    ) -> Result<ApplicationSettingsResource> {
        validate::application_settings(&req)?;
        let mut settings = self.app(app_id).await?.settings;
        settings.application_id = app_id.to_owned();
        if req.campaign_hook.is_some() {
            settings.campaign_hook = req.campaign_hook;
        }
        if req.limits.is_some() {
            settings.limits = req.limits;
        }
        if req.quiet_time.is_some() {
            settings.quiet_time = req.quiet_time;
        }
        if req.journey_limits.is_some() {
            settings.journey_limits = req.journey_limits;
        }
        settings.last_modified_date = Some(self.now_iso());
        let cmd = Command::UpdateAppSettings {
            app_id: app_id.to_owned(),
            settings,
        };
        match self.host.propose(META_GROUP, cmd).await? {
            CmdResult::App(Some(a)) => Ok(a.settings),
            _ => Err(not_found_app(app_id)),
        }
    }

    // ---- channels ------------------------------------------------------------

    /// `GetChannels`: a summary of every configured channel, by type.
    pub async fn channels(&self, app_id: &str) -> Result<ChannelsResponse> {
        let app = self.app(app_id).await?;
        let mut channels = BTreeMap::new();
        if let Some(ch) = &app.email_channel {
            channels.insert("EMAIL".to_owned(), herald_model::channel::email_summary(ch));
        }
        if let Some(ch) = &app.sms_channel {
            channels.insert("SMS".to_owned(), herald_model::channel::sms_summary(ch));
        }
        if let Some(ch) = &app.gcm_channel {
            channels.insert(
                "GCM".to_owned(),
                herald_model::channel::gcm_summary(&ch.response),
            );
        }
        for (platform, ch) in &app.apns_channels {
            channels.insert(
                platform.clone(),
                herald_model::channel::apns_summary(&ch.response),
            );
        }
        Ok(ChannelsResponse { channels })
    }

    pub async fn email_channel(&self, app_id: &str) -> Result<EmailChannelResponse> {
        self.app(app_id)
            .await?
            .email_channel
            .ok_or_else(|| no_channel(app_id, "email"))
    }

    pub async fn update_email_channel(
        &self,
        app_id: &str,
        req: EmailChannelRequest,
    ) -> Result<EmailChannelResponse> {
        validate::email_channel_request(&req)?;
        let cmd = Command::UpdateEmailChannel {
            app_id: app_id.to_owned(),
            request: req,
            now_iso: self.now_iso(),
        };
        match self.host.propose(META_GROUP, cmd).await? {
            CmdResult::EmailChannel(Some(ch)) => Ok(*ch),
            _ => Err(not_found_app(app_id)),
        }
    }

    /// Removes the email channel and answers it as it was.
    pub async fn delete_email_channel(&self, app_id: &str) -> Result<EmailChannelResponse> {
        self.app(app_id).await?;
        let cmd = Command::DeleteEmailChannel {
            app_id: app_id.to_owned(),
        };
        match self.host.propose(META_GROUP, cmd).await? {
            CmdResult::EmailChannel(Some(ch)) => Ok(*ch),
            _ => Err(no_channel(app_id, "email")),
        }
    }

    /// The key the app's webhooks are signed with: derived from the node's
    /// tracking secret, so every node of a cluster signs alike and nothing
    /// secret is stored in the log.
    pub(crate) fn webhook_secret(&self, app_id: &str) -> String {
        herald_model::tracking::derived_key(&self.cfg.tracking.secret, "custom-channel", app_id)
    }

    /// herald's custom channel of an app (`/herald/v1/.../channels/custom`).
    pub async fn custom_channel(&self, app_id: &str) -> Result<CustomChannelResponse> {
        let mut ch = self
            .app(app_id)
            .await?
            .custom_channel
            .ok_or_else(|| no_channel(app_id, "custom"))?;
        ch.signing_secret = Some(self.webhook_secret(app_id));
        Ok(ch)
    }

    pub async fn update_custom_channel(
        &self,
        app_id: &str,
        req: CustomChannelRequest,
    ) -> Result<CustomChannelResponse> {
        herald_model::channel::custom_channel_request(&req)?;
        let cmd = Command::UpdateCustomChannel {
            app_id: app_id.to_owned(),
            request: req,
            now_iso: self.now_iso(),
        };
        match self.host.propose(META_GROUP, cmd).await? {
            CmdResult::App(Some(a)) => {
                let mut ch = a.custom_channel.ok_or_else(|| not_found_app(app_id))?;
                ch.signing_secret = Some(self.webhook_secret(app_id));
                Ok(ch)
            }
            _ => Err(not_found_app(app_id)),
        }
    }

    pub async fn delete_custom_channel(&self, app_id: &str) -> Result<CustomChannelResponse> {
        self.app(app_id).await?;
        let cmd = Command::DeleteCustomChannel {
            app_id: app_id.to_owned(),
        };
        match self.host.propose(META_GROUP, cmd).await? {
            CmdResult::App(Some(a)) => a.custom_channel.ok_or_else(|| no_channel(app_id, "custom")),
            _ => Err(no_channel(app_id, "custom")),
        }
    }

    // ---- tags ----------------------------------------------------------------

    fn app_of_arn(&self, arn: &str) -> Result<String> {
        let bad = || ServiceError::BadRequest(format!("{arn} is not a valid resource arn"));
        let (_, _, path) = ids::parse_resource_arn(arn).ok_or_else(bad)?;
        let mut parts = path.split('/');
        match (parts.next(), parts.next(), parts.next()) {
            (Some("apps"), Some(id), None) if !id.is_empty() => Ok(id.to_owned()),
            (Some("apps"), Some(_), Some(_)) => {
                Err(ServiceError::NotFound(format!("resource {arn} not found")))
            }
            _ => Err(bad()),
        }
    }

    pub async fn tags(&self, arn: &str) -> Result<BTreeMap<String, String>> {
        let app_id = self.app_of_arn(arn)?;
        Ok(self.app(&app_id).await?.tags)
    }

    pub async fn tag(&self, arn: &str, tags: Option<BTreeMap<String, String>>) -> Result<()> {
        let tags = tags.ok_or_else(|| ServiceError::BadRequest("tags is required".into()))?;
        validate::tags(&tags, &self.cfg.limits)?;
        let app_id = self.app_of_arn(arn)?;
        let current = self.app(&app_id).await?.tags;
        let merged: BTreeSet<&String> = current.keys().chain(tags.keys()).collect();
        if merged.len() > self.cfg.limits.tags_per_resource_max {
            return Err(ServiceError::BadRequest(format!(
                "a resource may have at most {} tags",
                self.cfg.limits.tags_per_resource_max
            )));
        }
        match self
            .host
            .propose(
                META_GROUP,
                Command::TagApp {
                    app_id: app_id.clone(),
                    tags,
                },
            )
            .await?
        {
            CmdResult::App(Some(_)) => Ok(()),
            _ => Err(not_found_app(&app_id)),
        }
    }

    pub async fn untag(&self, arn: &str, keys: Vec<String>) -> Result<()> {
        if keys.is_empty() {
            return Err(ServiceError::BadRequest("tagKeys is required".into()));
        }
        let app_id = self.app_of_arn(arn)?;
        match self
            .host
            .propose(
                META_GROUP,
                Command::UntagApp {
                    app_id: app_id.clone(),
                    keys,
                },
            )
            .await?
        {
            CmdResult::App(Some(_)) => Ok(()),
            _ => Err(not_found_app(&app_id)),
        }
    }

    // ---- endpoints -------------------------------------------------------------

    async fn endpoint_in(
        &self,
        app_id: &str,
        endpoint_id: &str,
    ) -> Result<Option<EndpointResponse>> {
        let g = self.host.group_of(app_id, endpoint_id);
        self.host.read_barrier(g).await?;
        Ok(self.host.reader().endpoint(g, app_id, endpoint_id)?)
    }

    /// Every endpoint id of a user in this node's replicas of all shards,
    /// without read barriers (it may miss writes not applied here yet).
    fn user_endpoint_ids_local(
        &self,
        app_id: &str,
        user_id: &str,
    ) -> Result<Vec<(GroupId, String)>> {
        let mut out = Vec::new();
        for g in self.host.data_groups() {
            let ids = self.host.reader().user_endpoint_ids(g, app_id, user_id)?;
            out.extend(ids.into_iter().map(|id| (g, id)));
        }
        Ok(out)
    }

    /// Every endpoint id of a user across all shards.
    pub(crate) async fn user_endpoint_ids(
        &self,
        app_id: &str,
        user_id: &str,
    ) -> Result<Vec<(GroupId, String)>> {
        let reads = self.host.data_groups().map(|g| async move {
            self.host.read_barrier(g).await?;
            let ids = self.host.reader().user_endpoint_ids(g, app_id, user_id)?;
            Ok::<_, ServiceError>(ids.into_iter().map(move |id| (g, id)).collect::<Vec<_>>())
        });
        let mut out = Vec::new();
        for r in join_all(reads).await {
            out.extend(r?);
        }
        Ok(out)
    }

    /// Checks a set of endpoint writes against stored state: size and
    /// attribute quotas after merging, and endpoints per user.
    ///
    /// Endpoints are read from the local state machine without a read
    /// barrier: this is a pre-check that gives each item its own verdict.
    /// The state machine checks size and attributes again when it applies
    /// the write, so a stale read can only let through a write that apply
    /// then refuses whole. (A barrier here made every PutEvents item wait
    /// for its shard's in-flight writes to apply, one item after another.)
    async fn check_endpoint_writes(
        &self,
        app_id: &str,
        items: &[EndpointUpsert],
        now: &str,
    ) -> Result<()> {
        let limits = &self.cfg.limits;
        // user id -> endpoint ids that will carry it after the writes
        let mut users: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut merged_so_far: BTreeMap<&str, EndpointResponse> = BTreeMap::new();
        for item in items {
            let existing = match merged_so_far.get(item.endpoint_id.as_str()) {
                Some(e) => Some(e.clone()),
                None => {
                    let g = self.host.group_of(app_id, &item.endpoint_id);
                    self.host.reader().endpoint(g, app_id, &item.endpoint_id)?
                }
            };
            let merged = endpoint::merge_update(
                existing.as_ref(),
                app_id,
                &item.endpoint_id,
                &item.request,
                now,
            );
            let bytes = serde_json::to_vec(&merged)
                .map(|v| v.len())
                .unwrap_or(usize::MAX);
            if bytes > limits.endpoint_bytes_max {
                return Err(ServiceError::PayloadTooLarge(format!(
                    "endpoint {} would be {bytes} bytes; an endpoint may hold at most {} bytes",
                    item.endpoint_id, limits.endpoint_bytes_max
                )));
            }
            let attrs = herald_storage::apply::attribute_count(&merged);
            if attrs > limits.endpoint_attributes_max {
                return Err(ServiceError::BadRequest(format!(
                    "endpoint {} would have {attrs} attributes; the limit is {}",
                    item.endpoint_id, limits.endpoint_attributes_max
                )));
            }
            if let Some(u) = endpoint::user_id(&merged) {
                users
                    .entry(u.to_owned())
                    .or_default()
                    .insert(item.endpoint_id.clone());
            }
            merged_so_far.insert(&item.endpoint_id, merged);
        }
        for (user, new_ids) in users {
            // A user's endpoints spread over every shard, so a linearizable
            // count costs a read barrier per shard. This node's replicas
            // answer first; they can miss only the last few writes (those
            // not applied here yet), so a count near the limit is taken
            // again through the barriers.
            let count = |ids: Vec<(GroupId, String)>| {
                let mut all: BTreeSet<&str> = new_ids.iter().map(String::as_str).collect();
                all.extend(ids.iter().map(|(_, id)| id.as_str()));
                all.len()
            };
            let mut n = count(self.user_endpoint_ids_local(app_id, &user)?);
            if n + USER_COUNT_MARGIN > limits.endpoints_per_user_max {
                n = count(self.user_endpoint_ids(app_id, &user).await?);
            }
            if n > limits.endpoints_per_user_max {
                return Err(ServiceError::BadRequest(format!(
                    "user {user} would have {n} endpoints; a user may have at most {}",
                    limits.endpoints_per_user_max
                )));
            }
        }
        Ok(())
    }

    /// Proposes endpoint writes grouped by shard, all shards at once, then
    /// hands the addresses they claim over to their new holders.
    async fn write_endpoints(
        &self,
        app_id: &str,
        items: Vec<EndpointUpsert>,
        now: String,
    ) -> Result<()> {
        let order: Vec<String> = items.iter().map(|i| i.endpoint_id.clone()).collect();
        let mut by_group: BTreeMap<GroupId, Vec<EndpointUpsert>> = BTreeMap::new();
        for item in items {
            by_group
                .entry(self.host.group_of(app_id, &item.endpoint_id))
                .or_default()
                .push(item);
        }
        let limits = self.apply_limits();
        let writes = by_group.into_iter().map(|(g, items)| {
            let cmd = Command::UpsertEndpoints {
                app_id: app_id.to_owned(),
                now_iso: now.clone(),
                limits,
                items,
            };
            self.host.propose(g, cmd)
        });
        let mut claims = Vec::new();
        for r in join_all(writes).await {
            if let CmdResult::Written { claims: c, .. } = rejected(r?)? {
                claims.extend(c);
            }
        }
        // Claims in request order, so that the last item with an address wins.
        let rank: BTreeMap<&str, usize> = order
            .iter()
            .enumerate()
            .map(|(i, id)| (id.as_str(), i))
            .collect();
        claims.sort_by_key(|c| rank.get(c.endpoint_id.as_str()).copied());
        crate::addresses::hand_over(&self.host, app_id, claims).await
    }

    /// An endpoint request larger than an endpoint may be is PayloadTooLarge.
    fn check_request_size(&self, req: &EndpointRequest) -> Result<()> {
        let bytes = validate::json_len(req);
        let max = self.cfg.limits.endpoint_bytes_max;
        if bytes > max {
            return Err(ServiceError::PayloadTooLarge(format!(
                "the endpoint is {bytes} bytes, over the limit of {max} bytes"
            )));
        }
        Ok(())
    }

    /// Creates or partially updates one endpoint. `request_id` becomes the
    /// endpoint's RequestId unless the client named one.
    pub async fn update_endpoint(
        &self,
        app_id: &str,
        endpoint_id: &str,
        mut req: EndpointRequest,
        request_id: &str,
    ) -> Result<()> {
        validate::endpoint_id(endpoint_id)?;
        self.check_request_size(&req)?;
        validate::endpoint_request(&req, &self.cfg.limits)?;
        self.require_app_for_write(app_id).await?;
        req.request_id.get_or_insert_with(|| request_id.to_owned());
        #[cfg(feature = "canaries")]
        self.plant_late_opt_out(app_id, endpoint_id, &mut req);
        let items = vec![EndpointUpsert {
            endpoint_id: endpoint_id.to_owned(),
            request: req,
            seq: 0,
        }];
        let now = self.now_iso();
        self.check_endpoint_writes(app_id, &items, &now).await?;
        self.write_endpoints(app_id, items, now).await
    }

    /// The `opt-out-after-decision` canary: takes `OptOut: ALL` out of the
    /// request and applies it ten seconds later.
    #[cfg(feature = "canaries")]
    fn plant_late_opt_out(&self, app_id: &str, endpoint_id: &str, req: &mut EndpointRequest) {
        use crate::canary::{is, Canary};
        if !is(Canary::OptOutAfterDecision) || req.opt_out.as_deref() != Some("ALL") {
            return;
        }
        let Some(this) = self.this.get().and_then(std::sync::Weak::upgrade) else {
            return;
        };
        req.opt_out = None;
        let items = vec![EndpointUpsert {
            endpoint_id: endpoint_id.to_owned(),
            request: EndpointRequest {
                opt_out: Some("ALL".into()),
                ..Default::default()
            },
            seq: 0,
        }];
        let app_id = app_id.to_owned();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_secs(10)).await;
            let now = this.now_iso();
            let _ = this.write_endpoints(&app_id, items, now).await;
        });
    }

    pub async fn update_endpoints_batch(
        &self,
        app_id: &str,
        req: EndpointBatchRequest,
        request_id: &str,
    ) -> Result<()> {
        for item in req.item.iter().flatten() {
            self.check_request_size(&item.to_request())?;
        }
        validate::endpoint_batch(&req, &self.cfg.limits)?;
        self.require_app_for_write(app_id).await?;
        let items: Vec<EndpointUpsert> = req
            .item
            .unwrap_or_default()
            .iter()
            .enumerate()
            .map(|(seq, i)| {
                let mut request = i.to_request();
                request
                    .request_id
                    .get_or_insert_with(|| request_id.to_owned());
                EndpointUpsert {
                    endpoint_id: i.id.clone().unwrap_or_default(),
                    request,
                    seq: u32::try_from(seq).unwrap_or(u32::MAX),
                }
            })
            .collect();
        let now = self.now_iso();
        self.check_endpoint_writes(app_id, &items, &now).await?;
        self.write_endpoints(app_id, items, now).await
    }

    pub async fn endpoint(&self, app_id: &str, endpoint_id: &str) -> Result<EndpointResponse> {
        self.app(app_id).await?;
        self.endpoint_in(app_id, endpoint_id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("endpoint {endpoint_id} not found")))
    }

    pub async fn delete_endpoint(
        &self,
        app_id: &str,
        endpoint_id: &str,
    ) -> Result<EndpointResponse> {
        self.app(app_id).await?;
        let g = self.host.group_of(app_id, endpoint_id);
        let cmd = Command::DeleteEndpoint {
            app_id: app_id.to_owned(),
            endpoint_id: endpoint_id.to_owned(),
        };
        match self.host.propose(g, cmd).await? {
            CmdResult::Endpoints(mut v) if !v.is_empty() => Ok(v.remove(0)),
            _ => Err(ServiceError::NotFound(format!(
                "endpoint {endpoint_id} not found"
            ))),
        }
    }

    pub async fn user_endpoints(
        &self,
        app_id: &str,
        user_id: &str,
    ) -> Result<Vec<EndpointResponse>> {
        self.app(app_id).await?;
        let mut out = Vec::new();
        for (g, id) in self.user_endpoint_ids(app_id, user_id).await? {
            if let Some(ep) = self.host.reader().endpoint(g, app_id, &id)? {
                out.push(ep);
            }
        }
        if out.is_empty() {
            return Err(ServiceError::NotFound(format!(
                "user {user_id} has no endpoints"
            )));
        }
        Ok(out)
    }

    pub async fn delete_user_endpoints(
        &self,
        app_id: &str,
        user_id: &str,
    ) -> Result<Vec<EndpointResponse>> {
        self.app(app_id).await?;
        let groups: BTreeSet<GroupId> = self
            .user_endpoint_ids(app_id, user_id)
            .await?
            .into_iter()
            .map(|(g, _)| g)
            .collect();
        let deletes = groups.into_iter().map(|g| {
            let cmd = Command::DeleteUserEndpoints {
                app_id: app_id.to_owned(),
                user_id: user_id.to_owned(),
            };
            self.host.propose(g, cmd)
        });
        let mut out = Vec::new();
        for r in join_all(deletes).await {
            if let CmdResult::Endpoints(v) = r? {
                out.extend(v);
            }
        }
        // The user leaves future analytics in every shard that counted it,
        // including shards where none of its endpoints are left.
        let person = herald_model::analytics::person_key(Some(user_id), "");
        let mut counted = Vec::new();
        for g in self.host.data_groups() {
            let reader = self.host.reader().analytics();
            if reader
                .ordinal(g, app_id, herald_model::analytics::Kind::Person, &person)?
                .is_some()
            {
                counted.push(g);
            }
        }
        let forgets = counted.into_iter().map(|g| {
            self.host.propose(
                g,
                Command::ForgetPerson {
                    app_id: app_id.to_owned(),
                    person: person.clone(),
                },
            )
        });
        for r in join_all(forgets).await {
            r?;
        }
        if out.is_empty() {
            return Err(ServiceError::NotFound(format!(
                "user {user_id} has no endpoints"
            )));
        }
        Ok(out)
    }

    /// Removes attributes (by exact name or glob) from every endpoint of an app.
    pub async fn remove_attributes(
        &self,
        app_id: &str,
        attribute_type: &str,
        names: Vec<String>,
    ) -> Result<()> {
        validate::attribute_type(attribute_type)?;
        self.app(app_id).await?;
        let removes = self.host.data_groups().map(|g| {
            let cmd = Command::RemoveAttributes {
                app_id: app_id.to_owned(),
                attribute_type: attribute_type.to_owned(),
                names: names.clone(),
            };
            self.host.propose(g, cmd)
        });
        for r in join_all(removes).await {
            rejected(r?)?;
        }
        Ok(())
    }

    // ---- events ------------------------------------------------------------------

    async fn check_event_types(&self, app_id: &str, types: BTreeSet<String>) -> Result<()> {
        let unknown: Vec<String> = {
            let cache = self.event_types.lock().expect("event types lock");
            let known = cache.get(app_id);
            types
                .into_iter()
                .filter(|t| known.is_none_or(|k| !k.contains(t)))
                .collect()
        };
        if unknown.is_empty() {
            return Ok(());
        }
        let mut known = BTreeSet::new();
        for g in self.host.data_groups() {
            known.extend(
                self.host
                    .reader()
                    .event_types(g, app_id)?
                    .into_iter()
                    .map(|(t, _)| t),
            );
        }
        let mut all = known.clone();
        all.extend(unknown.iter().cloned());
        let max = self.cfg.limits.event_types_per_app_max;
        if all.len() > max {
            return Err(ServiceError::BadRequest(format!(
                "the app would have {} event types; an app may have at most {max}",
                all.len()
            )));
        }
        self.event_types
            .lock()
            .expect("event types lock")
            .insert(app_id.to_owned(), all);
        Ok(())
    }

    /// Stores events and upserts each batch's endpoint. Request-level faults
    /// (no batch, too many events, too many event types) refuse the whole
    /// request; an invalid endpoint or event is refused alone and reported in
    /// its item's result, as Pinpoint does.
    pub async fn put_events(
        &self,
        app_id: &str,
        req: EventsRequest,
        request_id: &str,
    ) -> Result<EventsResponse> {
        validate::events_envelope(&req, &self.cfg.limits)?;
        let app = self.require_app_for_write(app_id).await?;
        let mut verdicts = validate::events_items(&req, &self.cfg.limits);
        let now = self.now_iso();
        let mut types = BTreeSet::new();
        let mut by_group: BTreeMap<GroupId, Vec<EventsItem>> = BTreeMap::new();
        let mut results = BTreeMap::new();
        for (endpoint_id, batch) in req.batch_item.unwrap_or_default() {
            let Some(verdict) = verdicts.remove(&endpoint_id) else {
                return Err(ServiceError::Internal(format!(
                    "no verdict for endpoint {endpoint_id}"
                )));
            };
            let mut endpoint = match (verdict.endpoint, batch.endpoint) {
                (Ok(()), Some(ep)) => {
                    let mut request = ep.to_request();
                    request
                        .request_id
                        .get_or_insert_with(|| request_id.to_owned());
                    Ok(request)
                }
                (Ok(()), None) => Err(validate::ValidationError("Endpoint: required".into())),
                (Err(e), _) => Err(e),
            };
            if let Ok(request) = &endpoint {
                // Quotas that depend on what is stored.
                let upsert = [EndpointUpsert {
                    endpoint_id: endpoint_id.clone(),
                    request: request.clone(),
                    seq: 0,
                }];
                if let Err(e) = self.check_endpoint_writes(app_id, &upsert, &now).await {
                    match e {
                        ServiceError::BadRequest(m) | ServiceError::PayloadTooLarge(m) => {
                            endpoint = Err(validate::ValidationError(m));
                        }
                        other => return Err(other),
                    }
                }
            }
            let mut event_results = BTreeMap::new();
            let mut events = Vec::new();
            for (event_id, ev) in batch.events.unwrap_or_default() {
                let outcome = verdict.events.get(&event_id).cloned().unwrap_or(Ok(()));
                event_results.insert(event_id.clone(), item_result(&outcome));
                if outcome.is_ok() {
                    types.insert(ev.event_type.clone().unwrap_or_default());
                    events.push((event_id, ev));
                }
            }
            results.insert(
                endpoint_id.clone(),
                ItemResponse {
                    endpoint_item_response: Some(endpoint_result(&endpoint)),
                    events_item_response: Some(event_results),
                },
            );
            if endpoint.is_err() && events.is_empty() {
                continue;
            }
            let g = self.host.group_of(app_id, &endpoint_id);
            by_group.entry(g).or_default().push(EventsItem {
                endpoint_id,
                endpoint: endpoint.ok(),
                events,
            });
        }
        self.check_event_types(app_id, types).await?;
        let limits = self.apply_limits();
        // Copies only for apps with event-triggered campaigns.
        let wanted = self.wants_triggers(app_id);
        let triggered: Vec<(String, String, herald_model::wire::Event)> = by_group
            .values()
            .filter(|_| wanted)
            .flatten()
            .flat_map(|i| {
                i.events
                    .iter()
                    .map(|(id, ev)| (i.endpoint_id.clone(), id.clone(), ev.clone()))
            })
            .collect();
        // Copies only for apps with an event stream.
        let streamed: Vec<(String, herald_model::wire::Event)> = by_group
            .values()
            .filter(|_| app.event_stream.is_some())
            .flatten()
            .flat_map(|i| {
                i.events
                    .iter()
                    .map(|(_, ev)| (i.endpoint_id.clone(), ev.clone()))
            })
            .collect();
        let writes = by_group.into_iter().map(|(g, items)| {
            let cmd = Command::PutEvents {
                app_id: app_id.to_owned(),
                now_iso: now.clone(),
                limits,
                items,
            };
            self.host.propose(g, cmd)
        });
        let mut claims = Vec::new();
        for r in join_all(writes).await {
            if let CmdResult::Written { claims: c, .. } = rejected(r?)? {
                claims.extend(c);
            }
        }
        self.offer_trigger(app_id, triggered).await;
        self.stream_events(
            app_id,
            app.event_stream.as_ref(),
            streamed.iter().map(|(e, ev)| (e.as_str(), ev)),
        );
        // BatchItem is a map, so two endpoints of one batch that share an
        // address have no request order between them: one of them keeps it.
        crate::addresses::hand_over(&self.host, app_id, claims).await?;
        Ok(EventsResponse {
            results: Some(results),
        })
    }
}

fn item_result(outcome: &std::result::Result<(), validate::ValidationError>) -> EventItemResponse {
    match outcome {
        Ok(()) => EventItemResponse {
            message: Some("Accepted".into()),
            status_code: Some(202),
        },
        Err(e) => EventItemResponse {
            message: Some(e.0.clone()),
            status_code: Some(400),
        },
    }
}

fn endpoint_result<T>(
    outcome: &std::result::Result<T, validate::ValidationError>,
) -> EndpointItemResponse {
    match outcome {
        Ok(_) => EndpointItemResponse {
            message: Some("Accepted".into()),
            status_code: Some(202),
        },
        Err(e) => EndpointItemResponse {
            message: Some(e.0.clone()),
            status_code: Some(400),
        },
    }
}

fn parse_page_size(s: Option<&str>) -> Result<usize> {
    match s {
        None | Some("") => Ok(PAGE_SIZE_DEFAULT),
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=PAGE_SIZE_MAX).contains(&n) => Ok(n),
            _ => Err(ServiceError::BadRequest(format!(
                "page-size must be a whole number from 1 to {PAGE_SIZE_MAX}, not {s}"
            ))),
        },
    }
}

//! What goes through the Raft log: commands, their results, and the openraft
//! type configuration shared by every group.

use std::collections::BTreeMap;
use std::io::Cursor;

use herald_model::message::Outcome;
use herald_model::wire::{
    ApplicationSettingsResource, EmailChannelRequest, EmailChannelResponse, EndpointRequest,
    EndpointResponse, Event,
};
use serde::{Deserialize, Serialize};

openraft::declare_raft_types!(
    /// Type configuration of every herald Raft group (meta and data shards).
    pub TypeConfig:
        D = Command,
        R = CmdResult,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type NodeId = u64;
pub type LogId = openraft::LogId<NodeId>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type Vote = openraft::Vote<NodeId>;
pub type StoredMembership = openraft::StoredMembership<NodeId, openraft::BasicNode>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, openraft::BasicNode>;
pub type RaftStorageError = openraft::StorageError<NodeId>;

/// An application (Pinpoint "project") as the meta group stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppRecord {
    pub id: String,
    pub name: String,
    pub arn: String,
    pub creation_date: String,
    pub tags: BTreeMap<String, String>,
    pub settings: ApplicationSettingsResource,
    /// The email channel, once configured.
    #[serde(default)]
    pub email_channel: Option<EmailChannelResponse>,
    /// herald's custom (webhook) channel for direct sends, once configured.
    #[serde(default)]
    pub custom_channel: Option<herald_model::channel::CustomChannelResponse>,
    /// APNs channels by type (`APNS`, `APNS_SANDBOX`, `APNS_VOIP`,
    /// `APNS_VOIP_SANDBOX`).
    #[serde(default)]
    pub apns_channels: BTreeMap<String, ApnsChannelRecord>,
    /// The GCM (FCM) channel, once configured.
    #[serde(default)]
    pub gcm_channel: Option<GcmChannelRecord>,
    /// The SMS channel, once configured.
    #[serde(default)]
    pub sms_channel: Option<herald_model::channel::SmsChannelResponse>,
    /// Where the app's events are published, once configured.
    #[serde(default)]
    pub event_stream: Option<herald_model::stream::EventStream>,
    /// Set while the app's data is being purged from the shards; a deleting
    /// app is invisible to the API.
    pub deleting: bool,
    /// Days raw events are kept (`None`: the node's default); rollups stay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_retention_days: Option<u32>,
}

/// A stored APNs channel: what the API shows, and what sending needs. The
/// credentials (`.p8` key, certificate and private key) are sealed by the
/// service (AEAD under a per-app key derived from the cluster secret)
/// before they enter the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApnsChannelRecord {
    pub response: herald_model::channel::ApnsChannelResponse,
    #[serde(flatten)]
    pub write: ApnsChannelWrite,
}

/// A stored GCM (FCM) channel; the service account JSON is sealed like
/// APNs credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcmChannelRecord {
    pub response: herald_model::channel::GcmChannelResponse,
    /// base64(nonce ‖ AEAD ciphertext) of the service account JSON.
    pub sealed_service_json: String,
}

/// An APNs channel update as the service decided it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApnsChannelWrite {
    pub enabled: Option<bool>,
    /// `TOKEN` or `CERTIFICATE`.
    pub method: String,
    /// The `apns-topic` (VoIP channels append `.voip`).
    pub bundle_id: String,
    pub team_id: Option<String>,
    pub token_key_id: Option<String>,
    pub has_token: bool,
    pub has_certificate: bool,
    /// base64(nonce ‖ AEAD ciphertext) of the credentials' JSON.
    pub sealed_credentials: String,
}

/// Limits the state machine enforces against stored state. They travel in the
/// command so that replaying the log decides exactly as the first apply did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyLimits {
    pub endpoint_bytes_max: usize,
    pub endpoint_attributes_max: usize,
    /// A session without activity for this long is closed.
    pub session_idle_timeout_ms: i64,
    /// Maintain the analytics rollups of the events (`crate::analytics`).
    pub rollups: bool,
}

/// One endpoint of an UpdateEndpoint / UpdateEndpointsBatch / PutEvents write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointUpsert {
    pub endpoint_id: String,
    pub request: EndpointRequest,
    /// The item's position in its request; orders address claims made by
    /// one request at one instant.
    #[serde(default)]
    pub seq: u32,
}

/// The events of one endpoint in a PutEvents request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventsItem {
    pub endpoint_id: String,
    /// The endpoint data to upsert; `None` when it was refused (its events
    /// are still stored).
    pub endpoint: Option<EndpointRequest>,
    /// (event id as the client named it, event).
    pub events: Vec<(String, Event)>,
}

/// An endpoint that now holds `(channel, address)`: the newest ACTIVE
/// endpoint with an address takes it over, and the endpoint that held it
/// before becomes INACTIVE (Pinpoint's rule for reused addresses).
///
/// `(at_ms, seq)` orders claims: `at_ms` is when the endpoint was written,
/// `seq` its item's position in the request. Between two claims of one
/// address the later one holds it (on a tie, the one applied last), so a
/// claim handed over late, after a restart, cannot take the address from a
/// newer endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressClaim {
    pub endpoint_id: String,
    pub channel: String,
    pub address: String,
    pub at_ms: i64,
    /// Orders claims of one request with the same `at_ms` (item position).
    #[serde(default)]
    pub seq: u32,
}

/// The outcome of one campaign message, recorded with
/// `Command::RecordCampaignOutcomes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignOutcome {
    pub message_id: String,
    pub endpoint_id: String,
    /// Index into the command's `activities`.
    pub treatment: u32,
    /// "EMAIL" or the custom channel's type.
    pub channel: String,
    pub outcome: Outcome,
    /// The receiving server refused the address for good: the endpoint
    /// becomes INACTIVE.
    pub hard_bounce: bool,
}

/// A message a send is about to hand to a transport: its ledger intent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendIntent {
    /// Stable id derived from the send's cause (`model::message::message_id`).
    pub message_id: String,
    /// The endpoint id, or the address of an address-only recipient.
    pub recipient: String,
    pub channel: String,
    pub address: String,
}

/// A send-ledger row: the intent, and its outcome once known. A row without
/// an outcome is a send that may or may not have reached the transport; it
/// is never sent again under the same message id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerRow {
    pub recipient: String,
    pub channel: String,
    pub address: String,
    pub intent_ms: i64,
    pub outcome: Option<Outcome>,
    #[serde(default)]
    pub outcome_ms: Option<i64>,
    /// The campaign message this is (set with a campaign outcome), so that
    /// opens and clicks reported later count for the campaign.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<CampaignRef>,
}

/// A campaign message's campaign and treatment's activity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignRef {
    pub campaign_id: String,
    pub activity_id: String,
}

/// A change to an endpoint caused by a delivery outcome or a recipient's
/// action: a hard bounce makes it INACTIVE, an unsubscribe opts it out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointMark {
    pub endpoint_id: String,
    pub inactive: bool,
    pub opt_out_all: bool,
}

/// A message template (meta group): everything but the versions' bodies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateHead {
    pub name: String,
    /// `EMAIL`, `SMS`, `PUSH`, `VOICE` or `INAPP`.
    pub kind: String,
    pub arn: String,
    pub creation_date: String,
    pub tags: BTreeMap<String, String>,
    /// The version used when a request names none.
    pub active: u32,
    /// The highest version ever created (versions are never renumbered).
    pub latest: u32,
}

/// One version of a template: the create/update request body as given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateVersionRecord {
    pub version: u32,
    /// The `*TemplateRequest` JSON object (tags removed).
    pub body: serde_json::Value,
    pub creation_date: String,
    pub last_modified_date: String,
}

/// How `PutTemplate` writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TemplateWrite {
    /// Create the template with version 1; refused if it exists.
    Create,
    /// Overwrite a version (the latest when `None`); refused if missing.
    Overwrite(Option<u32>),
    /// Add version `latest + 1`; refused if the template is missing.
    NewVersion,
}

/// Kinds of per-app versioned definitions kept by the meta group.
pub mod def_kind {
    pub const SEGMENT: u8 = 1;
    pub const CAMPAIGN: u8 = 2;
}

/// A segment or campaign (meta group): everything but its versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefHead {
    pub id: String,
    pub kind: u8,
    pub arn: String,
    pub creation_date: String,
    pub last_modified_date: String,
    pub tags: BTreeMap<String, String>,
    /// The newest version (versions start at 1 and are never renumbered).
    pub latest: u32,
    /// A campaign's execution state; `None` for segments.
    #[serde(default)]
    pub progress: Option<CampaignProgress>,
}

/// One version of a segment or campaign: its write request as given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DefVersion {
    pub version: u32,
    /// The `WriteSegmentRequest` / `WriteCampaignRequest` JSON (tags removed).
    pub body: serde_json::Value,
    pub last_modified_date: String,
}

/// How `PutDefinition` writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DefWrite {
    /// Version 1 of a new definition; refused if the id exists.
    Create {
        arn: String,
        tags: BTreeMap<String, String>,
    },
    /// Version `latest + 1`; refused if the definition is missing.
    NewVersion,
}

/// Where a campaign's schedule stands (kept in its head).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignProgress {
    /// Runs started so far (the next run's number).
    pub runs_started: u32,
    /// The run in progress, if any.
    pub current: Option<RunState>,
    /// No run will follow (ONCE done, past EndTime, or deleted).
    pub finished: bool,
}

/// A campaign run in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunState {
    pub run: u32,
    /// The campaign version the run executes.
    pub version: u32,
    pub scheduled_ms: i64,
    pub started_ms: i64,
    /// Local-time runs: endpoints whose local send time is at or before
    /// this have been handled.
    pub watermark_ms: i64,
    /// Data groups (in id order) whose members this wave has handled.
    #[serde(default)]
    pub groups_done: u32,
    /// Positions past `groups_done` (in the same order) handled too: shard
    /// runs of one wave run side by side and finish in any order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups_also_done: Vec<u32>,
}

/// One activity of a campaign: a run of one treatment, with its counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityRecord {
    pub run: u32,
    pub treatment: u32,
    pub scheduled_ms: i64,
    pub start_ms: i64,
    pub end_ms: Option<i64>,
    /// `EXECUTING`, `COMPLETED`, `CANCELLED`.
    pub state: String,
    /// `SUCCESS`, `PARTIAL_SUCCESS` or `FAILED` once completed.
    pub result: Option<String>,
    /// Endpoints in the segment assigned to this treatment (holdouts count
    /// on treatment 0).
    pub total: u64,
    /// Endpoints whose message was delivered to its transport.
    pub successful: u64,
    /// Endpoints not sent to, per reason (`holdout`, `daily_limit`, ...).
    pub skipped: BTreeMap<String, u64>,
    pub timezones_total: u32,
    pub timezones_completed: u32,
}

/// Per-endpoint caps a campaign intent is checked against, charged when the
/// intent is recorded (0: no cap).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargeLimits {
    /// Messages in any 24 hours.
    pub daily: u32,
    /// Messages over the campaign's life.
    pub total: u32,
    /// Messages per session of the endpoint.
    pub session: u32,
}

/// What a campaign has sent one endpoint, kept next to the endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargeRow {
    pub total: u32,
    /// Intent times of the last sends (at most the daily cap kept).
    pub recent_ms: Vec<i64>,
    /// The session the session count belongs to (its start).
    pub session_start_ms: Option<i64>,
    pub session_count: u32,
}

/// The ledger's answer to one campaign intent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum IntentVerdict {
    /// Recorded now (and charged): send it.
    New,
    /// The message id was recorded before: never sent again.
    Exists(LedgerRow),
    /// Refused by a cap (`daily_limit`, `total_limit`, `session_limit`).
    Limited(String),
}

/// Job kinds of [`JobRecord::kind`].
pub mod job_kind {
    pub const IMPORT: &str = "IMPORT";
    pub const EXPORT: &str = "EXPORT";
}

/// An import or export job (meta group): its request and where it stands.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: String,
    /// [`job_kind::IMPORT`] or [`job_kind::EXPORT`].
    pub kind: String,
    /// The node that runs the job.
    pub node_id: u64,
    /// The create request as given (`ImportJobRequest` / `ExportJobRequest`).
    pub request: serde_json::Value,
    /// `CREATED`, `INITIALIZING`, `PROCESSING`, `COMPLETING`, `COMPLETED`
    /// or `FAILED`.
    pub status: String,
    pub total_pieces: u32,
    pub completed_pieces: u32,
    pub failed_pieces: u32,
    pub total_processed: u64,
    pub total_failures: u64,
    /// The first failures, `line N: message` for rows of an import.
    pub failures: Vec<String>,
    pub creation_ms: i64,
    pub creation_date: String,
    pub completion_date: Option<String>,
    /// The segment the import defines or the export reads.
    pub segment_id: Option<String>,
    /// The segment version written (import) or read (export).
    pub segment_version: Option<u32>,
}

/// A state machine command. Meta-group commands and data-shard commands share
/// one type; a group rejects commands that are not its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    // meta group
    CreateApp(Box<AppRecord>),
    UpdateAppSettings {
        app_id: String,
        settings: ApplicationSettingsResource,
    },
    MarkAppDeleting {
        app_id: String,
    },
    RemoveApp {
        app_id: String,
    },
    TagApp {
        app_id: String,
        tags: BTreeMap<String, String>,
    },
    UntagApp {
        app_id: String,
        keys: Vec<String>,
    },
    /// Creates or replaces the app's email channel (see `model::channel`).
    UpdateEmailChannel {
        app_id: String,
        request: EmailChannelRequest,
        now_iso: String,
    },
    DeleteEmailChannel {
        app_id: String,
    },
    /// Creates or replaces the app's APNs channel `platform`.
    UpdateApnsChannel {
        app_id: String,
        platform: String,
        write: ApnsChannelWrite,
        now_iso: String,
    },
    DeleteApnsChannel {
        app_id: String,
        platform: String,
    },
    /// Creates or replaces the app's GCM (FCM) channel.
    UpdateGcmChannel {
        app_id: String,
        enabled: Option<bool>,
        sealed_service_json: String,
        now_iso: String,
    },
    DeleteGcmChannel {
        app_id: String,
    },
    /// Sets (or, with `None`, removes) the app's event stream.
    SetEventStream {
        app_id: String,
        stream: Option<herald_model::stream::EventStream>,
    },
    /// Creates or replaces the app's SMS channel.
    UpdateSmsChannel {
        app_id: String,
        request: herald_model::channel::SmsChannelRequest,
        messages_per_second: u32,
        now_iso: String,
    },
    DeleteSmsChannel {
        app_id: String,
    },
    UpdateCustomChannel {
        app_id: String,
        request: herald_model::channel::CustomChannelRequest,
        now_iso: String,
    },
    DeleteCustomChannel {
        app_id: String,
    },
    PutTemplate {
        kind: String,
        name: String,
        write: TemplateWrite,
        body: serde_json::Value,
        /// For `Create`: the ARN and tags of the new template.
        arn: String,
        tags: BTreeMap<String, String>,
        now_iso: String,
    },
    /// Makes `version` the active one; refused if it does not exist.
    SetTemplateActiveVersion {
        kind: String,
        name: String,
        version: u32,
    },
    /// Deletes one version, or the whole template when `None`.
    DeleteTemplate {
        kind: String,
        name: String,
        version: Option<u32>,
    },
    // data shards
    UpsertEndpoints {
        app_id: String,
        now_iso: String,
        limits: ApplyLimits,
        items: Vec<EndpointUpsert>,
    },
    DeleteEndpoint {
        app_id: String,
        endpoint_id: String,
    },
    DeleteUserEndpoints {
        app_id: String,
        user_id: String,
    },
    PutEvents {
        app_id: String,
        now_iso: String,
        limits: ApplyLimits,
        items: Vec<EventsItem>,
    },
    RemoveAttributes {
        app_id: String,
        attribute_type: String,
        names: Vec<String>,
    },
    PurgeApp {
        app_id: String,
    },
    /// Records each claim's endpoint as the holder of its address, in order
    /// (in the group that owns the address); answers the displaced holders.
    ClaimAddresses {
        app_id: String,
        claims: Vec<AddressClaim>,
    },
    /// Sets each named endpoint INACTIVE if it still has that address.
    DeactivateDisplaced {
        app_id: String,
        displaced: Vec<AddressClaim>,
    },
    /// Forgets pending claims that have been handed over: (app id, claim),
    /// each only if the endpoint's pending claim is still exactly that one.
    ClearPendingClaims {
        claims: Vec<(String, AddressClaim)>,
    },
    /// Records send intents in the ledger (in the group of the request key);
    /// answers, per intent, the row that already existed (`None`: new).
    RecordSendIntents {
        app_id: String,
        at_ms: i64,
        /// A row older than this is a send of the past, not a retry: it
        /// is replaced by the new intent.
        #[serde(default)]
        dedup_window_ms: i64,
        intents: Vec<SendIntent>,
    },
    /// Records outcomes of intents recorded before: (message id, outcome).
    /// An outcome never replaces an earlier outcome.
    RecordSendOutcomes {
        app_id: String,
        at_ms: i64,
        outcomes: Vec<(String, Outcome)>,
    },
    /// Puts a number on (or takes it off) the app's SMS opt-out list.
    SetSmsOptOut {
        app_id: String,
        number: String,
        opted_out: bool,
        at_ms: i64,
    },
    /// Stores a one-time password (replacing one for the same destination
    /// and reference id).
    PutOtp {
        app_id: String,
        destination: String,
        reference_id: String,
        record: herald_model::otp::OtpRecord,
    },
    /// Checks a guess against a stored one-time password (see
    /// `herald_model::otp::verify`); answers `CmdResult::OtpVerdict`.
    VerifyOtp {
        app_id: String,
        destination: String,
        reference_id: String,
        guess_hash: String,
        now_ms: i64,
    },
    /// Applies delivery marks to endpoints of this group (missing ones are
    /// skipped).
    MarkEndpoints {
        app_id: String,
        marks: Vec<EndpointMark>,
    },
    /// Takes a person (`model::analytics::person_key`) out of this group's
    /// future analytics answers (see `analytics::forget`).
    ForgetPerson {
        app_id: String,
        person: String,
    },
    /// Sets (or, with `None`, resets to the node default) how long the app's
    /// raw events are kept.
    SetEventRetention {
        app_id: String,
        days: Option<u32>,
    },
    /// Removes up to `max_rows` of the app's oldest events stored before
    /// `before_ms` in this group (with their index rows), and the funnel
    /// occurrences and closed sessions of that period. Rollups stay.
    ExpireEvents {
        app_id: String,
        before_ms: i64,
        max_rows: u32,
    },
    /// Closes sessions idle since before `now_ms - idle_timeout_ms`.
    CloseIdleSessions {
        now_ms: i64,
        idle_timeout_ms: i64,
    },
    /// Forgets ledger rows past retention: (intent time, app, message id),
    /// as found in the expiry index. A row whose intent time differs (the
    /// message id was sent again later) is kept; its index entry goes.
    ForgetSends {
        rows: Vec<(i64, String, String)>,
    },
    /// Writes a segment or campaign version (meta group).
    PutDefinition {
        app_id: String,
        kind: u8,
        id: String,
        write: DefWrite,
        body: serde_json::Value,
        now_iso: String,
    },
    /// Deletes a segment or campaign with its versions and activities.
    DeleteDefinition {
        app_id: String,
        kind: u8,
        id: String,
    },
    /// Replaces a campaign's progress, only if it is still `expect` (so two
    /// schedulers cannot both start a run).
    SetCampaignProgress {
        app_id: String,
        campaign_id: String,
        expect: Option<CampaignProgress>,
        progress: CampaignProgress,
    },
    /// Writes activities of a campaign (meta group).
    PutActivities {
        app_id: String,
        campaign_id: String,
        activities: Vec<ActivityRecord>,
    },
    /// Records campaign send intents in the endpoints' own group, each
    /// checked against and charged to the endpoint's caps for the campaign;
    /// `SendIntent::recipient` is the endpoint id.
    RecordCampaignIntents {
        app_id: String,
        campaign_id: String,
        at_ms: i64,
        limits: ChargeLimits,
        intents: Vec<SendIntent>,
    },
    /// Records the outcomes of campaign messages sent to endpoints of this
    /// group, in one step: each ledger row's outcome (never replacing an
    /// earlier one), the message's delivery events (`_email.*` /
    /// `_custom.*`, stamped with the campaign, activity and treatment) and,
    /// on a hard bounce, the endpoint's INACTIVE mark. The events are built
    /// here rather than carried in the log entry.
    RecordCampaignOutcomes {
        app_id: String,
        campaign_id: String,
        /// Activity id per treatment of the run.
        activities: Vec<String>,
        at_ms: i64,
        outcomes: Vec<CampaignOutcome>,
    },
    /// Members of a campaign run's holdout group, of this group's shard:
    /// counted for the campaign's results and made their last touch (see
    /// `analytics::Rollups::held_out`). Endpoints that are gone are skipped.
    RecordHoldout {
        app_id: String,
        campaign_id: String,
        /// The run's holdout activity (`campaign::holdout_activity_id`).
        activity_id: String,
        at_ms: i64,
        endpoint_ids: Vec<String>,
    },
    /// Creates or replaces a job (meta group); ignored when the app is gone.
    PutJob {
        app_id: String,
        job: JobRecord,
    },
    /// Records endpoints (of this group) as members of an imported segment.
    AddSegmentMembers {
        app_id: String,
        segment_id: String,
        endpoint_ids: Vec<String>,
    },
    /// Forgets every imported member of a segment in this group.
    RemoveSegmentMembers {
        app_id: String,
        segment_id: String,
    },
    // any group
    /// Records that `node` was removed from this group for good: member
    /// changes refuse to add it again (a removal can race the node's own
    /// join; node ids are not reused).
    RetireNode {
        node: NodeId,
    },
}

impl Command {
    /// Accepted by the meta group and by every data shard alike.
    pub fn any_group(&self) -> bool {
        matches!(self, Command::RetireNode { .. })
    }

    pub fn is_meta(&self) -> bool {
        matches!(
            self,
            Command::CreateApp(_)
                | Command::UpdateAppSettings { .. }
                | Command::MarkAppDeleting { .. }
                | Command::RemoveApp { .. }
                | Command::TagApp { .. }
                | Command::UntagApp { .. }
                | Command::UpdateEmailChannel { .. }
                | Command::DeleteEmailChannel { .. }
                | Command::UpdateApnsChannel { .. }
                | Command::DeleteApnsChannel { .. }
                | Command::UpdateGcmChannel { .. }
                | Command::DeleteGcmChannel { .. }
                | Command::UpdateSmsChannel { .. }
                | Command::SetEventStream { .. }
                | Command::SetEventRetention { .. }
                | Command::DeleteSmsChannel { .. }
                | Command::UpdateCustomChannel { .. }
                | Command::DeleteCustomChannel { .. }
                | Command::PutTemplate { .. }
                | Command::SetTemplateActiveVersion { .. }
                | Command::DeleteTemplate { .. }
                | Command::PutDefinition { .. }
                | Command::DeleteDefinition { .. }
                | Command::SetCampaignProgress { .. }
                | Command::PutActivities { .. }
                | Command::PutJob { .. }
        )
    }
}

/// The result of applying one command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub enum CmdResult {
    #[default]
    Done,
    App(Option<Box<AppRecord>>),
    /// Endpoints written or deleted by the command, in command order.
    Endpoints(Vec<EndpointResponse>),
    /// An endpoint write or event ingest: the endpoints written, how many
    /// events were stored, and the addresses the written endpoints now claim.
    Written {
        endpoints: Vec<EndpointResponse>,
        events: u64,
        claims: Vec<AddressClaim>,
    },
    /// The email channel written, or the one deleted (`None`: the app or
    /// the channel does not exist).
    EmailChannel(Option<Box<EmailChannelResponse>>),
    /// The APNs channel written, or the one deleted (`None`: the app or the
    /// channel does not exist).
    ApnsChannel(Option<Box<herald_model::channel::ApnsChannelResponse>>),
    /// The GCM channel written, or the one deleted.
    GcmChannel(Option<Box<herald_model::channel::GcmChannelResponse>>),
    /// The event stream set, or the one removed.
    EventStream(Option<Box<herald_model::stream::EventStream>>),
    /// Whether a one-time password was valid.
    OtpVerdict(bool),
    /// The SMS channel written, or the one deleted.
    SmsChannel(Option<Box<herald_model::channel::SmsChannelResponse>>),
    /// Endpoints displaced from their addresses by `ClaimAddresses`.
    Displaced(Vec<AddressClaim>),
    /// The command was refused as a whole; nothing changed.
    Rejected(String),
    /// A template after the command (`None`: it does not exist), with the
    /// version written or deleted.
    Template(Option<(TemplateHead, u32)>),
    /// Per intent of `RecordSendIntents`, the row that existed before.
    Ledger(Vec<Option<LedgerRow>>),
    /// How many rows a bulk command touched.
    Count(u64),
    /// A segment or campaign after the command (`None`: it does not exist),
    /// with the version written (or the latest, for a delete).
    Def(Option<(DefHead, DefVersion)>),
    /// Per intent of `RecordCampaignIntents`.
    CampaignLedger(Vec<IntentVerdict>),
}

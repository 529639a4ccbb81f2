//! Direct sends (`SendMessages`, `SendUsersMessages`) through the send-once
//! ledger.
//!
//! Order of a send, per request:
//! 1. validate the request whole and decide each recipient's fate that
//!    needs no transport (opted out, inactive, duplicate, no channel);
//! 2. render every message (a recipient whose message does not render fails
//!    alone, before anything is committed);
//! 3. take room in the channel queue (a full queue refuses the request);
//! 4. commit the intents to the ledger in the request key's shard; a message
//!    id that already has a row is *not* sent again — its recorded outcome is
//!    reported, or UNKNOWN_FAILURE while it has none;
//! 5. hand the new messages to the channel actor;
//! 6. commit the outcomes, then the delivery events and endpoint marks on
//!    the recipients' shards, then answer.
//!
//! A crash between 4 and 6 leaves intents without outcomes: retried, the
//! request reports them as UNKNOWN_FAILURE instead of sending twice.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures::future::join_all;
use herald_channels::smtp::OutgoingEmail;
use herald_channels::transport::OutgoingWebhook;
use herald_model::message::{
    self, delivery_event_types, DeliveryStatus, DirectMessageConfiguration, EndpointMessageResult,
    EndpointSendConfiguration, MessageRequest, MessageResponse, Outcome, RecipientKey,
    SendUsersMessageRequest, SendUsersMessageResponse, Substitutions, TemplateConfiguration,
};
use herald_model::template::{EmailTemplateRequest, TemplateType};
use herald_model::tracking::Tracked;
use herald_model::wire::{EndpointResponse, Event};
use herald_model::{render, time, validate};
use herald_storage::keys::send_shard_key;
use herald_storage::{
    AppRecord, CmdResult, Command, EndpointMark, EventsItem, GroupId, KvEngine, LedgerRow,
    SendIntent,
};

use crate::delivery::{Delivered, Job};
use crate::service::{Herald, Result, ServiceError};
use herald_model::tracking::{self, TrackKind};

/// The email of one request before personalisation: compiled once,
/// rendered per recipient.
pub(crate) struct EmailSpec {
    pub from: String,
    pub reply_to: Vec<String>,
    pub headers: Vec<(String, String)>,
    pub compiled: render::Compiled,
    pub has_text: bool,
    pub has_html: bool,
    /// The template's `DefaultSubstitutions`.
    pub defaults: Option<serde_json::Value>,
    /// `DefaultMessage.Substitutions` then `EmailMessage.Substitutions`.
    pub substitutions: Substitutions,
    pub messages_per_second: Option<f64>,
}

/// The request's email, or why it has none for EMAIL recipients.
pub(crate) type EmailPlan = std::result::Result<EmailSpec, String>;

/// The custom channel's message of one request: POSTed as JSON to the
/// app's custom channel `DeliveryUri` (see `webhook_body`).
pub(crate) struct CustomSpec {
    pub url: String,
    pub secret: String,
    /// `Body` (from `DefaultMessage.Body`), rendered per recipient.
    pub compiled: render::Compiled,
    pub substitutions: Substitutions,
    pub context: BTreeMap<String, String>,
}

pub(crate) type CustomPlan = std::result::Result<CustomSpec, String>;

/// An APNs channel's message of one request: `APNSMessage` over
/// `DefaultPushNotificationMessage`, its title and body rendered per
/// recipient.
pub(crate) struct ApnsSpec {
    pub identity: Arc<herald_channels::apns::ApnsIdentity>,
    /// `apns-topic`.
    pub topic: String,
    pub message: herald_model::push::ApnsMessage,
    pub compiled: Arc<render::Compiled>,
    pub substitutions: Substitutions,
    /// The push template's `DefaultSubstitutions`.
    pub defaults: Option<serde_json::Value>,
    pub voip: bool,
}

pub(crate) type ApnsPlan = std::result::Result<ApnsSpec, String>;

/// The GCM (FCM) channel's message of one request: `GCMMessage` over
/// `DefaultPushNotificationMessage`, title and body rendered per recipient.
pub(crate) struct GcmSpec {
    pub identity: Arc<herald_channels::fcm::FcmIdentity>,
    pub message: herald_model::push::GcmMessage,
    pub compiled: Arc<render::Compiled>,
    pub substitutions: Substitutions,
    /// The push template's `DefaultSubstitutions`.
    pub defaults: Option<serde_json::Value>,
}

/// A push template named by a send or campaign: its body and parsed
/// `DefaultSubstitutions`.
pub(crate) type PushTemplate = (
    herald_model::template::PushNotificationTemplateRequest,
    Option<serde_json::Value>,
);

pub(crate) type GcmPlan = std::result::Result<GcmSpec, String>;

/// The SMS of one request: `SMSMessage.Body` (else `DefaultMessage.Body`,
/// else the SMS template's), rendered per recipient, from `source`.
pub(crate) struct SmsSpec {
    /// An origination number, short code or sender id.
    pub source: String,
    pub compiled: Arc<render::Compiled>,
    pub substitutions: Substitutions,
    /// The SMS template's `DefaultSubstitutions`.
    pub defaults: Option<serde_json::Value>,
}

pub(crate) type SmsPlan = std::result::Result<SmsSpec, String>;

/// An SMS template named by a send or campaign: its body and parsed
/// `DefaultSubstitutions`.
pub(crate) type SmsTemplate = (Option<String>, Option<serde_json::Value>);

/// What a request sends on each channel.
pub(crate) struct Plans {
    pub email: EmailPlan,
    pub custom: CustomPlan,
    /// Per APNs channel type.
    pub apns: BTreeMap<&'static str, ApnsPlan>,
    pub gcm: GcmPlan,
    pub sms: SmsPlan,
    /// Recipients' numbers (E.164) on the app's SMS opt-out list.
    pub sms_opted_out: std::collections::BTreeSet<String>,
}

impl Plans {
    /// Whether the request can send to recipients of `channel`.
    fn available(&self, channel: &str) -> bool {
        match channel {
            "EMAIL" => self.email.is_ok(),
            "CUSTOM" => self.custom.is_ok(),
            "GCM" => self.gcm.is_ok(),
            "SMS" => self.sms.is_ok(),
            c => self.apns.get(c).is_some_and(|p| p.is_ok()),
        }
    }

    /// Why the request cannot send to recipients of `channel`.
    fn refusal(&self, channel: &str) -> Option<String> {
        match channel {
            "EMAIL" => self.email.as_ref().err().cloned(),
            "CUSTOM" => self.custom.as_ref().err().cloned(),
            "GCM" => self.gcm.as_ref().err().cloned(),
            "SMS" => self.sms.as_ref().err().cloned(),
            c => match self.apns.get(c) {
                Some(p) => p.as_ref().err().cloned(),
                None => Some(format!("herald does not send on the {c} channel yet")),
            },
        }
    }
}

/// A push's Title and Body for one recipient: the recipient's overrides,
/// else the message's own (when it has one) rendered in `ctx`.
fn push_text(
    compiled: &render::Compiled,
    ctx: &serde_json::Value,
    cfg: &EndpointSendConfiguration,
    has_title: bool,
    has_body: bool,
) -> std::result::Result<(Option<String>, Option<String>), String> {
    let part = |name: &str, over: &Option<String>, has: bool| match over {
        Some(o) => render_once(&format!("{name}Override"), o, ctx).map(Some),
        None if has => compiled
            .render(name, ctx)
            .map(Some)
            .map_err(|e| format!("rendering {name}: {e}")),
        None => Ok(None),
    };
    Ok((
        part("Title", &cfg.title_override, has_title)?,
        part("Body", &cfg.body_override, has_body)?,
    ))
}

/// `value` (a message of the request, kept as raw JSON) as `T`; a message
/// that does not parse refuses the whole request, naming it.
pub(crate) fn parsed<T: serde::de::DeserializeOwned>(
    value: &Option<serde_json::Value>,
    name: &str,
) -> Result<Option<T>> {
    value
        .clone()
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| ServiceError::BadRequest(format!("{name}: {e}")))
}

/// An FCM message to one registration token, rendered for it.
pub(crate) fn fcm_job(
    app_id: &str,
    message_id: &str,
    address: &str,
    endpoint: Option<&EndpointResponse>,
    spec: &GcmSpec,
    cfg: &EndpointSendConfiguration,
) -> std::result::Result<Job, String> {
    let subs = substitutions_of(cfg.substitutions.as_ref(), &spec.substitutions);
    let ctx = render::context(endpoint, address, "GCM", spec.defaults.as_ref(), &subs);
    let mut m = spec.message.clone();
    (m.title, m.body) = push_text(
        &spec.compiled,
        &ctx,
        cfg,
        m.title.is_some(),
        m.body.is_some(),
    )?;
    if let Some(raw) = &cfg.raw_content {
        m.raw_content = Some(raw.clone());
    }
    let body = herald_model::push::fcm_body(&m, address).map_err(|e| e.0)?;
    Ok(Job::Fcm {
        identity: spec.identity.clone(),
        msg: herald_channels::fcm::OutgoingFcm {
            message_id: message_id.to_owned(),
            app_id: app_id.to_owned(),
            device_token: address.to_owned(),
            body,
        },
    })
}

/// A push to one device, rendered for it.
pub(crate) fn apns_job(
    app_id: &str,
    message_id: &str,
    address: &str,
    endpoint: Option<&EndpointResponse>,
    spec: &ApnsSpec,
    cfg: &EndpointSendConfiguration,
    now_unix_secs: i64,
) -> std::result::Result<Job, String> {
    let subs = substitutions_of(cfg.substitutions.as_ref(), &spec.substitutions);
    let channel = spec.identity.platform.as_str();
    let ctx = render::context(endpoint, address, channel, spec.defaults.as_ref(), &subs);
    let mut m = spec.message.clone();
    (m.title, m.body) = push_text(
        &spec.compiled,
        &ctx,
        cfg,
        m.title.is_some(),
        m.body.is_some(),
    )?;
    if let Some(raw) = &cfg.raw_content {
        m.raw_content = Some(raw.clone());
    }
    let push = herald_model::push::apns_push(&m, spec.voip, now_unix_secs).map_err(|e| e.0)?;
    Ok(Job::Apns {
        identity: spec.identity.clone(),
        push: herald_channels::apns::OutgoingPush {
            message_id: message_id.to_owned(),
            app_id: app_id.to_owned(),
            device_token: address.to_owned(),
            topic: spec.topic.clone(),
            push,
        },
    })
}

/// An SMS to one phone number, rendered for it.
pub(crate) fn sms_job(
    app_id: &str,
    message_id: &str,
    address: &str,
    endpoint: Option<&EndpointResponse>,
    spec: &SmsSpec,
    cfg: &EndpointSendConfiguration,
) -> std::result::Result<Job, String> {
    let destination = herald_model::sms::e164(address).map_err(|e| e.0)?;
    let subs = substitutions_of(cfg.substitutions.as_ref(), &spec.substitutions);
    let ctx = render::context(endpoint, address, "SMS", spec.defaults.as_ref(), &subs);
    let body = match &cfg.body_override {
        Some(o) => render_once("BodyOverride", o, &ctx)?,
        None => spec
            .compiled
            .render("Body", &ctx)
            .map_err(|e| format!("rendering Body: {e}"))?,
    };
    if body.is_empty() {
        return Err("the SMS body is empty".into());
    }
    let parts = herald_model::sms::encode(&body).map_err(|e| e.0)?;
    Ok(Job::Sms {
        sms: herald_channels::smpp::OutgoingSms {
            message_id: message_id.to_owned(),
            app_id: app_id.to_owned(),
            source: spec.source.clone(),
            destination,
            parts,
            reference: (herald_model::hash::xxh3(message_id.as_bytes()) & 0xFF) as u8,
            receipt: true,
        },
        endpoint_id: endpoint.and_then(|e| e.id.clone()),
    })
}

/// One recipient the request will send to, once admitted.
struct Planned {
    /// Index into `Recipients::slots`.
    slot: usize,
    message_id: String,
    job: Job,
}

/// Where a recipient's result goes in the response.
enum Slot {
    Address(String),
    Endpoint {
        /// The user it was reached through (`SendUsersMessages`).
        user: Option<String>,
        endpoint_id: String,
        address: Option<String>,
    },
}

struct Recipients {
    slots: Vec<Slot>,
    /// The outcome of each slot, filled as it is known.
    outcomes: Vec<Option<(Outcome, Option<String>)>>,
    /// The endpoint behind an endpoint slot.
    endpoints: Vec<Option<EndpointResponse>>,
    planned: Vec<Planned>,
    seen: BTreeSet<String>,
}

impl Recipients {
    fn new() -> Self {
        Self {
            slots: Vec::new(),
            outcomes: Vec::new(),
            endpoints: Vec::new(),
            planned: Vec::new(),
            seen: BTreeSet::new(),
        }
    }

    fn push(&mut self, slot: Slot, endpoint: Option<EndpointResponse>) -> usize {
        self.slots.push(slot);
        self.outcomes.push(None);
        self.endpoints.push(endpoint);
        self.slots.len() - 1
    }

    fn settle(&mut self, slot: usize, outcome: Outcome, message_id: Option<String>) {
        self.outcomes[slot] = Some((outcome, message_id));
    }
}

/// The client's TraceId inside a request key (see [`RequestKeys`]).
fn trace_of(key: &str) -> Option<&str> {
    key.strip_prefix("t:")
}

/// The documented JSON body of a custom-channel POST (README, "Custom
/// channel"): one recipient per request.
fn webhook_job(
    app_id: &str,
    key: &str,
    message_id: &str,
    address: &str,
    endpoint: Option<&EndpointResponse>,
    spec: &CustomSpec,
    cfg: &EndpointSendConfiguration,
) -> std::result::Result<OutgoingWebhook, String> {
    let subs = substitutions_of(cfg.substitutions.as_ref(), &spec.substitutions);
    let ctx = render::context(endpoint, address, "CUSTOM", None, &subs);
    let body = match &cfg.body_override {
        Some(b) => render_once("BodyOverride", b, &ctx)?,
        None => spec
            .compiled
            .render("Body", &ctx)
            .map_err(|e| format!("rendering Body: {e}"))?,
    };
    let title = match &cfg.title_override {
        Some(t) => Some(render_once("TitleOverride", t, &ctx)?),
        None => None,
    };
    let mut context = spec.context.clone();
    context.extend(cfg.context.clone().unwrap_or_default());
    let json = serde_json::json!({
        "ApplicationId": app_id,
        "MessageId": message_id,
        "TraceId": trace_of(key),
        "ChannelType": "CUSTOM",
        "Address": address,
        "EndpointId": endpoint.and_then(|e| e.id.clone()),
        "Endpoint": endpoint,
        "Message": { "Body": body, "Title": title, "RawContent": cfg.raw_content },
        "Context": context,
    });
    Ok(OutgoingWebhook {
        message_id: message_id.to_owned(),
        app_id: app_id.to_owned(),
        url: spec.url.clone(),
        body: serde_json::to_vec(&json).map_err(|e| e.to_string())?,
        secret: spec.secret.clone(),
    })
}

/// Renders an override given for one recipient (compiled for it alone).
fn render_once(
    name: &str,
    source: &str,
    ctx: &serde_json::Value,
) -> std::result::Result<String, String> {
    render::Compiled::compile(&[(name, source, render::Escape::Plain)])
        .map_err(|e| e.0)?
        .render(name, ctx)
        .map_err(|e| format!("{name}: {e}"))
}

fn substitutions_of(cfg_subs: Option<&Substitutions>, base: &Substitutions) -> Substitutions {
    message::merged_substitutions(&[Some(base), cfg_subs])
}

/// Identifies one request across client retries: its `TraceId`, else the
/// SDK's invocation id (the same on every retry of one call), else the
/// request id (no retry recognised).
#[derive(Debug, Clone, Default)]
pub struct RequestKeys {
    pub request_id: String,
    pub invocation_id: Option<String>,
}

impl RequestKeys {
    fn key(&self, trace_id: Option<&String>) -> String {
        match (trace_id, &self.invocation_id) {
            (Some(t), _) => format!("t:{t}"),
            (None, Some(i)) => format!("i:{i}"),
            (None, None) => format!("r:{}", self.request_id),
        }
    }
}

impl<E: KvEngine> Herald<E> {
    /// `SendMessages`. Runs detached from the caller: a client that hangs
    /// up does not stop the sends of its request halfway, and their
    /// outcomes are still recorded.
    pub async fn send_messages(
        self: &Arc<Self>,
        app_id: &str,
        req: MessageRequest,
        keys: RequestKeys,
    ) -> Result<MessageResponse> {
        let this = self.clone();
        let app_id = app_id.to_owned();
        tokio::spawn(async move { this.send_messages_now(&app_id, req, keys).await })
            .await
            .map_err(|e| ServiceError::Internal(format!("the send task failed: {e}")))?
    }

    /// `SendUsersMessages`, detached as [`Herald::send_messages`].
    pub async fn send_users_messages(
        self: &Arc<Self>,
        app_id: &str,
        req: SendUsersMessageRequest,
        keys: RequestKeys,
    ) -> Result<SendUsersMessageResponse> {
        let this = self.clone();
        let app_id = app_id.to_owned();
        tokio::spawn(async move { this.send_users_messages_now(&app_id, req, keys).await })
            .await
            .map_err(|e| ServiceError::Internal(format!("the send task failed: {e}")))?
    }

    async fn send_messages_now(
        &self,
        app_id: &str,
        req: MessageRequest,
        keys: RequestKeys,
    ) -> Result<MessageResponse> {
        let request_id = keys.request_id.as_str();
        let app = self.app(app_id).await?;
        validate::message_request(&req, &self.cfg.limits)?;
        let dm = req.message_configuration.clone().unwrap_or_default();
        let spec = self
            .plans(
                &app,
                &dm,
                req.template_configuration.as_ref(),
                req.context.as_ref(),
            )
            .await?;
        let key = keys.key(req.trace_id.as_ref());
        let endpoint_ids: Vec<String> = req
            .endpoints
            .iter()
            .flatten()
            .map(|(k, _)| k.clone())
            .collect();
        let found = self.read_endpoints(app_id, &endpoint_ids).await?;
        let mut spec = spec;
        if spec.sms.is_ok() {
            let addresses = req
                .addresses
                .iter()
                .flatten()
                .filter(|(_, c)| c.channel_type.as_deref() == Some("SMS"))
                .map(|(a, _)| a.clone());
            let of_endpoints = found
                .values()
                .filter(|e| e.channel_type.as_deref() == Some("SMS"))
                .filter_map(|e| e.address.clone());
            let numbers: Vec<String> = addresses
                .chain(of_endpoints)
                .filter_map(|a| herald_model::sms::e164(&a).ok())
                .collect();
            spec.sms_opted_out = self.sms_opted_out(app_id, numbers).await?;
        }
        let mut r = Recipients::new();
        for (address, cfg) in req.addresses.iter().flatten() {
            let slot = r.push(Slot::Address(address.clone()), None);
            let channel = cfg.channel_type.as_deref().unwrap_or_default();
            let overrides = EndpointSendConfiguration {
                body_override: cfg.body_override.clone(),
                context: cfg.context.clone(),
                raw_content: cfg.raw_content.clone(),
                substitutions: cfg.substitutions.clone(),
                title_override: cfg.title_override.clone(),
            };
            self.plan(
                &mut r,
                slot,
                app_id,
                &key,
                RecipientKey::Address(address),
                channel,
                address,
                None,
                &spec,
                &overrides,
            );
        }
        for (endpoint_id, cfg) in req.endpoints.iter().flatten() {
            let ep = found.get(endpoint_id).cloned();
            self.plan_endpoint(&mut r, app_id, &key, None, endpoint_id, ep, &spec, cfg);
        }
        self.execute(&app, &key, &spec, &mut r).await?;
        let mut result = BTreeMap::new();
        let mut endpoint_result = BTreeMap::new();
        for (slot, outcome) in r.slots.iter().zip(r.outcomes) {
            let (o, id) = outcome.expect("every recipient settled");
            match slot {
                Slot::Address(a) => {
                    result.insert(a.clone(), o.address_result(id.as_deref()));
                }
                Slot::Endpoint {
                    endpoint_id,
                    address,
                    ..
                } => {
                    endpoint_result.insert(
                        endpoint_id.clone(),
                        o.endpoint_result(address.as_deref(), id.as_deref()),
                    );
                }
            }
        }
        Ok(MessageResponse {
            application_id: app_id.to_owned(),
            endpoint_result: (!endpoint_result.is_empty()).then_some(endpoint_result),
            request_id: Some(request_id.to_owned()),
            result: (!result.is_empty()).then_some(result),
        })
    }

    /// `SendUsersMessages`: every endpoint of each user.
    async fn send_users_messages_now(
        &self,
        app_id: &str,
        req: SendUsersMessageRequest,
        keys: RequestKeys,
    ) -> Result<SendUsersMessageResponse> {
        let request_id = keys.request_id.as_str();
        let app = self.app(app_id).await?;
        validate::send_users_message_request(&req, &self.cfg.limits)?;
        let dm = req.message_configuration.clone().unwrap_or_default();
        let spec = self
            .plans(
                &app,
                &dm,
                req.template_configuration.as_ref(),
                req.context.as_ref(),
            )
            .await?;
        let key = keys.key(req.trace_id.as_ref());
        let mut r = Recipients::new();
        let mut users_without_endpoints = Vec::new();
        for (user_id, cfg) in req.users.iter().flatten() {
            let ids: Vec<String> = self
                .user_endpoint_ids(app_id, user_id)
                .await?
                .into_iter()
                .map(|(_, id)| id)
                .collect();
            if ids.is_empty() {
                users_without_endpoints.push(user_id.clone());
                continue;
            }
            let found = self.read_endpoints(app_id, &ids).await?;
            for id in &ids {
                let ep = found.get(id).cloned();
                self.plan_endpoint(&mut r, app_id, &key, Some(user_id), id, ep, &spec, cfg);
            }
        }
        self.execute(&app, &key, &spec, &mut r).await?;
        let mut result: BTreeMap<String, BTreeMap<String, EndpointMessageResult>> = BTreeMap::new();
        for u in users_without_endpoints {
            result.insert(u, BTreeMap::new());
        }
        for (slot, outcome) in r.slots.iter().zip(r.outcomes) {
            let (o, id) = outcome.expect("every recipient settled");
            if let Slot::Endpoint {
                user: Some(user),
                endpoint_id,
                address,
            } = slot
            {
                result.entry(user.clone()).or_default().insert(
                    endpoint_id.clone(),
                    o.endpoint_result(address.as_deref(), id.as_deref()),
                );
            }
        }
        Ok(SendUsersMessageResponse {
            application_id: app_id.to_owned(),
            request_id: Some(request_id.to_owned()),
            result: Some(result),
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn plan_endpoint(
        &self,
        r: &mut Recipients,
        app_id: &str,
        key: &str,
        user: Option<&String>,
        endpoint_id: &str,
        ep: Option<EndpointResponse>,
        spec: &Plans,
        cfg: &EndpointSendConfiguration,
    ) {
        let address = ep.as_ref().and_then(|e| e.address.clone());
        let slot = r.push(
            Slot::Endpoint {
                user: user.cloned(),
                endpoint_id: endpoint_id.to_owned(),
                address: address.clone(),
            },
            ep.clone(),
        );
        let Some(ep) = ep else {
            r.settle(
                slot,
                Outcome::new(
                    DeliveryStatus::PermanentFailure,
                    404,
                    format!("endpoint {endpoint_id} not found"),
                ),
                None,
            );
            return;
        };
        let channel = ep.channel_type.clone().unwrap_or_default();
        let available = spec.available(&channel);
        if let Some(refusal) = message::endpoint_refusal(&ep, available) {
            r.settle(slot, refusal, None);
            return;
        }
        self.plan(
            r,
            slot,
            app_id,
            key,
            RecipientKey::Endpoint(endpoint_id),
            &channel,
            address.as_deref().unwrap_or_default(),
            Some(&ep),
            spec,
            cfg,
        );
    }

    /// Decides a recipient's message, or its outcome when there is none.
    #[allow(clippy::too_many_arguments)]
    fn plan(
        &self,
        r: &mut Recipients,
        slot: usize,
        app_id: &str,
        key: &str,
        recipient: RecipientKey<'_>,
        channel: &str,
        address: &str,
        endpoint: Option<&EndpointResponse>,
        spec: &Plans,
        cfg: &EndpointSendConfiguration,
    ) {
        let refuse = |r: &mut Recipients, why: &str| {
            r.settle(
                slot,
                Outcome::new(DeliveryStatus::PermanentFailure, 400, why),
                None,
            )
        };
        if let Some(why) = spec.refusal(channel) {
            return refuse(r, &why);
        }
        if channel == "SMS"
            && herald_model::sms::e164(address).is_ok_and(|n| spec.sms_opted_out.contains(&n))
        {
            r.settle(
                slot,
                Outcome::new(
                    DeliveryStatus::OptOut,
                    400,
                    "the number replied STOP and is on this app's SMS opt-out list",
                ),
                None,
            );
            return;
        }
        if !r.seen.insert(message::dedup_key(channel, address)) {
            r.settle(slot, message::duplicate(), None);
            return;
        }
        let message_id = message::message_id(app_id, key, &recipient);
        let job = match (&spec.email, &spec.custom, channel) {
            (Ok(email), _, "EMAIL") => self
                .render_email(app_id, &message_id, address, endpoint, email, cfg, false)
                .map(Job::Email),
            (_, Ok(custom), "CUSTOM") => {
                webhook_job(app_id, key, &message_id, address, endpoint, custom, cfg)
                    .map(Job::Webhook)
            }
            (_, _, "GCM") => match &spec.gcm {
                Ok(gcm) => fcm_job(app_id, &message_id, address, endpoint, gcm, cfg),
                Err(e) => Err(e.clone()),
            },
            (_, _, "SMS") => match &spec.sms {
                Ok(sms) => sms_job(app_id, &message_id, address, endpoint, sms, cfg),
                Err(e) => Err(e.clone()),
            },
            (_, _, c) => match spec.apns.get(c) {
                Some(Ok(apns)) => apns_job(
                    app_id,
                    &message_id,
                    address,
                    endpoint,
                    apns,
                    cfg,
                    self.clock.now_ms().div_euclid(1000),
                ),
                _ => Err("no message for this channel".to_owned()),
            },
        };
        match job {
            Ok(job) => r.planned.push(Planned {
                slot,
                message_id,
                job,
            }),
            Err(e) => r.settle(
                slot,
                Outcome::new(DeliveryStatus::PermanentFailure, 400, e),
                Some(message_id),
            ),
        }
    }

    /// A campaign's email to one endpoint: always with `List-Unsubscribe`
    /// (one-click, RFC 8058) when tracking has a base URL.
    pub(crate) fn render_campaign_email(
        &self,
        app_id: &str,
        message_id: &str,
        address: &str,
        endpoint: &EndpointResponse,
        spec: &EmailSpec,
        cfg: &EndpointSendConfiguration,
    ) -> std::result::Result<OutgoingEmail, String> {
        self.render_email(app_id, message_id, address, Some(endpoint), spec, cfg, true)
    }

    #[allow(clippy::too_many_arguments)]
    fn render_email(
        &self,
        app_id: &str,
        message_id: &str,
        address: &str,
        endpoint: Option<&EndpointResponse>,
        spec: &EmailSpec,
        cfg: &EndpointSendConfiguration,
        bulk: bool,
    ) -> std::result::Result<OutgoingEmail, String> {
        let subs = substitutions_of(cfg.substitutions.as_ref(), &spec.substitutions);
        let ctx = render::context(endpoint, address, "EMAIL", spec.defaults.as_ref(), &subs);
        let vars = render::Vars::new(ctx.clone());
        let part = |name: &str| {
            spec.compiled
                .render_vars(name, &vars)
                .map_err(|e| format!("rendering {name}: {e}"))
        };
        let subject = match &cfg.title_override {
            Some(t) => render_once("TitleOverride", t, &ctx)?,
            None if spec.compiled.has_part("Subject") => part("Subject")?,
            None => String::new(),
        };
        let (mut text, mut html) = match &cfg.body_override {
            Some(b) => (Some(render_once("BodyOverride", b, &ctx)?), None),
            None => (
                if spec.has_text {
                    Some(part("TextPart")?)
                } else {
                    None
                },
                if spec.has_html {
                    Some(part("HtmlPart")?)
                } else {
                    None
                },
            ),
        };
        let endpoint_id = endpoint.and_then(|e| e.id.as_deref());
        let tracking = &self.cfg.tracking;
        let mut list_unsubscribe = None;
        if let (Some(endpoint_id), Some(base)) = (endpoint_id, tracking.base_url.as_deref()) {
            let token = |kind: TrackKind, url: Option<&str>| {
                tracking::token(&tracking.secret, kind, app_id, endpoint_id, message_id, url)
            };
            if let Some(h) = html.as_mut() {
                if tracking.clicks {
                    *h = tracking::rewrite_links(h, |url| {
                        format!(
                            "{base}/herald/v1/t/c/{}",
                            token(TrackKind::Click, Some(url))
                        )
                    });
                }
                if tracking.opens {
                    tracking::append_pixel(
                        h,
                        &format!("{base}/herald/v1/t/o/{}", token(TrackKind::Open, None)),
                    );
                }
            }
            if bulk || tracking.list_unsubscribe_on_direct {
                list_unsubscribe = Some(format!(
                    "<{base}/herald/v1/t/u/{}>",
                    token(TrackKind::Unsubscribe, None)
                ));
            }
        }
        if text.is_none() && html.is_none() {
            text = Some(String::new());
        }
        let mut headers = Vec::with_capacity(spec.headers.len());
        for (i, (name, _)) in spec.headers.iter().enumerate() {
            headers.push((name.clone(), part(&format!("Headers[{i}].Value"))?));
        }
        Ok(OutgoingEmail {
            message_id: message_id.to_owned(),
            app_id: app_id.to_owned(),
            from: spec.from.clone(),
            to: address.to_owned(),
            reply_to: spec.reply_to.clone(),
            headers,
            subject,
            text,
            html: html.take(),
            list_unsubscribe,
        })
    }

    /// Compiles the request's email once: the template's parts (the named
    /// version, else the active one), overridden part by part by the
    /// request's `SimpleEmail`, else `EmailMessage.Body` or
    /// `DefaultMessage.Body` as the text part.
    pub(crate) async fn email_plan(
        &self,
        app: &AppRecord,
        dm: &DirectMessageConfiguration,
        tc: Option<&TemplateConfiguration>,
    ) -> Result<EmailPlan> {
        let channel = match &app.email_channel {
            Some(ch) if ch.enabled != Some(false) => ch,
            Some(_) => return Ok(Err("the email channel of this app is disabled".into())),
            None => return Ok(Err("the email channel of this app is not configured".into())),
        };
        let em = dm.email_message.clone().unwrap_or_default();
        let mut parts: BTreeMap<String, (String, render::Escape)> = BTreeMap::new();
        let mut header_names = Vec::new();
        let mut defaults = None;
        if let Some(t) = tc.and_then(|t| t.email_template.as_ref()) {
            let name = t.name.as_deref().unwrap_or_default();
            let version = t.version.as_deref().and_then(|v| v.parse().ok());
            let (_, rec) = self
                .template_record(TemplateType::Email, name, version)
                .await?;
            let body: EmailTemplateRequest = serde_json::from_value(rec.body.clone())
                .map_err(|e| ServiceError::Internal(format!("stored template {name}: {e}")))?;
            if let Some(d) = body.default_substitutions.as_deref() {
                defaults = Some(herald_model::template::parse_default_substitutions(d)?);
            }
            for (part, source, escape) in body.parts() {
                parts.insert(part, (source.to_owned(), escape));
            }
            for h in body.headers.iter().flatten() {
                header_names.push(h.name.clone().unwrap_or_default());
            }
        }
        if let Some(se) = &em.simple_email {
            for (name, p, escape) in [
                ("Subject", &se.subject, render::Escape::Plain),
                ("TextPart", &se.text_part, render::Escape::Plain),
                ("HtmlPart", &se.html_part, render::Escape::Html),
            ] {
                if let Some(data) = p.as_ref().and_then(|p| p.data.clone()) {
                    parts.insert(name.into(), (data, escape));
                }
            }
            if let Some(hs) = &se.headers {
                parts.retain(|k, _| !k.starts_with("Headers["));
                header_names.clear();
                for (i, h) in hs.iter().enumerate() {
                    header_names.push(h.name.clone().unwrap_or_default());
                    parts.insert(
                        format!("Headers[{i}].Value"),
                        (h.value.clone().unwrap_or_default(), render::Escape::Plain),
                    );
                }
            }
        }
        if !parts.contains_key("TextPart") && !parts.contains_key("HtmlPart") {
            let body = em
                .body
                .clone()
                .or_else(|| dm.default_message.as_ref().and_then(|d| d.body.clone()));
            match body {
                Some(b) => {
                    parts.insert("TextPart".into(), (b, render::Escape::Plain));
                }
                None => {
                    return Ok(Err(
                        "the request has no email content: give MessageConfiguration.EmailMessage (SimpleEmail or Body), DefaultMessage.Body, or TemplateConfiguration.EmailTemplate".into(),
                    ))
                }
            }
        }
        let list: Vec<(String, String, render::Escape)> = parts
            .into_iter()
            .map(|(k, (src, esc))| (k, src, esc))
            .collect();
        let compiled = render::Compiled::compile(&list)?;
        let substitutions = message::merged_substitutions(&[
            dm.default_message
                .as_ref()
                .and_then(|d| d.substitutions.as_ref()),
            em.substitutions.as_ref(),
        ]);
        Ok(Ok(EmailSpec {
            from: em
                .from_address
                .clone()
                .or_else(|| channel.from_address.clone())
                .unwrap_or_default(),
            reply_to: em.reply_to_addresses.clone().unwrap_or_default(),
            headers: header_names
                .into_iter()
                .map(|n| (n, String::new()))
                .collect(),
            has_text: compiled.has_part("TextPart"),
            has_html: compiled.has_part("HtmlPart"),
            compiled,
            defaults,
            substitutions,
            messages_per_second: None,
        }))
    }

    /// What one request sends on each channel.
    async fn plans(
        &self,
        app: &AppRecord,
        dm: &DirectMessageConfiguration,
        tc: Option<&TemplateConfiguration>,
        context: Option<&BTreeMap<String, String>>,
    ) -> Result<Plans> {
        let template = self.push_template(tc).await?;
        let sms_template = self.sms_template(tc).await?;
        Ok(Plans {
            email: self.email_plan(app, dm, tc).await?,
            custom: self.custom_plan(app, dm, context),
            apns: self.apns_plans(app, dm, template.as_ref())?,
            gcm: self.gcm_plans(app, dm, template.as_ref())?,
            sms: self.sms_plans(app, dm, sms_template.as_ref())?,
            sms_opted_out: Default::default(),
        })
    }

    /// The SMS template `tc` names, if any (a version or the active one).
    pub(crate) async fn sms_template(
        &self,
        tc: Option<&TemplateConfiguration>,
    ) -> Result<Option<SmsTemplate>> {
        let Some(t) = tc.and_then(|t| t.sms_template.as_ref()) else {
            return Ok(None);
        };
        let name = t.name.as_deref().unwrap_or_default();
        let version = t.version.as_deref().and_then(|v| v.parse().ok());
        let (_, rec) = self
            .template_record(TemplateType::Sms, name, version)
            .await?;
        let body: herald_model::template::SMSTemplateRequest =
            serde_json::from_value(rec.body.clone())
                .map_err(|e| ServiceError::Internal(format!("stored template {name}: {e}")))?;
        let defaults = match body.default_substitutions.as_deref() {
            Some(d) => Some(herald_model::template::parse_default_substitutions(d)?),
            None => None,
        };
        Ok(Some((body.body, defaults)))
    }

    /// The request's SMS; a malformed `SMSMessage` refuses the whole
    /// request.
    pub(crate) fn sms_plans(
        &self,
        app: &AppRecord,
        dm: &DirectMessageConfiguration,
        template: Option<&SmsTemplate>,
    ) -> Result<SmsPlan> {
        let msg: Option<herald_model::sms::SmsMessage> = parsed(&dm.sms_message, "SMSMessage")?;
        let mut msg = msg.unwrap_or_default();
        if msg.body.is_none() {
            msg.body = dm
                .default_message
                .as_ref()
                .and_then(|d| d.body.clone())
                .or_else(|| template.and_then(|(b, _)| b.clone()));
        }
        let substitutions = message::merged_substitutions(&[
            dm.default_message
                .as_ref()
                .and_then(|d| d.substitutions.as_ref()),
            msg.substitutions.as_ref(),
        ]);
        self.sms_spec(
            app,
            msg,
            substitutions,
            template.and_then(|(_, d)| d.clone()),
        )
    }

    /// The plan of `msg` (already merged) for the app's SMS channel: the
    /// sender is the message's `OriginationNumber` (one of this node's
    /// numbers), else its `SenderId`, else the channel's `SenderId` or
    /// `ShortCode`, else the node's first number.
    pub(crate) fn sms_spec(
        &self,
        app: &AppRecord,
        msg: herald_model::sms::SmsMessage,
        substitutions: Substitutions,
        defaults: Option<serde_json::Value>,
    ) -> Result<SmsPlan> {
        herald_model::sms::sms_check(&msg)
            .map_err(|e| ServiceError::BadRequest(format!("SMSMessage: {}", e.0)))?;
        let Some(body) = msg.body.clone().filter(|b| !b.is_empty()) else {
            return Ok(Err(
                "the request has no SMSMessage or DefaultMessage body".into()
            ));
        };
        let ch = match &app.sms_channel {
            None => return Ok(Err("the SMS channel of this app is not configured".into())),
            Some(ch) if !ch.enabled => {
                return Ok(Err("the SMS channel of this app is disabled".into()))
            }
            Some(ch) => ch,
        };
        let numbers = &self.cfg.sms.numbers;
        let source = match msg.origination_number.as_deref() {
            Some(n) => {
                let n = herald_model::sms::e164(n).map_err(|e| {
                    ServiceError::BadRequest(format!("SMSMessage.OriginationNumber: {}", e.0))
                })?;
                if !numbers.iter().any(|x| x.number == n) {
                    return Err(ServiceError::BadRequest(format!(
                        "SMSMessage.OriginationNumber {n} is not one of this cluster's origination numbers ([sms] numbers)"
                    )));
                }
                n
            }
            None => match msg
                .sender_id
                .clone()
                .or_else(|| ch.sender_id.clone())
                .or_else(|| ch.short_code.clone())
                .or_else(|| numbers.first().map(|n| n.number.clone()))
            {
                Some(s) => s,
                None => {
                    return Ok(Err(
                        "no sender: give SMSMessage.OriginationNumber or SenderId, set the channel's SenderId or ShortCode, or list numbers in [sms] numbers".into(),
                    ))
                }
            },
        };
        let compiled = Arc::new(
            render::Compiled::compile(&[("Body", body, render::Escape::Plain)])
                .map_err(|e| ServiceError::BadRequest(format!("SMSMessage: {}", e.0)))?,
        );
        Ok(Ok(SmsSpec {
            source,
            compiled,
            substitutions,
            defaults,
        }))
    }

    /// The push template `tc` names, if any (a version or the active one).
    pub(crate) async fn push_template(
        &self,
        tc: Option<&TemplateConfiguration>,
    ) -> Result<Option<PushTemplate>> {
        let Some(t) = tc.and_then(|t| t.push_template.as_ref()) else {
            return Ok(None);
        };
        let name = t.name.as_deref().unwrap_or_default();
        let version = t.version.as_deref().and_then(|v| v.parse().ok());
        let (_, rec) = self
            .template_record(TemplateType::Push, name, version)
            .await?;
        let body: herald_model::template::PushNotificationTemplateRequest =
            serde_json::from_value(rec.body.clone())
                .map_err(|e| ServiceError::Internal(format!("stored template {name}: {e}")))?;
        let defaults = match body.default_substitutions.as_deref() {
            Some(d) => Some(herald_model::template::parse_default_substitutions(d)?),
            None => None,
        };
        Ok(Some((body, defaults)))
    }

    /// The request's FCM message; a malformed `GCMMessage` refuses the
    /// whole request.
    pub(crate) fn gcm_plans(
        &self,
        app: &AppRecord,
        dm: &DirectMessageConfiguration,
        template: Option<&PushTemplate>,
    ) -> Result<GcmPlan> {
        use herald_model::push::{gcm_merge, DefaultPushMessage, GcmMessage};
        let default: Option<DefaultPushMessage> = parsed(
            &dm.default_push_notification_message,
            "DefaultPushNotificationMessage",
        )?;
        let gcm: Option<GcmMessage> = parsed(&dm.gcm_message, "GCMMessage")?;
        if default.is_none() && gcm.is_none() && template.is_none() {
            return Ok(Err(
                "the request has no GCMMessage or DefaultPushNotificationMessage".into(),
            ));
        }
        let mut message = gcm_merge(default.as_ref(), gcm.as_ref());
        if let Some((t, _)) = template {
            message =
                herald_model::push::gcm_over(message, herald_model::push::gcm_from_template(t));
        }
        let substitutions = message::merged_substitutions(&[
            dm.default_message
                .as_ref()
                .and_then(|d| d.substitutions.as_ref()),
            message.substitutions.as_ref(),
        ]);
        self.gcm_spec(
            app,
            Some(message),
            substitutions,
            template.and_then(|(_, d)| d.clone()),
        )
    }

    /// The plan of `message` (already merged) for the app's GCM channel.
    pub(crate) fn gcm_spec(
        &self,
        app: &AppRecord,
        message: Option<herald_model::push::GcmMessage>,
        substitutions: Substitutions,
        defaults: Option<serde_json::Value>,
    ) -> Result<GcmPlan> {
        let Some(message) = message else {
            return Ok(Err(
                "the request has no GCMMessage or DefaultPushNotificationMessage".into(),
            ));
        };
        herald_model::push::gcm_check(&message)
            .map_err(|e| ServiceError::BadRequest(format!("GCMMessage: {}", e.0)))?;
        let ch = match &app.gcm_channel {
            None => return Ok(Err("the GCM channel of this app is not configured".into())),
            Some(ch) if !ch.response.enabled => {
                return Ok(Err("the GCM channel of this app is disabled".into()))
            }
            Some(ch) => ch,
        };
        let compiled = Arc::new(
            render::Compiled::compile(&[
                (
                    "Title",
                    message.title.clone().unwrap_or_default(),
                    render::Escape::Plain,
                ),
                (
                    "Body",
                    message.body.clone().unwrap_or_default(),
                    render::Escape::Plain,
                ),
            ])
            .map_err(|e| ServiceError::BadRequest(format!("GCMMessage: {}", e.0)))?,
        );
        Ok(Ok(GcmSpec {
            identity: Arc::new(herald_channels::fcm::FcmIdentity {
                app_id: app.id.clone(),
                version: ch.response.version,
                service_json: self.open_gcm_service_json(&app.id, ch)?,
            }),
            message,
            compiled,
            substitutions,
            defaults,
        }))
    }

    /// The request's message for each APNs channel type; a malformed
    /// `APNSMessage` or `DefaultPushNotificationMessage` refuses the whole
    /// request.
    pub(crate) fn apns_plans(
        &self,
        app: &AppRecord,
        dm: &DirectMessageConfiguration,
        template: Option<&PushTemplate>,
    ) -> Result<BTreeMap<&'static str, ApnsPlan>> {
        use herald_model::push::{apns_merge, ApnsMessage, DefaultPushMessage};
        let default: Option<DefaultPushMessage> = parsed(
            &dm.default_push_notification_message,
            "DefaultPushNotificationMessage",
        )?;
        let apns: Option<ApnsMessage> = parsed(&dm.apns_message, "APNSMessage")?;
        if default.is_none() && apns.is_none() && template.is_none() {
            return self.apns_specs(app, None, Substitutions::new(), None);
        }
        let mut message = apns_merge(default.as_ref(), apns.as_ref());
        if let Some((t, _)) = template {
            message =
                herald_model::push::apns_over(message, herald_model::push::apns_from_template(t));
        }
        let substitutions = message::merged_substitutions(&[
            dm.default_message
                .as_ref()
                .and_then(|d| d.substitutions.as_ref()),
            message.substitutions.as_ref(),
        ]);
        self.apns_specs(
            app,
            Some(message),
            substitutions,
            template.and_then(|(_, d)| d.clone()),
        )
    }

    /// The plan of `message` (already merged) for each APNs channel type of
    /// `app`; `None`: the request has no push message.
    pub(crate) fn apns_specs(
        &self,
        app: &AppRecord,
        message: Option<herald_model::push::ApnsMessage>,
        substitutions: Substitutions,
        defaults: Option<serde_json::Value>,
    ) -> Result<BTreeMap<&'static str, ApnsPlan>> {
        let mut plans = BTreeMap::new();
        let Some(message) = message else {
            for (platform, _) in herald_model::channel::APNS_CHANNELS {
                plans.insert(
                    platform,
                    Err("the request has no APNSMessage or DefaultPushNotificationMessage".into()),
                );
            }
            return Ok(plans);
        };
        herald_model::push::apns_check(&message)
            .map_err(|e| ServiceError::BadRequest(format!("APNSMessage: {}", e.0)))?;
        let compiled = Arc::new(
            render::Compiled::compile(&[
                (
                    "Title",
                    message.title.clone().unwrap_or_default(),
                    render::Escape::Plain,
                ),
                (
                    "Body",
                    message.body.clone().unwrap_or_default(),
                    render::Escape::Plain,
                ),
            ])
            .map_err(|e| ServiceError::BadRequest(format!("APNSMessage: {}", e.0)))?,
        );
        for (platform, _) in herald_model::channel::APNS_CHANNELS {
            let plan = match app.apns_channels.get(platform) {
                None => Err(format!(
                    "the {platform} channel of this app is not configured"
                )),
                Some(ch) if !ch.response.enabled => {
                    Err(format!("the {platform} channel of this app is disabled"))
                }
                Some(ch) => {
                    let creds = self.open_apns_credentials(&app.id, ch)?;
                    let voip = platform.starts_with("APNS_VOIP");
                    let identity = herald_channels::apns::ApnsIdentity {
                        app_id: app.id.clone(),
                        platform: platform.to_owned(),
                        version: ch.response.version,
                        token: match (&creds.token_key, &ch.write.token_key_id, &ch.write.team_id) {
                            (Some(k), Some(kid), Some(team)) => {
                                Some((k.clone(), kid.clone(), team.clone()))
                            }
                            _ => None,
                        },
                        certificate: match (&creds.certificate, &creds.private_key) {
                            (Some(c), Some(k)) => Some((c.clone(), k.clone())),
                            _ => None,
                        },
                        prefer_certificate: message
                            .preferred_authentication_method
                            .as_deref()
                            .unwrap_or(&ch.write.method)
                            .eq_ignore_ascii_case("certificate"),
                    };
                    Ok(ApnsSpec {
                        identity: Arc::new(identity),
                        topic: if voip {
                            format!("{}.voip", ch.write.bundle_id)
                        } else {
                            ch.write.bundle_id.clone()
                        },
                        message: message.clone(),
                        compiled: compiled.clone(),
                        substitutions: substitutions.clone(),
                        defaults: defaults.clone(),
                        voip,
                    })
                }
            };
            plans.insert(platform, plan);
        }
        Ok(plans)
    }

    /// The request's custom-channel message: `DefaultMessage.Body` POSTed to
    /// the app's custom channel.
    pub(crate) fn custom_plan(
        &self,
        app: &AppRecord,
        dm: &DirectMessageConfiguration,
        context: Option<&BTreeMap<String, String>>,
    ) -> CustomPlan {
        let ch = match &app.custom_channel {
            Some(ch) if ch.enabled => ch,
            Some(_) => return Err("the custom channel of this app is disabled".into()),
            None => {
                return Err(
                    "the custom channel of this app is not configured (PUT /herald/v1/apps/{app}/channels/custom)".into(),
                )
            }
        };
        let body = dm
            .default_message
            .as_ref()
            .and_then(|d| d.body.clone())
            .unwrap_or_default();
        let compiled = render::Compiled::compile(&[("Body", body.as_str(), render::Escape::Plain)])
            .map_err(|e| e.0)?;
        Ok(CustomSpec {
            url: ch.delivery_uri.clone(),
            secret: self.webhook_secret(&app.id),
            compiled,
            substitutions: message::merged_substitutions(&[dm
                .default_message
                .as_ref()
                .and_then(|d| d.substitutions.as_ref())]),
            context: context.cloned().unwrap_or_default(),
        })
    }

    /// Endpoints by id, each read from its shard after a read barrier.
    async fn read_endpoints(
        &self,
        app_id: &str,
        ids: &[String],
    ) -> Result<BTreeMap<String, EndpointResponse>> {
        let mut by_group: BTreeMap<GroupId, Vec<&String>> = BTreeMap::new();
        for id in ids {
            by_group
                .entry(self.host.group_of(app_id, id))
                .or_default()
                .push(id);
        }
        let reads = by_group.into_iter().map(|(g, ids)| async move {
            self.host.read_barrier(g).await?;
            let mut out = Vec::new();
            for id in ids {
                if let Some(ep) = self.host.reader().endpoint(g, app_id, id)? {
                    out.push((id.clone(), ep));
                }
            }
            Ok::<_, ServiceError>(out)
        });
        let mut found = BTreeMap::new();
        for r in join_all(reads).await {
            found.extend(r?);
        }
        Ok(found)
    }

    /// Steps 3–6 of the module doc for every planned recipient.
    async fn execute(
        &self,
        app: &AppRecord,
        key: &str,
        spec: &Plans,
        r: &mut Recipients,
    ) -> Result<()> {
        let planned = std::mem::take(&mut r.planned);
        if planned.is_empty() {
            return Ok(());
        }
        let dispatcher = self.dispatcher()?;
        let admission = dispatcher.admit(planned.len()).await.map_err(|e| match e {
            crate::delivery::AdmitError::Full { .. } => {
                ServiceError::TooManyRequests(e.to_string())
            }
            crate::delivery::AdmitError::TooLarge { .. } => ServiceError::BadRequest(e.to_string()),
        })?;
        let ledger = self.host.group_of(&app.id, &send_shard_key(key));
        let intents: Vec<SendIntent> = planned
            .iter()
            .map(|p| {
                let (recipient, address) = match &r.slots[p.slot] {
                    Slot::Address(a) => (a.clone(), a.clone()),
                    Slot::Endpoint {
                        endpoint_id,
                        address,
                        ..
                    } => (endpoint_id.clone(), address.clone().unwrap_or_default()),
                };
                SendIntent {
                    message_id: p.message_id.clone(),
                    recipient,
                    channel: p.job.channel().into(),
                    address,
                }
            })
            .collect();
        let now_ms = self.clock.now_ms();
        let record_intents = Command::RecordSendIntents {
            app_id: app.id.clone(),
            at_ms: now_ms,
            dedup_window_ms: self.cfg.send_dedup_window_ms,
            intents,
        };
        #[cfg(feature = "canaries")]
        let planted = crate::canary::is(crate::canary::Canary::SendBeforeIntent);
        #[cfg(not(feature = "canaries"))]
        let planted = false;
        let (before, intents_later) = if planted {
            (vec![None; planned.len()], Some(record_intents))
        } else {
            match self.host.propose(ledger, record_intents).await? {
                CmdResult::Ledger(rows) => (rows, None),
                other => {
                    return Err(ServiceError::Internal(format!(
                        "unexpected ledger result {other:?}"
                    )))
                }
            }
        };
        // Messages the ledger already knows are not sent again.
        let mut fresh = Vec::new();
        let mut fresh_permits = Vec::new();
        let mut permits = admission.permits.into_iter();
        for (p, row) in planned.into_iter().zip(before) {
            let permit = permits.next().expect("a permit per message");
            match row {
                None => {
                    fresh.push(p);
                    fresh_permits.push(permit);
                }
                Some(LedgerRow {
                    outcome: Some(o), ..
                }) => r.settle(p.slot, o, Some(p.message_id)),
                Some(LedgerRow { outcome: None, .. }) => r.settle(
                    p.slot,
                    Outcome::new(
                        DeliveryStatus::UnknownFailure,
                        409,
                        format!(
                            "an earlier attempt of this request ({key}) took this message and has not recorded its outcome; it is not sent again"
                        ),
                    ),
                    Some(p.message_id),
                ),
            }
        }
        drop(permits);
        if fresh.is_empty() {
            return Ok(());
        }
        // One batch per channel, all channels at once; results back in
        // request order.
        let mut by_channel: BTreeMap<&'static str, (Vec<usize>, Vec<Job>, Vec<_>)> =
            BTreeMap::new();
        for (i, (p, permit)) in fresh.iter().zip(fresh_permits).enumerate() {
            let e = by_channel.entry(p.job.channel()).or_default();
            e.0.push(i);
            e.1.push(p.job.clone());
            e.2.push(permit);
        }
        let rate = spec.email.as_ref().ok().and_then(|s| s.messages_per_second);
        let batches = by_channel
            .into_iter()
            .map(|(channel, (idx, jobs, permits))| async move {
                let out = dispatcher
                    .send(
                        &app.id,
                        channel,
                        if channel == "EMAIL" { rate } else { None },
                        jobs,
                        crate::delivery::Admission { permits },
                    )
                    .await;
                (idx, out)
            });
        let mut delivered: Vec<Option<Delivered>> = vec![None; fresh.len()];
        for (idx, out) in join_all(batches).await {
            for (i, d) in idx.into_iter().zip(out) {
                delivered[i] = Some(d);
            }
        }
        let delivered: Vec<Delivered> = delivered
            .into_iter()
            .map(|d| d.expect("every job answered"))
            .collect();
        if let Some(cmd) = intents_later {
            self.host.propose(ledger, cmd).await?;
        }
        let at_ms = self.clock.now_ms();
        let outcomes: Vec<(String, Outcome)> = fresh
            .iter()
            .zip(&delivered)
            .map(|(p, d)| (p.message_id.clone(), d.outcome.clone()))
            .collect();
        let record = self.host.propose(
            ledger,
            Command::RecordSendOutcomes {
                app_id: app.id.clone(),
                at_ms,
                outcomes,
            },
        );
        let events = self.record_delivery_events(app, key, r, &fresh, &delivered, at_ms);
        let (recorded, evented) = futures::join!(record, events);
        if let Err(e) = recorded {
            // The messages went out; only their outcome is not durable. A
            // retry of the request reports UNKNOWN_FAILURE, never resends.
            tracing::error!(app_id = %app.id, request_key = %key, error = %e, "recording send outcomes failed");
        }
        if let Err(e) = evented {
            tracing::error!(app_id = %app.id, request_key = %key, error = %e, "recording delivery events failed");
        }
        for (p, d) in fresh.into_iter().zip(delivered) {
            r.settle(p.slot, d.outcome, Some(p.message_id));
        }
        Ok(())
    }

    /// `_email.*` events on the endpoints reached, and hard-bounce marks.
    async fn record_delivery_events(
        &self,
        app: &AppRecord,
        key: &str,
        r: &Recipients,
        fresh: &[Planned],
        delivered: &[Delivered],
        at_ms: i64,
    ) -> Result<()> {
        let ts = time::format_iso8601_ms(at_ms);
        let mut items: BTreeMap<GroupId, Vec<EventsItem>> = BTreeMap::new();
        let mut marks: BTreeMap<GroupId, Vec<EndpointMark>> = BTreeMap::new();
        for (p, d) in fresh.iter().zip(delivered) {
            let Slot::Endpoint { endpoint_id, .. } = &r.slots[p.slot] else {
                continue;
            };
            let g = self.host.group_of(&app.id, endpoint_id);
            let types = delivery_event_types(p.job.channel(), d.outcome.status, d.hard_bounce);
            let events = types
                .iter()
                .map(|t| {
                    let mut attributes = BTreeMap::new();
                    attributes.insert("message_id".to_owned(), p.message_id.clone());
                    match &p.job {
                        Job::Email(e) => {
                            attributes.insert("destination".to_owned(), e.to.clone());
                            attributes.insert("from_address".to_owned(), e.from.clone());
                        }
                        Job::Webhook(w) => {
                            attributes.insert("destination".to_owned(), w.url.clone());
                        }
                        Job::Apns { push, .. } => {
                            attributes.insert("destination".to_owned(), push.device_token.clone());
                        }
                        Job::Fcm { msg, .. } => {
                            attributes.insert("destination".to_owned(), msg.device_token.clone());
                        }
                        Job::Sms { sms, .. } => {
                            attributes.insert(
                                "destination_phone_number".to_owned(),
                                sms.destination.clone(),
                            );
                            attributes
                                .insert("origination_phone_number".to_owned(), sms.source.clone());
                            attributes.insert(
                                "number_of_message_parts".to_owned(),
                                sms.parts.parts.len().to_string(),
                            );
                            attributes.insert(
                                "encoding".to_owned(),
                                sms.parts.encoding.name().to_owned(),
                            );
                        }
                    }
                    if let Some(t) = trace_of(key) {
                        attributes.insert("trace_id".to_owned(), t.to_owned());
                    }
                    attributes.insert(
                        "delivery_status".to_owned(),
                        d.outcome.status.as_str().to_owned(),
                    );
                    attributes.insert("status_code".to_owned(), d.outcome.code.to_string());
                    (
                        format!("{}{}", p.message_id, t),
                        Event {
                            event_type: Some((*t).to_owned()),
                            timestamp: Some(ts.clone()),
                            attributes: Some(attributes),
                            ..Default::default()
                        },
                    )
                })
                .collect();
            items.entry(g).or_default().push(EventsItem {
                endpoint_id: endpoint_id.clone(),
                endpoint: None,
                events,
            });
            if d.hard_bounce {
                marks.entry(g).or_default().push(EndpointMark {
                    endpoint_id: endpoint_id.clone(),
                    inactive: true,
                    opt_out_all: false,
                });
            }
        }
        let limits = self.apply_limits();
        let now_iso = time::format_iso8601_ms(at_ms);
        let streamed: Vec<(String, Event)> = items
            .values()
            .filter(|_| app.event_stream.is_some())
            .flatten()
            .flat_map(|i| {
                i.events
                    .iter()
                    .map(move |(_, ev)| (i.endpoint_id.clone(), ev.clone()))
            })
            .collect();
        let mut proposals = Vec::new();
        for (g, items) in items {
            proposals.push(self.host.propose(
                g,
                Command::PutEvents {
                    app_id: app.id.clone(),
                    now_iso: now_iso.clone(),
                    limits,
                    items,
                },
            ));
        }
        for (g, marks) in marks {
            proposals.push(self.host.propose(
                g,
                Command::MarkEndpoints {
                    app_id: app.id.clone(),
                    marks,
                },
            ));
        }
        for r in join_all(proposals).await {
            if let CmdResult::Rejected(why) = r? {
                return Err(ServiceError::Internal(format!(
                    "delivery events refused: {why}"
                )));
            }
        }
        self.stream_events(
            &app.id,
            app.event_stream.as_ref(),
            streamed.iter().map(|(e, ev)| (e.as_str(), ev)),
        );
        Ok(())
    }

    /// A recipient opened, clicked or unsubscribed through a tracking URL:
    /// records the event on the endpoint (and, for an unsubscribe, its
    /// OptOut). Answers what the token names; a forged or foreign token is
    /// NotFound and records nothing.
    pub async fn record_tracking(&self, token: &str, kind: TrackKind) -> Result<Tracked> {
        let unknown = || ServiceError::NotFound("unknown or expired tracking link".into());
        let t = tracking::verify(&self.cfg.tracking.secret, token)
            .filter(|t| t.kind == kind)
            .ok_or_else(unknown)?;
        self.app(&t.app_id).await.map_err(|_| unknown())?;
        let g = self.host.group_of(&t.app_id, &t.endpoint_id);
        let now_ms = self.clock.now_ms();
        let now_iso = time::format_iso8601_ms(now_ms);
        let mut attributes = BTreeMap::new();
        attributes.insert("message_id".to_owned(), t.message_id.clone());
        if let Some(url) = &t.url {
            attributes.insert("link".to_owned(), url.clone());
        }
        let event_type = t.kind.event_type();
        let item = EventsItem {
            endpoint_id: t.endpoint_id.clone(),
            endpoint: None,
            events: vec![(
                format!("{}{event_type}.{now_ms}", t.message_id),
                Event {
                    event_type: Some(event_type.to_owned()),
                    timestamp: Some(now_iso.clone()),
                    attributes: Some(attributes),
                    ..Default::default()
                },
            )],
        };
        if t.kind == TrackKind::Unsubscribe {
            let marked = self
                .host
                .propose(
                    g,
                    Command::MarkEndpoints {
                        app_id: t.app_id.clone(),
                        marks: vec![EndpointMark {
                            endpoint_id: t.endpoint_id.clone(),
                            inactive: false,
                            opt_out_all: true,
                        }],
                    },
                )
                .await?;
            tracing::info!(app_id = %t.app_id, endpoint_id = %t.endpoint_id, message_id = %t.message_id, changed = ?marked, "one-click unsubscribe");
        }
        let cmd = Command::PutEvents {
            app_id: t.app_id.clone(),
            now_iso,
            limits: self.apply_limits(),
            items: vec![item],
        };
        if let CmdResult::Rejected(why) = self.host.propose(g, cmd).await? {
            return Err(ServiceError::Internal(format!(
                "tracking event refused: {why}"
            )));
        }
        metrics::counter!("herald_tracking_total", "kind" => event_type).increment(1);
        Ok(t)
    }

    /// herald's `GET /herald/v1/apps/{app}/endpoints/{id}/events`: the
    /// endpoint's stored events (app events and delivery events), oldest
    /// first.
    pub async fn endpoint_events(
        &self,
        app_id: &str,
        endpoint_id: &str,
        limit: usize,
    ) -> Result<Vec<herald_storage::EventRow>> {
        self.app(app_id).await?;
        let g = self.host.group_of(app_id, endpoint_id);
        self.host.read_barrier(g).await?;
        Ok(self
            .host
            .reader()
            .endpoint_events(g, app_id, endpoint_id, limit, 1_000_000)?)
    }
}

/// Ledger rows forgotten per proposal, and proposals per sweep, at most.
const FORGET_PER_PROPOSAL: usize = 1024;
const FORGET_PROPOSALS_PER_SWEEP: usize = 8;

/// Forgets send-ledger rows whose intent is older than `before_ms` (the
/// retention), oldest first, a bounded number per sweep. Answers how many.
pub async fn forget_sends<E: KvEngine>(
    host: &herald_cluster::RaftHost<E>,
    group: GroupId,
    before_ms: i64,
) -> Result<u64> {
    let mut forgotten = 0;
    for _ in 0..FORGET_PROPOSALS_PER_SWEEP {
        let rows = host
            .reader()
            .expired_sends(group, before_ms, FORGET_PER_PROPOSAL)?;
        let full = rows.len() == FORGET_PER_PROPOSAL;
        if rows.is_empty() {
            break;
        }
        if let CmdResult::Count(n) = host.propose(group, Command::ForgetSends { rows }).await? {
            forgotten += n;
        }
        if !full {
            break;
        }
    }
    Ok(forgotten)
}

/// Sends left open per sweep at most.
const OPEN_SENDS_PER_SWEEP: usize = 256;

/// Resolves intents that never got an outcome (their node stopped between
/// the transport call and the outcome, or a proposal was lost) and are
/// older than `before_ms`: they are recorded as UNKNOWN_FAILURE, never sent
/// again (DESIGN.md, "Sends happen once"). Answers how many.
pub async fn resolve_open_sends<E: KvEngine>(
    host: &herald_cluster::RaftHost<E>,
    group: GroupId,
    before_ms: i64,
    now_ms: i64,
) -> Result<u64> {
    let open: Vec<(String, String, i64)> = host
        .reader()
        .open_sends(group, OPEN_SENDS_PER_SWEEP)?
        .into_iter()
        .filter(|(_, _, at)| *at < before_ms)
        .collect();
    let mut by_app: BTreeMap<String, Vec<(String, Outcome)>> = BTreeMap::new();
    for (app, id, _) in open {
        by_app.entry(app).or_default().push((
            id,
            Outcome::new(
                DeliveryStatus::UnknownFailure,
                500,
                "the send was started but its outcome was never recorded (the node handling it stopped); it is not sent again",
            ),
        ));
    }
    let mut resolved = 0;
    for (app_id, outcomes) in by_app {
        let cmd = Command::RecordSendOutcomes {
            app_id,
            at_ms: now_ms,
            outcomes,
        };
        if let CmdResult::Count(n) = host.propose(group, cmd).await? {
            resolved += n;
        }
    }
    Ok(resolved)
}

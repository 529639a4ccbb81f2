//! Channel actors: one ractor actor per (app, channel) on each node, owning
//! what stands between a committed send intent and the transport — the
//! app's token bucket (Pinpoint's `MessagesPerSecond`), the node's shared
//! bucket, retries of temporary failures with exponential backoff and
//! jitter under a bounded attempt budget, and the final classification into
//! a `DeliveryStatus`.
//!
//! Back-pressure: a node admits at most `queue_max` messages per channel
//! (queued or in flight). A request takes its permits *before* its intents
//! are committed, so a full queue refuses the request whole (TooManyRequests)
//! and nothing is half-sent. The directory of actors is per node (no ractor
//! global registry).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald_channels::apns::{ApnsIdentity, OutgoingPush};
use herald_channels::pacing::{Backoff, TokenBucket};
use herald_channels::smpp::OutgoingSms;
use herald_channels::smtp::{OutgoingEmail, SendError};
use herald_channels::transport::{
    EmailTransport, OutgoingWebhook, PushTransport, SmsTransport, WebhookTransport,
};
use herald_model::message::{DeliveryStatus, Outcome};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::clock::{Clock, Entropy};

#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// Messages per second one app may send on one channel from this node
    /// when its channel names no `MessagesPerSecond`; 0 is unlimited.
    pub app_rate_per_sec: f64,
    /// Messages per second this node sends on one channel for all apps; 0
    /// is unlimited.
    pub node_rate_per_sec: f64,
    /// Messages queued or in flight per channel on this node at most.
    pub queue_max: usize,
    /// How long a request waits for room in a full queue.
    pub admit_timeout: Duration,
    /// Retries of temporary failures.
    pub backoff: Backoff,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            app_rate_per_sec: 0.0,
            node_rate_per_sec: 0.0,
            queue_max: 10_000,
            admit_timeout: Duration::from_secs(5),
            backoff: Backoff {
                base_ms: 250,
                max_ms: 4_000,
                attempts_max: 4,
            },
        }
    }
}

/// What became of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    pub outcome: Outcome,
    /// Transport calls made (1 when the first one settled it).
    pub attempts: u32,
    /// A permanent refusal of the recipient (SMTP 550/551/553, APNs
    /// `BadDeviceToken` or `Unregistered`, FCM `UNREGISTERED`): the address
    /// does not exist, and the endpoint should not be sent to again.
    pub hard_bounce: bool,
}

/// Room in a channel's queue for a number of messages, taken before their
/// intents are committed and given back as they settle.
pub struct Admission {
    pub(crate) permits: Vec<OwnedSemaphorePermit>,
}

impl Admission {
    pub fn len(&self) -> usize {
        self.permits.len()
    }

    pub fn is_empty(&self) -> bool {
        self.permits.is_empty()
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum AdmitError {
    #[error("the send queue of this node is full ({queue_max} messages); retry later")]
    Full { queue_max: usize },
    #[error(
        "{n} messages in one request are more than this node's send queue holds ({queue_max})"
    )]
    TooLarge { n: usize, queue_max: usize },
}

/// One message for a transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Job {
    Email(OutgoingEmail),
    Webhook(OutgoingWebhook),
    /// A push to APNs as one of the app's APNs channels.
    Apns {
        identity: Arc<ApnsIdentity>,
        push: OutgoingPush,
    },
    /// A message to FCM as the app's GCM channel.
    Fcm {
        identity: Arc<herald_channels::fcm::FcmIdentity>,
        msg: herald_channels::fcm::OutgoingFcm,
    },
    /// An SMS to the SMSC; its receipts are matched to `endpoint_id`.
    Sms {
        sms: OutgoingSms,
        endpoint_id: Option<String>,
    },
}

impl Job {
    pub fn message_id(&self) -> &str {
        match self {
            Job::Email(e) => &e.message_id,
            Job::Webhook(w) => &w.message_id,
            Job::Apns { push, .. } => &push.message_id,
            Job::Fcm { msg, .. } => &msg.message_id,
            Job::Sms { sms, .. } => &sms.message_id,
        }
    }

    pub fn app_id(&self) -> &str {
        match self {
            Job::Email(e) => &e.app_id,
            Job::Webhook(w) => &w.app_id,
            Job::Apns { push, .. } => &push.app_id,
            Job::Fcm { msg, .. } => &msg.app_id,
            Job::Sms { sms, .. } => &sms.app_id,
        }
    }

    /// Pinpoint's channel type.
    pub fn channel(&self) -> &'static str {
        match self {
            Job::Email(_) => "EMAIL",
            Job::Webhook(_) => "CUSTOM",
            Job::Apns { identity, .. } => herald_model::channel::APNS_CHANNELS
                .iter()
                .map(|(p, _)| *p)
                .find(|p| *p == identity.platform)
                .unwrap_or("APNS"),
            Job::Fcm { .. } => "GCM",
            Job::Sms { .. } => "SMS",
        }
    }
}

pub enum ChannelMsg {
    /// Sends each job (its permit travels with it); answers in order.
    Send {
        jobs: Vec<Job>,
        admission: Admission,
        reply: RpcReplyPort<Vec<Delivered>>,
    },
    /// The app's channel changed its rate (`MessagesPerSecond`).
    SetRate(f64),
}

struct Shared {
    transport: Arc<dyn EmailTransport>,
    webhooks: Arc<dyn WebhookTransport>,
    /// Push providers, APNs and FCM (set by `set_push`; without them
    /// pushes fail as invalid).
    push: std::sync::OnceLock<Arc<dyn PushTransport>>,
    /// The SMSC client and the book its receipts are matched in (set by
    /// `set_sms`; without them SMS fail as invalid).
    sms: std::sync::OnceLock<(Arc<dyn SmsTransport>, Arc<crate::sms::ReceiptBook>)>,
    /// Apps with their own email transport.
    per_app: BTreeMap<String, Arc<dyn EmailTransport>>,
    clock: Arc<dyn Clock>,
    entropy: Arc<dyn Entropy>,
    settings: DeliverySettings,
    node_bucket: Mutex<TokenBucket>,
    queue: Arc<Semaphore>,
}

/// The node's directory of channel actors, one per (app, channel).
pub struct Dispatcher {
    shared: Arc<Shared>,
    actors: tokio::sync::Mutex<BTreeMap<(String, &'static str), ActorRef<ChannelMsg>>>,
}

impl Dispatcher {
    pub fn new(
        transport: Arc<dyn EmailTransport>,
        per_app: BTreeMap<String, Arc<dyn EmailTransport>>,
        webhooks: Arc<dyn WebhookTransport>,
        clock: Arc<dyn Clock>,
        entropy: Arc<dyn Entropy>,
        settings: DeliverySettings,
    ) -> Self {
        let node_bucket = Mutex::new(bucket(settings.node_rate_per_sec));
        let queue = Arc::new(Semaphore::new(settings.queue_max.max(1)));
        Self {
            shared: Arc::new(Shared {
                transport,
                webhooks,
                push: std::sync::OnceLock::new(),
                sms: std::sync::OnceLock::new(),
                per_app,
                clock,
                entropy,
                settings,
                node_bucket,
                queue,
            }),
            actors: tokio::sync::Mutex::new(BTreeMap::new()),
        }
    }

    /// Gives the node its push transport (once).
    pub fn set_push(&self, push: Arc<dyn PushTransport>) {
        let _ = self.shared.push.set(push);
    }

    /// Gives the node its SMSC client (once) and the book receipts are
    /// matched in.
    pub fn set_sms(&self, sms: Arc<dyn SmsTransport>, book: Arc<crate::sms::ReceiptBook>) {
        let _ = self.shared.sms.set((sms, book));
    }

    /// The kind of the default email transport (`smtp`, `outbox`).
    pub fn email_transport(&self) -> &'static str {
        self.shared.transport.kind()
    }

    /// Takes room for `n` messages (of any channel), waiting up to the
    /// admit timeout.
    pub async fn admit(&self, n: usize) -> Result<Admission, AdmitError> {
        let full = || AdmitError::Full {
            queue_max: self.shared.settings.queue_max,
        };
        if n == 0 {
            return Ok(Admission {
                permits: Vec::new(),
            });
        }
        let too_large = || AdmitError::TooLarge {
            n,
            queue_max: self.shared.settings.queue_max,
        };
        let n32 = u32::try_from(n).map_err(|_| too_large())?;
        if n > self.shared.settings.queue_max {
            return Err(too_large());
        }
        let all = tokio::time::timeout(
            self.shared.settings.admit_timeout,
            self.shared.queue.clone().acquire_many_owned(n32),
        )
        .await
        .map_err(|_| full())?
        .map_err(|_| full())?;
        let mut permits = Vec::with_capacity(n);
        let mut rest = all;
        for _ in 1..n {
            permits.push(rest.split(1).expect("a permit per message"));
        }
        permits.push(rest);
        Ok(Admission { permits })
    }

    /// Messages queued or in flight on this node.
    pub fn in_flight(&self) -> usize {
        self.shared.settings.queue_max - self.shared.queue.available_permits()
    }

    async fn actor(
        &self,
        app_id: &str,
        channel: &'static str,
        rate: Option<f64>,
    ) -> Result<ActorRef<ChannelMsg>, String> {
        let key = (app_id.to_owned(), channel);
        let mut actors = self.actors.lock().await;
        if let Some(a) = actors.get(&key) {
            if ractor::ACTIVE_STATES.contains(&a.get_status()) {
                if let Some(r) = rate {
                    let _ = a.cast(ChannelMsg::SetRate(r));
                }
                return Ok(a.clone());
            }
            // Its messages in flight were settled as UNKNOWN_FAILURE by
            // `send`; later ones go to a new actor.
            tracing::warn!(app_id, channel, status = ?a.get_status(), "a channel actor had stopped; starting a new one");
            actors.remove(&key);
        }
        let rate = rate.unwrap_or(self.shared.settings.app_rate_per_sec);
        let (a, _) = Actor::spawn(
            None,
            ChannelActor,
            ChannelArgs {
                shared: self.shared.clone(),
                transport: self
                    .shared
                    .per_app
                    .get(app_id)
                    .unwrap_or(&self.shared.transport)
                    .clone(),
                rate,
            },
        )
        .await
        .map_err(|e| format!("starting the channel actor: {e}"))?;
        actors.insert(key, a.clone());
        Ok(a)
    }

    /// Sends `jobs` of one app on one channel (rate `messages_per_second`
    /// when its channel sets one) and answers each one's fate, in order.
    pub async fn send(
        &self,
        app_id: &str,
        channel: &'static str,
        messages_per_second: Option<f64>,
        jobs: Vec<Job>,
        admission: Admission,
    ) -> Vec<Delivered> {
        debug_assert!(jobs.iter().all(|j| j.channel() == channel));
        assert_eq!(jobs.len(), admission.len(), "one permit per message");
        let n = jobs.len();
        let unknown = |why: String| {
            vec![
                Delivered {
                    outcome: Outcome::new(DeliveryStatus::UnknownFailure, 500, why),
                    attempts: 0,
                    hard_bounce: false,
                };
                n
            ]
        };
        let actor = match self.actor(app_id, channel, messages_per_second).await {
            Ok(a) => a,
            Err(e) => return unknown(e),
        };
        let call = actor
            .call(
                |reply| ChannelMsg::Send {
                    jobs,
                    admission,
                    reply,
                },
                None,
            )
            .await;
        match call {
            Ok(ractor::rpc::CallResult::Success(v)) => v,
            Ok(_) => unknown("the channel actor stopped".into()),
            Err(e) => unknown(format!("the channel actor is gone: {e}")),
        }
    }

    /// Stops every channel actor (their in-flight sends finish first).
    /// Calls a campaign hook (FILTER mode) and answers its body.
    pub async fn call_hook(
        &self,
        hook: &OutgoingWebhook,
        response_bytes_max: usize,
    ) -> Result<Vec<u8>, String> {
        let now = self.shared.clock.now_ms().div_euclid(1000);
        self.shared
            .webhooks
            .call(hook, now, response_bytes_max)
            .await
            .map_err(|e| e.to_string())
    }

    /// POSTs a signed body once (event streams); no channel actor, no
    /// retries.
    pub async fn post_hook(&self, hook: &OutgoingWebhook) -> Result<u16, SendError> {
        let now = self.shared.clock.now_ms().div_euclid(1000);
        self.shared.webhooks.post(hook, now).await
    }

    pub async fn stop(&self) {
        let actors = std::mem::take(&mut *self.actors.lock().await);
        for a in actors.into_values() {
            a.stop(Some("node stopping".into()));
        }
    }
}

fn bucket(rate: f64) -> TokenBucket {
    // A second's worth of burst (at least one message).
    let burst = if rate > 0.0 {
        rate.ceil().max(1.0) as u32
    } else {
        1
    };
    TokenBucket::new(rate, burst)
}

struct ChannelActor;

struct ChannelArgs {
    shared: Arc<Shared>,
    transport: Arc<dyn EmailTransport>,
    rate: f64,
}

struct ChannelState {
    shared: Arc<Shared>,
    transport: Arc<dyn EmailTransport>,
    app_bucket: TokenBucket,
}

impl Actor for ChannelActor {
    type Msg = ChannelMsg;
    type State = ChannelState;
    type Arguments = ChannelArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: ChannelArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(ChannelState {
            shared: args.shared,
            transport: args.transport,
            app_bucket: bucket(args.rate),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ChannelMsg::SetRate(r) => {
                if (r - state.app_bucket.rate_per_sec()).abs() > f64::EPSILON {
                    state.app_bucket = bucket(r);
                }
            }
            ChannelMsg::Send {
                jobs,
                admission,
                reply,
            } => {
                // The actor decides each message's slot in both buckets, in
                // arrival order; the sends themselves run concurrently.
                let now = state.shared.clock.now_ms();
                let mut tasks = Vec::with_capacity(jobs.len());
                for (job, permit) in jobs.into_iter().zip(admission.permits) {
                    let app_wait = state.app_bucket.reserve(now, 1);
                    let node_wait = state
                        .shared
                        .node_bucket
                        .lock()
                        .expect("node bucket lock")
                        .reserve(now, 1);
                    let wait_ms = app_wait.max(node_wait);
                    let shared = state.shared.clone();
                    let transport = state.transport.clone();
                    tasks.push(tokio::spawn(async move {
                        let _permit = permit;
                        if wait_ms > 0 {
                            tokio::time::sleep(Duration::from_millis(wait_ms as u64)).await;
                        }
                        send_with_retries(&shared, transport.as_ref(), &job).await
                    }));
                }
                tokio::spawn(async move {
                    let mut out = Vec::with_capacity(tasks.len());
                    for t in tasks {
                        out.push(t.await.unwrap_or_else(|e| Delivered {
                            outcome: Outcome::new(
                                DeliveryStatus::UnknownFailure,
                                500,
                                format!("the send task failed: {e}"),
                            ),
                            attempts: 0,
                            hard_bounce: false,
                        }));
                    }
                    let _ = reply.send(out);
                });
            }
        }
        Ok(())
    }
}

/// Whether a permanent SMTP reply refuses the recipient itself: 550, 551
/// or 553, and, when the server gives an enhanced status code (RFC 3463),
/// a 5.1.x one (bad destination mailbox). `553 5.7.1` (sender refused) or
/// `550 5.7.1` (content refused) are not the recipient's fault.
fn is_hard_bounce(channel: &str, code: u16, message: &str) -> bool {
    if channel.starts_with("APNS") {
        return herald_channels::apns::is_dead_token(code, message);
    }
    if channel == "GCM" {
        return herald_channels::fcm::is_dead_token(code, message);
    }
    if channel != "EMAIL" || !matches!(code, 550 | 551 | 553) {
        return false;
    }
    let enhanced = message.split_whitespace().find(|w| {
        let mut p = w.split('.');
        matches!(
            (p.next(), p.next(), p.next(), p.next()),
            (Some(a), Some(b), Some(c), None)
                if a.len() == 1 && !b.is_empty() && !c.is_empty()
                    && [a, b, c].iter().all(|x| x.chars().all(|ch| ch.is_ascii_digit()))
        )
    });
    match enhanced {
        Some(e) => e.starts_with("5.1."),
        None => true,
    }
}

/// Longest wait a provider's `Retry-After` imposes before a retry.
const RETRY_AFTER_MS_MAX: u64 = 60_000;

async fn send_with_retries(
    shared: &Shared,
    transport: &dyn EmailTransport,
    job: &Job,
) -> Delivered {
    let backoff = &shared.settings.backoff;
    let channel = job.channel();
    let mut attempt: u32 = 0;
    loop {
        attempt += 1;
        let started = shared.clock.now_ms();
        let result = match job {
            Job::Email(e) => transport.send(e).await,
            Job::Webhook(w) => shared
                .webhooks
                .post(w, started.div_euclid(1000))
                .await
                .map(|status| format!("{status} from the webhook")),
            Job::Apns { identity, push } => match shared.push.get() {
                Some(t) => t.send_apns(identity, push, started.div_euclid(1000)).await,
                None => Err(SendError::Invalid(
                    "this node has no push transport configured".into(),
                )),
            },
            Job::Fcm { identity, msg } => match shared.push.get() {
                Some(t) => t.send_fcm(identity, msg, started.div_euclid(1000)).await,
                None => Err(SendError::Invalid(
                    "this node has no push transport configured".into(),
                )),
            },
            Job::Sms { sms, endpoint_id } => match shared.sms.get() {
                Some((t, book)) => t.send_sms(sms).await.map(|ids| {
                    book.record(&ids, sms, endpoint_id.as_deref(), started);
                    format!(
                        "accepted by the SMSC as {} ({} part{}, {})",
                        ids.join(","),
                        ids.len(),
                        if ids.len() == 1 { "" } else { "s" },
                        sms.parts.encoding.name()
                    )
                }),
                None => Err(SendError::Invalid(
                    "this node has no SMSC configured ([sms] smsc)".into(),
                )),
            },
        };
        metrics::histogram!("herald_send_attempt_seconds", "channel" => channel)
            .record((shared.clock.now_ms() - started) as f64 / 1000.0);
        let err = match result {
            Ok(reply) => {
                metrics::counter!("herald_messages_total", "channel" => channel, "status" => "SUCCESSFUL").increment(1);
                return Delivered {
                    outcome: Outcome::new(DeliveryStatus::Successful, 200, reply),
                    attempts: attempt,
                    hard_bounce: false,
                };
            }
            Err(e) => e,
        };
        if err.is_retryable() {
            if let Some(delay) = backoff.delay_ms(attempt, shared.entropy.next_u64()) {
                // The provider's Retry-After, up to a minute, when longer.
                let delay = match &err {
                    SendError::Throttled { after_ms, .. } => {
                        delay.max((*after_ms).min(RETRY_AFTER_MS_MAX) as i64)
                    }
                    _ => delay,
                };
                tracing::debug!(app_id = %job.app_id(), message_id = %job.message_id(), attempt, delay_ms = delay, error = %err, "temporary failure; retrying");
                metrics::counter!("herald_send_retries_total", "channel" => channel).increment(1);
                tokio::time::sleep(Duration::from_millis(delay.max(0) as u64)).await;
                continue;
            }
        }
        let (outcome, hard_bounce) = match &err {
            SendError::Throttled { code, message, .. } => (
                Outcome::new(
                    DeliveryStatus::TemporaryFailure,
                    *code,
                    format!("gave up after {attempt} attempts: {message}"),
                ),
                false,
            ),
            SendError::Temporary { code, message } => (
                Outcome::new(
                    DeliveryStatus::TemporaryFailure,
                    code.unwrap_or(503),
                    format!("gave up after {attempt} attempts: {message}"),
                ),
                false,
            ),
            SendError::Permanent { code, message } => (
                Outcome::new(DeliveryStatus::PermanentFailure, *code, message.clone()),
                is_hard_bounce(channel, *code, message),
            ),
            SendError::Invalid(m) => (
                Outcome::new(DeliveryStatus::PermanentFailure, 400, m.clone()),
                false,
            ),
            SendError::Unknown(m) => (
                Outcome::new(DeliveryStatus::UnknownFailure, 500, m.clone()),
                false,
            ),
        };
        metrics::counter!("herald_messages_total", "channel" => channel, "status" => outcome.status.as_str()).increment(1);
        tracing::info!(app_id = %job.app_id(), message_id = %job.message_id(), channel, attempts = attempt, status = outcome.status.as_str(), error = %err, "message not delivered");
        return Delivered {
            outcome,
            attempts: attempt,
            hard_bounce,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Accepting;

    impl EmailTransport for Accepting {
        fn kind(&self) -> &'static str {
            "test"
        }

        fn send<'a>(
            &'a self,
            _email: &'a OutgoingEmail,
        ) -> futures::future::BoxFuture<'a, Result<String, SendError>> {
            Box::pin(async { Ok("250 ok".to_owned()) })
        }
    }

    #[tokio::test]
    async fn a_stopped_channel_actor_is_replaced() {
        let d = Dispatcher::new(
            Arc::new(Accepting),
            BTreeMap::new(),
            Arc::new(
                herald_channels::webhook::WebhookClient::new(
                    Vec::new(),
                    Duration::from_secs(1),
                    None,
                )
                .unwrap(),
            ),
            Arc::new(crate::clock::ManualClock::new(0)),
            Arc::new(crate::clock::SeededEntropy::new(1)),
            DeliverySettings::default(),
        );
        let job = || {
            Job::Email(OutgoingEmail {
                message_id: "m".into(),
                to: "a@example.org".into(),
                ..Default::default()
            })
        };
        let send = || async {
            let admission = d.admit(1).await.unwrap();
            d.send("app", "EMAIL", None, vec![job()], admission).await
        };
        assert_eq!(send().await[0].outcome.status, DeliveryStatus::Successful);
        let first = d.actor("app", "EMAIL", None).await.unwrap();
        first.stop(None);
        for _ in 0..100 {
            if first.get_status() == ractor::ActorStatus::Stopped {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(first.get_status(), ractor::ActorStatus::Stopped);
        assert_eq!(send().await[0].outcome.status, DeliveryStatus::Successful);
        let second = d.actor("app", "EMAIL", None).await.unwrap();
        assert_ne!(first.get_id(), second.get_id());
    }

    #[test]
    fn only_recipient_refusals_are_hard_bounces() {
        assert!(is_hard_bounce(
            "EMAIL",
            550,
            "permanent error (550): 5.1.1 no such user"
        ));
        assert!(is_hard_bounce("EMAIL", 550, "no such user"));
        assert!(!is_hard_bounce(
            "EMAIL",
            553,
            "5.7.1 Sender address rejected"
        ));
        assert!(!is_hard_bounce(
            "EMAIL",
            550,
            "5.7.1 message content rejected"
        ));
        assert!(!is_hard_bounce("EMAIL", 554, "5.1.1 x"));
        assert!(!is_hard_bounce("CUSTOM", 550, "x"));
    }
}

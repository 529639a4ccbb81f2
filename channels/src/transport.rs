//! The seam between the channel actors and the transports: an email
//! transport is anything that can take one message and report what became
//! of it. Production uses [`crate::smtp::SmtpClient`] or, without an SMTP
//! server, the dev outbox; tests and the simulator use recording senders.

use futures::future::BoxFuture;

use std::sync::Arc;

use crate::apns::{ApnsIdentity, ApnsPool, OutgoingPush};
use crate::fcm::{FcmIdentity, FcmPool, OutgoingFcm};
use crate::smpp::{OutgoingSms, SmppClient};
use crate::smtp::{OutgoingEmail, SendError, SmtpClient};
use crate::webhook::WebhookClient;

/// Sends one email once. Implementations never retry on their own.
pub trait EmailTransport: Send + Sync + 'static {
    /// A short name for logs and metrics (`smtp`, `outbox`, ...).
    fn kind(&self) -> &'static str;
    /// Answers the peer's acceptance reply (e.g. `250 queued as X`).
    fn send<'a>(&'a self, email: &'a OutgoingEmail) -> BoxFuture<'a, Result<String, SendError>>;
}

impl EmailTransport for SmtpClient {
    fn kind(&self) -> &'static str {
        "smtp"
    }

    fn send<'a>(&'a self, email: &'a OutgoingEmail) -> BoxFuture<'a, Result<String, SendError>> {
        Box::pin(SmtpClient::send(self, email))
    }
}

/// The dev outbox as an email transport: every message is "accepted" by
/// being written to the outbox. `now_iso` stamps each one (the caller's
/// clock, so this module reads none).
pub struct OutboxTransport {
    outbox: std::sync::Arc<crate::outbox::Outbox>,
    now_iso: Box<dyn Fn() -> String + Send + Sync>,
}

impl OutboxTransport {
    pub fn new(
        outbox: std::sync::Arc<crate::outbox::Outbox>,
        now_iso: Box<dyn Fn() -> String + Send + Sync>,
    ) -> Self {
        Self { outbox, now_iso }
    }
}

impl EmailTransport for OutboxTransport {
    fn kind(&self) -> &'static str {
        "outbox"
    }

    fn send<'a>(&'a self, email: &'a OutgoingEmail) -> BoxFuture<'a, Result<String, SendError>> {
        Box::pin(async move {
            let msg = crate::outbox::OutboxMessage::from_email(email, &(self.now_iso)());
            let seq = self.outbox.append(&msg)?;
            Ok(format!("250 stored in the dev outbox as #{seq}"))
        })
    }
}

/// One signed POST to a webhook (the custom channel).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingWebhook {
    pub message_id: String,
    pub app_id: String,
    pub url: String,
    /// The JSON body.
    pub body: Vec<u8>,
    /// The app's signing key.
    pub secret: String,
}

/// Delivers webhook POSTs once each. Implementations never retry.
pub trait WebhookTransport: Send + Sync + 'static {
    fn kind(&self) -> &'static str;
    /// Answers the receiver's HTTP status (2xx).
    fn post<'a>(
        &'a self,
        hook: &'a OutgoingWebhook,
        now_unix_secs: i64,
    ) -> BoxFuture<'a, Result<u16, SendError>>;
    /// A POST whose 2xx answer body is returned (campaign hooks), at most
    /// `response_bytes_max` bytes.
    fn call<'a>(
        &'a self,
        hook: &'a OutgoingWebhook,
        now_unix_secs: i64,
        response_bytes_max: usize,
    ) -> BoxFuture<'a, Result<Vec<u8>, SendError>>;
}

impl WebhookTransport for WebhookClient {
    fn kind(&self) -> &'static str {
        "http"
    }

    fn post<'a>(
        &'a self,
        hook: &'a OutgoingWebhook,
        now_unix_secs: i64,
    ) -> BoxFuture<'a, Result<u16, SendError>> {
        Box::pin(self.post_signed(
            &hook.url,
            hook.body.clone(),
            now_unix_secs,
            hook.secret.as_bytes(),
        ))
    }

    fn call<'a>(
        &'a self,
        hook: &'a OutgoingWebhook,
        now_unix_secs: i64,
        response_bytes_max: usize,
    ) -> BoxFuture<'a, Result<Vec<u8>, SendError>> {
        Box::pin(self.call_signed(
            &hook.url,
            hook.body.clone(),
            now_unix_secs,
            hook.secret.as_bytes(),
            response_bytes_max,
        ))
    }
}

/// Sends one mobile push once, as the app channel that planned it.
/// Implementations never retry on their own.
pub trait PushTransport: Send + Sync + 'static {
    fn kind(&self) -> &'static str;
    /// Answers APNs's acceptance (`200 apns-id ...`).
    fn send_apns<'a>(
        &'a self,
        identity: &'a Arc<ApnsIdentity>,
        push: &'a OutgoingPush,
        now_unix_secs: i64,
    ) -> BoxFuture<'a, Result<String, SendError>>;
    /// Answers FCM's acceptance (`200 projects/.../messages/...`).
    fn send_fcm<'a>(
        &'a self,
        identity: &'a Arc<FcmIdentity>,
        msg: &'a OutgoingFcm,
        now_unix_secs: i64,
    ) -> BoxFuture<'a, Result<String, SendError>>;
}

/// The node's push providers: APNs and FCM clients per app channel.
pub struct PushProviders {
    pub apns: ApnsPool,
    pub fcm: FcmPool,
}

impl PushTransport for PushProviders {
    fn kind(&self) -> &'static str {
        "http"
    }

    fn send_apns<'a>(
        &'a self,
        identity: &'a Arc<ApnsIdentity>,
        push: &'a OutgoingPush,
        now_unix_secs: i64,
    ) -> BoxFuture<'a, Result<String, SendError>> {
        Box::pin(self.apns.send(identity, push, now_unix_secs))
    }

    fn send_fcm<'a>(
        &'a self,
        identity: &'a Arc<FcmIdentity>,
        msg: &'a OutgoingFcm,
        now_unix_secs: i64,
    ) -> BoxFuture<'a, Result<String, SendError>> {
        Box::pin(self.fcm.send(identity, msg, now_unix_secs))
    }
}

/// Submits one SMS (all its parts) once. Implementations never retry.
pub trait SmsTransport: Send + Sync + 'static {
    fn kind(&self) -> &'static str;
    /// Answers the SMSC's message id of each part.
    fn send_sms<'a>(
        &'a self,
        sms: &'a OutgoingSms,
    ) -> BoxFuture<'a, Result<Vec<String>, SendError>>;
}

impl SmsTransport for SmppClient {
    fn kind(&self) -> &'static str {
        "smpp"
    }

    fn send_sms<'a>(
        &'a self,
        sms: &'a OutgoingSms,
    ) -> BoxFuture<'a, Result<Vec<String>, SendError>> {
        Box::pin(self.submit(sms))
    }
}

//! Recording channel senders: every node's email and webhook transports
//! write into one shared log of what a recipient would have received. Each
//! attempt draws its fate from the seed: accepted, refused for now, refused
//! for good, lost after the provider accepted it (the caller sees an
//! unknown outcome but the message was delivered), lost before, or stalled.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use herald_channels::smtp::{OutgoingEmail, SendError};
use herald_channels::transport::{EmailTransport, OutgoingWebhook, WebhookTransport};
use herald_storage::NodeId;

use crate::rng::SimRng;
use crate::trace::Trace;

/// One message a recipient received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub to: String,
    pub message_id: String,
    pub subject: String,
    pub node: NodeId,
    pub at_ms: i64,
}

/// How often senders misbehave, per mille of attempts.
#[derive(Debug, Clone, Copy)]
pub struct SenderFaults {
    pub temporary: u32,
    pub permanent: u32,
    pub unknown_delivered: u32,
    pub unknown_lost: u32,
    pub stall: u32,
}

impl SenderFaults {
    pub const NONE: SenderFaults = SenderFaults {
        temporary: 0,
        permanent: 0,
        unknown_delivered: 0,
        unknown_lost: 0,
        stall: 0,
    };
}

struct Inner {
    rng: SimRng,
    faults: SenderFaults,
    delivered: Vec<Delivery>,
    /// Recipients refused for good (a hard bounce) at least once.
    bounced: std::collections::BTreeSet<String>,
}

/// The shared log; [`Recorder::for_node`] makes each node's transport.
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<Mutex<Inner>>,
    trace: Trace,
    now_ms: Arc<std::sync::atomic::AtomicI64>,
}

enum Fate {
    Accept,
    Temporary,
    Permanent,
    UnknownDelivered,
    UnknownLost,
}

impl Recorder {
    pub fn new(seed: u64, trace: Trace, now_ms: Arc<std::sync::atomic::AtomicI64>) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                rng: SimRng::new(seed ^ 0x5e_4de5),
                faults: SenderFaults::NONE,
                delivered: Vec::new(),
                bounced: std::collections::BTreeSet::new(),
            })),
            trace,
            now_ms,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_faults(&self, f: SenderFaults) {
        self.lock().faults = f;
    }

    pub fn delivered(&self) -> Vec<Delivery> {
        self.lock().delivered.clone()
    }

    /// Recipients that were refused for good at least once.
    pub fn bounced(&self) -> std::collections::BTreeSet<String> {
        self.lock().bounced.clone()
    }

    pub fn for_node(&self, node: NodeId) -> NodeSender {
        NodeSender {
            node,
            recorder: self.clone(),
        }
    }

    /// Decides one attempt's fate and how long it takes.
    fn fate(&self) -> (Fate, Duration) {
        let mut g = self.lock();
        let f = g.faults;
        let roll = g.rng.range(0, 1000) as u32;
        let stall = g.rng.chance(f.stall);
        let took = if stall {
            Duration::from_millis(g.rng.range(500, 5_000))
        } else {
            Duration::from_millis(g.rng.range(1, 20))
        };
        let mut edge = f.temporary;
        let fate = if roll < edge {
            Fate::Temporary
        } else if roll < {
            edge += f.permanent;
            edge
        } {
            Fate::Permanent
        } else if roll < {
            edge += f.unknown_delivered;
            edge
        } {
            Fate::UnknownDelivered
        } else if roll < {
            edge += f.unknown_lost;
            edge
        } {
            Fate::UnknownLost
        } else {
            Fate::Accept
        };
        (fate, took)
    }

    fn deliver(&self, node: NodeId, to: &str, message_id: &str, subject: &str) {
        let at_ms = self.now_ms.load(std::sync::atomic::Ordering::SeqCst);
        self.trace.record(format!(
            "deliver node={node} to={to} id={message_id} subject={subject:?}"
        ));
        self.lock().delivered.push(Delivery {
            to: to.to_owned(),
            message_id: message_id.to_owned(),
            subject: subject.to_owned(),
            node,
            at_ms,
        });
    }

    async fn attempt(
        &self,
        node: NodeId,
        to: &str,
        message_id: &str,
        subject: &str,
    ) -> Result<(), SendError> {
        let (fate, took) = self.fate();
        tokio::time::sleep(took).await;
        match fate {
            Fate::Accept => {
                self.deliver(node, to, message_id, subject);
                Ok(())
            }
            Fate::Temporary => Err(SendError::Temporary {
                code: Some(451),
                message: "simulated: try again later".into(),
            }),
            Fate::Permanent => {
                self.lock().bounced.insert(to.to_owned());
                Err(SendError::Permanent {
                    code: 550,
                    message: "simulated: no such mailbox".into(),
                })
            }
            Fate::UnknownDelivered => {
                self.deliver(node, to, message_id, subject);
                Err(SendError::Unknown(
                    "simulated: connection lost after the data".into(),
                ))
            }
            Fate::UnknownLost => Err(SendError::Unknown(
                "simulated: connection lost during the data".into(),
            )),
        }
    }
}

/// One node's email and webhook transport.
pub struct NodeSender {
    node: NodeId,
    recorder: Recorder,
}

impl EmailTransport for NodeSender {
    fn kind(&self) -> &'static str {
        "sim"
    }

    fn send<'a>(&'a self, email: &'a OutgoingEmail) -> BoxFuture<'a, Result<String, SendError>> {
        Box::pin(async move {
            self.recorder
                .attempt(self.node, &email.to, &email.message_id, &email.subject)
                .await
                .map(|()| "250 2.0.0 accepted".to_owned())
        })
    }
}

impl WebhookTransport for NodeSender {
    fn kind(&self) -> &'static str {
        "sim"
    }

    fn post<'a>(
        &'a self,
        hook: &'a OutgoingWebhook,
        _now_unix_secs: i64,
    ) -> BoxFuture<'a, Result<u16, SendError>> {
        Box::pin(async move {
            self.recorder
                .attempt(self.node, &hook.url, &hook.message_id, "")
                .await
                .map(|()| 200)
        })
    }

    fn call<'a>(
        &'a self,
        hook: &'a OutgoingWebhook,
        _now_unix_secs: i64,
        _response_bytes_max: usize,
    ) -> BoxFuture<'a, Result<Vec<u8>, SendError>> {
        Box::pin(async move {
            self.recorder
                .attempt(self.node, &hook.url, &hook.message_id, "")
                .await
                .map(|()| b"{}".to_vec())
        })
    }
}

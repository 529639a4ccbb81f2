//! Clients doing what users do, against whichever node is up: endpoint
//! upserts and gets, and direct emails (retried under the same request id
//! on another node when the answer was unknown). Each call runs as a task
//! on the node it was sent to, so a crash of that node leaves it unanswered.

use std::collections::BTreeMap;
use std::sync::Arc;

use herald_actors::sends::RequestKeys;
use herald_model::message::{
    AddressConfiguration, DirectMessageConfiguration, EmailMessage, MessageRequest, SimpleEmail,
    SimpleEmailPart,
};
use herald_model::wire::EndpointRequest;
use herald_storage::NodeId;

use crate::history::{classify, Answer, Call, History};
use crate::world::World;

/// The one app every client uses.
pub const APP: &str = "5e1a0000000000000000000000000001";
/// Its segment of every endpoint with an email address.
pub const SEGMENT: &str = "5e9a0000000000000000000000000001";
/// Campaigns created during the chaos phase at most.
const CAMPAIGNS_MAX: u64 = 3;

/// The segment's definition.
pub fn segment_body() -> serde_json::Value {
    serde_json::json!({
        "Name": "every email endpoint",
        "Dimensions": {"Demographic": {"Channel": {"Values": ["EMAIL"]}}}
    })
}

/// An immediate one-off email campaign; its subject names it.
pub fn campaign_body(id: &str) -> serde_json::Value {
    serde_json::json!({
        "Name": id,
        "SegmentId": SEGMENT,
        "MessageConfiguration": {"EmailMessage": {"Title": campaign_subject(id), "Body": "news"}},
        "Schedule": {"StartTime": "IMMEDIATE", "Frequency": "ONCE"}
    })
}

pub fn campaign_subject(id: &str) -> String {
    format!("campaign {id}")
}

/// Calls in flight at most.
const IN_FLIGHT_MAX: usize = 16;
/// Tries of one send request (the first plus retries).
const SEND_TRIES_MAX: u32 = 3;

pub struct Workload {
    pub endpoints: u64,
    next_v: u64,
    next_send: u64,
    pub next_campaign: u64,
    /// Sends whose answer was unknown: (address, request id, tries so far).
    retry: Vec<(String, String, u32)>,
    pub history: History,
}

pub fn endpoint_id(k: u64) -> String {
    format!("ep-{k}")
}

fn endpoint_write(k: u64, v: u64) -> EndpointRequest {
    EndpointRequest {
        address: Some(format!("ep-{k}@sim.example")),
        channel_type: Some("EMAIL".into()),
        attributes: Some(BTreeMap::from([("v".to_owned(), vec![v.to_string()])])),
        ..Default::default()
    }
}

pub fn direct_email(to: &str, request: &str) -> MessageRequest {
    MessageRequest {
        addresses: Some(BTreeMap::from([(
            to.to_owned(),
            AddressConfiguration {
                channel_type: Some("EMAIL".into()),
                ..Default::default()
            },
        )])),
        message_configuration: Some(DirectMessageConfiguration {
            email_message: Some(EmailMessage {
                simple_email: Some(SimpleEmail {
                    subject: Some(SimpleEmailPart {
                        data: Some(format!("request {request}")),
                        charset: None,
                    }),
                    text_part: Some(SimpleEmailPart {
                        data: Some("hello".into()),
                        charset: None,
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        trace_id: Some(request.to_owned()),
        ..Default::default()
    }
}

impl Workload {
    pub fn new(endpoints: u64) -> Self {
        Self {
            endpoints,
            next_v: 1,
            next_send: 0,
            next_campaign: 0,
            retry: Vec::new(),
            history: History::default(),
        }
    }

    /// Maybe issues one call (chance per mille per step).
    pub fn tick(&mut self, world: &mut World, per_mille: u32) {
        if !world.rng.chance(per_mille) || self.history.pending() >= IN_FLIGHT_MAX {
            return;
        }
        let live = world.live_nodes();
        let Some(&node) = world.rng.pick(&live) else {
            return;
        };
        let roll = world.rng.range(0, 100);
        if roll < 45 {
            let k = world.rng.range(0, self.endpoints);
            self.write(world, node, k);
        } else if roll < 80 {
            let k = world.rng.range(0, self.endpoints);
            self.read(world, node, k);
        } else if roll < 82 && self.next_campaign < CAMPAIGNS_MAX {
            self.campaign(world, node);
        } else {
            self.send(world, node);
        }
    }

    pub fn write(&mut self, world: &World, node: NodeId, k: u64) {
        let v = self.next_v;
        self.next_v += 1;
        let ep = endpoint_id(k);
        let call = Call::Write { ep: ep.clone(), v };
        self.issue(world, node, call, move |h, id| {
            Box::pin(async move {
                let r = h
                    .update_endpoint(APP, &ep, endpoint_write(k, v), &format!("w{id}"))
                    .await;
                match r {
                    Ok(()) => Answer::Ok,
                    Err(e) => classify(&e),
                }
            })
        });
    }

    pub fn read(&mut self, world: &World, node: NodeId, k: u64) {
        let ep = endpoint_id(k);
        let call = Call::Read { ep: ep.clone() };
        self.issue(world, node, call, move |h, _| {
            Box::pin(async move {
                match h.endpoint(APP, &ep).await {
                    Ok(e) => {
                        Answer::Read(e.attributes.and_then(|a| a.get("v")?.first()?.parse().ok()))
                    }
                    Err(herald_actors::ServiceError::NotFound(m)) if m.contains("endpoint") => {
                        Answer::Read(None)
                    }
                    Err(e) => classify(&e),
                }
            })
        });
    }

    /// Creates the next immediate campaign on `node`; its id.
    pub fn campaign(&mut self, world: &World, node: NodeId) -> String {
        let id = format!("5eca{:028x}", self.next_campaign);
        self.next_campaign += 1;
        let call = Call::Campaign { id: id.clone() };
        let cid = id.clone();
        self.issue(world, node, call, move |h, _| {
            Box::pin(async move {
                match h
                    .create_campaign(APP, cid.clone(), "us-east-1", campaign_body(&cid))
                    .await
                {
                    Ok(_) => Answer::Ok,
                    Err(e) => classify(&e),
                }
            })
        });
        id
    }

    fn send(&mut self, world: &mut World, node: NodeId) {
        // Settle the answers of earlier sends: retry the unknown ones.
        for op in self.history.ops() {
            if let (Call::Send { to, request }, Some((_, Answer::Unknown(_)))) =
                (&op.call, &op.done)
            {
                if !self.retry.iter().any(|(_, r, _)| r == request) {
                    self.retry.push((to.clone(), request.clone(), 1));
                }
            }
        }
        let pick = self
            .retry
            .iter()
            .position(|(_, _, tries)| *tries < SEND_TRIES_MAX);
        let (to, request) = match pick {
            Some(i) if world.rng.chance(500) => {
                self.retry[i].2 += 1;
                (self.retry[i].0.clone(), self.retry[i].1.clone())
            }
            _ => {
                let n = self.next_send;
                self.next_send += 1;
                (format!("direct-{n}@sim.example"), format!("req-{n}"))
            }
        };
        let call = Call::Send {
            to: to.clone(),
            request: request.clone(),
        };
        self.issue(world, node, call, move |h, _| {
            Box::pin(async move {
                let keys = RequestKeys {
                    request_id: request.clone(),
                    invocation_id: None,
                };
                match h
                    .send_messages(APP, direct_email(&to, &request), keys)
                    .await
                {
                    Ok(r) => Answer::Sent(
                        r.result
                            .and_then(|m| m.get(&to).map(|x| x.delivery_status.clone()))
                            .unwrap_or_else(|| "NO_RESULT".into()),
                    ),
                    Err(e) => classify(&e),
                }
            })
        });
    }

    fn issue<F>(&self, world: &World, node: NodeId, call: Call, f: F)
    where
        F: FnOnce(
                Arc<herald_actors::Herald<herald_storage::MemEngine>>,
                u64,
            ) -> futures::future::BoxFuture<'static, Answer>
            + Send
            + 'static,
    {
        let Some(live) = world.node(node).live() else {
            return;
        };
        let now = world.now();
        world.trace.record(format!("invoke node={node} {call:?}"));
        let id = self.history.invoke(node, call, now);
        let history = self.history.clone();
        let trace = world.trace.clone();
        let clock = world.now_ms.clone();
        let herald = live.herald().clone();
        world.node(node).spawn(async move {
            let answer = f(herald, id).await;
            let at = clock.load(std::sync::atomic::Ordering::SeqCst);
            trace.record(format!("answer op={id} {answer:?}"));
            history.complete(id, at, answer);
        });
    }
}

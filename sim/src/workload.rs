//! Clients doing what users do, against whichever node is up: endpoint
//! upserts, gets and opt-outs, PutEvents that trigger the event campaign,
//! campaigns (immediate or scheduled, some with quiet time), and direct
//! emails. A send or an event whose answer was unknown is retried under the
//! same request or event id on another node. Each call runs as a task on
//! the node it was sent to, so a crash of that node leaves it unanswered.

use std::collections::BTreeMap;
use std::sync::Arc;

use herald_actors::sends::RequestKeys;
use herald_model::message::{
    AddressConfiguration, DirectMessageConfiguration, EmailMessage, MessageRequest, SimpleEmail,
    SimpleEmailPart,
};
use herald_model::wire::{EndpointDemographic, EndpointRequest, EventsBatch, EventsRequest};
use herald_storage::NodeId;

use crate::history::{classify, Answer, Call, History, Op};
use crate::rng::SimRng;
use crate::world::World;

/// The one app every client uses.
pub const APP: &str = "5e1a0000000000000000000000000001";
/// Its segment of every endpoint with an email address.
pub const SEGMENT: &str = "5e9a0000000000000000000000000001";
/// Its event-triggered campaign (created at setup).
pub const EVENT_CAMPAIGN: &str = "5eeb0000000000000000000000000001";
/// The event type that triggers it.
pub const EVENT_TYPE: &str = "sim.buy";
/// Campaigns created during the chaos phase at most.
const CAMPAIGNS_MAX: u64 = 3;
/// Endpoints `opt-k` that are opted out during the run (never back in).
pub const OPTED: u64 = 3;
/// Time zones of the `ep-k` endpoints (`k % 3`) and their UTC offsets in
/// hours on the simulated date (late November: no daylight saving time).
pub const ZONES: [(&str, i64); 3] = [("UTC", 0), ("Asia/Tokyo", 9), ("America/New_York", -5)];
/// Quiet time of the campaigns that have one: 22:00 to 07:00 local time,
/// in minutes of the day.
pub const QUIET_MINUTES: (i64, i64) = (22 * 60, 7 * 60);

/// The segment's definition.
pub fn segment_body() -> serde_json::Value {
    serde_json::json!({
        "Name": "every email endpoint",
        "Dimensions": {"Demographic": {"Channel": {"Values": ["EMAIL"]}}}
    })
}

/// What a campaign was created with, for the oracle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignSpec {
    pub id: String,
    /// Schedule.QuietTime 22:00–07:00.
    pub quiet: bool,
    /// StartTime (epoch ms) when scheduled; immediate otherwise.
    pub start_ms: Option<i64>,
}

/// An email campaign to the segment; its subject names it.
pub fn campaign_body(spec: &CampaignSpec) -> serde_json::Value {
    let start = spec.start_ms.map_or_else(
        || "IMMEDIATE".to_owned(),
        herald_model::time::format_iso8601_ms,
    );
    let mut schedule = serde_json::json!({"StartTime": start, "Frequency": "ONCE"});
    if spec.quiet {
        schedule["QuietTime"] = serde_json::json!({"Start": "22:00", "End": "07:00"});
    }
    serde_json::json!({
        "Name": spec.id,
        "SegmentId": SEGMENT,
        "MessageConfiguration": {"EmailMessage": {"Title": campaign_subject(&spec.id), "Body": "news"}},
        "Schedule": schedule
    })
}

/// Per-endpoint caps of the event campaign (0: none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventLimits {
    pub daily: u32,
    pub total: u32,
}

impl EventLimits {
    /// What one endpoint may receive from the campaign within a day.
    pub fn cap(self) -> Option<u32> {
        [self.daily, self.total]
            .into_iter()
            .filter(|c| *c > 0)
            .min()
    }
}

/// The event-triggered campaign: every `sim.buy` event of a segment member
/// sends it one email, within the caps.
pub fn event_campaign_body(limits: EventLimits, start_ms: i64) -> serde_json::Value {
    let mut caps = serde_json::Map::new();
    if limits.daily > 0 {
        caps.insert("Daily".into(), limits.daily.into());
    }
    if limits.total > 0 {
        caps.insert("Total".into(), limits.total.into());
    }
    serde_json::json!({
        "Name": "on every purchase",
        "SegmentId": SEGMENT,
        "MessageConfiguration": {"EmailMessage": {"Title": campaign_subject(EVENT_CAMPAIGN), "Body": "thanks"}},
        "Limits": caps,
        "Schedule": {
            "StartTime": herald_model::time::format_iso8601_ms(start_ms),
            "Frequency": "EVENT",
            "EventFilter": {
                "FilterType": "ENDPOINT",
                "Dimensions": {"EventType": {"DimensionType": "INCLUSIVE", "Values": [EVENT_TYPE]}}
            }
        }
    })
}

pub fn campaign_subject(id: &str) -> String {
    format!("campaign {id}")
}

/// The email address of endpoint `ep`.
pub fn address(ep: &str) -> String {
    format!("{ep}@sim.example")
}

/// The time zone of endpoint `ep` (the `opt-k` ones have none).
pub fn zone_of(ep: &str) -> Option<(&'static str, i64)> {
    let k: usize = ep.strip_prefix("ep-")?.parse().ok()?;
    Some(ZONES[k % ZONES.len()])
}

pub fn opted_id(k: u64) -> String {
    format!("opt-{k}")
}

/// Calls in flight at most.
const IN_FLIGHT_MAX: usize = 16;
/// Tries of one send request (the first plus retries).
const SEND_TRIES_MAX: u32 = 3;

/// Requests whose answer was unknown, retried under the same id:
/// (target, id, tries so far).
#[derive(Default)]
struct Retries(Vec<(String, String, u32)>);

impl Retries {
    /// Notes the unknown answers among `ops` (`key` names a call's target
    /// and id, for the calls it retries), then, half the time while one
    /// has tries left, picks it to go again.
    fn next(
        &mut self,
        ops: &[Op],
        rng: &mut SimRng,
        key: impl Fn(&Call) -> Option<(&str, &str)>,
    ) -> Option<(String, String)> {
        for op in ops {
            if let (Some((target, id)), Some((_, Answer::Unknown(_)))) = (key(&op.call), &op.done) {
                if !self.0.iter().any(|(_, r, _)| r == id) {
                    self.0.push((target.to_owned(), id.to_owned(), 1));
                }
            }
        }
        let i = self
            .0
            .iter()
            .position(|(_, _, tries)| *tries < SEND_TRIES_MAX)?;
        if !rng.chance(500) {
            return None;
        }
        self.0[i].2 += 1;
        Some((self.0[i].0.clone(), self.0[i].1.clone()))
    }
}

pub struct Workload {
    pub endpoints: u64,
    next_v: u64,
    next_send: u64,
    pub next_campaign: u64,
    next_event: u64,
    /// Sends whose answer was unknown (address, request id).
    retry: Retries,
    /// Events whose answer was unknown (endpoint, event id).
    retry_events: Retries,
    /// Every campaign created (or tried), by id.
    pub campaigns: BTreeMap<String, CampaignSpec>,
    pub history: History,
}

pub fn endpoint_id(k: u64) -> String {
    format!("ep-{k}")
}

fn demographic(ep: &str) -> Option<EndpointDemographic> {
    zone_of(ep).map(|(zone, _)| EndpointDemographic {
        timezone: Some(zone.into()),
        ..Default::default()
    })
}

fn endpoint_write(k: u64, v: u64) -> EndpointRequest {
    let ep = endpoint_id(k);
    EndpointRequest {
        address: Some(address(&ep)),
        channel_type: Some("EMAIL".into()),
        attributes: Some(BTreeMap::from([("v".to_owned(), vec![v.to_string()])])),
        demographic: demographic(&ep),
        ..Default::default()
    }
}

/// An `opt-k` endpoint as setup creates it (not opted out).
pub fn opted_endpoint(k: u64) -> EndpointRequest {
    EndpointRequest {
        address: Some(address(&opted_id(k))),
        channel_type: Some("EMAIL".into()),
        ..Default::default()
    }
}

/// PutEvents of one triggering event for `ep`, stamped `at_ms`.
fn event_request(ep: &str, event: &str, at_ms: i64) -> EventsRequest {
    let batch = serde_json::json!({
        "Endpoint": {
            "Address": address(ep),
            "ChannelType": "EMAIL",
        },
        "Events": {event: {
            "EventType": EVENT_TYPE,
            "Timestamp": herald_model::time::format_iso8601_ms(at_ms),
        }}
    });
    let mut batch: EventsBatch = serde_json::from_value(batch).expect("a valid events batch");
    if let Some(e) = batch.endpoint.as_mut() {
        e.demographic = demographic(ep);
    }
    EventsRequest {
        batch_item: Some(BTreeMap::from([(ep.to_owned(), batch)])),
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
            next_event: 0,
            retry: Retries::default(),
            retry_events: Retries::default(),
            campaigns: BTreeMap::new(),
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
        if roll < 35 {
            let k = world.rng.range(0, self.endpoints);
            self.write(world, node, k);
        } else if roll < 65 {
            let k = world.rng.range(0, self.endpoints);
            self.read(world, node, k);
        } else if roll < 67 && self.next_campaign < CAMPAIGNS_MAX {
            let quiet = world.rng.chance(500);
            let start_ms = if world.rng.chance(400) {
                let wait = world.rng.range(1_000, 6_000) as i64;
                Some(crate::world::EPOCH_MS + world.now() + wait)
            } else {
                None
            };
            let spec = CampaignSpec {
                id: self.next_campaign_id(),
                quiet,
                start_ms,
            };
            self.campaign(world, node, spec);
        } else if roll < 70 {
            self.opt_out(world, node);
        } else if roll < 85 {
            self.event(world, node);
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

    /// The id of the next campaign.
    pub fn next_campaign_id(&mut self) -> String {
        let id = format!("5eca{:028x}", self.next_campaign);
        self.next_campaign += 1;
        id
    }

    /// Creates campaign `spec` on `node`.
    pub fn campaign(&mut self, world: &World, node: NodeId, spec: CampaignSpec) {
        let call = Call::Campaign {
            id: spec.id.clone(),
        };
        self.campaigns.insert(spec.id.clone(), spec.clone());
        self.issue(world, node, call, move |h, _| {
            Box::pin(async move {
                match h
                    .create_campaign(APP, spec.id.clone(), "us-east-1", campaign_body(&spec))
                    .await
                {
                    Ok(_) => Answer::Ok,
                    Err(e) => classify(&e),
                }
            })
        });
    }

    /// Opts one `opt-k` endpoint out (one not yet known to be).
    fn opt_out(&mut self, world: &mut World, node: NodeId) {
        let ops = self.history.ops();
        let open: Vec<u64> = (0..OPTED)
            .filter(|k| {
                let ep = opted_id(*k);
                !ops.iter()
                    .any(|o| o.acked() && o.call == Call::OptOut { ep: ep.clone() })
            })
            .collect();
        let Some(&k) = world.rng.pick(&open) else {
            return;
        };
        let ep = opted_id(k);
        let call = Call::OptOut { ep: ep.clone() };
        self.issue(world, node, call, move |h, id| {
            Box::pin(async move {
                let req = EndpointRequest {
                    opt_out: Some("ALL".into()),
                    ..Default::default()
                };
                match h.update_endpoint(APP, &ep, req, &format!("o{id}")).await {
                    Ok(()) => Answer::Ok,
                    Err(e) => classify(&e),
                }
            })
        });
    }

    /// PutEvents of one triggering event (or the retry of an unknown one,
    /// under the same event id).
    fn event(&mut self, world: &mut World, node: NodeId) {
        let ops = self.history.ops();
        let retry = self.retry_events.next(&ops, &mut world.rng, |c| match c {
            Call::Event { ep, event } => Some((ep.as_str(), event.as_str())),
            _ => None,
        });
        let (ep, event) = match retry {
            Some(r) => r,
            None => {
                let n = self.next_event;
                self.next_event += 1;
                let k = world.rng.range(0, self.endpoints + OPTED);
                let ep = if k < self.endpoints {
                    endpoint_id(k)
                } else {
                    opted_id(k - self.endpoints)
                };
                (ep, format!("evt-{n}"))
            }
        };
        let call = Call::Event {
            ep: ep.clone(),
            event: event.clone(),
        };
        let at = crate::world::EPOCH_MS + world.now();
        self.issue(world, node, call, move |h, id| {
            Box::pin(async move {
                let req = event_request(&ep, &event, at);
                match h.put_events(APP, req, &format!("e{id}")).await {
                    Ok(r) => {
                        let item = r
                            .results
                            .as_ref()
                            .and_then(|m| m.get(&ep))
                            .and_then(|i| i.events_item_response.as_ref())
                            .and_then(|m| m.get(&event));
                        match item.and_then(|i| i.status_code) {
                            Some(202) => Answer::Ok,
                            other => Answer::Rejected(format!("event answered {other:?}")),
                        }
                    }
                    Err(e) => classify(&e),
                }
            })
        });
    }

    fn send(&mut self, world: &mut World, node: NodeId) {
        // Settle the answers of earlier sends: retry the unknown ones.
        let ops = self.history.ops();
        let retry = self.retry.next(&ops, &mut world.rng, |c| match c {
            Call::Send { to, request } => Some((to.as_str(), request.as_str())),
            _ => None,
        });
        let (to, request) = retry.unwrap_or_else(|| {
            let n = self.next_send;
            self.next_send += 1;
            (address(&format!("direct-{n}")), format!("req-{n}"))
        });
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

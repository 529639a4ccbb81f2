//! Event streams: the API (PutEventStream, GetEventStream,
//! DeleteEventStream) and the node's publisher.
//!
//! The node that commits events (PutEvents, and the delivery events of its
//! sends) hands their stream records to [`EventStreamer::offer`]; a
//! background task ([`EventStreamer::run`]) publishes each app's records
//! in batches of at most [`BATCH_MAX`]: POSTed as `{"records": [...]}` to an
//! `http(s)://` destination, signed like custom-channel webhooks (the app's
//! webhook secret), retried with backoff; or appended as NDJSON to
//! `herald-events-<node>-<UTC hour>.ndjson` (a new file each hour and every
//! [`FILE_BYTES_MAX`]) in a `file://` directory. Each app's buffer holds at
//! most [`BUFFER_MAX`] records; what does not fit, or cannot be delivered,
//! is dropped, counted per app ([`EventStreamer::dropped`],
//! `herald_event_stream_dropped_total`) and logged. The buffer is memory
//! only: records not yet published when a node stops are lost (delivery is
//! at most once).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald_channels::transport::OutgoingWebhook;
use herald_model::stream::{self, Destination, EventStream, WriteEventStream};
use herald_model::time;
use herald_storage::{CmdResult, Command, KvEngine, META_GROUP};
use serde_json::Value;

use crate::clock::Clock;
use crate::delivery::Dispatcher;
use crate::service::{Herald, Result, ServiceError};

/// Records buffered per app at most.
pub const BUFFER_MAX: usize = 10_000;
/// Records per batch at most.
pub const BATCH_MAX: usize = 500;
/// Bytes per NDJSON file at most (a new file follows).
pub const FILE_BYTES_MAX: u64 = 64 << 20;
/// Delivery attempts of one batch.
const ATTEMPTS_MAX: u32 = 4;

struct AppBuffer {
    destination: Destination,
    secret: String,
    records: VecDeque<Value>,
    dropped: u64,
    published: u64,
}

/// The node's publisher of event streams.
pub struct EventStreamer {
    buffers: Mutex<BTreeMap<String, AppBuffer>>,
    wake: tokio::sync::Notify,
    node_id: u64,
}

impl EventStreamer {
    pub fn new(node_id: u64) -> Self {
        Self {
            buffers: Mutex::new(BTreeMap::new()),
            wake: tokio::sync::Notify::new(),
            node_id,
        }
    }

    /// Queues an app's records for its destination.
    pub fn offer(
        &self,
        app_id: &str,
        destination: Destination,
        secret: String,
        records: Vec<Value>,
    ) {
        if records.is_empty() {
            return;
        }
        let mut b = self.buffers.lock().expect("stream buffers");
        let buf = b.entry(app_id.to_owned()).or_insert_with(|| AppBuffer {
            destination: destination.clone(),
            secret: secret.clone(),
            records: VecDeque::new(),
            dropped: 0,
            published: 0,
        });
        buf.destination = destination;
        buf.secret = secret;
        let mut dropped = 0u64;
        for r in records {
            if buf.records.len() >= BUFFER_MAX {
                dropped += 1;
            } else {
                buf.records.push_back(r);
            }
        }
        if dropped > 0 {
            buf.dropped += dropped;
            metrics::counter!("herald_event_stream_dropped_total").increment(dropped);
            tracing::warn!(app_id, dropped, "event stream buffer full; records dropped");
        }
        let full = buf.records.len() >= BATCH_MAX;
        drop(b);
        if full {
            self.wake.notify_one();
        }
    }

    /// Records of an app dropped so far on this node.
    pub fn dropped(&self, app_id: &str) -> u64 {
        self.buffers
            .lock()
            .expect("stream buffers")
            .get(app_id)
            .map_or(0, |b| b.dropped)
    }

    /// Records of an app published so far from this node.
    pub fn published(&self, app_id: &str) -> u64 {
        self.buffers
            .lock()
            .expect("stream buffers")
            .get(app_id)
            .map_or(0, |b| b.published)
    }

    /// Publishes buffered records every `interval` (sooner when a batch
    /// fills), until `stop` resolves; then publishes what is left once.
    pub async fn run(
        self: Arc<Self>,
        dispatcher: Arc<Dispatcher>,
        clock: Arc<dyn Clock>,
        interval: Duration,
        stop: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(stop);
        loop {
            let stopping = tokio::select! {
                _ = tokio::time::sleep(interval) => false,
                _ = self.wake.notified() => false,
                _ = &mut stop => true,
            };
            self.flush(&dispatcher, clock.as_ref()).await;
            if stopping {
                return;
            }
        }
    }

    /// Publishes every app's buffered records (batch by batch).
    pub async fn flush(&self, dispatcher: &Dispatcher, clock: &dyn Clock) {
        let apps: Vec<String> = self
            .buffers
            .lock()
            .expect("stream buffers")
            .keys()
            .cloned()
            .collect();
        for app_id in apps {
            loop {
                let batch = {
                    let mut b = self.buffers.lock().expect("stream buffers");
                    let Some(buf) = b.get_mut(&app_id) else { break };
                    if buf.records.is_empty() {
                        break;
                    }
                    let n = buf.records.len().min(BATCH_MAX);
                    let records: Vec<Value> = buf.records.drain(..n).collect();
                    (buf.destination.clone(), buf.secret.clone(), records)
                };
                let (destination, secret, records) = batch;
                let n = records.len() as u64;
                let ok = match &destination {
                    Destination::Dir(dir) => self.append(dir, &records, clock).await,
                    Destination::Http(url) => {
                        post(dispatcher, &app_id, url, &secret, &records).await
                    }
                };
                let mut b = self.buffers.lock().expect("stream buffers");
                if let Some(buf) = b.get_mut(&app_id) {
                    match &ok {
                        Ok(()) => buf.published += n,
                        Err(_) => buf.dropped += n,
                    }
                }
                drop(b);
                match ok {
                    Ok(()) => metrics::counter!("herald_event_stream_published_total").increment(n),
                    Err(e) => {
                        metrics::counter!("herald_event_stream_dropped_total").increment(n);
                        tracing::warn!(app_id, records = n, error = %e, "event stream batch not delivered; dropped");
                        break;
                    }
                }
            }
        }
    }

    /// Appends records to the directory's current NDJSON file.
    async fn append(
        &self,
        dir: &str,
        records: &[Value],
        clock: &dyn Clock,
    ) -> std::result::Result<(), String> {
        use tokio::io::AsyncWriteExt;
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| format!("creating {dir}: {e}"))?;
        let hour = time::format_iso8601_ms(clock.now_ms());
        // 2026-12-07T10:15:00.000Z -> 2026-12-07-10
        let hour = format!("{}-{}", &hour[..10], &hour[11..13]);
        let mut n = 0u32;
        let path = loop {
            let name = if n == 0 {
                format!("herald-events-{}-{hour}.ndjson", self.node_id)
            } else {
                format!("herald-events-{}-{hour}-{n}.ndjson", self.node_id)
            };
            let path = std::path::Path::new(dir).join(name);
            match tokio::fs::metadata(&path).await {
                Ok(m) if m.len() >= FILE_BYTES_MAX => n += 1,
                _ => break path,
            }
        };
        let mut body = Vec::new();
        for r in records {
            serde_json::to_writer(&mut body, r).map_err(|e| e.to_string())?;
            body.push(b'\n');
        }
        let mut f = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .await
            .map_err(|e| format!("opening {}: {e}", path.display()))?;
        f.write_all(&body)
            .await
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
        f.flush().await.map_err(|e| e.to_string())
    }
}

/// POSTs one batch, retrying temporary failures.
async fn post(
    dispatcher: &Dispatcher,
    app_id: &str,
    url: &str,
    secret: &str,
    records: &[Value],
) -> std::result::Result<(), String> {
    let body = serde_json::to_vec(&serde_json::json!({ "records": records }))
        .map_err(|e| e.to_string())?;
    let hook = OutgoingWebhook {
        message_id: String::new(),
        app_id: app_id.to_owned(),
        url: url.to_owned(),
        body,
        secret: secret.to_owned(),
    };
    let mut last = String::new();
    for attempt in 0..ATTEMPTS_MAX {
        match dispatcher.post_hook(&hook).await {
            Ok(_) => return Ok(()),
            Err(e) if e.is_retryable() => {
                last = e.to_string();
                tokio::time::sleep(Duration::from_millis(250 << attempt)).await;
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    Err(format!("gave up after {ATTEMPTS_MAX} attempts: {last}"))
}

fn no_stream(app_id: &str) -> ServiceError {
    ServiceError::NotFound(format!("application {app_id} has no event stream"))
}

impl<E: KvEngine> Herald<E> {
    pub async fn event_stream(&self, app_id: &str) -> Result<EventStream> {
        self.app(app_id)
            .await?
            .event_stream
            .ok_or_else(|| no_stream(app_id))
    }

    pub async fn put_event_stream(&self, app_id: &str, w: WriteEventStream) -> Result<EventStream> {
        let destination = stream::write_check(&w)?;
        if let Destination::Dir(dir) = &destination {
            if !crate::jobs::under_roots(dir, &self.cfg.jobs.file_roots) {
                return Err(ServiceError::BadRequest(format!(
                    "DestinationStreamArn: {dir} is not under a directory this server may write ({})",
                    self.cfg.jobs.file_roots.join(", ")
                )));
            }
        }
        self.app(app_id).await?;
        let s = EventStream {
            application_id: app_id.to_owned(),
            destination_stream_arn: w.destination_stream_arn.unwrap_or_default(),
            external_id: None,
            last_modified_date: self.now_iso(),
            last_updated_by: None,
            role_arn: w.role_arn.unwrap_or_default(),
        };
        let cmd = Command::SetEventStream {
            app_id: app_id.to_owned(),
            stream: Some(s),
        };
        match self.host.propose(META_GROUP, cmd).await? {
            CmdResult::EventStream(Some(s)) => {
                tracing::info!(app_id, destination = %s.destination_stream_arn, "event stream set");
                Ok(*s)
            }
            _ => Err(ServiceError::NotFound(format!(
                "application {app_id} not found"
            ))),
        }
    }

    pub async fn delete_event_stream(&self, app_id: &str) -> Result<EventStream> {
        self.app(app_id).await?;
        let cmd = Command::SetEventStream {
            app_id: app_id.to_owned(),
            stream: None,
        };
        match self.host.propose(META_GROUP, cmd).await? {
            CmdResult::EventStream(Some(s)) => Ok(*s),
            _ => Err(no_stream(app_id)),
        }
    }

    /// Hands committed events to the app's stream, if it has one (the
    /// caller's copy of the app record).
    pub(crate) fn stream_events<'a>(
        &self,
        app_id: &str,
        stream: Option<&EventStream>,
        events: impl IntoIterator<Item = (&'a str, &'a herald_model::wire::Event)>,
    ) {
        let (Some(streamer), Some(s)) = (self.streamer.get(), stream) else {
            return;
        };
        let Ok(destination) = stream::destination(&s.destination_stream_arn) else {
            return;
        };
        let now = self.clock.now_ms();
        let records: Vec<Value> = events
            .into_iter()
            .map(|(endpoint_id, ev)| {
                let at = ev
                    .timestamp
                    .as_deref()
                    .and_then(|t| time::parse_iso8601_ms(t).ok())
                    .unwrap_or(now);
                stream::record(&self.cfg.account, app_id, endpoint_id, ev, at, now)
            })
            .collect();
        streamer.offer(app_id, destination, self.webhook_secret(app_id), records);
    }

    /// Gives the node its stream publisher (once).
    pub fn set_streamer(&self, s: Arc<EventStreamer>) {
        let _ = self.streamer.set(s);
    }
}

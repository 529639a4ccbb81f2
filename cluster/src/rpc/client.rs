//! The calling side: one connection per (peer id, address), one stream per call.

use std::collections::hash_map::RandomState;
use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use quinn::{Connection, ConnectionError, Endpoint, VarInt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;
use tracing::{debug, warn};

use super::error::{RpcError, SetupError};
use super::frame::{encode_frame, read_frame, FrameError, DEFAULT_MAX_FRAME_BYTES};
use super::metric_names::{CLIENT_CALLS, CLIENT_CALL_SECONDS, CLIENT_CONNECTS};
use super::server::{Reply, CLOSE_NO_IDENTITY};
use super::tls::{node_dns_name, NodeIdentity};
use super::{transport_config, NodeId};

/// Client settings. [`ClientConfig::new`] gives the defaults.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Local UDP address (port 0 for any).
    pub bind: SocketAddr,
    pub identity: NodeIdentity,
    /// Calls in flight to one peer; more wait for a slot (within their deadline).
    pub max_in_flight_per_peer: usize,
    /// Largest request payload sent and response payload accepted.
    pub max_frame_bytes: u32,
    /// A connection that hears nothing for this long is dead (the lower of
    /// both ends' values applies). A peer that was SIGKILLed and restarted
    /// is reached again only after its old connection is declared dead: a
    /// new process cannot answer the old connection's packets.
    pub idle_timeout: Duration,
    pub keep_alive: Duration,
    /// A connection attempt (handshake included) is abandoned after this long.
    pub connect_timeout: Duration,
    /// Wait after the first failed connection attempt; doubles per failure, up to
    /// `backoff_max`, each wait drawn uniformly from its upper half (jitter).
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
}

impl ClientConfig {
    pub fn new(bind: SocketAddr, identity: NodeIdentity) -> Self {
        ClientConfig {
            bind,
            identity,
            max_in_flight_per_peer: 64,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            idle_timeout: Duration::from_secs(3),
            keep_alive: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(5),
            backoff_initial: Duration::from_millis(50),
            // A restarted peer is reached again within a second, before it
            // would campaign (the cluster holds a rejoining replica's
            // elections back for 2 x election_timeout_max).
            backoff_max: Duration::from_secs(1),
        }
    }
}

/// Connection state of one peer.
#[derive(Default)]
struct Link {
    conn: Option<Connection>,
    /// Set while a connection attempt runs; its sender is dropped when the attempt ends.
    connecting: Option<watch::Receiver<()>>,
    /// Consecutive failed attempts (a connection that dies before answering any call
    /// counts as one).
    failures: u32,
    retry_at: Option<Instant>,
    last_error: String,
}

struct Peer {
    id: NodeId,
    addr: SocketAddr,
    server_name: String,
    slots: Semaphore,
    link: Mutex<Link>,
    /// Whether the current connection has answered a call.
    proven: AtomicBool,
}

impl Peer {
    fn link(&self) -> MutexGuard<'_, Link> {
        // The lock is never held across an await or user code, so poisoning is not
        // expected; recover the state rather than propagate a panic.
        self.link.lock().unwrap_or_else(|p| p.into_inner())
    }
}

struct Inner {
    endpoint: Endpoint,
    quic: quinn::ClientConfig,
    config: ClientConfig,
    peers: Mutex<BTreeMap<(NodeId, SocketAddr), Arc<Peer>>>,
    closed: AtomicBool,
}

/// A handle for calling other nodes; cheap to clone (clones share connections).
#[derive(Clone)]
pub struct RpcClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RpcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcClient")
            .field("node", &self.inner.config.identity.node_id())
            .finish_non_exhaustive()
    }
}

enum Wait {
    Attempt(watch::Receiver<()>),
    Until(Instant),
}

impl RpcClient {
    /// Binds the client's UDP socket. Must be called within a tokio runtime.
    pub fn new(config: ClientConfig) -> Result<Self, SetupError> {
        let endpoint = Endpoint::client(config.bind).map_err(|source| SetupError::Bind {
            addr: config.bind,
            source,
        })?;
        Self::on_endpoint(config, endpoint)
    }

    /// A client that dials out from an existing endpoint, typically the node's
    /// [`super::RpcServer::endpoint`], so all of a node's QUIC traffic uses one
    /// UDP port (`config.bind` is ignored). Closing the client closes it.
    pub fn on_endpoint(config: ClientConfig, endpoint: Endpoint) -> Result<Self, SetupError> {
        if config.max_in_flight_per_peer == 0 {
            return Err(SetupError::Config(
                "max_in_flight_per_peer must be at least 1".into(),
            ));
        }
        let crypto = config.identity.quic_client_config()?;
        let mut quic = quinn::ClientConfig::new(Arc::new(crypto));
        quic.transport_config(Arc::new(transport_config(
            config.idle_timeout,
            config.keep_alive,
            0,
        )?));
        Ok(RpcClient {
            inner: Arc::new(Inner {
                endpoint,
                quic,
                config,
                peers: Mutex::new(BTreeMap::new()),
                closed: AtomicBool::new(false),
            }),
        })
    }

    /// This client's node id (what servers see as [`super::Caller::node`]).
    pub fn node_id(&self) -> NodeId {
        self.inner.config.identity.node_id()
    }

    /// The local UDP address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.endpoint.local_addr()
    }

    /// Calls node `peer` at `addr`, which must present a certificate for that node id.
    /// Everything, including waiting for an in-flight slot and (re)connecting, happens
    /// within `timeout`.
    pub async fn call<Req, Resp>(
        &self,
        peer: NodeId,
        addr: SocketAddr,
        request: &Req,
        timeout: Duration,
    ) -> Result<Resp, RpcError>
    where
        Req: Serialize + ?Sized,
        Resp: DeserializeOwned,
    {
        self.call_tracked(peer, addr, request, timeout, &AtomicBool::new(false))
            .await
    }

    /// [`Self::call`], also setting `sent` just before the request's first
    /// byte is handed to QUIC: a caller that drops the call while `sent` is
    /// still false knows the peer never saw the request.
    pub async fn call_tracked<Req, Resp>(
        &self,
        peer: NodeId,
        addr: SocketAddr,
        request: &Req,
        timeout: Duration,
        sent: &AtomicBool,
    ) -> Result<Resp, RpcError>
    where
        Req: Serialize + ?Sized,
        Resp: DeserializeOwned,
    {
        let started = Instant::now();
        let result = match encode_frame(request, self.inner.config.max_frame_bytes) {
            Err(e) => Err(RpcError::Encode(e)),
            Ok(frame) => {
                let deadline = started + timeout;
                let attempt = self.call_inner(peer, addr, &frame, deadline, sent);
                match tokio::time::timeout_at(deadline, attempt).await {
                    Ok(result) => result,
                    Err(_) => Err(RpcError::Timeout {
                        peer,
                        after: timeout,
                        sent: sent.load(Ordering::SeqCst),
                    }),
                }
            }
        };
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.outcome(),
        };
        metrics::counter!(CLIENT_CALLS, "outcome" => outcome).increment(1);
        metrics::histogram!(CLIENT_CALL_SECONDS, "outcome" => outcome)
            .record(started.elapsed().as_secs_f64());
        result
    }

    /// Closes every connection; later calls fail with [`RpcError::Closed`].
    pub fn close(&self) {
        self.inner.closed.store(true, Ordering::SeqCst);
        let peers: Vec<Arc<Peer>> = std::mem::take(&mut *self.peers()).into_values().collect();
        for peer in peers {
            peer.slots.close();
        }
        self.inner
            .endpoint
            .close(VarInt::from_u32(0), b"client closed");
    }

    /// Drops the connection to one peer (for a node removed from the cluster).
    pub fn forget(&self, peer: NodeId, addr: SocketAddr) {
        if let Some(peer) = self.peers().remove(&(peer, addr)) {
            if let Some(conn) = peer.link().conn.take() {
                conn.close(VarInt::from_u32(0), b"peer forgotten");
            }
        }
    }

    fn peers(&self) -> MutexGuard<'_, BTreeMap<(NodeId, SocketAddr), Arc<Peer>>> {
        self.inner.peers.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn peer(&self, id: NodeId, addr: SocketAddr) -> Arc<Peer> {
        self.peers()
            .entry((id, addr))
            .or_insert_with(|| {
                Arc::new(Peer {
                    id,
                    addr,
                    server_name: node_dns_name(id),
                    slots: Semaphore::new(self.inner.config.max_in_flight_per_peer),
                    link: Mutex::new(Link::default()),
                    proven: AtomicBool::new(false),
                })
            })
            .clone()
    }

    async fn call_inner<Resp: DeserializeOwned>(
        &self,
        id: NodeId,
        addr: SocketAddr,
        frame: &[u8],
        deadline: Instant,
        sent: &AtomicBool,
    ) -> Result<Resp, RpcError> {
        if self.inner.closed.load(Ordering::SeqCst) {
            return Err(RpcError::Closed);
        }
        let peer = self.peer(id, addr);
        let _slot = peer.slots.acquire().await.map_err(|_| RpcError::Closed)?;
        // A stream that cannot be opened means the connection died before anything was
        // sent: reconnect and try once more.
        let mut attempts = 0;
        let (conn, mut send, mut recv) = loop {
            let conn = self.connection(&peer, deadline).await?;
            match conn.open_bi().await {
                Ok((send, recv)) => break (conn, send, recv),
                Err(e) if attempts == 0 => {
                    debug!(peer = id, error = %e, "rpc stream could not be opened; reconnecting");
                    attempts += 1;
                }
                Err(e) => {
                    return Err(RpcError::Unreachable {
                        peer: id,
                        addr,
                        reason: e.to_string(),
                    })
                }
            }
        };
        let lost = |reason: String| match conn.close_reason() {
            // The server refused this client during the handshake: nothing was processed.
            Some(closed) if refused(&closed) => RpcError::Unreachable {
                peer: id,
                addr,
                reason: closed.to_string(),
            },
            closed => RpcError::ConnectionLost {
                peer: id,
                reason: closed.map_or(reason, |r| r.to_string()),
            },
        };
        sent.store(true, Ordering::SeqCst);
        send.write_all(frame)
            .await
            .map_err(|e| lost(e.to_string()))?;
        let _ = send.finish();
        let reply = read_frame::<_, Reply<Resp>>(&mut recv, self.inner.config.max_frame_bytes)
            .await
            .map_err(|e| match e {
                FrameError::Io(io) => lost(io.to_string()),
                FrameError::Truncated if conn.close_reason().is_some() => lost(e.to_string()),
                other => RpcError::Protocol {
                    peer: id,
                    source: other,
                },
            })?;
        if !peer.proven.load(Ordering::Relaxed) {
            peer.proven.store(true, Ordering::Relaxed);
            peer.link().failures = 0;
        }
        match reply {
            Reply::Ok(response) => Ok(response),
            Reply::Err { kind, message } => Err(RpcError::Remote {
                peer: id,
                kind,
                message,
            }),
        }
    }

    /// A live connection to `peer`, connecting if needed. Connection attempts run in their
    /// own task (so a short deadline does not abort a handshake other calls will use);
    /// after a failure the next attempt waits for the backoff, and a call whose deadline
    /// comes first gets [`RpcError::Unreachable`] at once.
    async fn connection(
        &self,
        peer: &Arc<Peer>,
        deadline: Instant,
    ) -> Result<Connection, RpcError> {
        loop {
            let wait = {
                let mut link = peer.link();
                if let Some(conn) = &link.conn {
                    match conn.close_reason() {
                        None => return Ok(conn.clone()),
                        Some(reason) => {
                            debug!(peer = peer.id, %reason, "rpc connection lost");
                            link.conn = None;
                            if !peer.proven.load(Ordering::Relaxed) {
                                // died before answering anything (e.g. refused identity)
                                let reason = reason.to_string();
                                record_failure(&self.inner.config, peer, &mut link, reason);
                            }
                        }
                    }
                }
                let now = Instant::now();
                if let Some(attempt) = &link.connecting {
                    Wait::Attempt(attempt.clone())
                } else if let Some(at) = link.retry_at.filter(|at| *at > now) {
                    if at >= deadline {
                        return Err(RpcError::Unreachable {
                            peer: peer.id,
                            addr: peer.addr,
                            reason: link.last_error.clone(),
                        });
                    }
                    Wait::Until(at)
                } else {
                    let (done, attempt) = watch::channel(());
                    link.connecting = Some(attempt.clone());
                    tokio::spawn(connect(self.inner.clone(), peer.clone(), done));
                    Wait::Attempt(attempt)
                }
            };
            match wait {
                Wait::Attempt(mut attempt) => {
                    // Err once the attempt's sender is dropped, i.e. it has finished.
                    let _ = attempt.changed().await;
                }
                Wait::Until(at) => tokio::time::sleep_until(at).await,
            }
        }
    }
}

/// One connection attempt; updates the peer's link, then drops `done` to wake waiters.
async fn connect(inner: Arc<Inner>, peer: Arc<Peer>, done: watch::Sender<()>) {
    let attempt = async {
        let connecting = inner
            .endpoint
            .connect_with(inner.quic.clone(), peer.addr, &peer.server_name)
            .map_err(|e| e.to_string())?;
        match tokio::time::timeout(inner.config.connect_timeout, connecting).await {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(_) => Err(format!(
                "no handshake within {:?}",
                inner.config.connect_timeout
            )),
        }
    };
    let result = attempt.await;
    let mut link = peer.link();
    link.connecting = None;
    match result {
        Ok(conn) => {
            metrics::counter!(CLIENT_CONNECTS, "result" => "ok").increment(1);
            debug!(peer = peer.id, addr = %peer.addr, "rpc connected");
            if inner.closed.load(Ordering::SeqCst) {
                conn.close(VarInt::from_u32(0), b"client closed");
            } else {
                peer.proven.store(false, Ordering::Relaxed);
                link.retry_at = None;
                link.conn = Some(conn);
            }
        }
        Err(reason) => {
            metrics::counter!(CLIENT_CONNECTS, "result" => "error").increment(1);
            record_failure(&inner.config, &peer, &mut link, reason);
        }
    }
    drop(link);
    drop(done);
}

/// Whether a connection was closed because the server refused this client's identity:
/// a TLS alert (QUIC crypto error 0x100-0x1ff) or the server's no-identity close.
fn refused(reason: &ConnectionError) -> bool {
    match reason {
        ConnectionError::ConnectionClosed(close) => {
            (0x100..0x200).contains(&u64::from(close.error_code))
        }
        ConnectionError::ApplicationClosed(close) => {
            close.error_code == VarInt::from_u32(CLOSE_NO_IDENTITY)
        }
        _ => false,
    }
}

/// Notes a failed attempt and schedules the next one.
fn record_failure(config: &ClientConfig, peer: &Peer, link: &mut Link, reason: String) {
    link.failures = link.failures.saturating_add(1);
    let delay = backoff(
        config.backoff_initial,
        config.backoff_max,
        link.failures,
        jitter(),
    );
    link.retry_at = Some(Instant::now() + delay);
    warn!(
        peer = peer.id,
        addr = %peer.addr,
        failures = link.failures,
        retry_in = ?delay,
        error = %reason,
        "rpc connection failed"
    );
    link.last_error = reason;
}

/// The wait before the next attempt after `failures` consecutive failures:
/// `initial * 2^(failures-1)` capped at `max`, scaled into its upper half by `jitter`
/// (in [0, 1)).
fn backoff(initial: Duration, max: Duration, failures: u32, jitter: f64) -> Duration {
    let exponent = failures.saturating_sub(1).min(20);
    let full = initial.saturating_mul(1u32 << exponent).min(max);
    full / 2 + full.mul_f64(jitter.clamp(0.0, 1.0) / 2.0)
}

/// A value in [0, 1) that differs between calls and processes (std's per-instance random
/// hasher keys; no extra dependency for a little jitter).
fn jitter() -> f64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod backoff_tests {
    use super::*;

    #[test]
    fn backoff_doubles_is_capped_and_jitters_within_the_upper_half() {
        let initial = Duration::from_millis(100);
        let max = Duration::from_secs(2);
        assert_eq!(backoff(initial, max, 1, 0.0), Duration::from_millis(50));
        assert_eq!(backoff(initial, max, 1, 1.0), Duration::from_millis(100));
        assert_eq!(backoff(initial, max, 3, 0.0), Duration::from_millis(200));
        assert_eq!(backoff(initial, max, 30, 1.0), max);
        assert_eq!(backoff(initial, max, u32::MAX, 0.0), max / 2);
        let draws: Vec<f64> = (0..16).map(|_| jitter()).collect();
        assert!(draws.iter().all(|j| (0.0..1.0).contains(j)));
        assert!(
            draws.windows(2).any(|w| w[0] != w[1]),
            "jitter never varied"
        );
    }
}

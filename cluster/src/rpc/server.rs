//! The serving side: accepts mutually authenticated connections and runs a handler per
//! request stream.

use std::any::Any;
use std::future::Future;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use quinn::{Connection, Endpoint, RecvStream, SendStream, VarInt};
use rustls::pki_types::CertificateDer;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::error::{RemoteErrorKind, SetupError};
use super::frame::{encode_frame, read_frame, FrameError, DEFAULT_MAX_FRAME_BYTES};
use super::metric_names::{SERVER_CONNECTIONS, SERVER_REQUESTS, SERVER_REQUEST_SECONDS};
use super::tls::{node_id_from_cert, CertError, NodeIdentity};
use super::{transport_config, NodeId};

/// Application close code: the server is shutting down.
pub(crate) const CLOSE_SHUTDOWN: u32 = 1;
/// Application close code: the client's certificate names no node.
pub(crate) const CLOSE_NO_IDENTITY: u32 = 2;
/// How long shutdown waits for close frames to reach peers.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// Who is calling: the node id from the client's verified certificate, and its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub node: NodeId,
    pub addr: SocketAddr,
}

/// The payload of every response frame.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Reply<T> {
    Ok(T),
    Err {
        kind: RemoteErrorKind,
        message: String,
    },
}

/// Serves one request. Implemented for every `Fn(Caller, Req) -> impl Future<Output = Resp>`.
///
/// The future is dropped (cancelled) if the caller gives up on the call (its deadline
/// passed or its connection closed) or the server shuts down past its grace period, so it
/// must be cancel-safe or hand its work to a task of its own.
pub trait Handler<Req, Resp>: Send + Sync + 'static {
    fn handle(&self, caller: Caller, request: Req) -> impl Future<Output = Resp> + Send;
}

impl<F, Fut, Req, Resp> Handler<Req, Resp> for F
where
    F: Fn(Caller, Req) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Resp> + Send,
{
    fn handle(&self, caller: Caller, request: Req) -> impl Future<Output = Resp> + Send {
        self(caller, request)
    }
}

/// Server settings. [`ServerConfig::new`] gives the defaults.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub bind: SocketAddr,
    pub identity: NodeIdentity,
    /// Concurrent request streams per connection (QUIC stream credit; more wait).
    pub max_concurrent_streams: u32,
    /// Concurrent connections (handshakes included); more are refused.
    pub max_connections: usize,
    /// Largest request payload accepted and response payload sent.
    pub max_frame_bytes: u32,
    /// A connection silent this long is closed (keep-alives prevent it while both live).
    pub idle_timeout: Duration,
    pub keep_alive: Duration,
}

impl ServerConfig {
    pub fn new(bind: SocketAddr, identity: NodeIdentity) -> Self {
        ServerConfig {
            bind,
            identity,
            max_concurrent_streams: 256,
            max_connections: 1024,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            idle_timeout: Duration::from_secs(3),
            keep_alive: Duration::from_secs(1),
        }
    }
}

struct Shared<H, Req, Resp> {
    handler: H,
    max_frame_bytes: u32,
    in_flight: Arc<AtomicUsize>,
    connections: Arc<Semaphore>,
    _types: PhantomData<fn(Req) -> Resp>,
}

/// Counts a request as in flight until dropped; holds a clone of the drain sender so
/// shutdown can wait for every request task to end.
struct InFlight {
    count: Arc<AtomicUsize>,
    _alive: mpsc::Sender<()>,
}

impl InFlight {
    fn new(count: &Arc<AtomicUsize>, alive: &mpsc::Sender<()>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        InFlight {
            count: count.clone(),
            _alive: alive.clone(),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A running RPC server. Dropping it closes every connection at once; prefer
/// [`RpcServer::shutdown`].
#[derive(Debug)]
pub struct RpcServer {
    endpoint: Endpoint,
    local_addr: SocketAddr,
    node_id: NodeId,
    stop: watch::Sender<bool>,
    accept_task: Option<JoinHandle<()>>,
    drained: mpsc::Receiver<()>,
    in_flight: Arc<AtomicUsize>,
}

impl RpcServer {
    /// Binds the UDP socket and starts accepting. Must be called within a tokio runtime.
    pub fn bind<Req, Resp, H>(config: ServerConfig, handler: H) -> Result<Self, SetupError>
    where
        Req: DeserializeOwned + Send + 'static,
        Resp: Serialize + Send + 'static,
        H: Handler<Req, Resp>,
    {
        if config.max_connections == 0 || config.max_concurrent_streams == 0 {
            return Err(SetupError::Config(
                "max_connections and max_concurrent_streams must be at least 1".into(),
            ));
        }
        let crypto = config.identity.quic_server_config()?;
        let mut server_config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        server_config.transport_config(Arc::new(transport_config(
            config.idle_timeout,
            config.keep_alive,
            config.max_concurrent_streams,
        )?));
        let endpoint =
            Endpoint::server(server_config, config.bind).map_err(|source| SetupError::Bind {
                addr: config.bind,
                source,
            })?;
        let local_addr = endpoint.local_addr().map_err(|source| SetupError::Bind {
            addr: config.bind,
            source,
        })?;
        let in_flight = Arc::new(AtomicUsize::new(0));
        let shared = Arc::new(Shared {
            handler,
            max_frame_bytes: config.max_frame_bytes,
            in_flight: in_flight.clone(),
            connections: Arc::new(Semaphore::new(config.max_connections)),
            _types: PhantomData,
        });
        let (stop, stop_rx) = watch::channel(false);
        let (alive, drained) = mpsc::channel(1);
        let accept_task = tokio::spawn(accept_loop(endpoint.clone(), shared, stop_rx, alive));
        info!(node = config.identity.node_id(), %local_addr, "rpc server listening");
        Ok(RpcServer {
            endpoint,
            local_addr,
            node_id: config.identity.node_id(),
            stop,
            accept_task: Some(accept_task),
            drained,
            in_flight,
        })
    }

    /// The bound address (useful after binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The QUIC endpoint, for a client that should dial from the same port
    /// ([`super::RpcClient::on_endpoint`]).
    pub fn endpoint(&self) -> Endpoint {
        self.endpoint.clone()
    }

    /// This server's node id.
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// Requests being handled right now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Stops accepting connections and streams, waits up to `grace` for requests already
    /// being handled to be answered, then closes every connection. Returns how many
    /// requests were still unanswered when the grace period ended (they are cancelled).
    /// Calls whose streams were opened but not yet accepted fail on the client with
    /// [`super::RpcError::ConnectionLost`].
    pub async fn shutdown(mut self, grace: Duration) -> usize {
        self.endpoint.set_server_config(None);
        let _ = self.stop.send(true);
        if let Some(task) = self.accept_task.take() {
            let _ = task.await;
        }
        // Every request task holds a sender; recv() yields None once all are gone.
        let _ = tokio::time::timeout(grace, self.drained.recv()).await;
        let unfinished = self.in_flight.load(Ordering::SeqCst);
        self.endpoint
            .close(VarInt::from_u32(CLOSE_SHUTDOWN), b"server shutting down");
        let _ = tokio::time::timeout(CLOSE_WAIT, self.endpoint.wait_idle()).await;
        info!(node = self.node_id, unfinished, "rpc server stopped");
        unfinished
    }
}

impl Drop for RpcServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        self.endpoint
            .close(VarInt::from_u32(CLOSE_SHUTDOWN), b"server shutting down");
    }
}

/// Resolves once shutdown is requested (or the server is gone).
async fn stopping(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

async fn accept_loop<H, Req, Resp>(
    endpoint: Endpoint,
    shared: Arc<Shared<H, Req, Resp>>,
    mut stop: watch::Receiver<bool>,
    alive: mpsc::Sender<()>,
) where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
    H: Handler<Req, Resp>,
{
    loop {
        let incoming = tokio::select! {
            biased;
            _ = stopping(&mut stop) => break,
            incoming = endpoint.accept() => match incoming {
                Some(incoming) => incoming,
                None => break,
            },
        };
        let Ok(slot) = shared.connections.clone().try_acquire_owned() else {
            metrics::counter!(SERVER_CONNECTIONS, "result" => "over_limit").increment(1);
            warn!(remote = %incoming.remote_address(), "rpc connection refused: too many");
            incoming.refuse();
            continue;
        };
        tokio::spawn(serve_connection(
            incoming,
            shared.clone(),
            stop.clone(),
            alive.clone(),
            slot,
        ));
    }
}

/// The node id of a connection's verified client certificate.
fn peer_node_id(conn: &Connection) -> Result<NodeId, CertError> {
    let certs = conn
        .peer_identity()
        .and_then(|any| any.downcast::<Vec<CertificateDer<'static>>>().ok())
        .ok_or(CertError::NoNodeId)?;
    node_id_from_cert(certs.first().ok_or(CertError::NoNodeId)?)
}

async fn serve_connection<H, Req, Resp>(
    incoming: quinn::Incoming,
    shared: Arc<Shared<H, Req, Resp>>,
    mut stop: watch::Receiver<bool>,
    alive: mpsc::Sender<()>,
    _slot: OwnedSemaphorePermit,
) where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
    H: Handler<Req, Resp>,
{
    let remote = incoming.remote_address();
    let handshake = async {
        match incoming.accept() {
            Ok(connecting) => connecting.await,
            Err(e) => Err(e),
        }
    };
    let conn = tokio::select! {
        biased;
        _ = stopping(&mut stop) => return,
        result = handshake => match result {
            Ok(conn) => conn,
            Err(e) => {
                metrics::counter!(SERVER_CONNECTIONS, "result" => "handshake_failed").increment(1);
                warn!(%remote, error = %e, "rpc handshake failed");
                return;
            }
        },
    };
    let node = match peer_node_id(&conn) {
        Ok(node) => node,
        Err(e) => {
            metrics::counter!(SERVER_CONNECTIONS, "result" => "no_identity").increment(1);
            warn!(%remote, error = %e, "rpc connection without a node identity");
            conn.close(VarInt::from_u32(CLOSE_NO_IDENTITY), b"no node identity");
            return;
        }
    };
    metrics::counter!(SERVER_CONNECTIONS, "result" => "accepted").increment(1);
    debug!(%remote, node, "rpc connection accepted");
    let caller = Caller { node, addr: remote };
    loop {
        let (send, recv) = tokio::select! {
            biased;
            _ = stopping(&mut stop) => break,
            stream = conn.accept_bi() => match stream {
                Ok(stream) => stream,
                Err(e) => {
                    debug!(%remote, node, reason = %e, "rpc connection ended");
                    break;
                }
            },
        };
        let guard = InFlight::new(&shared.in_flight, &alive);
        tokio::spawn(serve_stream(shared.clone(), caller, send, recv, guard));
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "handler panicked".to_owned()
    }
}

async fn serve_stream<H, Req, Resp>(
    shared: Arc<Shared<H, Req, Resp>>,
    caller: Caller,
    mut send: SendStream,
    mut recv: RecvStream,
    _guard: InFlight,
) where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
    H: Handler<Req, Resp>,
{
    let started = Instant::now();
    let max = shared.max_frame_bytes;
    let (reply, outcome) = match read_frame::<_, Req>(&mut recv, max).await {
        Ok(request) => {
            let caller_gone = send.stopped();
            let handled = AssertUnwindSafe(shared.handler.handle(caller, request)).catch_unwind();
            tokio::select! {
                biased;
                result = handled => match result {
                    Ok(response) => (Reply::Ok(response), "ok"),
                    Err(panic) => {
                        let message = panic_message(panic.as_ref());
                        warn!(node = caller.node, %message, "rpc handler panicked");
                        (Reply::Err { kind: RemoteErrorKind::HandlerPanicked, message }, "panic")
                    }
                },
                _ = caller_gone => {
                    metrics::counter!(SERVER_REQUESTS, "outcome" => "abandoned").increment(1);
                    debug!(node = caller.node, "rpc caller gone; handler cancelled");
                    return;
                }
            }
        }
        Err(FrameError::Io(e)) => {
            metrics::counter!(SERVER_REQUESTS, "outcome" => "abandoned").increment(1);
            debug!(node = caller.node, error = %e, "rpc request stream failed");
            return;
        }
        Err(e) => {
            warn!(node = caller.node, error = %e, "rpc bad request");
            let reply = Reply::Err {
                kind: RemoteErrorKind::BadRequest,
                message: e.to_string(),
            };
            (reply, "bad_request")
        }
    };
    let (bytes, outcome) = match encode_frame(&reply, max) {
        Ok(bytes) => (bytes, outcome),
        Err(e) => {
            warn!(node = caller.node, error = %e, "rpc response could not be encoded");
            let reply = Reply::<Resp>::Err {
                kind: RemoteErrorKind::BadResponse,
                message: e.to_string(),
            };
            match encode_frame(&reply, max) {
                Ok(bytes) => (bytes, "bad_response"),
                Err(_) => return,
            }
        }
    };
    let written = async {
        send.write_all(&bytes).await?;
        send.finish()?;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
    };
    let outcome = match written.await {
        Ok(()) => outcome,
        Err(e) => {
            debug!(node = caller.node, error = %e, "rpc reply could not be written");
            "write_failed"
        }
    };
    metrics::counter!(SERVER_REQUESTS, "outcome" => outcome).increment(1);
    metrics::histogram!(SERVER_REQUEST_SECONDS).record(started.elapsed().as_secs_f64());
    // Hold the stream (and so the connection) until the client has acknowledged the reply:
    // closing a connection discards unsent stream data, and shutdown closes once every
    // request task has ended. Bounded by the idle timeout if the client vanishes.
    let _ = send.stopped().await;
}

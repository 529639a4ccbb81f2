//! Node-to-node request/response RPC over QUIC (quinn) with mutual TLS. Generic
//! over serde message types; knows nothing of Raft or shards.
//!
//! Contract:
//! - Frames: every message is `[version = 1][u32 big-endian length][bincode 2 payload]`
//!   (serde, standard config). The length is checked against `max_frame_bytes` before any
//!   buffer is allocated; a wrong version, oversize or undecodable frame is an error.
//! - One bidirectional stream per call: the request frame, then the [`Reply`] frame.
//! - Deadlines: every call takes a timeout covering everything (waiting for an in-flight
//!   slot, connecting, sending, the handler, the reply); expiry is [`RpcError::Timeout`].
//!   A call that fails may or may not have run on the server; only
//!   [`RpcError::request_not_sent`] errors are known not to have.
//! - Bounds: in-flight calls per peer (client semaphore), concurrent streams per connection
//!   and connections per server (quinn limits), frame size on both sides.
//! - Identity: a cluster CA signs every node certificate; the DNS SAN `node-<id>.herald`
//!   is the node id. Both sides verify the peer chains to the CA; the client checks the
//!   server is the node it asked for, and the handler receives the client's verified id.
//!   A peer with no certificate or one from another CA is refused.
//! - Connections: one per (peer id, address), re-established on loss with exponential
//!   backoff and jitter (a call never waits past its deadline for a reconnect).

mod client;
mod error;
mod frame;
mod server;
mod tls;

#[cfg(test)]
mod tests;

pub use client::{ClientConfig, RpcClient};
pub use error::{RemoteErrorKind, RpcError, SetupError};
pub use frame::{
    decode_frame, encode_frame, read_frame, FrameError, DEFAULT_MAX_FRAME_BYTES, FRAME_HEADER_LEN,
    FRAME_VERSION,
};
pub use server::{Caller, Handler, Reply, RpcServer, ServerConfig};
pub use tls::{
    node_dns_name, node_id_from_dns_name, CertAuthority, CertError, NodeCertPem, NodeIdentity,
    SubjectAltName, DEFAULT_CA_VALIDITY, DEFAULT_NODE_VALIDITY,
};

/// A node's id, as carried in its certificate (`node-<id>.herald`).
pub type NodeId = u64;

/// The ALPN protocol both sides require.
pub const ALPN: &[u8] = b"herald/1";

/// Metric names (the `metrics` crate; exported by whatever recorder the binary installs).
pub mod metric_names {
    /// Counter, label `outcome`: ok, timeout, unreachable, connection_lost, protocol,
    /// remote, encode, closed.
    pub const CLIENT_CALLS: &str = "herald_rpc_client_calls_total";
    /// Histogram (seconds), label `outcome`: end-to-end latency of client calls.
    pub const CLIENT_CALL_SECONDS: &str = "herald_rpc_client_call_seconds";
    /// Counter, label `result`: ok, error (connection attempts, handshakes included).
    pub const CLIENT_CONNECTS: &str = "herald_rpc_client_connects_total";
    /// Counter, label `outcome`: ok, bad_request, panic, abandoned, write_failed.
    pub const SERVER_REQUESTS: &str = "herald_rpc_server_requests_total";
    /// Histogram (seconds): time from reading a request to its reply being written.
    pub const SERVER_REQUEST_SECONDS: &str = "herald_rpc_server_request_seconds";
    /// Counter, label `result`: accepted, over_limit, handshake_failed, no_identity.
    pub const SERVER_CONNECTIONS: &str = "herald_rpc_server_connections_total";
}

/// Shared QUIC transport settings for both sides.
fn transport_config(
    idle_timeout: std::time::Duration,
    keep_alive: std::time::Duration,
    max_bidi_streams: u32,
) -> Result<quinn::TransportConfig, SetupError> {
    let idle = quinn::IdleTimeout::try_from(idle_timeout)
        .map_err(|_| SetupError::Config(format!("idle timeout {idle_timeout:?} is too large")))?;
    if keep_alive >= idle_timeout {
        return Err(SetupError::Config(format!(
            "keep-alive {keep_alive:?} must be shorter than the idle timeout {idle_timeout:?}"
        )));
    }
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_idle_timeout(Some(idle))
        .keep_alive_interval(Some(keep_alive))
        .max_concurrent_bidi_streams(quinn::VarInt::from_u32(max_bidi_streams))
        .max_concurrent_uni_streams(quinn::VarInt::from_u32(0));
    Ok(transport)
}

//! Node-to-node request/response RPC over QUIC (quinn) with mutual TLS, generic over serde
//! types. Contract:
//! - Wire: each message is `[version 1][u32 BE length][bincode 2 serde payload]`; the length
//!   is checked against `max_frame_bytes` before allocating; a bad version, oversize or
//!   undecodable frame is an error. One bidirectional stream per call: request, [`Reply`].
//! - Deadlines: a call's timeout covers slot wait, (re)connect, send, handler and reply;
//!   expiry is [`RpcError::Timeout`]. Only [`RpcError::request_not_sent`] errors are known
//!   not to have run; the handler is cancelled when its caller gives up.
//! - Bounds: in-flight calls per peer, streams per connection, connections per server, frames.
//! - Identity: every node certificate is signed by the cluster CA and names `node-<id>.herald`;
//!   both sides verify the chain, the client checks it reached the node it asked for, the
//!   handler gets the caller's verified id. No certificate or a foreign CA: refused.
//! - One connection per (peer id, address), re-established with jittered exponential backoff.

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
    /// Counter, label `outcome`: ok, bad_request, bad_response, panic, abandoned,
    /// write_failed.
    pub const SERVER_REQUESTS: &str = "herald_rpc_server_requests_total";
    /// Histogram (seconds): time from reading a request to its reply being written.
    pub const SERVER_REQUEST_SECONDS: &str = "herald_rpc_server_request_seconds";
    /// Counter, label `result`: accepted, over_limit, handshake_failed, no_identity.
    pub const SERVER_CONNECTIONS: &str = "herald_rpc_server_connections_total";
}

/// Largest UDP payload path MTU discovery searches for.
const JUMBO_UDP_PAYLOAD: u16 = 8952;

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
    // Path MTU discovery may grow packets up to jumbo-frame size (9000-byte
    // MTU less IPv6 and UDP headers): Raft appends carry many kilobytes, and
    // each packet costs a trip through the kernel. On a 1500-byte network
    // discovery settles at that path's limit; probing larger is harmless.
    let mut mtu = quinn::MtuDiscoveryConfig::default();
    mtu.upper_bound(JUMBO_UDP_PAYLOAD);
    let mut transport = quinn::TransportConfig::default();
    transport
        .mtu_discovery_config(Some(mtu))
        .max_idle_timeout(Some(idle))
        .keep_alive_interval(Some(keep_alive))
        .max_concurrent_bidi_streams(quinn::VarInt::from_u32(max_bidi_streams))
        .max_concurrent_uni_streams(quinn::VarInt::from_u32(0));
    Ok(transport)
}

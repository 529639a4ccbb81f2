//! Error types of the RPC layer.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::frame::FrameError;
use super::tls::CertError;
use super::NodeId;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// The deadline passed (waiting for a slot, connecting, or waiting for the reply);
    /// `sent` tells whether the request had started to go out.
    #[error("rpc to node {peer} timed out after {after:?}")]
    Timeout {
        peer: NodeId,
        after: Duration,
        sent: bool,
    },
    /// No connection could be established before the deadline (refused handshake, wrong
    /// identity, peer down and still backing off). The request was not sent.
    #[error("node {peer} at {addr} is unreachable: {reason}")]
    Unreachable {
        peer: NodeId,
        addr: SocketAddr,
        reason: String,
    },
    /// The connection or stream failed during the call; the request may have run.
    #[error("connection to node {peer} lost during the call: {reason}")]
    ConnectionLost { peer: NodeId, reason: String },
    /// The peer's reply was not a valid frame.
    #[error("bad reply from node {peer}: {source}")]
    Protocol {
        peer: NodeId,
        #[source]
        source: FrameError,
    },
    /// The server answered with an error instead of running the handler to completion.
    #[error("node {peer} answered {kind:?}: {message}")]
    Remote {
        peer: NodeId,
        kind: RemoteErrorKind,
        message: String,
    },
    /// The request could not be encoded (or exceeds the frame limit). Nothing was sent.
    #[error("request could not be encoded: {0}")]
    Encode(#[source] FrameError),
    /// The client was closed.
    #[error("the rpc client is closed")]
    Closed,
}

impl RpcError {
    /// The `outcome` label used in metrics.
    pub fn outcome(&self) -> &'static str {
        match self {
            RpcError::Timeout { .. } => "timeout",
            RpcError::Unreachable { .. } => "unreachable",
            RpcError::ConnectionLost { .. } => "connection_lost",
            RpcError::Protocol { .. } => "protocol",
            RpcError::Remote { .. } => "remote",
            RpcError::Encode(_) => "encode",
            RpcError::Closed => "closed",
        }
    }

    /// True when the request certainly did not reach the handler, so retrying it
    /// (on this or another node) cannot run it twice.
    pub fn request_not_sent(&self) -> bool {
        match self {
            RpcError::Unreachable { .. } | RpcError::Encode(_) | RpcError::Closed => true,
            RpcError::Timeout { sent, .. } => !sent,
            RpcError::Remote { kind, .. } => *kind == RemoteErrorKind::BadRequest,
            _ => false,
        }
    }
}

/// What kind of error the server reported in place of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RemoteErrorKind {
    /// The request frame was invalid (version, size, or not decodable as the request type);
    /// the handler did not run.
    BadRequest,
    /// The handler panicked.
    HandlerPanicked,
    /// The handler's response could not be encoded or exceeds the frame limit.
    BadResponse,
}

/// Errors building a client or server.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("certificate: {0}")]
    Cert(#[from] CertError),
    #[error("tls configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("tls client verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    #[error("quic crypto configuration: {0}")]
    Quic(String),
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("could not bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

//! herald's cluster layer: the openraft groups a node hosts (one meta group
//! and a fixed number of data shards, `S` recorded durably at creation and
//! never changed), placement of keys onto shards, proposals and linearizable
//! read barriers, and the node-to-node [`transport::Transport`] seam.
//!
//! Contract: every write goes through the owning group's log and is answered
//! only after it is committed and applied; a read barrier returns only when
//! this node's applied state includes every write committed before it. No
//! HTTP here; the transport is a trait: [`quic::QuicTransport`] between
//! processes (over [`rpc`]), [`transport::LocalTransport`] within one. A node
//! that does not lead a group forwards proposals and read-index requests to
//! the leader.

pub mod error;
pub mod handover;
pub mod host;
pub mod membership;
pub mod quic;
pub mod rpc;
pub mod transport;

pub use error::ClusterError;
pub use handover::{Handover, ProposalHolds};
pub use host::{ClusterRecord, GroupStatus, HostConfig, RaftHost};
pub use membership::{MemberAnswer, MemberChange};
pub use quic::{LocalGroups, QuicTransport};
pub use transport::{AppService, Forwarded, LocalTransport, Transport, TransportError};

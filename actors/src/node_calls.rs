//! herald's own requests between nodes, above Raft: what one node asks of
//! another (today, a shard's part of a campaign run on the shard's leader).
//! Carried as JSON by the cluster's `AppService` seam; every answer says
//! whether the node acted, so a caller knows what it may retry.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt, Shared};
use herald_cluster::{AppService, TransportError};
use herald_storage::{KvEngine, NodeId};
use serde::{Deserialize, Serialize};

use crate::campaign_run::{ShardRun, Tally};
use crate::service::Herald;

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum NodeCall {
    RunShard(ShardRun),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum NodeAnswer {
    /// The shard's part is done: its counts per treatment.
    ShardRun(Vec<Tally>),
    /// The node does not lead the shard; nothing was done.
    NotLeader,
    /// The node failed part-way (what was committed stays committed).
    Failed(String),
}

pub(crate) type Running = Arc<Mutex<BTreeMap<String, Shared<BoxFuture<'static, NodeAnswer>>>>>;

/// Answers other nodes' [`NodeCall`]s from this node's service.
pub struct NodeService<E: KvEngine> {
    /// Weak: the service is held by the transport, which the service's
    /// host holds.
    herald: Weak<Herald<E>>,
}

impl<E: KvEngine> NodeService<E> {
    pub fn new(herald: &Arc<Herald<E>>) -> Self {
        let _ = herald.this.set(Arc::downgrade(herald));
        Self {
            herald: Arc::downgrade(herald),
        }
    }
}

/// The shard run for `req` on this node: the one going on here, else a new
/// one.
///
/// A shard run goes on in its own task when its caller goes away (a
/// coordinator that crashed), and a caller asking for a shard run that is
/// still going on here (the next coordinator resuming the run, from this
/// node or another) waits for it and gets its counts, instead of starting
/// a second one that would find its sends in flight.
pub(crate) fn shard_run<E: KvEngine>(
    herald: Arc<Herald<E>>,
    req: ShardRun,
) -> Shared<BoxFuture<'static, NodeAnswer>> {
    let running = herald.shard_runs.clone();
    let key = format!(
        "{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}",
        req.app_id, req.campaign_id, req.run.run, req.group, req.upto
    );
    let mut map = running.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(f) = map.get(&key) {
        metrics::counter!("herald_campaign_shard_runs_joined_total").increment(1);
        return f.clone();
    }
    let (done, k) = (herald.shard_runs.clone(), key.clone());
    let task = tokio::spawn(async move {
        let answer = herald.serve_shard_run(req).await;
        done.lock().unwrap_or_else(|p| p.into_inner()).remove(&k);
        answer
    });
    let f = async move {
        task.await
            .unwrap_or_else(|e| NodeAnswer::Failed(format!("the shard run stopped: {e}")))
    }
    .boxed()
    .shared();
    map.insert(key, f.clone());
    f
}

fn encode(a: &NodeAnswer) -> Vec<u8> {
    serde_json::to_vec(a).expect("node answers serialize")
}

impl<E: KvEngine> AppService for NodeService<E> {
    fn call(&self, from: NodeId, body: Vec<u8>) -> BoxFuture<'static, Vec<u8>> {
        let herald = self.herald.upgrade();
        Box::pin(async move {
            let Some(herald) = herald else {
                return encode(&NodeAnswer::Failed("the node is stopping".into()));
            };
            let call: NodeCall = match serde_json::from_slice(&body) {
                Ok(c) => c,
                Err(e) => return encode(&NodeAnswer::Failed(format!("undecodable call: {e}"))),
            };
            let answer = match call {
                NodeCall::RunShard(req) => {
                    metrics::counter!("herald_node_calls_total", "call" => "run_shard")
                        .increment(1);
                    tracing::debug!(from, group = req.group, campaign_id = %req.campaign_id, "shard run asked");
                    shard_run(herald, req).await
                }
            };
            encode(&answer)
        })
    }
}

impl<E: KvEngine> Herald<E> {
    /// Asks `node` to act on `call` within `timeout`.
    pub(crate) async fn call_node(
        &self,
        node: NodeId,
        call: &NodeCall,
        timeout: Duration,
    ) -> Result<NodeAnswer, TransportError> {
        let body = serde_json::to_vec(call).expect("node calls serialize");
        let bytes = self.host.app_call(node, body, timeout).await?;
        serde_json::from_slice(&bytes).map_err(|e| TransportError::Network {
            node,
            reason: format!("undecodable answer: {e}"),
        })
    }
}

//! Three nodes in one process, talking real QUIC with mutual TLS on
//! loopback: every group elects one leader across the nodes, a write through
//! any node is forwarded to the group's leader and readable on every node
//! after a read barrier, and when a leader node stops the others elect a new
//! one and keep serving.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use herald_cluster::rpc::{
    CertAuthority, ClientConfig, NodeIdentity, RpcClient, RpcServer, ServerConfig,
};
use herald_cluster::{quic, HostConfig, LocalGroups, QuicTransport, RaftHost};
use herald_storage::{CmdResult, MemEngine, NodeId, META_GROUP};

mod common;
use common::upsert;

const SHARDS: u32 = 2;
const DAY: Duration = Duration::from_secs(86_400);

struct Node {
    id: NodeId,
    host: RaftHost<MemEngine>,
    server: RpcServer,
}

async fn start_cluster(n: u64) -> Vec<Node> {
    let ca = CertAuthority::generate(DAY).unwrap();
    let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut identities = BTreeMap::new();
    let mut servers = BTreeMap::new();
    let mut groups = BTreeMap::new();
    for id in 1..=n {
        let cert = ca.issue_node_cert(id, &[], DAY).unwrap();
        let identity =
            NodeIdentity::from_pem(ca.cert_pem(), &cert.cert_pem, &cert.key_pem).unwrap();
        let local = LocalGroups::new();
        let server = quic::serve(
            ServerConfig::new(loopback, identity.clone()),
            local.clone(),
            Duration::from_secs(5),
        )
        .unwrap();
        identities.insert(id, identity);
        servers.insert(id, server);
        groups.insert(id, local);
    }
    let addrs: BTreeMap<NodeId, SocketAddr> = servers
        .iter()
        .map(|(&id, s)| (id, s.local_addr()))
        .collect();
    let members: BTreeMap<NodeId, String> =
        addrs.iter().map(|(&id, a)| (id, a.to_string())).collect();
    let mut starting = Vec::new();
    for id in 1..=n {
        let client = RpcClient::new(ClientConfig::new(loopback, identities[&id].clone())).unwrap();
        let transport = QuicTransport::new(
            client,
            groups[&id].clone(),
            addrs.clone(),
            Duration::from_secs(2),
        );
        let cfg = HostConfig {
            node_id: id,
            shards: SHARDS,
            heartbeat_ms: 50,
            election_timeout_min_ms: 300,
            election_timeout_max_ms: 600,
            request_timeout: Duration::from_secs(10),
            members: members.clone(),
            ..HostConfig::default()
        };
        starting.push(tokio::spawn(async move {
            let host = RaftHost::start(Arc::new(MemEngine::new()), cfg, Arc::new(transport), None)
                .await
                .expect("start");
            host
        }));
    }
    let mut nodes = Vec::new();
    for (id, s) in (1..=n).zip(starting) {
        let host = s.await.unwrap();
        nodes.push(Node {
            id,
            host,
            server: servers.remove(&id).unwrap(),
        });
    }
    for node in &nodes {
        node.host
            .wait_ready(Duration::from_secs(20))
            .await
            .expect("every group elects a leader");
    }
    nodes
}

fn leaders(nodes: &[Node]) -> Vec<Option<NodeId>> {
    let status = nodes[0].host.status();
    status.iter().map(|g| g.leader).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_through_any_node_reach_every_node_and_survive_a_leader_stop() {
    let mut nodes = start_cluster(3).await;
    // One leader per group, agreed by every node, and every node is a voter.
    let agreed = leaders(&nodes);
    for node in &nodes {
        let status = node.host.status();
        assert_eq!(status.len(), SHARDS as usize + 1);
        for (g, s) in status.iter().enumerate() {
            assert!(
                s.leader.is_some(),
                "group {g} has no leader on node {}",
                node.id
            );
        }
    }
    for (g, raft) in nodes[0].host.rafts().iter().enumerate() {
        let voters: Vec<NodeId> = raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .collect();
        assert_eq!(voters, [1, 2, 3], "voters of group {g}");
    }

    // Writes through every node, each forwarded to its group's leader.
    let ids: Vec<String> = (0..12).map(|i| format!("ep-{i}")).collect();
    for (i, id) in ids.iter().enumerate() {
        let node = &nodes[i % nodes.len()];
        let g = node.host.group_of("app", id);
        let r = node
            .host
            .propose(g, upsert(id))
            .await
            .expect("forwarded write");
        assert!(matches!(r, CmdResult::Written { .. }), "{r:?}");
    }
    // Readable on every node after a read barrier (followers ask the leader).
    for node in &nodes {
        for id in &ids {
            let g = node.host.group_of("app", id);
            node.host.read_barrier(g).await.expect("read barrier");
            let ep = node.host.reader().endpoint(g, "app", id).unwrap();
            assert!(ep.is_some(), "{id} missing on node {}", node.id);
        }
    }

    // Stop the node leading the first data group; the others take over.
    let data = nodes[0].host.group_of("app", "after-stop");
    let gone = agreed[data as usize].expect("leader");
    let at = nodes.iter().position(|n| n.id == gone).unwrap();
    let stopped = nodes.remove(at);
    stopped.host.shutdown().await;
    stopped.server.shutdown(Duration::from_millis(100)).await;
    for node in &nodes {
        let r = node
            .host
            .propose(data, upsert(&format!("after-stop-{}", node.id)))
            .await
            .expect("write after the leader stopped");
        assert!(matches!(r, CmdResult::Written { .. }), "{r:?}");
    }
    for node in &nodes {
        node.host.read_barrier(data).await.expect("read barrier");
        for other in &nodes {
            let id = format!("after-stop-{}", other.id);
            assert!(
                node.host
                    .reader()
                    .endpoint(data, "app", &id)
                    .unwrap()
                    .is_some(),
                "{id} missing on node {}",
                node.id
            );
        }
        let leader = node.host.status()[data as usize].leader;
        assert!(
            leader.is_some() && leader != Some(gone),
            "new leader {leader:?}"
        );
    }
    for node in nodes {
        node.host.shutdown().await;
        node.server.shutdown(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_node_hands_the_groups_it_leads_to_other_voters() {
    let nodes = start_cluster(3).await;
    let agreed = leaders(&nodes);
    // The node leading the most groups (node 1 initialised them all).
    let busiest = (1..=3)
        .max_by_key(|&id| agreed.iter().filter(|&&l| l == Some(id)).count())
        .unwrap();
    let node = nodes.iter().find(|n| n.id == busiest).unwrap();
    // What the node itself leads (another node's view may lag).
    let led = node
        .host
        .status()
        .iter()
        .filter(|s| s.leader == Some(busiest))
        .count();
    assert!(led > 0);
    let handed = node
        .host
        .hand_over_leadership(Duration::from_secs(10))
        .await;
    assert_eq!(handed, led, "groups handed over");
    // Every node learns the new leaders from their first heartbeat.
    for n in &nodes {
        for (g, raft) in n.host.rafts().iter().enumerate() {
            let seen = raft
                .wait(Some(Duration::from_secs(5)))
                .metrics(
                    |m| m.current_leader.is_some_and(|l| l != busiest),
                    "a leader other than the stopping node",
                )
                .await;
            assert!(seen.is_ok(), "group {g} on node {}: {seen:?}", n.id);
        }
    }
    // It still serves: its writes are forwarded to the new leaders.
    let g = node.host.group_of("app", "after-handover");
    let r = node
        .host
        .propose(g, upsert("after-handover"))
        .await
        .expect("forwarded write");
    assert!(matches!(r, CmdResult::Written { .. }), "{r:?}");
    for node in nodes {
        node.host.shutdown().await;
        node.server.shutdown(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn balancing_hands_groups_to_their_preferred_leaders_while_writes_go_on() {
    let nodes = Arc::new(start_cluster(3).await);
    let preferred = |g: usize| (g % 3) as NodeId + 1; // voters are [1, 2, 3]
                                                      // Steady writes through every node while leaderships move.
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let nodes = nodes.clone();
            tokio::spawn(async move {
                let node = &nodes[w];
                let mut failed = Vec::new();
                for i in 0..120 {
                    let id = format!("w{w}-{i}");
                    let g = node.host.group_of("app", &id);
                    match node.host.propose(g, upsert(&id)).await {
                        Ok(CmdResult::Written { .. }) => {}
                        other => failed.push(format!("{id}: {other:?}")),
                    }
                }
                failed
            })
        })
        .collect();
    let mut balanced = false;
    for _ in 0..40 {
        for node in nodes.iter() {
            node.host.balance_leaders(8).await;
        }
        let status = nodes[0].host.status();
        if status
            .iter()
            .enumerate()
            .all(|(g, s)| s.leader == Some(preferred(g)))
        {
            balanced = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut failed = Vec::new();
    for w in writers {
        failed.extend(w.await.unwrap());
    }
    assert!(
        failed.is_empty(),
        "writes failed during handovers: {failed:?}"
    );
    assert!(
        balanced,
        "leaders {:?}, preferred {:?}",
        leaders(&nodes),
        (0..=SHARDS as usize).map(preferred).collect::<Vec<_>>()
    );
    // Every acknowledged write is on every node.
    for node in nodes.iter() {
        for w in 0..3 {
            for i in 0..120 {
                let id = format!("w{w}-{i}");
                let g = node.host.group_of("app", &id);
                node.host.read_barrier(g).await.expect("read barrier");
                assert!(
                    node.host
                        .reader()
                        .endpoint(g, "app", &id)
                        .unwrap()
                        .is_some(),
                    "{id} missing on node {}",
                    node.id
                );
            }
        }
    }
    let nodes = Arc::into_inner(nodes).expect("writers are done");
    for node in nodes {
        node.host.shutdown().await;
        node.server.shutdown(Duration::from_millis(100)).await;
    }
}

/// Runs placement steps on whichever node leads the meta group until it has
/// nothing left to do (bounded); answers the moves made.
async fn settle_placement(
    nodes: &[Node],
    down_after: Duration,
    since: tokio::time::Instant,
) -> usize {
    let mut moves = 0;
    for _ in 0..60 {
        let Some(meta) = nodes.iter().find(|n| n.host.is_leader(META_GROUP)) else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        match meta.host.place_once(3, down_after, since).await {
            Ok(Some(_)) => moves += 1,
            Ok(None) => return moves,
            // A leader change or a stale view: plan again.
            Err(e) => {
                eprintln!("placement step failed: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    panic!("placement did not settle within 60 steps");
}

/// Every node applies every group up to its leader's commit, so its view
/// of the members includes the last committed change (a learner hears of
/// it a heartbeat after the voters).
async fn catch_up(nodes: &[Node]) {
    for n in nodes {
        for g in 0..=SHARDS {
            n.host.read_barrier(g).await.expect("read barrier");
        }
    }
}

fn votes(node: &Node) -> BTreeMap<NodeId, usize> {
    let mut votes = BTreeMap::new();
    for g in node.host.placement_view() {
        for v in g.voters {
            *votes.entry(v).or_insert(0) += 1;
        }
    }
    votes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placement_keeps_three_voters_spread_and_replaces_a_node_that_is_down() {
    // Five static voters everywhere: placement trims each group to three
    // and spreads the 9 votes (3 groups x 3) over the five nodes.
    let mut nodes = start_cluster(5).await;
    let since = tokio::time::Instant::now();
    let moves = settle_placement(&nodes, Duration::from_secs(3600), since).await;
    catch_up(&nodes).await;
    // Two voters dropped from each of the three groups, and a vote or two
    // moved to even the spread.
    assert!((6..=9).contains(&moves), "{moves} moves");
    for n in &nodes {
        for g in n.host.placement_view() {
            assert_eq!(
                g.voters.len(),
                3,
                "group {} on node {}: {g:?}",
                g.group,
                n.id
            );
            assert_eq!(
                g.voters.len() + g.learners.len(),
                5,
                "every node keeps a copy"
            );
        }
    }
    let spread = votes(&nodes[0]);
    assert!(
        spread.values().all(|&v| (1..=2).contains(&v)),
        "votes per node {spread:?}"
    );
    // Writes still commit, and a learner's copy has them.
    let g = nodes[0].host.group_of("app", "after-placement");
    nodes[0]
        .host
        .propose(g, upsert("after-placement"))
        .await
        .expect("write after placement");
    for n in &nodes {
        n.host.read_barrier(g).await.expect("read barrier");
        assert!(n
            .host
            .reader()
            .endpoint(g, "app", "after-placement")
            .unwrap()
            .is_some());
    }

    // Stop a node that votes somewhere but does not lead the meta group;
    // once it has been silent longer than `down_after`, its votes go to
    // live learners and every group has three live voters again.
    let view = nodes[0].host.placement_view();
    let gone = (1..=5)
        .find(|&id| {
            view.iter().any(|g| g.voters.contains(&id))
                && !nodes
                    .iter()
                    .any(|n| n.id == id && n.host.is_leader(META_GROUP))
        })
        .unwrap();
    let at = nodes.iter().position(|n| n.id == gone).unwrap();
    let stopped = nodes.remove(at);
    stopped.host.shutdown().await;
    stopped.server.shutdown(Duration::from_millis(100)).await;
    let down_after = Duration::from_secs(2);
    tokio::time::sleep(down_after + Duration::from_millis(500)).await;
    let moves = settle_placement(&nodes, down_after, since).await;
    catch_up(&nodes).await;
    assert!(moves >= 1, "the stopped node's votes moved");
    for n in &nodes {
        for g in n.host.placement_view() {
            assert_eq!(
                g.voters.len(),
                3,
                "group {} on node {}: {g:?}",
                g.group,
                n.id
            );
            assert!(
                !g.voters.contains(&gone),
                "group {} still counts on node {gone}",
                g.group
            );
            assert!(
                g.learners.contains(&gone),
                "node {gone} keeps its copy to catch up later"
            );
        }
    }
    let g = nodes[0].host.group_of("app", "after-down");
    nodes[0]
        .host
        .propose(g, upsert("after-down"))
        .await
        .expect("write after the node went down");
    for node in nodes {
        node.host.shutdown().await;
        node.server.shutdown(Duration::from_millis(100)).await;
    }
}

/// Answers with the caller's id and the request reversed.
struct Reverse;

impl herald_cluster::AppService for Reverse {
    fn call(
        &self,
        from: NodeId,
        mut body: Vec<u8>,
    ) -> futures::future::BoxFuture<'static, Vec<u8>> {
        body.reverse();
        body.extend_from_slice(format!(" from {from}").as_bytes());
        Box::pin(async move { body })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn herald_calls_reach_the_service_of_the_node_they_name() {
    let nodes = start_cluster(3).await;
    let timeout = Duration::from_secs(5);
    // Before node 2 serves anything, a call is refused unacted.
    match nodes[0].host.app_call(2, b"abc".to_vec(), timeout).await {
        Err(herald_cluster::TransportError::Unreachable { node: 2, .. }) => {}
        other => panic!("a node without a service answered {other:?}"),
    }
    nodes[1].host.serve_app(Arc::new(Reverse));
    let answer = nodes[0]
        .host
        .app_call(2, b"abc".to_vec(), timeout)
        .await
        .expect("node 2 answers");
    // The answer's bytes come back as the service wrote them, and the
    // service sees the caller's authenticated id.
    assert_eq!(answer, b"cba from 1");
    let answer = nodes[2]
        .host
        .app_call(2, b"xy".to_vec(), timeout)
        .await
        .unwrap();
    assert_eq!(answer, b"yx from 3");
    for n in nodes {
        n.host.shutdown().await;
        n.server.shutdown(Duration::from_millis(100)).await;
    }
}

/// A removal can start before the node it removes has joined a group (its
/// join asks each group's leader in turn): the groups it has left, or never
/// reached, refuse to add it afterwards, and the node id stays retired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_node_id_is_never_added_back() {
    use herald_cluster::{ClusterError, MemberChange};
    let nodes = start_cluster(3).await;
    let groups = SHARDS + 1;
    // Node 9 has not joined anything yet: its removal goes through (a
    // no-op for membership) and leaves it retired in every group.
    nodes[1].host.remove_node(9).await.expect("remove node 9");
    for group in 0..groups {
        let learn = MemberChange::Learn {
            node: 9,
            addr: "127.0.0.1:9".into(),
        };
        let refused = nodes[2].host.change_members(group, learn).await;
        assert_eq!(refused, Err(ClusterError::Retired { group, node: 9 }));
    }
    // Node 3, a voter of every group, is removed; it is then refused as a
    // learner and as a voter, through any node.
    nodes[0].host.remove_node(3).await.expect("remove node 3");
    let status = nodes[0].host.status();
    assert!(status
        .iter()
        .all(|g| !g.voters.contains(&3) && !g.learners.contains(&3)));
    let addr = nodes[2].server.local_addr().to_string();
    let learn = MemberChange::Learn { node: 3, addr };
    let refused = nodes[1].host.change_members(META_GROUP, learn).await;
    assert_eq!(
        refused,
        Err(ClusterError::Retired {
            group: META_GROUP,
            node: 3
        })
    );
    let voters: std::collections::BTreeSet<NodeId> = status[1].voters.iter().copied().collect();
    let to = voters.iter().copied().chain([3]).collect();
    let promote = MemberChange::SetVoters { from: voters, to };
    let refused = nodes[0].host.change_members(1, promote).await;
    assert_eq!(refused, Err(ClusterError::Retired { group: 1, node: 3 }));
    // The others serve on.
    let id = "after-removal";
    let g = nodes[1].host.group_of("app", id);
    let written = nodes[1].host.propose(g, upsert(id)).await;
    assert!(
        matches!(written, Ok(CmdResult::Written { .. })),
        "{written:?}"
    );
    for n in nodes {
        n.host.shutdown().await;
        n.server.shutdown(Duration::from_millis(100)).await;
    }
}

"""Real herald processes forming a cluster over QUIC on loopback.

Three nodes started from a static peer list with certificates from
`herald cluster init-certs`: any node serves any request (writes are
forwarded to the owning group's leader, reads see every acknowledged write),
a SIGKILLed node does not stop the other two, and it catches up when it
comes back on its data directory.

Every wait is bounded; processes are killed at the end whatever happens.
"""

from __future__ import annotations

import time

import harness
from support import (
    NODES,
    SHARDS,
    Writer,
    assert_acked_everywhere,
    cli,
    endpoint_request,
    free_udp_port,
    init_certs,
    leader_of_most_groups,
    node_server,
    retry,
    status_of,
    wait_placement,
    wait_voters,
)


def test_any_node_serves_and_a_killed_node_catches_up(cluster):
    cluster, _, _ = cluster
    c = {n: s.client() for n, s in cluster.items()}
    app_id = retry("create app", lambda: c[1].create_app(CreateApplicationRequest={"Name": "c"}))[
        "ApplicationResponse"
    ]["Id"]
    # The app, created through node 1, is visible through the others.
    for n in (2, 3):
        got = retry("get app", lambda: c[n].get_app(ApplicationId=app_id))
        assert got["ApplicationResponse"]["Name"] == "c"

    # Every node sees three voters in every group, each group with a leader.
    for n in NODES:
        status = harness.signed_request(cluster[n].url, "GET", "/herald/v1/cluster").json()
        assert status["NodeId"] == n
        assert status["Nodes"] == list(NODES)
        assert len(status["Groups"]) == SHARDS + 1
        for g in status["Groups"]:
            assert g["voters"] == list(NODES), g
            assert g["leader"] in NODES, g

    # Leaderships spread: every node comes to lead some group.
    deadline = time.monotonic() + 45
    led = {}
    while time.monotonic() < deadline:
        groups = status_of(cluster[1])["Groups"]
        led = {n: sum(1 for g in groups if g["leader"] == n) for n in NODES}
        if all(led.values()):
            break
        time.sleep(0.5)
    assert all(led.values()), f"leaders not spread: {led}"

    # Writes through every node; each endpoint readable through every node.
    ids = [f"ep-{i}" for i in range(12)]
    for i, eid in enumerate(ids):
        node = NODES[i % len(NODES)]
        retry(
            "update endpoint",
            lambda: c[node].update_endpoint(
                ApplicationId=app_id, EndpointId=eid, EndpointRequest=endpoint_request(i)
            ),
        )
    for n in NODES:
        for i, eid in enumerate(ids):
            ep = c[n].get_endpoint(ApplicationId=app_id, EndpointId=eid)["EndpointResponse"]
            assert ep["Address"] == f"user{i}@example.com", (n, eid)

    # Raft and RPC metrics per node.
    text = harness.requests.get(cluster[2].url + "/metrics", timeout=10).text
    for name in ("herald_raft_is_leader", "herald_raft_applied_index", "herald_rpc_client_calls_total"):
        assert name in text, f"{name} missing from /metrics"
    # The gauges are sampled per node, so a leadership moving between two
    # samples is seen twice or not at all; poll until they agree (bounded).
    deadline = time.monotonic() + 10
    while True:
        led = sum(
            float(line.split()[-1])
            for s in cluster.values()
            for line in harness.requests.get(s.url + "/metrics", timeout=10).text.splitlines()
            if line.startswith("herald_raft_groups_led ")
        )
        if led == SHARDS + 1 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert led == SHARDS + 1, f"{led} groups led across the nodes, want one leader per group"

    # SIGKILL node 1 (it initialised every group, so it leads some); the
    # other two keep accepting writes and serving reads.
    cluster[1].kill()
    later = [f"late-{i}" for i in range(6)]
    for i, eid in enumerate(later):
        node = (2, 3)[i % 2]
        retry(
            "update endpoint after a kill",
            lambda: c[node].update_endpoint(
                ApplicationId=app_id, EndpointId=eid, EndpointRequest=endpoint_request(100 + i)
            ),
        )
    for n in (2, 3):
        for eid in ids + later:
            retry("read after a kill", lambda: c[n].get_endpoint(ApplicationId=app_id, EndpointId=eid))

    # Node 1 comes back on its data and catches up on what it missed.
    cluster[1].restart(wait=True)
    c1 = cluster[1].client()
    for i, eid in enumerate(later):
        ep = retry("read on the restarted node", lambda: c1.get_endpoint(ApplicationId=app_id, EndpointId=eid))
        assert ep["EndpointResponse"]["Address"] == f"user{100 + i}@example.com"


def test_a_node_joins_a_running_cluster_and_another_is_removed(cluster, tmp_path):
    cluster, rpc, seen = cluster
    c = {n: s.client() for n, s in cluster.items()}
    app_id = retry("create app", lambda: c[1].create_app(CreateApplicationRequest={"Name": "j"}))[
        "ApplicationResponse"
    ]["Id"]
    before = [f"before-{i}" for i in range(8)]
    for i, eid in enumerate(before):
        retry(
            "update endpoint",
            lambda: c[NODES[i % 3]].update_endpoint(
                ApplicationId=app_id, EndpointId=eid, EndpointRequest=endpoint_request(i)
            ),
        )

    # Node 4 gets a certificate from the same CA and joins through node 1.
    init_certs(tmp_path / "tls", [4])
    rpc[4] = free_udp_port()
    four = node_server(tmp_path, 4, rpc[4], "--join", f"1=127.0.0.1:{rpc[1]}")
    seen.append(four)
    # Under a steady write load, it joins every group as a learner (a full
    # copy); placement then moves votes to it one group at a time until
    # each group has 3 voters and the 4 nodes vote in 3 or 4 of the 5 groups
    # each.
    with Writer(app_id, dict(cluster), limit=1500) as w:
        four.start(wait=True)
        groups = wait_placement(four, [1, 2, 3, 4])
    assert sum(1 for g in groups if 4 in g["voters"]) >= 3, groups
    print(f"\n{len(w.acked)} writes acknowledged, {w.failed} failed while node 4 joined")
    assert len(w.acked) >= 50, f"only {len(w.acked)} writes acknowledged: {w.errors}"
    assert w.failed == 0, w.errors
    assert_acked_everywhere({**cluster, 4: four}, app_id, w.acked)
    c4 = four.client()
    # Everything written before is readable through the new node, and it
    # takes writes that the others see.
    for i, eid in enumerate(before):
        ep = retry("read on node 4", lambda: c4.get_endpoint(ApplicationId=app_id, EndpointId=eid))
        assert ep["EndpointResponse"]["Address"] == f"user{i}@example.com"
    retry(
        "write through node 4",
        lambda: c4.update_endpoint(
            ApplicationId=app_id, EndpointId="via-4", EndpointRequest=endpoint_request(40)
        ),
    )
    assert c[2].get_endpoint(ApplicationId=app_id, EndpointId="via-4")["EndpointResponse"][
        "Address"
    ] == "user40@example.com"

    # Removing an unknown node is a clear 404; node 2 leaves every group.
    r = harness.signed_request(cluster[3].url, "DELETE", "/herald/v1/cluster/nodes/9")
    assert r.status_code == 404, r.text
    removed = cli("remove-node", "2", "--url", cluster[3].url)
    assert f"removed from {SHARDS + 1} groups" in removed, removed
    wait_voters(cluster[1], [1, 3, 4])
    status = cli("status", "--url", four.url)
    assert "node 4 of nodes [1,3,4]" in status, status
    cluster[2].kill()
    # Three voters left: one more failure is survivable, and writes go on.
    retry(
        "write after removing node 2",
        lambda: c[3].update_endpoint(
            ApplicationId=app_id, EndpointId="after-remove", EndpointRequest=endpoint_request(50)
        ),
    )
    for client in (c[1], c4):
        for eid in before + ["via-4", "after-remove"]:
            retry("read after remove", lambda: client.get_endpoint(ApplicationId=app_id, EndpointId=eid))


def test_acknowledged_writes_survive_repeated_leader_kills(cluster):
    cluster, _, _ = cluster
    c = {n: s.client() for n, s in cluster.items()}
    app_id = retry("create app", lambda: c[1].create_app(CreateApplicationRequest={"Name": "k"}))[
        "ApplicationResponse"
    ]["Id"]
    with Writer(app_id, cluster) as w:
        for _ in range(3):
            time.sleep(1.5)
            victim = leader_of_most_groups(cluster, set())
            w.down.add(victim)
            cluster[victim].kill()
            time.sleep(1.5)
            cluster[victim].restart(wait=False)
            cluster[victim].wait_ready()
            w.down.discard(victim)
        time.sleep(1.0)
    print(f"\n{len(w.acked)} writes acknowledged, {w.failed} failed during 3 leader kills")
    assert len(w.acked) >= 50, f"only {len(w.acked)} writes acknowledged ({w.failed} failed)"
    # Every acknowledged write is on every node.
    assert_acked_everywhere(cluster, app_id, w.acked)


def test_a_partitioned_node_refuses_writes_and_catches_up_after_healing(tmp_path, request):
    from udp_proxy import UdpProxy

    tls = tmp_path / "tls"
    init_certs(tls, NODES)
    rpc = {n: free_udp_port() for n in NODES}
    proxies = {n: UdpProxy(rpc[n]) for n in NODES}
    peers = ",".join(f"{n}=127.0.0.1:{proxies[n].port}" for n in NODES)
    cluster = {
        n: node_server(
            tmp_path, n, rpc[n], "--rpc-advertise", f"127.0.0.1:{proxies[n].port}", "--peers", peers
        )
        for n in NODES
    }
    request.node._herald_servers = list(cluster.values())
    try:
        for s in cluster.values():
            s.start(wait=False)
        for s in cluster.values():
            s.wait_ready()
        c = {n: s.client() for n, s in cluster.items()}
        app_id = retry("create app", lambda: c[1].create_app(CreateApplicationRequest={"Name": "p"}))[
            "ApplicationResponse"
        ]["Id"]
        retry(
            "write before the partition",
            lambda: c[3].update_endpoint(
                ApplicationId=app_id, EndpointId="before", EndpointRequest=endpoint_request(1)
            ),
        )

        # Cut node 3 off: nothing reaches it, nothing it sends arrives.
        proxies[3].isolated = True
        for n in (1, 2):
            proxies[n].blocked_sources = {rpc[3]}
        during = [f"during-{i}" for i in range(6)]
        for i, eid in enumerate(during):
            retry(
                "write through the majority",
                lambda: c[(1, 2)[i % 2]].update_endpoint(
                    ApplicationId=app_id, EndpointId=eid, EndpointRequest=endpoint_request(10 + i)
                ),
            )
        # The minority refuses writes with Pinpoint's error, not a hang.
        started = time.monotonic()
        r = harness.signed_request(
            cluster[3].url,
            "PUT",
            f"/v1/apps/{app_id}/endpoints/minority",
            {"ChannelType": "EMAIL", "Address": "minority@example.com"},
        )
        assert r.status_code == 429, r.text
        assert "cannot serve" in r.json()["Message"], r.text
        assert time.monotonic() - started < 25
        assert proxies[3].dropped > 0

        # Healed, node 3 serves again and has what the majority wrote.
        proxies[3].isolated = False
        for n in (1, 2):
            proxies[n].blocked_sources = set()
        for i, eid in enumerate(during):
            ep = retry(
                "read on the healed node",
                lambda: c[3].get_endpoint(ApplicationId=app_id, EndpointId=eid),
            )
            assert ep["EndpointResponse"]["Address"] == f"user{10 + i}@example.com"
        retry(
            "write through the healed node",
            lambda: c[3].update_endpoint(
                ApplicationId=app_id, EndpointId="after", EndpointRequest=endpoint_request(2)
            ),
        )
        # The refused write left nothing behind.
        r = harness.signed_request(cluster[1].url, "GET", f"/v1/apps/{app_id}/endpoints/minority")
        assert r.status_code == 404, r.text
    finally:
        for s in cluster.values():
            s.kill_quietly()
        for p in proxies.values():
            p.close()


def test_rolling_restart_under_load_loses_nothing(cluster):
    cluster, _, _ = cluster
    c1 = cluster[1].client()
    app_id = retry("create app", lambda: c1.create_app(CreateApplicationRequest={"Name": "r"}))[
        "ApplicationResponse"
    ]["Id"]
    with Writer(app_id, cluster) as w:
        for n in NODES:
            time.sleep(1.0)
            w.down.add(n)
            # SIGTERM: in-flight requests finish, the node exits cleanly.
            cluster[n].stop_gracefully()
            cluster[n].restart(wait=False)
            cluster[n].wait_ready()
            w.down.discard(n)
        time.sleep(1.0)
    print(f"\n{len(w.acked)} writes acknowledged, {w.failed} failed during a rolling restart")
    assert len(w.acked) >= 50, f"only {len(w.acked)} writes acknowledged ({w.failed} failed)"
    # A stopping node hands its leaderships over first, so the live nodes
    # answer (almost) every write; 0 failed in 3 local runs.
    assert w.failed <= len(w.acked) // 50, w.errors
    assert_acked_everywhere(cluster, app_id, w.acked)

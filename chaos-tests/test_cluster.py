"""Real herald processes forming a cluster over QUIC on loopback.

Three nodes started from a static peer list with certificates from
`herald cluster init-certs`: any node serves any request (writes are
forwarded to the owning group's leader, reads see every acknowledged write),
a SIGKILLed node does not stop the other two, and it catches up when it
comes back on its data directory.

Every wait is bounded; processes are killed at the end whatever happens.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "api"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
from harness import HeraldServer  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

NODES = (1, 2, 3)
# Few shards keep three processes light on two cores.
SHARDS = 4
RETRY_S = 20.0


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def retry(what: str, call, timeout_s: float = RETRY_S):
    """Calls `call` until it succeeds; a cluster still electing may answer
    503 for a moment. Bounded in time."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        try:
            return call()
        except ClientError as e:
            last = e
            time.sleep(0.2)
    raise AssertionError(f"{what}: no success within {timeout_s:.0f}s; last error: {last}")


def init_certs(tls: Path, nodes) -> None:
    out = subprocess.run(
        [
            str(harness.require_herald_bin()),
            "cluster",
            "init-certs",
            "--out",
            str(tls),
            "--nodes",
            ",".join(map(str, nodes)),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr


def cli(*args) -> str:
    """Runs `herald cluster ARGS` with the test's access key; its stdout."""
    import os

    env = dict(os.environ)
    env["HERALD_ACCESS_KEY_ID"] = harness.ACCESS_KEY_ID
    env["HERALD_SECRET_ACCESS_KEY"] = harness.SECRET_ACCESS_KEY
    out = subprocess.run(
        [str(harness.require_herald_bin()), "cluster", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def node_server(tmp_path: Path, n: int, rpc_port: int, *args) -> HeraldServer:
    return HeraldServer(
        tmp_path / f"node-{n}",
        tmp_path / f"node-{n}.log",
        extra_env={"HERALD_SHARDS": str(SHARDS)},
        extra_args=[
            "--node-id", n,
            "--rpc", f"127.0.0.1:{rpc_port}",
            "--tls-dir", tmp_path / "tls",
            *args,
        ],
    )


@pytest.fixture
def cluster(tmp_path, request):
    tls = tmp_path / "tls"
    init_certs(tls, NODES)
    assert (tls / "ca.key.pem").stat().st_mode & 0o077 == 0, "CA key readable by others"
    rpc = {n: free_udp_port() for n in NODES}
    peers = ",".join(f"{n}=127.0.0.1:{rpc[n]}" for n in NODES)
    servers = {n: node_server(tmp_path, n, rpc[n], "--peers", peers) for n in NODES}
    servers_seen = list(servers.values())
    request.node._herald_servers = servers_seen
    try:
        for s in servers.values():
            s.start(wait=False)
        for s in servers.values():
            s.wait_ready()
        yield servers, rpc, servers_seen
    finally:
        for s in servers_seen:
            s.kill_quietly()


def status_of(server: HeraldServer) -> dict:
    r = harness.signed_request(server.url, "GET", "/herald/v1/cluster")
    assert r.status_code == 200, r.text
    return r.json()


def wait_voters(server: HeraldServer, want: list, timeout_s: float = RETRY_S) -> None:
    deadline = time.monotonic() + timeout_s
    groups = None
    while time.monotonic() < deadline:
        groups = status_of(server)["Groups"]
        if all(g["voters"] == want and g["leader"] in want for g in groups):
            return
        time.sleep(0.2)
    raise AssertionError(f"voters never became {want}: {groups}")


def endpoint_request(i: int) -> dict:
    return {
        "ChannelType": "EMAIL",
        "Address": f"user{i}@example.com",
        "Attributes": {"Plan": ["gold" if i % 2 else "free"]},
    }


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
    led = sum(
        float(line.split()[-1])
        for s in cluster.values()
        for line in harness.requests.get(s.url + "/metrics", timeout=10).text.splitlines()
        if line.startswith("herald_raft_groups_led ")
    )
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
    four.start(wait=True)
    wait_voters(four, [1, 2, 3, 4])
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


class Writer:
    """Writes endpoints through the live nodes in a background thread and
    records every write the cluster acknowledged. Bounded by `limit`."""

    def __init__(self, app_id: str, clients: dict, limit: int = 2000):
        import threading

        self.app_id = app_id
        self.clients = clients
        self.limit = limit
        self.acked: list = []
        self.failed = 0
        self.down: set = set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        i = 0
        while not self.stop.is_set() and i < self.limit:
            live = [n for n in sorted(self.clients) if n not in self.down]
            node = live[i % len(live)]
            eid = f"load-{i}"
            try:
                self.clients[node].update_endpoint(
                    ApplicationId=self.app_id, EndpointId=eid, EndpointRequest=endpoint_request(i)
                )
                self.acked.append(eid)
            except Exception:  # unknown outcome: not counted as acknowledged
                self.failed += 1
                time.sleep(0.05)
            i += 1

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive(), "the writer did not stop"


def assert_acked_everywhere(cluster: dict, app_id: str, acked: list) -> None:
    """Every write the Writer saw acknowledged is readable, with its
    address, through every node."""
    for n, s in cluster.items():
        client = s.client()
        for eid in acked:
            i = int(eid.split("-")[1])
            ep = retry(
                f"read {eid} on node {n}",
                lambda: client.get_endpoint(ApplicationId=app_id, EndpointId=eid),
            )
            assert ep["EndpointResponse"]["Address"] == f"user{i}@example.com", (n, eid)


def leader_of_most_groups(servers: dict, down: set) -> int:
    for n, s in servers.items():
        if n in down:
            continue
        groups = status_of(s)["Groups"]
        counts: dict = {}
        for g in groups:
            if g["leader"] is not None:
                counts[g["leader"]] = counts.get(g["leader"], 0) + 1
        if counts:
            return max(counts, key=counts.get)
    raise AssertionError("no node knows any leader")


def test_acknowledged_writes_survive_repeated_leader_kills(cluster):
    cluster, _, _ = cluster
    c = {n: s.client() for n, s in cluster.items()}
    app_id = retry("create app", lambda: c[1].create_app(CreateApplicationRequest={"Name": "k"}))[
        "ApplicationResponse"
    ]["Id"]
    # Fresh clients for the writer thread (boto3 clients are not shared
    # across threads).
    writer_clients = {n: s.client() for n, s in cluster.items()}
    with Writer(app_id, writer_clients) as w:
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
    with Writer(app_id, {n: s.client() for n, s in cluster.items()}) as w:
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
    assert_acked_everywhere(cluster, app_id, w.acked)

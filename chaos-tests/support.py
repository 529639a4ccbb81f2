"""What the chaos tests share: starting nodes, retrying through elections,
reading cluster status, and a bounded background writer that records every
acknowledged write."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "api"))

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


def node_server(tmp_path: Path, n: int, rpc_port: int, *args, env: dict | None = None) -> HeraldServer:
    return HeraldServer(
        tmp_path / f"node-{n}",
        tmp_path / f"node-{n}.log",
        extra_env={"HERALD_SHARDS": str(SHARDS), **(env or {})},
        extra_args=[
            "--node-id", n,
            "--rpc", f"127.0.0.1:{rpc_port}",
            "--tls-dir", tmp_path / "tls",
            *args,
        ],
    )


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


def wait_placement(server: HeraldServer, nodes: list, replication: int = 3,
                   timeout_s: float = 60.0) -> list:
    """Waits until, as `server` sees it, every group has `replication`
    voters among `nodes` (one of them leading), every node holds a copy
    (voter or learner), and the nodes vote in numbers of groups at most one
    apart. Answers the groups."""
    deadline = time.monotonic() + timeout_s
    groups = None
    while time.monotonic() < deadline:
        groups = status_of(server)["Groups"]
        votes = {n: sum(1 for g in groups if n in g["voters"]) for n in nodes}
        if (
            all(
                len(g["voters"]) == replication
                and set(g["voters"]) <= set(nodes)
                and sorted(g["voters"] + g["learners"]) == sorted(nodes)
                and g["leader"] in g["voters"]
                for g in groups
            )
            and max(votes.values()) - min(votes.values()) <= 1
        ):
            return groups
        time.sleep(0.5)
    raise AssertionError(f"placement never settled over {nodes}: {groups}")


def endpoint_request(i: int) -> dict:
    return {
        "ChannelType": "EMAIL",
        "Address": f"user{i}@example.com",
        "Attributes": {"Plan": ["gold" if i % 2 else "free"]},
    }


class Writer:
    """Writes endpoints through the live nodes in a background thread and
    records every write the cluster acknowledged. Bounded by `limit`.
    A restarted node listens on a new HTTP port; the writer follows it."""

    def __init__(self, app_id: str, servers: dict, limit: int = 2000):
        import threading

        self.app_id = app_id
        self.servers = servers
        # node -> (port, client); boto3 clients stay in the writer's thread.
        self.clients: dict = {}
        self.limit = limit
        self.acked: list = []
        self.failed = 0
        self.errors: list = []
        self.down: set = set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def client(self, node: int):
        port = self.servers[node].port
        cached = self.clients.get(node)
        if cached is None or cached[0] != port:
            cached = (port, harness.make_client(f"http://127.0.0.1:{port}"))
            self.clients[node] = cached
        return cached[1]

    def run(self) -> None:
        i = 0
        while not self.stop.is_set() and i < self.limit:
            live = [n for n in sorted(self.servers) if n not in self.down]
            node = live[i % len(live)]
            eid = f"load-{i}"
            try:
                self.client(node).update_endpoint(
                    ApplicationId=self.app_id, EndpointId=eid, EndpointRequest=endpoint_request(i)
                )
                self.acked.append(eid)
            except Exception as e:  # unknown outcome: not counted as acknowledged
                self.failed += 1
                if len(self.errors) < 20:
                    self.errors.append(f"node {node}: {e}")
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




@contextlib.contextmanager
def three_nodes(tmp_path: Path, request, env: dict | None = None):
    """Nodes 1-3 from a static peer list with fresh certificates; yields
    (servers by id, RPC ports by id, every server started, for the logs and
    the clean-up). Every process is killed at the end."""
    tls = tmp_path / "tls"
    init_certs(tls, NODES)
    assert (tls / "ca.key.pem").stat().st_mode & 0o077 == 0, "CA key readable by others"
    rpc = {n: free_udp_port() for n in NODES}
    peers = ",".join(f"{n}=127.0.0.1:{rpc[n]}" for n in NODES)
    servers = {n: node_server(tmp_path, n, rpc[n], "--peers", peers, env=env) for n in NODES}
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

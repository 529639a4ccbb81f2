"""A campaign over thousands of endpoints, delivered to a real SMTP server on
loopback, while the node coordinating it is SIGKILLed mid-run.

The node that leads the meta group coordinates campaign runs; each shard's
part runs on that shard's leader, wherever it is. Killing the coordinator
mid-run hands the run to the new meta leader, which resumes from the run's
stored progress and the shards' committed send intents. What a user checks
in the mailbox: no address receives the message twice, and every endpoint
receives it except those whose send was in flight on the killed node
(intent committed, answer not recorded), which herald reports as
`outcome_unknown` rather than resending. Those are bounded by the batches
the killed node's shard runs keep in flight.
"""

from __future__ import annotations

import collections
import time

from smtp_peer import SmtpPeer
import harness
from support import NODES, retry, status_of, three_nodes

ENDPOINTS = 3000
# What one shard run may have in flight: BATCHES_IN_FLIGHT (4) batches of
# BATCH_MAX (256) endpoints (actors/src/campaign_run.rs).
SHARD_IN_FLIGHT_MAX = 4 * 256


def data_groups_led(servers: dict, node: int) -> int:
    groups = status_of(servers[node])["Groups"]
    return sum(1 for g in groups if g["group"] != 0 and g["leader"] == node)


def shard_runs_served(server) -> float:
    text = harness.requests.get(server.url + "/metrics", timeout=10).text
    return sum(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith('herald_node_calls_total{call="run_shard"}')
    )


def meta_leader(servers: dict, down: set) -> int | None:
    for n, s in servers.items():
        if n in down:
            continue
        for g in status_of(s)["Groups"]:
            if g["group"] == 0 and g["leader"] is not None:
                return g["leader"]
    return None


def test_a_campaign_survives_the_sigkill_of_the_node_running_it(tmp_path, request):
    # A slow mail server (5 ms per message per connection) keeps the run
    # going long enough to be cut in the middle.
    smtp = SmtpPeer(data_delay_s=0.005).start()
    env = {
        "HERALD_SMTP_URL": smtp.url,
        "HERALD_DELIVERY_RETRY_BASE_MS": "20",
        "HERALD_DELIVERY_RETRY_MAX_MS": "100",
    }
    try:
        with three_nodes(tmp_path, request, env=env) as (servers, _, _):
            c = {n: s.client() for n, s in servers.items()}
            app_id = retry("create app", lambda: c[1].create_app(CreateApplicationRequest={"Name": "camp"}))[
                "ApplicationResponse"
            ]["Id"]
            retry(
                "email channel",
                lambda: c[1].update_email_channel(
                    ApplicationId=app_id,
                    EmailChannelRequest={"FromAddress": "news@example.com", "Identity": "example.com"},
                ),
            )
            addresses = [f"u{i}@example.org" for i in range(ENDPOINTS)]
            for k in range(0, ENDPOINTS, 100):
                items = [
                    {"Id": f"e{i}", "ChannelType": "EMAIL", "Address": addresses[i]}
                    for i in range(k, min(k + 100, ENDPOINTS))
                ]
                retry(
                    "endpoint batch",
                    lambda: c[NODES[k // 100 % 3]].update_endpoints_batch(
                        ApplicationId=app_id, EndpointBatchRequest={"Item": items}
                    ),
                )
            seg = retry(
                "segment",
                lambda: c[2].create_segment(
                    ApplicationId=app_id,
                    WriteSegmentRequest={"Name": "all", "Dimensions": {"Demographic": {"Channel": {"Values": ["EMAIL"]}}}},
                ),
            )["SegmentResponse"]["Id"]
            runner = meta_leader(servers, set())
            assert runner is not None, "no meta leader"
            others = [n for n in NODES if n != runner]
            # Leaderships spread over the nodes (balancing runs every second),
            # so shard runs go to other nodes than the coordinator.
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not all(data_groups_led(servers, n) for n in others):
                time.sleep(0.2)
            led_by_runner = data_groups_led(servers, runner)
            campaign = c[others[0]].create_campaign(
                ApplicationId=app_id,
                WriteCampaignRequest={
                    "Name": "launch",
                    "SegmentId": seg,
                    "MessageConfiguration": {"EmailMessage": {"Title": "Launch", "Body": "Hello"}},
                    "Schedule": {"StartTime": "IMMEDIATE", "Frequency": "ONCE"},
                },
            )["CampaignResponse"]

            # Kill the node running the campaign once a tenth has arrived.
            deadline = time.monotonic() + 60
            while len(smtp.all()) < ENDPOINTS // 10 and time.monotonic() < deadline:
                time.sleep(0.01)
            at_kill = len(smtp.all())
            assert ENDPOINTS // 10 <= at_kill < ENDPOINTS, f"{at_kill} messages when the kill was due"
            servers[runner].kill()

            # Another node takes the run over and finishes it.
            client = c[others[0]]
            deadline = time.monotonic() + 120
            state = None
            while time.monotonic() < deadline:
                try:
                    state = client.get_campaign(ApplicationId=app_id, CampaignId=campaign["Id"])[
                        "CampaignResponse"
                    ]["State"]["CampaignStatus"]
                except Exception:  # the cluster is electing a new meta leader
                    state = None
                if state == "COMPLETED":
                    break
                time.sleep(0.2)
            assert state == "COMPLETED", f"the run never completed after the kill: {state}"
            assert meta_leader(servers, {runner}) in others
            time.sleep(1.0)  # nothing more should arrive

            got = smtp.all()
            per_address = collections.Counter(m.rcpt_tos[0] for m in got)
            twice = {a: n for a, n in per_address.items() if n > 1}
            assert not twice, f"{len(twice)} addresses received the message more than once: {list(twice)[:5]}"
            assert set(per_address) <= set(addresses)
            missing = set(addresses) - set(per_address)
            assert len(got) > at_kill, "nothing was delivered after the kill"

            # Shards were run on their leaders, asked by the coordinator.
            served = sum(shard_runs_served(servers[n]) for n in others)
            assert served > 0, "no node ran a shard for another node"

            # What did not arrive is what herald reports as in flight at the
            # crash, and no more than the killed node's shard runs keep in
            # flight (those of the shards it led; one more in case a
            # leadership moved to it meanwhile).
            items = retry(
                "activities",
                lambda: client.get_campaign_activities(ApplicationId=app_id, CampaignId=campaign["Id"]),
            )["ActivitiesResponse"]["Item"]
            unknown = sum(int(a["ExecutionMetrics"].get("skipped_outcome_unknown", "0")) for a in items)
            print(
                f"\n{at_kill} delivered before the kill of node {runner} (leading {led_by_runner} shards), "
                f"{len(got)} in all, {len(missing)} missing, {unknown} reported outcome_unknown, "
                f"{served} shard runs served by the other nodes"
            )
            assert len(missing) <= unknown <= (led_by_runner + 1) * SHARD_IN_FLIGHT_MAX, (len(missing), unknown)
    finally:
        smtp.stop()

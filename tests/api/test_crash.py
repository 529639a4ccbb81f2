"""Crash durability: whatever herald acknowledged survives SIGKILL.

A 202 from UpdateEndpoint is a promise that the write is durable. These tests
kill the process with SIGKILL (no flush, no shutdown hook), restart it on the
same data dir, and read everything back.
"""

from __future__ import annotations

import threading

from botocore.exceptions import ClientError

from harness import expect_error, make_client, unique

THREADS = 4
ENDPOINTS_PER_THREAD = 25
VERSIONS = 3  # 4 threads x 25 endpoints x 3 versions = 300 single UpdateEndpoint calls
USERS = 10


def endpoint_body(ep: str, version: int, user: str) -> dict:
    return {
        "ChannelType": "EMAIL",
        "Address": f"v{version}.{ep}@example.com",
        "Attributes": {"version": [str(version)], "endpoint": [ep]},
        "Metrics": {"version": float(version)},
        "User": {"UserId": user},
    }


def run_writers(url: str, app_id: str, threads: int, plan, acked: dict, in_flight: dict, stop: threading.Event, progress=None):
    """Each thread t runs plan(t) -> [(endpoint id, version, user)] in order, sequentially.

    Records the last acknowledged version per endpoint in `acked`, and a write that
    raised (so may or may not have applied) in `in_flight`.
    """
    lock = threading.Lock()
    errors = []

    def worker(t: int) -> None:
        client = make_client(url)
        for ep, version, user in plan(t):
            if stop.is_set():
                return
            try:
                resp = client.update_endpoint(
                    ApplicationId=app_id, EndpointId=ep, EndpointRequest=endpoint_body(ep, version, user)
                )
            except Exception as e:  # connection refused/reset once the server is gone
                with lock:
                    in_flight[ep] = version
                    errors.append(repr(e))
                return
            status = resp["ResponseMetadata"]["HTTPStatusCode"]
            if status != 202:
                with lock:
                    errors.append(f"{ep} v{version}: HTTP {status}, want 202")
                return
            with lock:
                acked[ep] = version
            if progress is not None:
                progress.release()

    workers = [threading.Thread(target=worker, args=(t,), daemon=True) for t in range(threads)]
    for w in workers:
        w.start()
    return workers, errors


def test_every_acknowledged_endpoint_survives_sigkill(start_server):
    server = start_server(name="crash")
    pp = server.client()
    app_id = pp.create_app(CreateApplicationRequest={"Name": unique("crash")})["ApplicationResponse"]["Id"]

    def plan(t: int):
        owned = [f"ep-{t}-{i:02d}" for i in range(ENDPOINTS_PER_THREAD)]
        return [
            (ep, version, f"user-{(t * ENDPOINTS_PER_THREAD + i) % USERS}")
            for version in range(1, VERSIONS + 1)
            for i, ep in enumerate(owned)
        ]

    acked, in_flight, stop = {}, {}, threading.Event()
    workers, errors = run_writers(server.url, app_id, THREADS, plan, acked, in_flight, stop)
    for w in workers:
        w.join(timeout=120)
        assert not w.is_alive(), "a writer thread hung"
    assert not errors, f"writes failed while the server was up: {errors[:3]}"
    assert len(acked) == THREADS * ENDPOINTS_PER_THREAD
    assert set(acked.values()) == {VERSIONS}

    server.kill()  # right after the last acknowledgement
    server.restart()
    pp = server.client()

    assert pp.get_app(ApplicationId=app_id)["ApplicationResponse"]["Id"] == app_id
    for ep, version in sorted(acked.items()):
        got = pp.get_endpoint(ApplicationId=app_id, EndpointId=ep)["EndpointResponse"]
        assert got["Attributes"] == {"version": [str(version)], "endpoint": [ep]}, f"{ep} lost its last write"
        assert got["Address"] == f"v{version}.{ep}@example.com"
        assert got["Metrics"] == {"version": float(version)}
    # The user index is as durable as the endpoints it indexes.
    by_user: dict = {}
    for t in range(THREADS):
        for ep, _, user in plan(t)[:ENDPOINTS_PER_THREAD]:
            by_user.setdefault(user, set()).add(ep)
    for user, eps in sorted(by_user.items()):
        items = pp.get_user_endpoints(ApplicationId=app_id, UserId=user)["EndpointsResponse"]["Item"]
        assert {e["Id"] for e in items} == eps, f"user index of {user} differs after the crash"
    server.stop_gracefully()


def test_sigkill_mid_stream_loses_nothing_acknowledged(start_server):
    server = start_server(name="midstream")
    app_id = server.client().create_app(CreateApplicationRequest={"Name": unique("mid")})["ApplicationResponse"]["Id"]
    versions_max = 50  # bounded: at most 4 threads x 10 endpoints x 50 versions

    def plan(t: int):
        owned = [f"m-{t}-{i}" for i in range(10)]
        return [(ep, version, f"mu-{t}") for version in range(1, versions_max + 1) for ep in owned]

    acked, in_flight, stop = {}, {}, threading.Event()
    progress = threading.Semaphore(0)
    workers, _ = run_writers(server.url, app_id, THREADS, plan, acked, in_flight, stop, progress)
    for _ in range(150):  # kill after 150 acknowledgements, while writes are still in flight
        assert progress.acquire(timeout=60), "writers made no progress"
    server.kill()
    stop.set()
    for w in workers:
        w.join(timeout=60)
        assert not w.is_alive(), "a writer thread hung"

    server.restart()
    pp = server.client()
    final, maybe = dict(acked), dict(in_flight)
    assert len(final) >= 10, "too few acknowledged writes to mean anything"
    for ep in sorted(set(final) | set(maybe)):
        allowed = {final[ep]} if ep in final else set()
        if ep in maybe:
            allowed.add(maybe[ep])
        try:
            got = pp.get_endpoint(ApplicationId=app_id, EndpointId=ep)["EndpointResponse"]
        except ClientError as e:
            assert ep not in final, f"{ep}: acknowledged v{final[ep]} lost ({e.response['Error']['Code']})"
            continue
        version = int(got["Attributes"]["version"][0])
        assert version in allowed, f"{ep}: acknowledged v{final.get(ep)}, in flight v{maybe.get(ep)}, found v{version}"
        assert got["Address"] == f"v{version}.{ep}@example.com", "attributes and address from different writes"
    server.stop_gracefully()


def test_app_level_writes_survive_sigkill(start_server):
    """Apps, settings, tags, batches and PutEvents upserts, each acknowledged, then kill -9."""
    server = start_server(name="crash-meta")
    pp = server.client()
    app = pp.create_app(CreateApplicationRequest={"Name": unique("meta"), "tags": {"a": "1"}})["ApplicationResponse"]
    app_id = app["Id"]
    deleted = pp.create_app(CreateApplicationRequest={"Name": unique("deleted")})["ApplicationResponse"]["Id"]
    pp.delete_app(ApplicationId=deleted)
    pp.update_application_settings(
        ApplicationId=app_id, WriteApplicationSettingsRequest={"QuietTime": {"Start": "20:00", "End": "06:00"}}
    )
    pp.tag_resource(ResourceArn=app["Arn"], TagsModel={"tags": {"b": "2"}})
    for k in range(5):
        items = [
            {"Id": f"batch-{k}-{i}", "ChannelType": "SMS", "Address": f"+1206{k:03d}{i:04d}", "User": {"UserId": f"bu-{k}-{i % 2}"}}
            for i in range(20)
        ]
        pp.update_endpoints_batch(ApplicationId=app_id, EndpointBatchRequest={"Item": items})
    pp.put_events(
        ApplicationId=app_id,
        EventsRequest={
            "BatchItem": {
                "ev-ep": {
                    "Endpoint": {"ChannelType": "GCM", "Address": "fcm-token", "Attributes": {"src": ["events"]}},
                    "Events": {"e": {"EventType": "_session.start", "Timestamp": "2024-05-01T12:00:00.000Z"}},
                }
            }
        },
    )
    pp.delete_endpoint(ApplicationId=app_id, EndpointId="batch-0-0")

    server.kill()
    server.restart()
    pp = server.client()

    got = pp.get_app(ApplicationId=app_id)["ApplicationResponse"]
    assert got["Name"] == app["Name"]
    assert got["tags"] == {"a": "1", "b": "2"}
    expect_error(pp.get_app, "NotFoundException", 404, ApplicationId=deleted)
    settings = pp.get_application_settings(ApplicationId=app_id)["ApplicationSettingsResource"]
    assert settings["QuietTime"] == {"Start": "20:00", "End": "06:00"}
    for k in range(5):
        for i in range(20):
            if (k, i) == (0, 0):
                continue
            ep = pp.get_endpoint(ApplicationId=app_id, EndpointId=f"batch-{k}-{i}")["EndpointResponse"]
            assert ep["Address"] == f"+1206{k:03d}{i:04d}"
    expect_error(pp.get_endpoint, "NotFoundException", 404, ApplicationId=app_id, EndpointId="batch-0-0")
    assert len(pp.get_user_endpoints(ApplicationId=app_id, UserId="bu-3-1")["EndpointsResponse"]["Item"]) == 10
    assert len(pp.get_user_endpoints(ApplicationId=app_id, UserId="bu-0-0")["EndpointsResponse"]["Item"]) == 9
    ev = pp.get_endpoint(ApplicationId=app_id, EndpointId="ev-ep")["EndpointResponse"]
    assert (ev["ChannelType"], ev["Attributes"]) == ("GCM", {"src": ["events"]})
    server.stop_gracefully()

"""Everything acknowledged survives a graceful (SIGTERM) restart on the same data dir."""

from __future__ import annotations

import threading

from botocore.exceptions import ClientError

from harness import expect_error, list_all_apps, make_client, unique

SETTINGS = {
    "CampaignHook": {"WebUrl": "https://hooks.example.com/filter", "Mode": "FILTER"},
    "Limits": {"Daily": 7, "MaximumDuration": 120, "MessagesPerSecond": 30, "Total": 50, "Session": 2},
    "QuietTime": {"Start": "21:00", "End": "08:30"},
}


def snapshot(pp, app_id: str, endpoint_ids: list, user_ids: list, arn: str) -> dict:
    """Everything a user can read back about one app."""
    app = pp.get_app(ApplicationId=app_id)["ApplicationResponse"]
    settings = pp.get_application_settings(ApplicationId=app_id)["ApplicationSettingsResource"]
    endpoints = {}
    for ep in endpoint_ids:
        try:
            endpoints[ep] = pp.get_endpoint(ApplicationId=app_id, EndpointId=ep)["EndpointResponse"]
        except ClientError as e:
            endpoints[ep] = e.response["Error"]["Code"]
    users = {}
    for u in user_ids:
        try:
            items = pp.get_user_endpoints(ApplicationId=app_id, UserId=u)["EndpointsResponse"]["Item"]
            users[u] = sorted((e["Id"], e.get("Address")) for e in items)
        except ClientError as e:
            users[u] = e.response["Error"]["Code"]
    tags = pp.list_tags_for_resource(ResourceArn=arn)["TagsModel"]["tags"]
    return {"app": app, "settings": settings, "endpoints": endpoints, "users": users, "tags": tags}


def test_data_survives_graceful_restart(start_server):
    server = start_server(name="restart")
    pp = server.client()

    app = pp.create_app(CreateApplicationRequest={"Name": unique("durable"), "tags": {"env": "test", "drop": "me"}})[
        "ApplicationResponse"
    ]
    app_id, arn = app["Id"], app["Arn"]
    doomed = pp.create_app(CreateApplicationRequest={"Name": unique("doomed")})["ApplicationResponse"]["Id"]
    pp.delete_app(ApplicationId=doomed)

    pp.update_application_settings(ApplicationId=app_id, WriteApplicationSettingsRequest=SETTINGS)
    pp.tag_resource(ResourceArn=arn, TagsModel={"tags": {"owner": "qa"}})
    pp.untag_resource(ResourceArn=arn, TagKeys=["drop"])

    pp.update_endpoint(
        ApplicationId=app_id,
        EndpointId="single",
        EndpointRequest={
            "ChannelType": "EMAIL",
            "Address": "single@example.com",
            "Attributes": {"a": ["1", "2"]},
            "Metrics": {"m": 1.5},
            "Demographic": {"Timezone": "Asia/Tokyo", "Platform": "web"},
            "Location": {"Country": "JP", "Latitude": 35.68, "Longitude": 139.69},
            "User": {"UserId": "u-single", "UserAttributes": {"plan": ["pro"]}},
        },
    )
    pp.update_endpoint(ApplicationId=app_id, EndpointId="single", EndpointRequest={"OptOut": "ALL"})
    items = [
        {"Id": f"b-{i:02d}", "ChannelType": "SMS", "Address": f"+1206555{i:04d}", "User": {"UserId": f"u-{i % 3}"}}
        for i in range(20)
    ]
    pp.update_endpoints_batch(ApplicationId=app_id, EndpointBatchRequest={"Item": items})
    pp.delete_endpoint(ApplicationId=app_id, EndpointId="b-05")
    pp.delete_user_endpoints(ApplicationId=app_id, UserId="u-2")
    events = pp.put_events(
        ApplicationId=app_id,
        EventsRequest={
            "BatchItem": {
                "from-events": {
                    "Endpoint": {"ChannelType": "APNS", "Address": "tok", "User": {"UserId": "u-ev"}},
                    "Events": {"e1": {"EventType": "open", "Timestamp": "2024-05-01T12:00:00.000Z"}},
                }
            }
        },
    )
    assert events["EventsResponse"]["Results"]["from-events"]["EventsItemResponse"]["e1"]["StatusCode"] == 202
    for i in range(15):  # user at the 15-endpoint quota
        pp.update_endpoint(
            ApplicationId=app_id,
            EndpointId=f"full-{i:02d}",
            EndpointRequest={"ChannelType": "EMAIL", "Address": f"f{i}@example.com", "User": {"UserId": "u-full"}},
        )

    endpoint_ids = ["single", "from-events"] + [f"b-{i:02d}" for i in range(20)] + [f"full-{i:02d}" for i in range(15)]
    user_ids = ["u-single", "u-0", "u-1", "u-2", "u-ev", "u-full"]
    before = snapshot(pp, app_id, endpoint_ids, user_ids, arn)
    assert before["endpoints"]["b-05"] == "NotFoundException"
    assert before["users"]["u-2"] == "NotFoundException"
    apps_before = sorted(a["Id"] for a in list_all_apps(pp))

    server.stop_gracefully()
    server.restart()
    pp = server.client()

    after = snapshot(pp, app_id, endpoint_ids, user_ids, arn)
    for key in before:
        assert after[key] == before[key], f"{key} changed across a graceful restart"
    assert sorted(a["Id"] for a in list_all_apps(pp)) == apps_before
    expect_error(pp.get_app, "NotFoundException", 404, ApplicationId=doomed)

    # Derived state (the user index and its quota) was rebuilt, and writes still work.
    expect_error(
        pp.update_endpoint,
        "BadRequestException",
        400,
        ApplicationId=app_id,
        EndpointId="full-15",
        EndpointRequest={"ChannelType": "EMAIL", "Address": "f15@example.com", "User": {"UserId": "u-full"}},
    )
    pp.update_endpoint(ApplicationId=app_id, EndpointId="post-restart", EndpointRequest={"ChannelType": "SMS", "Address": "+12065559999"})
    assert pp.get_endpoint(ApplicationId=app_id, EndpointId="post-restart")["EndpointResponse"]["Address"] == "+12065559999"
    new_app = pp.create_app(CreateApplicationRequest={"Name": unique("after")})["ApplicationResponse"]
    assert new_app["Id"] not in apps_before

    server.stop_gracefully()


def test_restart_twice_and_idle_sigterm(start_server):
    server = start_server(name="idle")
    app_id = server.client().create_app(CreateApplicationRequest={"Name": unique("idle")})["ApplicationResponse"]["Id"]
    for _ in range(2):
        server.stop_gracefully()
        server.restart()
        assert server.client().get_app(ApplicationId=app_id)["ApplicationResponse"]["Id"] == app_id
    server.stop_gracefully()


def test_acknowledged_writes_survive_sigterm_under_load(start_server):
    """SIGTERM while clients are writing: the process drains and exits 0, and every
    acknowledged write is readable after the restart."""
    server = start_server(name="drain")
    app_id = server.client().create_app(CreateApplicationRequest={"Name": unique("drain")})["ApplicationResponse"]["Id"]
    threads_n, writes_per_thread_max = 4, 150
    acked: dict = {}  # endpoint id -> last acknowledged n
    in_flight: dict = {}  # endpoint id -> n of a write that failed (may or may not have applied)
    lock = threading.Lock()
    progress = threading.Semaphore(0)

    def writer(t: int) -> None:
        client = make_client(server.url)
        for n in range(writes_per_thread_max):
            ep = f"t{t}-{n % 10}"
            try:
                client.update_endpoint(
                    ApplicationId=app_id,
                    EndpointId=ep,
                    EndpointRequest={"ChannelType": "EMAIL", "Address": f"{ep}@example.com", "Attributes": {"n": [str(n)]}},
                )
            except Exception:
                with lock:
                    in_flight[ep] = n
                return  # the server is going away; nothing more will be acknowledged
            with lock:
                acked[ep] = n
            progress.release()

    threads = [threading.Thread(target=writer, args=(t,), daemon=True) for t in range(threads_n)]
    for th in threads:
        th.start()
    for _ in range(60):  # wait for 60 acknowledgements in all, bounded
        assert progress.acquire(timeout=60), "writers made no progress"
    server.stop_gracefully()
    for th in threads:
        th.join(timeout=60)
        assert not th.is_alive(), "a writer thread hung"

    server.restart()
    pp = server.client()
    with lock:
        final, maybe = dict(acked), dict(in_flight)
    assert final, "nothing was acknowledged"
    for ep in sorted(set(final) | set(maybe)):
        allowed = {str(final[ep])} if ep in final else set()
        if ep in maybe:
            allowed.add(str(maybe[ep]))
        try:
            got = pp.get_endpoint(ApplicationId=app_id, EndpointId=ep)["EndpointResponse"]["Attributes"]["n"][0]
        except ClientError as e:
            assert ep not in final, f"{ep}: acknowledged write lost ({e.response['Error']['Code']})"
            continue
        assert got in allowed, f"{ep}: acknowledged {final.get(ep)}, in flight {maybe.get(ep)}, found {got}"
    server.stop_gracefully()

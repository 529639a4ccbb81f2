"""PutEvents: per-endpoint and per-event results, endpoint upsert, request quotas.

Pinpoint validates events per item: an invalid event gets StatusCode 400 in
its EventItemResponse inside a 202 response (model doc of
EventItemResponse.StatusCode: "202, for events that were accepted; and, 400,
for events that weren't valid"). Request-level quotas (100 events per request,
4 MB per request) reject the whole request and store nothing.
"""

from __future__ import annotations

import json

import pytest

from harness import enc, expect_error, expect_raw_error, status_of

MISSING_APP = "0" * 32
TS = "2024-05-01T12:00:00.000Z"


def event(event_type="purchase", ts=TS, **extra):
    return {"EventType": event_type, "Timestamp": ts, **extra}


def put_events(pp, app_id, batch_items):
    return pp.put_events(ApplicationId=app_id, EventsRequest={"BatchItem": batch_items})


def assert_gone(pp, app_id, endpoint_id):
    expect_error(pp.get_endpoint, "NotFoundException", 404, ApplicationId=app_id, EndpointId=endpoint_id)


def item_status(result: dict) -> int:
    return result["StatusCode"]


def test_put_events_returns_per_endpoint_and_per_event_results(pp, app_id):
    resp = put_events(pp, app_id, {
        "ep-1": {
            "Endpoint": {"ChannelType": "EMAIL", "Address": "user@example.com"},
            "Events": {
                "evt-1": event(
                    Attributes={"sku": "A1"},
                    Metrics={"price": 9.99},
                    Session={"Id": "s-1", "StartTimestamp": "2024-05-01T11:59:00.000Z"},
                    AppPackageName="com.example",
                    AppVersionCode="123",
                    SdkName="custom",
                ),
                "evt-2": event("_session.start", Session={"Id": "s-1", "StartTimestamp": TS}),
            },
        }
    })
    assert status_of(resp) == 202
    results = resp["EventsResponse"]["Results"]
    assert set(results) == {"ep-1"}
    ep_result = results["ep-1"]
    assert item_status(ep_result["EndpointItemResponse"]) == 202
    assert isinstance(ep_result["EndpointItemResponse"].get("Message"), str)
    assert set(ep_result["EventsItemResponse"]) == {"evt-1", "evt-2"}
    for evt_id, r in ep_result["EventsItemResponse"].items():
        assert item_status(r) == 202, f"{evt_id}: {r}"
        assert isinstance(r.get("Message"), str)


def test_put_events_upserts_the_batch_endpoint(pp, app_id):
    endpoint = {
        "ChannelType": "APNS",
        "Address": "device-token-1",
        "Attributes": {"team": ["blue"]},
        "Demographic": {"Platform": "ios", "AppVersion": "2.0", "Timezone": "Europe/Paris"},
        "Location": {"Country": "FR", "City": "Paris"},
        "Metrics": {"level": 7.0},
        "User": {"UserId": "player-1", "UserAttributes": {"tier": ["gold"]}},
    }
    put_events(pp, app_id, {"ep-ev": {"Endpoint": endpoint, "Events": {"e1": event("level.up")}}})
    got = pp.get_endpoint(ApplicationId=app_id, EndpointId="ep-ev")["EndpointResponse"]
    for key, value in endpoint.items():
        assert got[key] == value, f"{key}: sent {value!r}, got {got.get(key)!r}"
    assert got["Id"] == "ep-ev"
    assert got["EndpointStatus"] == "ACTIVE"
    users = pp.get_user_endpoints(ApplicationId=app_id, UserId="player-1")["EndpointsResponse"]["Item"]
    assert [e["Id"] for e in users] == ["ep-ev"]


def test_put_events_merges_into_an_existing_endpoint(pp, app_id):
    pp.update_endpoint(
        ApplicationId=app_id,
        EndpointId="ep-1",
        EndpointRequest={
            "ChannelType": "SMS",
            "Address": "+12065550130",
            "Attributes": {"a": ["1"]},
            "User": {"UserId": "u-merge"},
        },
    )
    put_events(pp, app_id, {"ep-1": {"Endpoint": {"Demographic": {"Platform": "android"}}, "Events": {"e": event()}}})
    got = pp.get_endpoint(ApplicationId=app_id, EndpointId="ep-1")["EndpointResponse"]
    assert got["Demographic"]["Platform"] == "android"
    assert (got["ChannelType"], got["Address"]) == ("SMS", "+12065550130")
    assert got["Attributes"] == {"a": ["1"]}
    assert got["User"]["UserId"] == "u-merge"


def test_put_events_for_several_endpoints(pp, app_id):
    batch = {
        f"multi-{i}": {
            "Endpoint": {"ChannelType": "EMAIL", "Address": f"m{i}@example.com"},
            "Events": {f"m{i}-e{j}": event("view") for j in range(3)},
        }
        for i in range(4)
    }
    results = put_events(pp, app_id, batch)["EventsResponse"]["Results"]
    assert set(results) == set(batch)
    for ep_id, r in results.items():
        assert item_status(r["EndpointItemResponse"]) == 202
        assert set(r["EventsItemResponse"]) == set(batch[ep_id]["Events"])
        assert all(item_status(e) == 202 for e in r["EventsItemResponse"].values())
        assert pp.get_endpoint(ApplicationId=app_id, EndpointId=ep_id)["EndpointResponse"]["Address"] == batch[ep_id]["Endpoint"]["Address"]


def test_100_events_are_accepted(pp, app_id):
    events = {f"e{i:03d}": event("tick") for i in range(100)}
    resp = put_events(pp, app_id, {"ep-100": {"Endpoint": {"ChannelType": "EMAIL", "Address": "h@example.com"}, "Events": events}})
    assert status_of(resp) == 202
    statuses = resp["EventsResponse"]["Results"]["ep-100"]["EventsItemResponse"]
    assert len(statuses) == 100 and all(item_status(s) == 202 for s in statuses.values())


def test_101_events_are_rejected_and_nothing_is_stored(pp, app_id):
    events = {f"e{i:03d}": event("tick") for i in range(101)}
    expect_error(
        put_events, "BadRequestException", 400, pp, app_id,
        {"ep-101": {"Endpoint": {"ChannelType": "EMAIL", "Address": "o@example.com", "User": {"UserId": "u101"}}, "Events": events}},
    )
    assert_gone(pp, app_id, "ep-101")
    expect_error(pp.get_user_endpoints, "NotFoundException", 404, ApplicationId=app_id, UserId="u101")


def test_101_events_across_endpoints_are_rejected_and_nothing_is_stored(pp, app_id):
    batch = {
        "split-a": {"Endpoint": {"ChannelType": "EMAIL", "Address": "a@example.com"}, "Events": {f"a{i}": event() for i in range(51)}},
        "split-b": {"Endpoint": {"ChannelType": "EMAIL", "Address": "b@example.com"}, "Events": {f"b{i}": event() for i in range(50)}},
    }
    expect_error(put_events, "BadRequestException", 400, pp, app_id, batch)
    assert_gone(pp, app_id, "split-a")
    assert_gone(pp, app_id, "split-b")


@pytest.mark.parametrize(
    "bad_ts", ["not-a-date", "2024-13-01T00:00:00Z", "2024-05-01T12:61:00Z", "01/05/2024 12:00", ""]
)
def test_event_with_bad_timestamp_is_rejected_per_event(pp, app_id, bad_ts):
    resp = put_events(pp, app_id, {
        "ep-ts": {
            "Endpoint": {"ChannelType": "EMAIL", "Address": "t@example.com"},
            "Events": {"good": event(), "bad": event(ts=bad_ts)},
        }
    })
    assert status_of(resp) == 202
    r = resp["EventsResponse"]["Results"]["ep-ts"]["EventsItemResponse"]
    assert item_status(r["good"]) == 202
    assert item_status(r["bad"]) == 400, r["bad"]
    assert r["bad"].get("Message"), "a rejected event should say why"


def test_event_with_bad_session_timestamp_is_rejected_per_event(pp, app_id):
    resp = put_events(pp, app_id, {
        "ep-sess": {
            "Endpoint": {"ChannelType": "EMAIL", "Address": "s@example.com"},
            "Events": {
                "good": event(Session={"Id": "s", "StartTimestamp": TS, "StopTimestamp": "2024-05-01T12:05:00.000Z"}),
                "bad": event(Session={"Id": "s", "StartTimestamp": "noon"}),
            },
        }
    })
    r = resp["EventsResponse"]["Results"]["ep-sess"]["EventsItemResponse"]
    assert item_status(r["good"]) == 202
    assert item_status(r["bad"]) == 400


def test_event_with_41_attribute_and_metric_keys_is_rejected_per_event(pp, app_id):
    ok = event(Attributes={f"a{i}": "x" for i in range(20)}, Metrics={f"m{i}": 1.0 for i in range(20)})
    bad = event(Attributes={f"a{i}": "x" for i in range(21)}, Metrics={f"m{i}": 1.0 for i in range(20)})
    resp = put_events(pp, app_id, {
        "ep-keys": {"Endpoint": {"ChannelType": "EMAIL", "Address": "k@example.com"}, "Events": {"ok": ok, "bad": bad}}
    })
    r = resp["EventsResponse"]["Results"]["ep-keys"]["EventsItemResponse"]
    assert item_status(r["ok"]) == 202
    assert item_status(r["bad"]) == 400


def test_invalid_batch_endpoint_is_rejected_per_endpoint_and_not_stored(pp, app_id):
    resp = put_events(pp, app_id, {
        "ep-good": {"Endpoint": {"ChannelType": "EMAIL", "Address": "g@example.com"}, "Events": {"e": event()}},
        "ep-bad": {"Endpoint": {"ChannelType": "PIGEON", "Address": "coo"}, "Events": {"e": event()}},
    })
    assert status_of(resp) == 202
    results = resp["EventsResponse"]["Results"]
    assert item_status(results["ep-good"]["EndpointItemResponse"]) == 202
    assert item_status(results["ep-bad"]["EndpointItemResponse"]) == 400
    assert pp.get_endpoint(ApplicationId=app_id, EndpointId="ep-good")["EndpointResponse"]["Address"] == "g@example.com"
    assert_gone(pp, app_id, "ep-bad")


def test_put_events_unknown_app_is_not_found(pp):
    expect_error(
        put_events, "NotFoundException", 404, pp, MISSING_APP,
        {"e": {"Endpoint": {"ChannelType": "EMAIL", "Address": "x@example.com"}, "Events": {"e": event()}}},
    )


def test_put_events_request_over_4_mb_is_payload_too_large(raw, pp, app_id):
    # Five events of ~900 KB each: every event is under the 1,000 KB event quota,
    # the request is over the 4 MB request quota.
    events = {f"big{i}": event(AppTitle="t" * 900_000) for i in range(5)}
    body = json.dumps({"BatchItem": {"ep-big": {"Endpoint": {"ChannelType": "EMAIL", "Address": "big@example.com"}, "Events": events}}})
    assert len(body) > 4 * 1024 * 1024
    resp = raw("POST", f"/v1/apps/{enc(app_id)}/events", body)
    expect_raw_error(resp, "PayloadTooLargeException", 413)
    assert_gone(pp, app_id, "ep-big")

"""Event streams: PutEventStream/GetEventStream/DeleteEventStream, and the
records herald publishes (app events and delivery events, in Pinpoint's
event-stream JSON) to a file:// directory and to a signed http:// receiver."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from pathlib import Path

from harness import expect_error, signed_request, unique
from test_messages import _Receiver

ROLE = "arn:aws:iam::000000000000:role/herald-stream"


def records_in(directory: Path, wait_for: int, timeout_s: float = 10.0) -> list:
    deadline = time.time() + timeout_s
    while True:
        out = []
        for f in sorted(directory.glob("herald-events-*.ndjson")):
            out += [json.loads(line) for line in f.read_text().splitlines()]
        if len(out) >= wait_for or time.time() > deadline:
            return out
        time.sleep(0.1)


def put_events(pp, app_id, endpoint_id, *types):
    pp.put_events(ApplicationId=app_id, EventsRequest={"BatchItem": {endpoint_id: {
        "Endpoint": {"ChannelType": "EMAIL", "Address": f"{endpoint_id}@example.org"},
        "Events": {f"{t}-{i}": {"EventType": t, "Timestamp": "2026-12-07T10:00:00.000Z",
                                "Attributes": {"n": str(i)}, "Metrics": {"price": 2.5},
                                "Session": {"Id": "s1", "StartTimestamp": "2026-12-07T09:59:00.000Z"}}
                   for i, t in enumerate(types)},
    }}})


def test_event_streams_are_set_read_and_deleted(pp, app_id, tmp_path):
    expect_error(pp.get_event_stream, "NotFoundException", 404, ApplicationId=app_id)
    dest = f"file://{tmp_path}/stream"
    s = pp.put_event_stream(ApplicationId=app_id, WriteEventStream={
        "DestinationStreamArn": dest, "RoleArn": ROLE})["EventStream"]
    assert (s["ApplicationId"], s["DestinationStreamArn"], s["RoleArn"]) == (app_id, dest, ROLE)
    assert pp.get_event_stream(ApplicationId=app_id)["EventStream"]["DestinationStreamArn"] == dest
    err = expect_error(pp.put_event_stream, "BadRequestException", 400, ApplicationId=app_id, WriteEventStream={
        "DestinationStreamArn": "arn:aws:kinesis:us-east-1:000000000000:stream/x", "RoleArn": ROLE})
    assert "DestinationStreamArn" in err["Error"]["Message"]
    assert pp.get_event_stream(ApplicationId=app_id)["EventStream"]["DestinationStreamArn"] == dest, "unchanged"
    assert pp.delete_event_stream(ApplicationId=app_id)["EventStream"]["DestinationStreamArn"] == dest
    expect_error(pp.get_event_stream, "NotFoundException", 404, ApplicationId=app_id)


def test_events_are_published_to_a_directory_as_ndjson(pp, app_id, tmp_path):
    directory = tmp_path / "events"
    pp.put_event_stream(ApplicationId=app_id, WriteEventStream={
        "DestinationStreamArn": f"file://{directory}", "RoleArn": ROLE})
    put_events(pp, app_id, "reader-1", "purchase", "_session.start", "level_up")
    got = records_in(directory, 3)
    assert sorted(r["event_type"] for r in got) == ["_session.start", "level_up", "purchase"]
    p = next(r for r in got if r["event_type"] == "purchase")
    assert p["client"]["client_id"] == "reader-1"
    assert p["application"]["app_id"] == app_id
    assert p["event_timestamp"] == 1796637600000  # 2026-12-07T10:00:00Z
    assert abs(p["arrival_timestamp"] - time.time() * 1000) < 60_000, "when herald took it"
    assert p["attributes"] == {"n": "0"} and p["metrics"] == {"price": 2.5}
    assert p["session"]["session_id"] == "s1"
    # After DeleteEventStream nothing more is published.
    pp.delete_event_stream(ApplicationId=app_id)
    put_events(pp, app_id, "reader-1", "after_delete")
    time.sleep(2.0)
    assert len(records_in(directory, 4, timeout_s=0.5)) == 3


def test_events_and_delivery_events_are_posted_signed_to_a_webhook(mpp, mail_app, mail_server):
    rx = _Receiver()
    try:
        mpp.put_event_stream(ApplicationId=mail_app, WriteEventStream={
            "DestinationStreamArn": f"http://127.0.0.1:{rx.port}/stream", "RoleArn": ROLE})
        rx.statuses = [503]  # a temporary failure first: retried
        mpp.update_endpoint(ApplicationId=mail_app, EndpointId="ep-stream",
                            EndpointRequest={"ChannelType": "EMAIL", "Address": f"{unique('s')}@example.org"})
        r = mpp.send_messages(ApplicationId=mail_app, MessageRequest={
            "Endpoints": {"ep-stream": {}},
            "MessageConfiguration": {"EmailMessage": {"SimpleEmail": {
                "Subject": {"Data": "hi"}, "TextPart": {"Data": "hello"}}}},
        })["MessageResponse"]["EndpointResult"]["ep-stream"]
        assert r["DeliveryStatus"] == "SUCCESSFUL", r
        deadline = time.time() + 15
        records = []
        while time.time() < deadline:
            records = [rec for (_, _, body) in rx.posts[1:] for rec in json.loads(body)["records"]]
            if {"_email.send", "_email.delivered"} <= {x["event_type"] for x in records}:
                break
            time.sleep(0.1)
        types = {x["event_type"] for x in records}
        assert {"_email.send", "_email.delivered"} <= types, types
        assert all(x["client"]["client_id"] == "ep-stream" for x in records)
        assert len(rx.posts) >= 2, "the 503 was retried"
        # Signed with the app's webhook secret (as the custom channel shows it).
        path = f"/herald/v1/apps/{mail_app}/channels/custom"
        secret = signed_request(mail_server.url, "PUT", path, {"DeliveryUri": "http://127.0.0.1:9/x"}).json()["SigningSecret"]
        _, headers, body = rx.posts[-1]
        ts = headers["X-Herald-Timestamp"]
        want = "v1=" + hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
        assert headers["X-Herald-Signature"] == want
    finally:
        rx.close()


def test_a_campaigns_delivery_events_are_published(mpp, mail_app, tmp_path):
    directory = tmp_path / "campaign-events"
    mpp.put_event_stream(ApplicationId=mail_app, WriteEventStream={
        "DestinationStreamArn": f"file://{directory}", "RoleArn": ROLE})
    tag = unique("cs")
    mpp.update_endpoint(ApplicationId=mail_app, EndpointId=f"{tag}-1", EndpointRequest={
        "ChannelType": "EMAIL", "Address": f"{tag}@example.org", "Attributes": {"Team": [tag]}})
    seg = mpp.create_segment(ApplicationId=mail_app, WriteSegmentRequest={
        "Name": unique("seg"), "Dimensions": {"Attributes": {"Team": {"Values": [tag]}}}})["SegmentResponse"]["Id"]
    c = mpp.create_campaign(ApplicationId=mail_app, WriteCampaignRequest={
        "Name": unique("camp"), "SegmentId": seg,
        "MessageConfiguration": {"EmailMessage": {"Title": "Hello", "Body": "<p>hi</p>", "FromAddress": "news@example.com"}},
        "Schedule": {"StartTime": "IMMEDIATE", "Frequency": "ONCE"},
    })["CampaignResponse"]["Id"]
    got = [r for r in records_in(directory, 2, timeout_s=20) if r["client"]["client_id"] == f"{tag}-1"]
    assert {"_email.send", "_email.delivered"} <= {r["event_type"] for r in got}, got
    assert all(r["attributes"]["campaign_id"] == c for r in got)

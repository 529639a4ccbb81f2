"""Segments through the AWS SDK: create, versions, pagination, validation,
deletion, and membership as herald's size extension counts it."""

from __future__ import annotations

import pytest

from harness import expect_error, signed_request, status_of, unique


def endpoint(pp, app_id, eid, **req):
    body = {"ChannelType": "EMAIL", "Address": f"{eid}@example.org", **req}
    pp.update_endpoint(ApplicationId=app_id, EndpointId=eid, EndpointRequest=body)


def size_of(server, app_id, seg_id, version=None) -> int:
    q = f"?version={version}" if version else ""
    r = signed_request(server.url, "GET", f"/herald/v1/apps/{app_id}/segments/{seg_id}/size{q}")
    assert r.status_code == 200, r.text
    return r.json()["Size"]


def test_create_get_update_versions_and_delete(pp, app_id):
    resp = pp.create_segment(
        ApplicationId=app_id,
        WriteSegmentRequest={
            "Name": "plan-pro",
            "Dimensions": {"Attributes": {"Plan": {"AttributeType": "INCLUSIVE", "Values": ["pro"]}}},
            "tags": {"team": "growth"},
        },
    )
    assert status_of(resp) == 201
    seg = resp["SegmentResponse"]
    assert seg["ApplicationId"] == app_id
    assert seg["Name"] == "plan-pro"
    assert seg["SegmentType"] == "DIMENSIONAL"
    assert seg["Version"] == 1
    assert seg["Arn"].endswith(f"apps/{app_id}/segments/{seg['Id']}")
    assert seg["tags"] == {"team": "growth"}
    assert seg["Dimensions"]["Attributes"]["Plan"]["Values"] == ["pro"]

    upd = pp.update_segment(
        ApplicationId=app_id,
        SegmentId=seg["Id"],
        WriteSegmentRequest={
            "Name": "plan-pro-or-team",
            "Dimensions": {"Attributes": {"Plan": {"Values": ["pro", "team"]}}},
        },
    )["SegmentResponse"]
    assert upd["Version"] == 2
    assert upd["CreationDate"] == seg["CreationDate"]

    got = pp.get_segment(ApplicationId=app_id, SegmentId=seg["Id"])["SegmentResponse"]
    assert got["Version"] == 2 and got["Name"] == "plan-pro-or-team"
    v1 = pp.get_segment_version(ApplicationId=app_id, SegmentId=seg["Id"], Version="1")["SegmentResponse"]
    assert v1["Name"] == "plan-pro" and v1["Version"] == 1
    versions = pp.get_segment_versions(ApplicationId=app_id, SegmentId=seg["Id"])["SegmentsResponse"]["Item"]
    assert [v["Version"] for v in versions] == [2, 1]
    page = pp.get_segment_versions(ApplicationId=app_id, SegmentId=seg["Id"], PageSize="1")["SegmentsResponse"]
    assert [v["Version"] for v in page["Item"]] == [2]
    rest = pp.get_segment_versions(
        ApplicationId=app_id, SegmentId=seg["Id"], PageSize="1", Token=page["NextToken"]
    )["SegmentsResponse"]
    assert [v["Version"] for v in rest["Item"]] == [1]

    deleted = pp.delete_segment(ApplicationId=app_id, SegmentId=seg["Id"])["SegmentResponse"]
    assert deleted["Id"] == seg["Id"]
    expect_error(lambda: pp.get_segment(ApplicationId=app_id, SegmentId=seg["Id"]), "NotFoundException", 404)


def test_list_segments_pages_through_all(pp, app_id):
    ids = set()
    for i in range(5):
        s = pp.create_segment(ApplicationId=app_id, WriteSegmentRequest={"Name": f"s{i}", "Dimensions": {}})
        ids.add(s["SegmentResponse"]["Id"])
    seen, token = [], None
    for _ in range(10):
        kw = {"Token": token} if token else {}
        page = pp.get_segments(ApplicationId=app_id, PageSize="2", **kw)["SegmentsResponse"]
        seen += [s["Id"] for s in page["Item"]]
        token = page.get("NextToken")
        if not token:
            break
    assert sorted(seen) == sorted(ids)


@pytest.mark.parametrize(
    "body, fragment",
    [
        ({"Dimensions": {"Attributes": {"a": {"AttributeType": "SOMETIMES", "Values": ["x"]}}}}, "AttributeType"),
        ({"Dimensions": {"Attributes": {"a": {"AttributeType": "BETWEEN", "Values": ["2026-01-01"]}}}}, "BETWEEN"),
        ({"Dimensions": {"Metrics": {"m": {"ComparisonOperator": "ABOUT", "Value": 1}}}}, "ComparisonOperator"),
        ({"Dimensions": {"Behavior": {"Recency": {"Duration": "DAY_3", "RecencyType": "ACTIVE"}}}}, "Duration"),
        (
            {"Dimensions": {"Location": {"GPSPoint": {"Coordinates": {"Latitude": 91, "Longitude": 0}}}}},
            "Latitude",
        ),
        ({"Name": "x" * 65, "Dimensions": {}}, "Name"),
    ],
)
def test_invalid_segments_are_refused_and_nothing_is_created(pp, app_id, body, fragment):
    err = expect_error(
        lambda: pp.create_segment(ApplicationId=app_id, WriteSegmentRequest=body), "BadRequestException", 400
    )
    assert fragment in err["Error"]["Message"]
    assert pp.get_segments(ApplicationId=app_id)["SegmentsResponse"]["Item"] == []


def test_unknown_source_segment_and_unknown_app(pp, app_id):
    body = {"SegmentGroups": {"Groups": [{"SourceSegments": [{"Id": "0" * 32}]}], "Include": "ALL"}}
    expect_error(lambda: pp.create_segment(ApplicationId=app_id, WriteSegmentRequest=body), "BadRequestException", 400)
    expect_error(
        lambda: pp.create_segment(ApplicationId="f" * 32, WriteSegmentRequest={"Dimensions": {}}),
        "NotFoundException",
        404,
    )


def test_membership_of_each_dimension_kind(pp, app_id, herald_server):
    endpoint(
        pp,
        app_id,
        "paris",
        Attributes={"Plan": ["pro"], "Signup": ["2026-03-10T08:00:00Z"]},
        Demographic={"Platform": "ios", "AppVersion": "2.1", "Timezone": "Europe/Paris"},
        Location={"Country": "FR", "Latitude": 48.8566, "Longitude": 2.3522},
        Metrics={"score": 80},
        User={"UserId": "u1", "UserAttributes": {"Tier": ["gold"]}},
    )
    endpoint(
        pp,
        app_id,
        "london",
        Attributes={"Plan": ["free"], "Signup": ["2025-12-01"]},
        Demographic={"Platform": "android", "AppVersion": "1.0"},
        Location={"Country": "GB", "Latitude": 51.5074, "Longitude": -0.1278},
        Metrics={"score": 20},
    )
    endpoint(pp, app_id, "bare")

    def size(dims):
        s = pp.create_segment(ApplicationId=app_id, WriteSegmentRequest={"Dimensions": dims})["SegmentResponse"]
        return size_of(herald_server, app_id, s["Id"])

    assert size({}) == 3
    assert size({"Attributes": {"Plan": {"Values": ["pro"]}}}) == 1
    assert size({"Attributes": {"Plan": {"AttributeType": "EXCLUSIVE", "Values": ["pro"]}}}) == 2
    assert size({"Attributes": {"Plan": {"AttributeType": "CONTAINS", "Values": ["re"]}}}) == 1
    assert size({"Attributes": {"Signup": {"AttributeType": "AFTER", "Values": ["2026-01-01T00:00:00Z"]}}}) == 1
    assert size({"Attributes": {"Signup": {"AttributeType": "ON", "Values": ["2026-03-10"]}}}) == 1
    assert (
        size({"Attributes": {"Signup": {"AttributeType": "BETWEEN", "Values": ["2025-11-01", "2026-12-31"]}}}) == 2
    )
    assert size({"UserAttributes": {"Tier": {"Values": ["gold"]}}}) == 1
    assert size({"Demographic": {"Platform": {"Values": ["IOS"]}}}) == 1
    assert size({"Demographic": {"AppVersion": {"DimensionType": "EXCLUSIVE", "Values": ["2.1"]}}}) == 2
    assert size({"Demographic": {"Channel": {"Values": ["EMAIL"]}}}) == 3
    assert size({"Location": {"Country": {"Values": ["FR", "GB"]}}}) == 2
    paris_350 = {"Coordinates": {"Latitude": 48.8566, "Longitude": 2.3522}, "RangeInKilometers": 350}
    assert size({"Location": {"GPSPoint": paris_350}}) == 2
    assert size({"Location": {"GPSPoint": {**paris_350, "RangeInKilometers": 300}}}) == 1
    assert size({"Metrics": {"score": {"ComparisonOperator": "GREATER_THAN_OR_EQUAL", "Value": 20}}}) == 2
    assert size({"Behavior": {"Recency": {"Duration": "DAY_7", "RecencyType": "ACTIVE"}}}) == 3
    assert size({"Behavior": {"Recency": {"Duration": "HR_24", "RecencyType": "INACTIVE"}}}) == 0


def test_segment_groups_combine_sources_and_dimensions(pp, app_id, herald_server):
    for eid, plan, country in [("a", "pro", "FR"), ("b", "pro", "GB"), ("c", "free", "FR"), ("d", "free", "US")]:
        endpoint(pp, app_id, eid, Attributes={"Plan": [plan]}, Location={"Country": country})
    pro = pp.create_segment(
        ApplicationId=app_id, WriteSegmentRequest={"Dimensions": {"Attributes": {"Plan": {"Values": ["pro"]}}}}
    )["SegmentResponse"]["Id"]
    fr = {"Location": {"Country": {"Values": ["FR"]}}}

    def size(groups):
        s = pp.create_segment(ApplicationId=app_id, WriteSegmentRequest={"SegmentGroups": groups})
        return size_of(herald_server, app_id, s["SegmentResponse"]["Id"])

    # pro AND in France
    assert size({"Include": "ALL", "Groups": [{"SourceSegments": [{"Id": pro}], "Dimensions": [fr], "Type": "ALL"}]}) == 1
    # pro and NOT in France
    assert size({"Include": "ALL", "Groups": [{"SourceSegments": [{"Id": pro}], "Dimensions": [fr], "Type": "NONE"}]}) == 1
    # everyone outside France (no sources: all endpoints)
    assert size({"Include": "NONE", "Groups": [{"Dimensions": [fr]}]}) == 2
    # pinned to version 1 of the source, then the source changes
    pinned = pp.create_segment(
        ApplicationId=app_id,
        WriteSegmentRequest={"SegmentGroups": {"Groups": [{"SourceSegments": [{"Id": pro, "Version": 1}]}]}},
    )["SegmentResponse"]["Id"]
    pp.update_segment(
        ApplicationId=app_id,
        SegmentId=pro,
        WriteSegmentRequest={"Dimensions": {"Attributes": {"Plan": {"Values": ["free"]}}}},
    )
    assert size_of(herald_server, app_id, pinned) == 2
    assert size_of(herald_server, app_id, pro) == 2
    assert size_of(herald_server, app_id, pro, version=1) == 2
    # a segment a campaign uses cannot be deleted (checked in test_campaigns)


def test_segments_vanish_with_their_app(pp, make_app):
    a = make_app()["Id"]
    s = pp.create_segment(ApplicationId=a, WriteSegmentRequest={"Name": unique("s"), "Dimensions": {}})
    pp.delete_app(ApplicationId=a)
    expect_error(
        lambda: pp.get_segment(ApplicationId=a, SegmentId=s["SegmentResponse"]["Id"]), "NotFoundException", 404
    )


def test_membership_survives_a_restart(start_server):
    server = start_server()
    pp = server.client()
    app_id = pp.create_app(CreateApplicationRequest={"Name": unique("restart")})["ApplicationResponse"]["Id"]
    for i in range(6):
        endpoint(pp, app_id, f"e{i}", Attributes={"Plan": ["pro" if i % 2 else "free"]})
    seg = pp.create_segment(
        ApplicationId=app_id, WriteSegmentRequest={"Dimensions": {"Attributes": {"Plan": {"Values": ["pro"]}}}}
    )["SegmentResponse"]["Id"]
    assert size_of(server, app_id, seg) == 3
    server.stop_gracefully()
    server.restart()
    # The index is rebuilt from storage at start.
    assert size_of(server, app_id, seg) == 3
    endpoint(server.client(), app_id, "e0", Attributes={"Plan": ["pro"]})
    assert size_of(server, app_id, seg) == 4

"""Error wire format, malformed bodies, authentication.

Every error is `X-Amzn-ErrorType: <Code>` plus a JSON body
`{"Message": "...", "RequestID": "..."}`; the request id is also in
`x-amzn-RequestId`.
"""

from __future__ import annotations

import datetime
import json
from unittest import mock

import pytest
import requests

from harness import (
    ACCESS_KEY_ID,
    HTTP_TIMEOUT_S,
    SECRET_ACCESS_KEY,
    enc,
    expect_error,
    expect_raw_error,
    list_all_apps,
    make_client,
    signed_request,
    unique,
)

MISSING_APP = "0" * 32


# ---------------------------------------------------------------- wire format


def test_not_found_wire_format(raw):
    resp = raw("GET", f"/v1/apps/{MISSING_APP}")
    body = expect_raw_error(resp, "NotFoundException", 404)
    assert resp.headers.get("Content-Type", "").startswith("application/json")
    assert resp.headers.get("x-amzn-RequestId") == body["RequestID"]


def test_request_ids_are_unique(raw):
    ids = {expect_raw_error(raw("GET", f"/v1/apps/{MISSING_APP}"), "NotFoundException", 404)["RequestID"] for _ in range(5)}
    assert len(ids) == 5


def test_success_responses_carry_a_request_id(raw, app_id):
    ids = set()
    for _ in range(3):
        resp = raw("GET", f"/v1/apps/{app_id}")
        assert resp.status_code == 200
        ids.add(resp.headers.get("x-amzn-RequestId"))
    assert None not in ids and "" not in ids and len(ids) == 3


# ---------------------------------------------------------------- malformed bodies

BAD_BODIES = {
    "truncated": b'{"Name": "x"',
    "not-json": b"this is not json",
    "array": b"[]",
    "string": b'"hello"',
    "number": b"42",
    "null": b"null",
    "trailing-garbage": b'{"Name": "x"} trailing',
    "invalid-utf8": b'{"Name": "\xff\xfe"}',
}


def _targets(app_id: str) -> dict:
    return {
        "CreateApp": ("POST", "/v1/apps"),
        "UpdateApplicationSettings": ("PUT", f"/v1/apps/{app_id}/settings"),
        "UpdateEndpoint": ("PUT", f"/v1/apps/{app_id}/endpoints/ep-json"),
        "UpdateEndpointsBatch": ("PUT", f"/v1/apps/{app_id}/endpoints"),
        "PutEvents": ("POST", f"/v1/apps/{app_id}/events"),
        "RemoveAttributes": ("PUT", f"/v1/apps/{app_id}/attributes/endpoint-custom-attributes"),
    }


@pytest.mark.parametrize("op", list(_targets("x")))
@pytest.mark.parametrize("body", list(BAD_BODIES.values()), ids=list(BAD_BODIES))
def test_malformed_json_is_bad_request(pp, raw, app_id, op, body):
    method, path = _targets(app_id)[op]
    apps_before = {a["Id"] for a in list_all_apps(pp)} if op == "CreateApp" else None
    expect_raw_error(raw(method, path, body), "BadRequestException", 400)
    if op == "UpdateEndpoint":
        expect_error(pp.get_endpoint, "NotFoundException", 404, ApplicationId=app_id, EndpointId="ep-json")
    if op == "CreateApp":
        assert {a["Id"] for a in list_all_apps(pp)} == apps_before


WRONG_TYPES = {
    "CreateApp name is a number": ("POST", "/v1/apps", {"Name": 5}),
    "CreateApp tags is a list": ("POST", "/v1/apps", {"Name": "x", "tags": ["a"]}),
    "Settings daily is a string": ("PUT", "/v1/apps/{app}/settings", {"Limits": {"Daily": "ten"}}),
    "Settings daily is a float": ("PUT", "/v1/apps/{app}/settings", {"Limits": {"Daily": 1.5}}),
    "Settings quiet time is a string": ("PUT", "/v1/apps/{app}/settings", {"QuietTime": "22:00-07:00"}),
    "Endpoint channel is a number": ("PUT", "/v1/apps/{app}/endpoints/ep-json", {"ChannelType": 5}),
    "Endpoint attributes values not a list": ("PUT", "/v1/apps/{app}/endpoints/ep-json", {"ChannelType": "EMAIL", "Attributes": {"a": "b"}}),
    "Endpoint metric is a string": ("PUT", "/v1/apps/{app}/endpoints/ep-json", {"ChannelType": "EMAIL", "Metrics": {"m": "one"}}),
    "Endpoint latitude is a string": ("PUT", "/v1/apps/{app}/endpoints/ep-json", {"ChannelType": "EMAIL", "Location": {"Latitude": "north"}}),
    "Batch missing Item": ("PUT", "/v1/apps/{app}/endpoints", {}),
    "Batch Item is an object": ("PUT", "/v1/apps/{app}/endpoints", {"Item": {"Id": "ep-json"}}),
    "Events missing BatchItem": ("POST", "/v1/apps/{app}/events", {}),
    "Events BatchItem is a string": ("POST", "/v1/apps/{app}/events", {"BatchItem": "x"}),
    "RemoveAttributes Blacklist is a string": ("PUT", "/v1/apps/{app}/attributes/endpoint-custom-attributes", {"Blacklist": "x"}),
}


@pytest.mark.parametrize("case", list(WRONG_TYPES))
def test_wrong_member_types_are_bad_request(pp, raw, app_id, case):
    method, path, body = WRONG_TYPES[case]
    apps_before = {a["Id"] for a in list_all_apps(pp)} if path == "/v1/apps" else None
    expect_raw_error(raw(method, path.format(app=app_id), body), "BadRequestException", 400)
    if "ep-json" in path:
        expect_error(pp.get_endpoint, "NotFoundException", 404, ApplicationId=app_id, EndpointId="ep-json")
    if apps_before is not None:
        assert {a["Id"] for a in list_all_apps(pp)} == apps_before


def test_create_app_with_empty_body_is_bad_request(raw):
    expect_raw_error(raw("POST", "/v1/apps", b""), "BadRequestException", 400)


def test_unknown_members_are_ignored(pp, raw, app_id):
    # Newer SDKs may send members an older server does not know; restJson1 ignores them.
    resp = raw(
        "PUT",
        f"/v1/apps/{app_id}/endpoints/ep-extra",
        {"ChannelType": "EMAIL", "Address": "x@example.com", "FutureMember": {"x": 1}},
    )
    assert resp.status_code == 202, resp.text
    ep = pp.get_endpoint(ApplicationId=app_id, EndpointId="ep-extra")["EndpointResponse"]
    assert ep["Address"] == "x@example.com"


# ---------------------------------------------------------------- method not allowed


@pytest.mark.parametrize("method, path", [("PATCH", "/v1/apps/{app}"), ("POST", "/v1/apps/{app}"), ("DELETE", "/v1/apps")])
def test_wrong_method_is_method_not_allowed(raw, app_id, method, path):
    expect_raw_error(raw(method, path.format(app=app_id), {}), "MethodNotAllowedException", 405)


# ---------------------------------------------------------------- authentication


def test_health_needs_no_signature(herald_server):
    assert requests.get(herald_server.url + "/health", timeout=HTTP_TIMEOUT_S).status_code == 200


def test_unsigned_request_is_forbidden(herald_server):
    resp = requests.get(herald_server.url + "/v1/apps", timeout=HTTP_TIMEOUT_S)
    expect_raw_error(resp, "ForbiddenException", 403)


def test_unsigned_write_is_forbidden_and_not_applied(herald_server, pp):
    name = unique("unsigned")
    resp = requests.post(
        herald_server.url + "/v1/apps",
        data=json.dumps({"Name": name}),
        headers={"Content-Type": "application/json"},
        timeout=HTTP_TIMEOUT_S,
    )
    expect_raw_error(resp, "ForbiddenException", 403)
    assert name not in {a["Name"] for a in list_all_apps(pp)}


def test_wrong_secret_key_is_forbidden(herald_server):
    client = make_client(herald_server.url, secret_key=SECRET_ACCESS_KEY[:-4] + "XXXX")
    expect_error(client.get_apps, "ForbiddenException", 403)


def test_unknown_access_key_is_forbidden(herald_server):
    client = make_client(herald_server.url, access_key="AKIAUNKNOWNKEY000000")
    expect_error(client.get_apps, "ForbiddenException", 403)


def test_wrong_secret_write_is_not_applied(herald_server, pp):
    client = make_client(herald_server.url, secret_key="not-the-secret")
    name = unique("wrong-secret")
    expect_error(client.create_app, "ForbiddenException", 403, CreateApplicationRequest={"Name": name})
    assert name not in {a["Name"] for a in list_all_apps(pp)}


def test_garbage_authorization_header_is_forbidden(herald_server):
    resp = requests.get(
        herald_server.url + "/v1/apps",
        headers={"Authorization": "AWS4-HMAC-SHA256 garbage", "X-Amz-Date": "20240101T000000Z"},
        timeout=HTTP_TIMEOUT_S,
    )
    expect_raw_error(resp, "ForbiddenException", 403)


def test_signature_for_another_service_is_forbidden(herald_server):
    resp = signed_request(herald_server.url, "GET", "/v1/apps", service="pinpoint")
    expect_raw_error(resp, "ForbiddenException", 403)


def test_stale_signature_is_forbidden(herald_server):
    stale = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) - datetime.timedelta(minutes=20)
    with mock.patch("botocore.auth.get_current_datetime", return_value=stale):
        resp = signed_request(herald_server.url, "GET", "/v1/apps")
    expect_raw_error(resp, "ForbiddenException", 403)


def test_tampered_body_is_forbidden_and_not_applied(herald_server, pp):
    signed_name, sent_name = unique("signed"), unique("tampered")
    resp = signed_request(
        herald_server.url,
        "POST",
        "/v1/apps",
        {"Name": signed_name},
        send_body=json.dumps({"Name": sent_name}).encode(),
    )
    expect_raw_error(resp, "ForbiddenException", 403)
    names = {a["Name"] for a in list_all_apps(pp)}
    assert signed_name not in names and sent_name not in names


def test_tampered_query_is_forbidden(herald_server):
    good = signed_request(herald_server.url, "GET", "/v1/apps", query="page-size=1")
    assert good.status_code == 200, good.text
    headers = dict(good.request.headers)
    resp = requests.get(herald_server.url + "/v1/apps?page-size=2", headers=headers, timeout=HTTP_TIMEOUT_S)
    expect_raw_error(resp, "ForbiddenException", 403)


def test_signed_request_with_encoded_path_is_accepted(herald_server, app):
    # SigV4 canonical URIs are double-encoded for this service; the ARN path
    # segment is the hardest case.
    resp = signed_request(herald_server.url, "GET", "/v1/tags/" + enc(app["Arn"]))
    assert resp.status_code == 200, resp.text


def test_valid_credentials_are_accepted(herald_server):
    resp = signed_request(herald_server.url, "GET", "/v1/apps", access_key=ACCESS_KEY_ID, secret_key=SECRET_ACCESS_KEY)
    assert resp.status_code == 200, resp.text
    assert "Item" in resp.json()

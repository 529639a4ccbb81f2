"""Input quotas and validation on endpoints: every rejection leaves nothing behind.

Pinpoint quotas (developer guide, "Amazon Pinpoint quotas"): endpoint ids may not
contain `$`, `{` or `}`; at most 250 attributes (Attributes + Metrics +
UserAttributes) and 15 KB per endpoint; attribute names <= 50 chars, values
<= 100 chars, <= 50 values per attribute; at most 15 endpoints per user id;
7 MB per request.
"""

from __future__ import annotations

import json

import pytest

from harness import expect_error, expect_raw_error, enc, status_of


def put(pp, app_id, endpoint_id, body):
    return pp.update_endpoint(ApplicationId=app_id, EndpointId=endpoint_id, EndpointRequest=body)


def get(pp, app_id, endpoint_id):
    return pp.get_endpoint(ApplicationId=app_id, EndpointId=endpoint_id)["EndpointResponse"]


def assert_gone(pp, app_id, endpoint_id):
    expect_error(pp.get_endpoint, "NotFoundException", 404, ApplicationId=app_id, EndpointId=endpoint_id)


def assert_user_has_no_endpoints(pp, app_id, user_id):
    expect_error(pp.get_user_endpoints, "NotFoundException", 404, ApplicationId=app_id, UserId=user_id)


def attrs(n: int, prefix: str = "a") -> dict:
    return {f"{prefix}{i:03d}": ["v"] for i in range(n)}


def bulky_attributes(keys: int, prefix: str = "k") -> dict:
    """`keys` attributes of 50 values x 40 chars: ~2.15 KB of JSON each, within every per-field limit."""
    return {f"{prefix}{k}": [f"{k:02d}{i:02d}" + "x" * 36 for i in range(50)] for k in range(keys)}


# ---------------------------------------------------------------- endpoint ids


@pytest.mark.parametrize("endpoint_id", ["ep$1", "ep{1", "ep}1", "${x}"])
def test_endpoint_id_with_reserved_characters_is_rejected(pp, app_id, endpoint_id):
    user = "reserved-user"
    expect_error(
        put,
        "BadRequestException",
        400,
        pp,
        app_id,
        endpoint_id,
        {"ChannelType": "EMAIL", "Address": "r@example.com", "User": {"UserId": user}},
    )
    assert_user_has_no_endpoints(pp, app_id, user)


def test_endpoint_id_with_reserved_characters_is_rejected_in_batch(pp, app_id):
    expect_error(
        pp.update_endpoints_batch,
        "BadRequestException",
        400,
        ApplicationId=app_id,
        EndpointBatchRequest={
            "Item": [{"Id": "price$", "ChannelType": "EMAIL", "Address": "p@example.com", "User": {"UserId": "pb"}}]
        },
    )
    assert_user_has_no_endpoints(pp, app_id, "pb")


# ---------------------------------------------------------------- attribute counts


def test_250_attributes_are_accepted(pp, app_id):
    put(pp, app_id, "ep-250", {"ChannelType": "EMAIL", "Address": "a@example.com", "Attributes": attrs(250)})
    assert len(get(pp, app_id, "ep-250")["Attributes"]) == 250


def test_251_attributes_are_rejected(pp, app_id):
    expect_error(
        put, "BadRequestException", 400, pp, app_id, "ep-251",
        {"ChannelType": "EMAIL", "Address": "a@example.com", "Attributes": attrs(251)},
    )
    assert_gone(pp, app_id, "ep-251")


def test_251_attributes_across_attributes_metrics_and_user_attributes_are_rejected(pp, app_id):
    body = {
        "ChannelType": "EMAIL",
        "Address": "a@example.com",
        "Attributes": attrs(100, "a"),
        "Metrics": {f"m{i:03d}": float(i) for i in range(100)},
        "User": {"UserId": "counted", "UserAttributes": attrs(51, "u")},
    }
    expect_error(put, "BadRequestException", 400, pp, app_id, "ep-mixed", body)
    assert_gone(pp, app_id, "ep-mixed")
    assert_user_has_no_endpoints(pp, app_id, "counted")


def test_update_that_pushes_an_endpoint_over_250_attributes_is_rejected(pp, app_id):
    put(pp, app_id, "ep-grow", {"ChannelType": "EMAIL", "Address": "g@example.com", "Attributes": attrs(200, "a")})
    before = get(pp, app_id, "ep-grow")
    expect_error(put, "BadRequestException", 400, pp, app_id, "ep-grow", {"Attributes": attrs(51, "b")})
    assert get(pp, app_id, "ep-grow") == before


# ---------------------------------------------------------------- attribute shapes


BAD_ATTRIBUTES = {
    "name-51-chars": {"Attributes": {"n" * 51: ["v"]}},
    "value-101-chars": {"Attributes": {"name": ["v" * 101]}},
    "51-values": {"Attributes": {"name": [f"v{i}" for i in range(51)]}},
    "user-attribute-name-51-chars": {"User": {"UserId": "shape-user", "UserAttributes": {"n" * 51: ["v"]}}},
    "user-attribute-value-101-chars": {"User": {"UserId": "shape-user", "UserAttributes": {"n": ["v" * 101]}}},
    "metric-name-51-chars": {"Metrics": {"m" * 51: 1.0}},
}


@pytest.mark.parametrize("extra", list(BAD_ATTRIBUTES.values()), ids=list(BAD_ATTRIBUTES))
def test_attribute_shape_limits(pp, app_id, extra):
    body = {"ChannelType": "EMAIL", "Address": "s@example.com", **extra}
    expect_error(put, "BadRequestException", 400, pp, app_id, "ep-shape", body)
    assert_gone(pp, app_id, "ep-shape")


def test_attribute_shape_boundaries_are_accepted(pp, app_id):
    body = {
        "ChannelType": "EMAIL",
        "Address": "s@example.com",
        "Attributes": {"n" * 50: ["v" * 100], "many": [f"v{i}" for i in range(50)]},
        "User": {"UserId": "edge", "UserAttributes": {"u" * 50: ["w" * 100]}},
    }
    put(pp, app_id, "ep-edge", body)
    ep = get(pp, app_id, "ep-edge")
    assert ep["Attributes"] == body["Attributes"]
    assert ep["User"] == body["User"]


# ---------------------------------------------------------------- endpoint size


def test_endpoint_of_about_9_kb_is_accepted(pp, app_id):
    body = {"ChannelType": "EMAIL", "Address": "big@example.com", "Attributes": bulky_attributes(4)}
    assert len(json.dumps(body)) < 10 * 1024
    put(pp, app_id, "ep-9kb", body)
    assert get(pp, app_id, "ep-9kb")["Attributes"] == body["Attributes"]


def test_endpoint_over_15_kb_is_rejected(pp, app_id):
    body = {
        "ChannelType": "EMAIL",
        "Address": "big@example.com",
        "Attributes": bulky_attributes(8),
        "User": {"UserId": "big-user"},
    }
    assert len(json.dumps(body)) > 16 * 1024
    expect_error(put, "PayloadTooLargeException", 413, pp, app_id, "ep-16kb", body)
    assert_gone(pp, app_id, "ep-16kb")
    assert_user_has_no_endpoints(pp, app_id, "big-user")


def test_update_that_grows_an_endpoint_over_15_kb_is_rejected(pp, app_id):
    put(pp, app_id, "ep-growing", {"ChannelType": "EMAIL", "Address": "g@example.com", "Attributes": bulky_attributes(4, "p")})
    before = get(pp, app_id, "ep-growing")
    expect_error(
        put, "PayloadTooLargeException", 413, pp, app_id, "ep-growing", {"Attributes": bulky_attributes(4, "q")}
    )
    assert get(pp, app_id, "ep-growing") == before


def test_request_over_7_mb_is_payload_too_large(raw, pp, app_id):
    items = [
        {"Id": f"huge-{i}", "ChannelType": "CUSTOM", "Address": "x" * 75_000}
        for i in range(100)
    ]
    body = json.dumps({"Item": items}).encode()
    assert len(body) > 7 * 1024 * 1024
    resp = raw("PUT", f"/v1/apps/{enc(app_id)}/endpoints", body)
    expect_raw_error(resp, "PayloadTooLargeException", 413)
    assert_gone(pp, app_id, "huge-0")
    assert_gone(pp, app_id, "huge-99")


# ---------------------------------------------------------------- endpoints per user


def _fill_user(pp, app_id, user, n=15):
    for i in range(n):
        put(pp, app_id, f"{user}-{i:02d}", {"ChannelType": "EMAIL", "Address": f"{user}{i}@example.com", "User": {"UserId": user}})


def user_endpoint_ids(pp, app_id, user):
    items = pp.get_user_endpoints(ApplicationId=app_id, UserId=user)["EndpointsResponse"]["Item"]
    return sorted(e["Id"] for e in items)


def test_16th_endpoint_for_a_user_is_rejected(pp, app_id):
    _fill_user(pp, app_id, "full")
    expected = [f"full-{i:02d}" for i in range(15)]
    assert user_endpoint_ids(pp, app_id, "full") == expected

    expect_error(
        put, "BadRequestException", 400, pp, app_id, "full-15",
        {"ChannelType": "EMAIL", "Address": "full15@example.com", "User": {"UserId": "full"}},
    )
    assert_gone(pp, app_id, "full-15")
    assert user_endpoint_ids(pp, app_id, "full") == expected

    # Updating one of the 15 is not a 16th endpoint.
    resp = put(pp, app_id, "full-03", {"Attributes": {"still": ["fine"]}, "User": {"UserId": "full"}})
    assert status_of(resp) == 202
    assert get(pp, app_id, "full-03")["Attributes"] == {"still": ["fine"]}


def test_16th_endpoint_for_a_user_is_rejected_in_batch(pp, app_id):
    _fill_user(pp, app_id, "fullb")
    expect_error(
        pp.update_endpoints_batch,
        "BadRequestException",
        400,
        ApplicationId=app_id,
        EndpointBatchRequest={
            "Item": [
                {"Id": "other-ok", "ChannelType": "EMAIL", "Address": "o@example.com", "User": {"UserId": "someone"}},
                {"Id": "fullb-15", "ChannelType": "EMAIL", "Address": "f@example.com", "User": {"UserId": "fullb"}},
            ]
        },
    )
    assert_gone(pp, app_id, "fullb-15")
    assert_gone(pp, app_id, "other-ok")
    assert len(user_endpoint_ids(pp, app_id, "fullb")) == 15


def test_batch_that_adds_16_endpoints_for_a_new_user_is_rejected(pp, app_id):
    items = [
        {"Id": f"fresh-{i:02d}", "ChannelType": "EMAIL", "Address": f"fr{i}@example.com", "User": {"UserId": "fresh"}}
        for i in range(16)
    ]
    expect_error(
        pp.update_endpoints_batch, "BadRequestException", 400, ApplicationId=app_id, EndpointBatchRequest={"Item": items}
    )
    assert_user_has_no_endpoints(pp, app_id, "fresh")


def test_moving_an_endpoint_to_a_full_user_is_rejected(pp, app_id):
    _fill_user(pp, app_id, "fullm")
    put(pp, app_id, "mover", {"ChannelType": "SMS", "Address": "+12065550120", "User": {"UserId": "elsewhere"}})
    expect_error(put, "BadRequestException", 400, pp, app_id, "mover", {"User": {"UserId": "fullm"}})
    assert get(pp, app_id, "mover")["User"]["UserId"] == "elsewhere"
    assert len(user_endpoint_ids(pp, app_id, "fullm")) == 15


# ---------------------------------------------------------------- enums and dates


@pytest.mark.parametrize(
    "field, value",
    [
        ("ChannelType", "PIGEON"),
        ("ChannelType", "email"),
        ("ChannelType", ""),
        ("EndpointStatus", "SLEEPING"),
        ("OptOut", "MAYBE"),
    ],
)
def test_invalid_enum_values_are_rejected(pp, app_id, field, value):
    body = {"ChannelType": "EMAIL", "Address": "e@example.com", "User": {"UserId": "enum-user"}, field: value}
    expect_error(put, "BadRequestException", 400, pp, app_id, "ep-enum", body)
    assert_gone(pp, app_id, "ep-enum")
    assert_user_has_no_endpoints(pp, app_id, "enum-user")


def test_invalid_enum_on_update_leaves_endpoint_unchanged(pp, app_id):
    put(pp, app_id, "ep-1", {"ChannelType": "EMAIL", "Address": "e@example.com"})
    before = get(pp, app_id, "ep-1")
    expect_error(put, "BadRequestException", 400, pp, app_id, "ep-1", {"ChannelType": "CARRIER_PIGEON", "Address": "x"})
    assert get(pp, app_id, "ep-1") == before


@pytest.mark.parametrize(
    "effective_date",
    ["yesterday", "2024-13-01T00:00:00Z", "2024-02-30T00:00:00Z", "05/01/2024", "1714564800", "2024-05-01T25:00:00Z"],
)
def test_invalid_effective_date_is_rejected(pp, app_id, effective_date):
    body = {"ChannelType": "EMAIL", "Address": "d@example.com", "EffectiveDate": effective_date}
    expect_error(put, "BadRequestException", 400, pp, app_id, "ep-date", body)
    assert_gone(pp, app_id, "ep-date")


@pytest.mark.parametrize(
    "effective_date", ["2024-05-01T12:00:00Z", "2024-05-01T12:00:00.123Z", "2024-05-01T12:00:00.123456+02:00"]
)
def test_valid_effective_dates_are_accepted(pp, app_id, effective_date):
    put(pp, app_id, "ep-date-ok", {"ChannelType": "EMAIL", "Address": "d@example.com", "EffectiveDate": effective_date})
    assert get(pp, app_id, "ep-date-ok")["EffectiveDate"]

"""UpdateEndpoint, UpdateEndpointsBatch, GetEndpoint, DeleteEndpoint,
GetUserEndpoints, DeleteUserEndpoints, RemoveAttributes."""

from __future__ import annotations

import copy

import pytest

from harness import assert_iso8601, expect_error, request_id_of, status_of

MISSING_APP = "0" * 32

FULL_ENDPOINT = {
    "Address": "user@example.com",
    "ChannelType": "EMAIL",
    "EndpointStatus": "ACTIVE",
    "OptOut": "NONE",
    "EffectiveDate": "2024-05-01T12:00:00.000Z",
    "Attributes": {"Interests": ["cooking", "travel"]},
    "Metrics": {"purchases": 3.0},
    "Demographic": {
        "Platform": "ios",
        "PlatformVersion": "17.4",
        "Make": "Apple",
        "Model": "iPhone",
        "ModelVersion": "15",
        "Timezone": "America/Los_Angeles",
        "Locale": "en_US",
        "AppVersion": "1.2.3",
    },
    "Location": {
        "Country": "US",
        "City": "Seattle",
        "PostalCode": "98101",
        "Region": "WA",
        "Latitude": 47.6,
        "Longitude": -122.3,
    },
    "User": {"UserId": "user-42", "UserAttributes": {"Plan": ["gold"]}},
}


def put(pp, app_id, endpoint_id, body):
    return pp.update_endpoint(ApplicationId=app_id, EndpointId=endpoint_id, EndpointRequest=body)


def get(pp, app_id, endpoint_id):
    return pp.get_endpoint(ApplicationId=app_id, EndpointId=endpoint_id)["EndpointResponse"]


def batch(pp, app_id, items):
    return pp.update_endpoints_batch(ApplicationId=app_id, EndpointBatchRequest={"Item": items})


def assert_gone(pp, app_id, endpoint_id):
    expect_error(pp.get_endpoint, "NotFoundException", 404, ApplicationId=app_id, EndpointId=endpoint_id)


def assert_same_fields(got: dict, sent: dict):
    for key, value in sent.items():
        assert got.get(key) == value, f"{key}: sent {value!r}, got {got.get(key)!r}"


# ---------------------------------------------------------------- UpdateEndpoint


def test_update_endpoint_returns_202_message_body(pp, app_id):
    resp = put(pp, app_id, "ep-1", FULL_ENDPOINT)
    assert status_of(resp) == 202
    body = resp["MessageBody"]
    assert isinstance(body.get("Message"), str) and body["Message"], body
    assert isinstance(body.get("RequestID"), str) and body["RequestID"], body
    assert body["RequestID"] == request_id_of(resp), "body RequestID and x-amzn-RequestId differ"


def test_get_endpoint_returns_what_was_written(pp, app_id):
    put(pp, app_id, "ep-1", FULL_ENDPOINT)
    resp = pp.get_endpoint(ApplicationId=app_id, EndpointId="ep-1")
    assert status_of(resp) == 200
    ep = resp["EndpointResponse"]
    assert_same_fields(ep, FULL_ENDPOINT)
    assert ep["Id"] == "ep-1"
    assert ep["ApplicationId"] == app_id
    assert_iso8601(ep.get("CreationDate"), "CreationDate")
    cohort = ep.get("CohortId")
    assert isinstance(cohort, str) and cohort.isdigit() and 0 <= int(cohort) <= 99, cohort


def test_new_endpoint_is_active_and_dated(pp, app_id):
    put(pp, app_id, "ep-min", {"ChannelType": "SMS", "Address": "+12065550100"})
    ep = get(pp, app_id, "ep-min")
    assert ep["EndpointStatus"] == "ACTIVE"
    assert ep["ChannelType"] == "SMS"
    assert ep["Address"] == "+12065550100"
    assert_iso8601(ep.get("CreationDate"), "CreationDate")
    assert_iso8601(ep.get("EffectiveDate"), "EffectiveDate")


def test_partial_update_keeps_unspecified_fields(pp, app_id):
    first = put(pp, app_id, "ep-1", FULL_ENDPOINT)
    before = get(pp, app_id, "ep-1")
    assert before["RequestId"] == first["MessageBody"]["RequestID"]

    second = put(pp, app_id, "ep-1", {"Address": "new@example.com", "OptOut": "ALL"})
    after = get(pp, app_id, "ep-1")
    assert after["Address"] == "new@example.com"
    assert after["OptOut"] == "ALL"
    for key in ("ChannelType", "Attributes", "Metrics", "Demographic", "Location", "User"):
        assert after[key] == FULL_ENDPOINT[key], f"{key} changed by an update that did not mention it"
    assert after["CreationDate"] == before["CreationDate"]
    assert after["CohortId"] == before["CohortId"], "cohort must be stable for an endpoint"
    assert after["RequestId"] == second["MessageBody"]["RequestID"], "RequestId is the last update's"


def test_update_replaces_values_per_attribute_key(pp, app_id):
    put(pp, app_id, "ep-1", {
        "ChannelType": "EMAIL",
        "Address": "a@example.com",
        "Attributes": {"color": ["red", "blue"], "size": ["L"]},
        "Metrics": {"visits": 1.0, "spend": 10.5},
        "User": {"UserId": "u-1", "UserAttributes": {"plan": ["free"], "lang": ["en"]}},
    })
    put(pp, app_id, "ep-1", {
        "Attributes": {"color": ["green"]},
        "Metrics": {"visits": 2.0},
        "User": {"UserId": "u-1", "UserAttributes": {"plan": ["pro"]}},
    })
    ep = get(pp, app_id, "ep-1")
    assert ep["Attributes"] == {"color": ["green"], "size": ["L"]}
    assert ep["Metrics"] == {"visits": 2.0, "spend": 10.5}
    assert ep["User"] == {"UserId": "u-1", "UserAttributes": {"plan": ["pro"], "lang": ["en"]}}


def test_reusing_an_address_deactivates_the_older_endpoint(pp, app_id):
    put(pp, app_id, "ep-old", {"ChannelType": "EMAIL", "Address": "shared@example.com"})
    put(pp, app_id, "ep-new", {"ChannelType": "EMAIL", "Address": "shared@example.com"})
    assert get(pp, app_id, "ep-new")["EndpointStatus"] == "ACTIVE"
    assert get(pp, app_id, "ep-old")["EndpointStatus"] == "INACTIVE"
    # Updating the older endpoint makes it the address's holder again.
    put(pp, app_id, "ep-old", {"Attributes": {"Plan": ["pro"]}})
    assert get(pp, app_id, "ep-old")["EndpointStatus"] == "ACTIVE"
    assert get(pp, app_id, "ep-new")["EndpointStatus"] == "INACTIVE"


@pytest.mark.parametrize(
    "endpoint_id",
    ["ep with space", "a/b", "x:y@z+1", "caf\u00e9-\u00fc", "dots.and_underscores~", "%41literal-percent"],
)
def test_endpoint_ids_with_special_characters_round_trip(pp, app_id, endpoint_id):
    put(pp, app_id, endpoint_id, {"ChannelType": "CUSTOM", "Address": "https://hooks.example.com/x"})
    ep = get(pp, app_id, endpoint_id)
    assert ep["Id"] == endpoint_id
    assert ep["Address"] == "https://hooks.example.com/x"
    assert_gone(pp, app_id, endpoint_id + "-other")


def test_endpoint_id_with_slash_is_one_id(pp, app_id):
    put(pp, app_id, "a/b", {"ChannelType": "SMS", "Address": "+12065550101"})
    assert_gone(pp, app_id, "a")
    assert_gone(pp, app_id, "b")


def test_endpoints_are_per_app(pp, make_app):
    a, b = make_app()["Id"], make_app()["Id"]
    put(pp, a, "ep-1", {"ChannelType": "SMS", "Address": "+12065550102"})
    assert_gone(pp, b, "ep-1")


# ---------------------------------------------------------------- GetEndpoint


def test_get_missing_endpoint_is_not_found(pp, app_id):
    assert_gone(pp, app_id, "never-written")


def test_endpoint_ops_on_unknown_app_are_not_found(pp):
    expect_error(pp.get_endpoint, "NotFoundException", 404, ApplicationId=MISSING_APP, EndpointId="e")
    expect_error(pp.delete_endpoint, "NotFoundException", 404, ApplicationId=MISSING_APP, EndpointId="e")
    expect_error(
        pp.update_endpoint,
        "NotFoundException",
        404,
        ApplicationId=MISSING_APP,
        EndpointId="e",
        EndpointRequest={"ChannelType": "SMS", "Address": "+12065550103"},
    )
    expect_error(
        pp.update_endpoints_batch,
        "NotFoundException",
        404,
        ApplicationId=MISSING_APP,
        EndpointBatchRequest={"Item": [{"Id": "e", "ChannelType": "SMS", "Address": "+12065550103"}]},
    )
    expect_error(pp.get_user_endpoints, "NotFoundException", 404, ApplicationId=MISSING_APP, UserId="u")
    expect_error(pp.delete_user_endpoints, "NotFoundException", 404, ApplicationId=MISSING_APP, UserId="u")


# ---------------------------------------------------------------- DeleteEndpoint


def test_delete_endpoint_returns_it_then_it_is_gone(pp, app_id):
    put(pp, app_id, "ep-1", FULL_ENDPOINT)
    resp = pp.delete_endpoint(ApplicationId=app_id, EndpointId="ep-1")
    assert status_of(resp) == 202
    deleted = resp["EndpointResponse"]
    assert deleted["Id"] == "ep-1"
    assert deleted["ApplicationId"] == app_id
    assert_same_fields(deleted, {k: FULL_ENDPOINT[k] for k in ("Address", "ChannelType", "Attributes", "User")})
    assert_gone(pp, app_id, "ep-1")
    expect_error(pp.delete_endpoint, "NotFoundException", 404, ApplicationId=app_id, EndpointId="ep-1")
    expect_error(pp.get_user_endpoints, "NotFoundException", 404, ApplicationId=app_id, UserId="user-42")


def test_deleted_endpoint_can_be_recreated_fresh(pp, app_id):
    put(pp, app_id, "ep-1", FULL_ENDPOINT)
    pp.delete_endpoint(ApplicationId=app_id, EndpointId="ep-1")
    put(pp, app_id, "ep-1", {"ChannelType": "SMS", "Address": "+12065550104"})
    ep = get(pp, app_id, "ep-1")
    assert ep["ChannelType"] == "SMS"
    assert not ep.get("Attributes"), "attributes of the deleted endpoint came back"
    assert not ep.get("User", {}).get("UserId"), "user of the deleted endpoint came back"


# ---------------------------------------------------------------- UpdateEndpointsBatch


def test_batch_creates_and_updates(pp, app_id):
    put(pp, app_id, "ep-existing", FULL_ENDPOINT)
    items = [
        {"Id": "ep-2", "ChannelType": "SMS", "Address": "+12065550100", "User": {"UserId": "user-42"}},
        {"Id": "ep-3", "ChannelType": "GCM", "Address": "fcm-device-token", "Demographic": {"Platform": "android"}},
        {"Id": "ep-existing", "Attributes": {"Interests": ["music"]}},
    ]
    resp = batch(pp, app_id, items)
    assert status_of(resp) == 202
    assert resp["MessageBody"].get("RequestID")
    assert resp["MessageBody"].get("Message")

    ep2 = get(pp, app_id, "ep-2")
    assert (ep2["ChannelType"], ep2["Address"], ep2["User"]["UserId"]) == ("SMS", "+12065550100", "user-42")
    ep3 = get(pp, app_id, "ep-3")
    assert (ep3["ChannelType"], ep3["Demographic"]["Platform"]) == ("GCM", "android")
    existing = get(pp, app_id, "ep-existing")
    assert existing["Attributes"] == {"Interests": ["music"]}
    assert existing["Address"] == FULL_ENDPOINT["Address"], "batch update dropped an unspecified field"


def test_batch_of_100_is_accepted(pp, app_id):
    items = [{"Id": f"b-{i:03d}", "ChannelType": "EMAIL", "Address": f"b{i}@example.com"} for i in range(100)]
    assert status_of(batch(pp, app_id, items)) == 202
    for i in (0, 57, 99):
        assert get(pp, app_id, f"b-{i:03d}")["Address"] == f"b{i}@example.com"


def test_batch_of_101_is_rejected_and_nothing_is_written(pp, app_id):
    items = [{"Id": f"c-{i:03d}", "ChannelType": "EMAIL", "Address": f"c{i}@example.com"} for i in range(101)]
    expect_error(batch, "BadRequestException", 400, pp, app_id, items)
    for i in range(101):
        assert_gone(pp, app_id, f"c-{i:03d}")


INVALID_BATCH_ITEMS = {
    "bad-channel-type": {"Id": "bad", "ChannelType": "PIGEON", "Address": "coo"},
    "missing-id": {"ChannelType": "EMAIL", "Address": "noid@example.com"},
    "dollar-in-id": {"Id": "bad$id", "ChannelType": "EMAIL", "Address": "d@example.com"},
    "brace-in-id": {"Id": "bad{id}", "ChannelType": "EMAIL", "Address": "b@example.com"},
    "bad-effective-date": {"Id": "bad", "ChannelType": "EMAIL", "Address": "x@example.com", "EffectiveDate": "yesterday"},
    "bad-endpoint-status": {"Id": "bad", "ChannelType": "EMAIL", "Address": "x@example.com", "EndpointStatus": "SLEEPY"},
    "bad-opt-out": {"Id": "bad", "ChannelType": "EMAIL", "Address": "x@example.com", "OptOut": "SOME"},
    "251-attributes": {
        "Id": "bad",
        "ChannelType": "EMAIL",
        "Address": "x@example.com",
        "Attributes": {f"a{i}": ["v"] for i in range(251)},
    },
}


@pytest.mark.parametrize("bad_item", list(INVALID_BATCH_ITEMS.values()), ids=list(INVALID_BATCH_ITEMS))
def test_batch_with_one_invalid_item_applies_nothing(pp, app_id, bad_item):
    put(pp, app_id, "keep", {"ChannelType": "SMS", "Address": "+12065550105", "Attributes": {"v": ["1"]}})
    before = get(pp, app_id, "keep")
    items = [
        {"Id": "ok-1", "ChannelType": "EMAIL", "Address": "ok1@example.com"},
        {"Id": "keep", "Attributes": {"v": ["2"]}, "Address": "+12065550106"},
        copy.deepcopy(bad_item),
        {"Id": "ok-2", "ChannelType": "EMAIL", "Address": "ok2@example.com"},
    ]
    expect_error(batch, "BadRequestException", 400, pp, app_id, items)
    assert_gone(pp, app_id, "ok-1")
    assert_gone(pp, app_id, "ok-2")
    if bad_item.get("Id") not in (None, "bad$id", "bad{id}"):
        assert_gone(pp, app_id, bad_item["Id"])
    after = get(pp, app_id, "keep")
    assert after == before, "a rejected batch changed an existing endpoint"


def test_empty_batch_is_bad_request(pp, app_id):
    expect_error(batch, "BadRequestException", 400, pp, app_id, [])


# ---------------------------------------------------------------- users


def test_get_user_endpoints_returns_all_of_the_users_endpoints(pp, app_id):
    for i in range(3):
        put(pp, app_id, f"u1-ep{i}", {"ChannelType": "EMAIL", "Address": f"u1.{i}@example.com", "User": {"UserId": "u1"}})
    put(pp, app_id, "u2-ep0", {"ChannelType": "SMS", "Address": "+12065550107", "User": {"UserId": "u2"}})
    put(pp, app_id, "anon", {"ChannelType": "SMS", "Address": "+12065550108"})

    resp = pp.get_user_endpoints(ApplicationId=app_id, UserId="u1")
    assert status_of(resp) == 200
    items = resp["EndpointsResponse"]["Item"]
    assert sorted(e["Id"] for e in items) == ["u1-ep0", "u1-ep1", "u1-ep2"]
    for e in items:
        assert e["User"]["UserId"] == "u1"
        assert e["ApplicationId"] == app_id
        assert e["ChannelType"] == "EMAIL"
        assert e["Address"] == f"u1.{e['Id'][-1]}@example.com"


def test_user_ids_with_special_characters(pp, app_id):
    user = "user/with space:and+plus"
    put(pp, app_id, "ep-x", {"ChannelType": "SMS", "Address": "+12065550109", "User": {"UserId": user}})
    items = pp.get_user_endpoints(ApplicationId=app_id, UserId=user)["EndpointsResponse"]["Item"]
    assert [e["Id"] for e in items] == ["ep-x"]
    expect_error(pp.get_user_endpoints, "NotFoundException", 404, ApplicationId=app_id, UserId="user")


def test_moving_an_endpoint_to_another_user_updates_both(pp, app_id):
    put(pp, app_id, "ep-a", {"ChannelType": "SMS", "Address": "+12065550110", "User": {"UserId": "alice"}})
    put(pp, app_id, "ep-b", {"ChannelType": "SMS", "Address": "+12065550111", "User": {"UserId": "alice"}})
    put(pp, app_id, "ep-a", {"User": {"UserId": "bob"}})
    alice = pp.get_user_endpoints(ApplicationId=app_id, UserId="alice")["EndpointsResponse"]["Item"]
    bob = pp.get_user_endpoints(ApplicationId=app_id, UserId="bob")["EndpointsResponse"]["Item"]
    assert [e["Id"] for e in alice] == ["ep-b"]
    assert [e["Id"] for e in bob] == ["ep-a"]


def test_get_user_endpoints_unknown_user_is_not_found(pp, app_id):
    expect_error(pp.get_user_endpoints, "NotFoundException", 404, ApplicationId=app_id, UserId="nobody")


def test_delete_user_endpoints_deletes_only_that_users_endpoints(pp, app_id):
    for i in range(3):
        put(pp, app_id, f"d-ep{i}", {"ChannelType": "EMAIL", "Address": f"d{i}@example.com", "User": {"UserId": "doomed"}})
    put(pp, app_id, "safe", {"ChannelType": "EMAIL", "Address": "safe@example.com", "User": {"UserId": "safe-user"}})

    resp = pp.delete_user_endpoints(ApplicationId=app_id, UserId="doomed")
    assert status_of(resp) == 202
    deleted = resp["EndpointsResponse"]["Item"]
    assert sorted(e["Id"] for e in deleted) == ["d-ep0", "d-ep1", "d-ep2"]
    assert all(e["User"]["UserId"] == "doomed" for e in deleted)
    for i in range(3):
        assert_gone(pp, app_id, f"d-ep{i}")
    expect_error(pp.get_user_endpoints, "NotFoundException", 404, ApplicationId=app_id, UserId="doomed")
    assert get(pp, app_id, "safe")["User"]["UserId"] == "safe-user"
    assert [e["Id"] for e in pp.get_user_endpoints(ApplicationId=app_id, UserId="safe-user")["EndpointsResponse"]["Item"]] == ["safe"]


def test_delete_user_endpoints_unknown_user_is_not_found(pp, app_id):
    expect_error(pp.delete_user_endpoints, "NotFoundException", 404, ApplicationId=app_id, UserId="nobody")


# ---------------------------------------------------------------- RemoveAttributes


@pytest.mark.parametrize(
    "attribute_type, name",
    [
        ("endpoint-custom-attributes", "Interests"),
        ("endpoint-metric-attributes", "purchases"),
        ("endpoint-user-attributes", "Plan"),
    ],
)
def test_remove_attributes_response(pp, app_id, attribute_type, name):
    put(pp, app_id, "ep-1", FULL_ENDPOINT)
    resp = pp.remove_attributes(
        ApplicationId=app_id, AttributeType=attribute_type, UpdateAttributesRequest={"Blacklist": [name]}
    )
    assert status_of(resp) == 200
    res = resp["AttributesResource"]
    assert res["ApplicationId"] == app_id
    assert res["AttributeType"] == attribute_type
    assert name in res.get("Attributes", [])


def test_remove_attributes_touches_only_the_named_type(pp, app_id):
    # The same name exists as a custom attribute, a metric and a user attribute.
    put(pp, app_id, "ep-1", {
        "ChannelType": "EMAIL",
        "Address": "r@example.com",
        "Attributes": {"score": ["high"], "other": ["x"]},
        "Metrics": {"score": 9.0},
        "User": {"UserId": "r", "UserAttributes": {"score": ["top"]}},
    })
    pp.remove_attributes(
        ApplicationId=app_id,
        AttributeType="endpoint-custom-attributes",
        UpdateAttributesRequest={"Blacklist": ["score"]},
    )
    ep = get(pp, app_id, "ep-1")
    assert ep["Attributes"]["other"] == ["x"]
    assert ep["Metrics"] == {"score": 9.0}
    assert ep["User"]["UserAttributes"] == {"score": ["top"]}


def test_remove_attributes_invalid_type_is_bad_request(pp, app_id):
    expect_error(
        pp.remove_attributes,
        "BadRequestException",
        400,
        ApplicationId=app_id,
        AttributeType="endpoint-bogus-attributes",
        UpdateAttributesRequest={"Blacklist": ["x"]},
    )


def test_remove_attributes_unknown_app_is_not_found(pp):
    expect_error(
        pp.remove_attributes,
        "NotFoundException",
        404,
        ApplicationId=MISSING_APP,
        AttributeType="endpoint-custom-attributes",
        UpdateAttributesRequest={"Blacklist": ["x"]},
    )

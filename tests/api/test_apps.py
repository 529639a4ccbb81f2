"""CreateApp, GetApp, GetApps (pagination), DeleteApp."""

from __future__ import annotations

import re

from harness import (
    APP_ID,
    REGION,
    assert_iso8601,
    delete_app_quietly,
    enc,
    expect_error,
    expect_raw_error,
    list_all_apps,
    make_client,
    request_id_of,
    status_of,
    unique,
)

MISSING_APP = "0" * 32
PAGES_MAX = 200


def test_create_app_returns_201_and_application_response(pp):
    name = unique("create")
    resp = pp.create_app(CreateApplicationRequest={"Name": name, "tags": {"env": "dev", "team": "growth"}})
    try:
        assert status_of(resp) == 201
        assert request_id_of(resp), "no x-amzn-RequestId header"
        app = resp["ApplicationResponse"]
        assert app["Name"] == name
        assert APP_ID.match(app["Id"]), f"app id should be 32 lowercase hex chars: {app['Id']!r}"
        arn = re.fullmatch(rf"arn:aws:mobiletargeting:{REGION}:(\d{{12}}):apps/{app['Id']}", app["Arn"])
        assert arn, f"ARN should be arn:aws:mobiletargeting:{REGION}:<12-digit account>:apps/<id>: {app['Arn']}"
        assert app["tags"] == {"env": "dev", "team": "growth"}
        assert_iso8601(app.get("CreationDate"), "CreationDate")
    finally:
        delete_app_quietly(pp, resp["ApplicationResponse"]["Id"])


def test_create_app_without_tags_has_empty_tags(app):
    # AWS returns "tags": {} for an untagged resource.
    assert app.get("tags", {}) == {}


def test_app_ids_are_unique(make_app):
    ids = {make_app(name="same-name")["Id"] for _ in range(3)}
    assert len(ids) == 3, "apps with the same name must still get distinct ids"


def test_app_arn_region_comes_from_the_credential_scope(herald_server):
    client = make_client(herald_server.url, region="eu-west-1")
    app = client.create_app(CreateApplicationRequest={"Name": unique("eu")})["ApplicationResponse"]
    try:
        assert app["Arn"].startswith("arn:aws:mobiletargeting:eu-west-1:"), app["Arn"]
    finally:
        delete_app_quietly(client, app["Id"])


def test_get_app_round_trips(pp, make_app):
    created = make_app(tags={"k": "v"})
    resp = pp.get_app(ApplicationId=created["Id"])
    assert status_of(resp) == 200
    got = resp["ApplicationResponse"]
    assert got["Id"] == created["Id"]
    assert got["Arn"] == created["Arn"]
    assert got["Name"] == created["Name"]
    assert got["tags"] == {"k": "v"}
    assert got.get("CreationDate") == created.get("CreationDate")


def test_get_app_unknown_is_not_found(pp):
    expect_error(pp.get_app, "NotFoundException", 404, ApplicationId=MISSING_APP)


def test_get_app_garbage_id_is_not_found(pp):
    expect_error(pp.get_app, "NotFoundException", 404, ApplicationId="no-such-app")


def test_create_app_without_name_is_bad_request(raw):
    # botocore refuses to send this (Name is required), so send it raw.
    expect_raw_error(raw("POST", "/v1/apps", {}), "BadRequestException", 400)
    expect_raw_error(raw("POST", "/v1/apps", {"Name": ""}), "BadRequestException", 400)


def test_get_apps_pages_with_page_size_and_token(pp, make_app):
    mine = {make_app(name=unique("page"))["Id"] for _ in range(5)}
    seen = []
    pages = 0
    token = None
    while True:
        kwargs = {"PageSize": "2"}
        if token:
            kwargs["Token"] = token
        resp = pp.get_apps(**kwargs)
        assert status_of(resp) == 200
        body = resp["ApplicationsResponse"]
        items = body.get("Item", [])
        pages += 1
        assert len(items) <= 2, f"page {pages} has {len(items)} items with page-size 2"
        for item in items:
            assert item["Arn"].endswith(item["Id"])
            assert "Name" in item
        seen.extend(item["Id"] for item in items)
        if "NextToken" not in body:
            break
        token = body["NextToken"]
        assert isinstance(token, str) and token, f"page {pages}: NextToken {token!r} (absent at the end, else opaque)"
        assert items, f"page {pages} is empty but has a NextToken"
        assert pages < PAGES_MAX, "GetApps never stopped returning a NextToken"
    assert len(seen) == len(set(seen)), f"duplicate apps across pages: {seen}"
    assert mine <= set(seen), f"missing apps: {mine - set(seen)}"
    assert pages >= 3, "5+ apps at page-size 2 need at least 3 pages"


def test_get_apps_includes_names_and_tags(pp, make_app):
    created = make_app(tags={"listed": "yes"})
    found = [a for a in list_all_apps(pp) if a["Id"] == created["Id"]]
    assert len(found) == 1
    assert found[0]["Name"] == created["Name"]
    assert found[0]["tags"] == {"listed": "yes"}


def test_get_apps_with_garbage_token_is_bad_request(pp):
    expect_error(pp.get_apps, "BadRequestException", 400, PageSize="2", Token="not-a-token")


def test_delete_app_returns_the_app_and_then_it_is_gone(pp):
    app = pp.create_app(CreateApplicationRequest={"Name": unique("del"), "tags": {"a": "1"}})["ApplicationResponse"]
    app_id = app["Id"]
    try:
        pp.update_endpoint(
            ApplicationId=app_id,
            EndpointId="ep-1",
            EndpointRequest={"ChannelType": "EMAIL", "Address": "a@example.com", "User": {"UserId": "u-1"}},
        )
        resp = pp.delete_app(ApplicationId=app_id)
        assert status_of(resp) == 200
        deleted = resp["ApplicationResponse"]
        assert deleted["Id"] == app_id
        assert deleted["Name"] == app["Name"]
        assert deleted["Arn"] == app["Arn"]

        expect_error(pp.get_app, "NotFoundException", 404, ApplicationId=app_id)
        expect_error(pp.get_application_settings, "NotFoundException", 404, ApplicationId=app_id)
        expect_error(pp.get_endpoint, "NotFoundException", 404, ApplicationId=app_id, EndpointId="ep-1")
        expect_error(pp.get_user_endpoints, "NotFoundException", 404, ApplicationId=app_id, UserId="u-1")
        expect_error(pp.delete_app, "NotFoundException", 404, ApplicationId=app_id)
        expect_error(
            pp.list_tags_for_resource, "NotFoundException", 404, ResourceArn=app["Arn"], modeled=False
        )
        assert app_id not in {a["Id"] for a in list_all_apps(pp)}
    finally:
        delete_app_quietly(pp, app_id)


def test_writes_to_a_deleted_app_are_not_found(pp):
    app_id = pp.create_app(CreateApplicationRequest={"Name": unique("gone")})["ApplicationResponse"]["Id"]
    pp.delete_app(ApplicationId=app_id)
    expect_error(
        pp.update_endpoint,
        "NotFoundException",
        404,
        ApplicationId=app_id,
        EndpointId="ep-1",
        EndpointRequest={"ChannelType": "EMAIL", "Address": "a@example.com"},
    )
    expect_error(
        pp.update_application_settings,
        "NotFoundException",
        404,
        ApplicationId=app_id,
        WriteApplicationSettingsRequest={"QuietTime": {"Start": "22:00", "End": "07:00"}},
    )
    expect_error(pp.get_endpoint, "NotFoundException", 404, ApplicationId=app_id, EndpointId="ep-1")


def test_app_path_with_encoded_characters_is_not_found(raw):
    expect_raw_error(raw("GET", "/v1/apps/" + enc("a/b c")), "NotFoundException", 404)


def _page_sizes(client, page_size: str) -> tuple:
    sizes, ids, token = [], [], None
    for _ in range(PAGES_MAX):
        kwargs = {"PageSize": page_size}
        if token:
            kwargs["Token"] = token
        body = client.get_apps(**kwargs)["ApplicationsResponse"]
        items = body.get("Item", [])
        sizes.append(len(items))
        ids += [a["Id"] for a in items]
        if "NextToken" not in body:
            return sizes, ids
        token = body["NextToken"]
    raise AssertionError("GetApps never stopped returning a NextToken")


def test_get_apps_pagination_is_exact_on_a_fresh_server(start_server):
    server = start_server(name="pages")
    client = server.client()
    assert client.get_apps()["ApplicationsResponse"].get("Item", []) == []
    mine = [client.create_app(CreateApplicationRequest={"Name": f"p{i}"})["ApplicationResponse"]["Id"] for i in range(5)]
    for page_size, want_sizes in (("2", [2, 2, 1]), ("1", [1, 1, 1, 1, 1]), ("5", [5]), ("50", [5])):
        sizes, ids = _page_sizes(client, page_size)
        assert sizes == want_sizes, f"page-size {page_size}: page sizes {sizes}"
        assert sorted(ids) == sorted(mine), f"page-size {page_size}: wrong or duplicate apps"
    server.stop_gracefully()

"""TagResource, UntagResource, ListTagsForResource on app ARNs.

The three tag operations model no errors, so botocore resolves their error
codes from the `X-Amzn-ErrorType` header only (`modeled=False`).
"""

from __future__ import annotations

import pytest

from harness import REGION, delete_apps_named, enc, expect_error, expect_raw_error, status_of, unique


def list_tags(pp, arn):
    return pp.list_tags_for_resource(ResourceArn=arn)["TagsModel"]["tags"]


def test_list_tags_of_an_app_created_with_tags(pp, make_app):
    app = make_app(tags={"env": "dev", "team": "growth"})
    resp = pp.list_tags_for_resource(ResourceArn=app["Arn"])
    assert status_of(resp) == 200
    assert resp["TagsModel"]["tags"] == {"env": "dev", "team": "growth"}


def test_list_tags_of_an_untagged_app_is_empty(pp, app):
    assert list_tags(pp, app["Arn"]) == {}


def test_tag_resource_merges_and_overwrites(pp, make_app):
    app = make_app(tags={"env": "dev", "team": "growth"})
    resp = pp.tag_resource(ResourceArn=app["Arn"], TagsModel={"tags": {"env": "prod", "cost-center": "42"}})
    assert status_of(resp) == 204
    want = {"env": "prod", "team": "growth", "cost-center": "42"}
    assert list_tags(pp, app["Arn"]) == want
    assert pp.get_app(ApplicationId=app["Id"])["ApplicationResponse"]["tags"] == want


def test_untag_resource_removes_only_the_named_keys(pp, make_app):
    app = make_app(tags={"a": "1", "b": "2", "c": "3"})
    resp = pp.untag_resource(ResourceArn=app["Arn"], TagKeys=["a", "c", "not-there"])
    assert status_of(resp) == 204
    assert list_tags(pp, app["Arn"]) == {"b": "2"}
    assert pp.get_app(ApplicationId=app["Id"])["ApplicationResponse"]["tags"] == {"b": "2"}


def test_untag_all_leaves_empty_tags(pp, make_app):
    app = make_app(tags={"only": "one"})
    pp.untag_resource(ResourceArn=app["Arn"], TagKeys=["only"])
    assert list_tags(pp, app["Arn"]) == {}
    assert pp.get_app(ApplicationId=app["Id"])["ApplicationResponse"].get("tags", {}) == {}


def test_tags_with_special_characters(pp, app):
    tags = {"aws-style:key/with.dots": "value with spaces", "unicode-\u00e9": "\u00fc", "empty": ""}
    pp.tag_resource(ResourceArn=app["Arn"], TagsModel={"tags": tags})
    assert list_tags(pp, app["Arn"]) == tags


def test_tags_are_per_app(pp, make_app):
    a, b = make_app(), make_app()
    pp.tag_resource(ResourceArn=a["Arn"], TagsModel={"tags": {"mine": "a"}})
    assert list_tags(pp, b["Arn"]) == {}


def test_tags_ops_on_unknown_app_arn_are_not_found(pp, app):
    arn = app["Arn"].rsplit("/", 1)[0] + "/" + "0" * 32
    expect_error(pp.list_tags_for_resource, "NotFoundException", 404, ResourceArn=arn, modeled=False)
    expect_error(pp.tag_resource, "NotFoundException", 404, ResourceArn=arn, TagsModel={"tags": {"a": "b"}}, modeled=False)
    expect_error(pp.untag_resource, "NotFoundException", 404, ResourceArn=arn, TagKeys=["a"], modeled=False)


@pytest.mark.parametrize("arn", ["not-an-arn", "arn:aws:s3:::bucket", f"arn:aws:mobiletargeting:{REGION}"])
def test_malformed_arn_is_bad_request(pp, arn):
    expect_error(pp.list_tags_for_resource, "BadRequestException", 400, ResourceArn=arn, modeled=False)


def test_more_than_50_tags_is_rejected_and_nothing_applied(pp, make_app):
    app = make_app(tags={"keep": "me"})
    too_many = {f"t{i:02d}": "v" for i in range(50)}  # 50 new + 1 existing = 51
    expect_error(pp.tag_resource, "BadRequestException", 400, ResourceArn=app["Arn"], TagsModel={"tags": too_many}, modeled=False)
    assert list_tags(pp, app["Arn"]) == {"keep": "me"}


def test_create_app_with_51_tags_is_rejected(pp):
    tags = {f"t{i:02d}": "v" for i in range(51)}
    name = unique("too-many-tags")
    try:
        expect_error(pp.create_app, "BadRequestException", 400, CreateApplicationRequest={"Name": name, "tags": tags})
    finally:
        leaked = delete_apps_named(pp, name)
    assert not leaked, "a rejected CreateApp left an app behind"


@pytest.mark.parametrize(
    "tags", [{"k" * 129: "v"}, {"k": "v" * 257}, {"": "v"}], ids=["key-129-chars", "value-257-chars", "empty-key"]
)
def test_tag_length_limits(pp, app, tags):
    expect_error(pp.tag_resource, "BadRequestException", 400, ResourceArn=app["Arn"], TagsModel={"tags": tags}, modeled=False)
    assert list_tags(pp, app["Arn"]) == {}


def test_tag_length_boundaries_are_accepted(pp, app):
    tags = {"k" * 128: "v" * 256}
    pp.tag_resource(ResourceArn=app["Arn"], TagsModel={"tags": tags})
    assert list_tags(pp, app["Arn"]) == tags


def test_arn_path_segment_is_fully_percent_encoded(raw, app):
    # What botocore sends: one path segment with ':' and '/' percent-encoded.
    resp = raw("GET", "/v1/tags/" + enc(app["Arn"]))
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"tags": {}}
    tag = raw("POST", "/v1/tags/" + enc(app["Arn"]), {"tags": {"raw": "yes"}})
    assert tag.status_code == 204, tag.text
    assert tag.content == b""
    assert raw("GET", "/v1/tags/" + enc(app["Arn"])).json() == {"tags": {"raw": "yes"}}


def test_tag_resource_bad_json_is_bad_request(raw, app):
    expect_raw_error(raw("POST", "/v1/tags/" + enc(app["Arn"]), b'{"tags": '), "BadRequestException", 400)
    expect_raw_error(raw("POST", "/v1/tags/" + enc(app["Arn"]), {"tags": {"k": 5}}), "BadRequestException", 400)

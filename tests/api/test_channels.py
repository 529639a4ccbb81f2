"""GetChannels and Get/Update/DeleteEmailChannel."""

from __future__ import annotations

from harness import assert_iso8601, expect_error, status_of

MISSING_APP = "0" * 32
IDENTITY = "arn:aws:ses:us-east-1:123456789012:identity/example.com"


def email(from_address="news@example.com", **extra) -> dict:
    return {"FromAddress": from_address, "Identity": IDENTITY, **extra}


def test_an_app_starts_without_channels(pp, app_id):
    resp = pp.get_channels(ApplicationId=app_id)
    assert status_of(resp) == 200
    assert resp["ChannelsResponse"]["Channels"] == {}
    expect_error(pp.get_email_channel, "NotFoundException", 404, ApplicationId=app_id)


def test_update_get_and_list_the_email_channel(pp, app_id):
    resp = pp.update_email_channel(
        ApplicationId=app_id,
        EmailChannelRequest=email(ConfigurationSet="cs-1", RoleArn="arn:aws:iam::123456789012:role/r"),
    )
    assert status_of(resp) == 200
    ch = resp["EmailChannelResponse"]
    assert ch["ApplicationId"] == app_id
    assert ch["FromAddress"] == "news@example.com"
    assert ch["Identity"] == IDENTITY
    assert ch["ConfigurationSet"] == "cs-1"
    assert ch["RoleArn"] == "arn:aws:iam::123456789012:role/r"
    assert ch["Platform"] == "EMAIL"
    assert ch["Enabled"] is True
    assert ch["Version"] == 1
    assert_iso8601(ch["CreationDate"])
    assert_iso8601(ch["LastModifiedDate"])

    got = pp.get_email_channel(ApplicationId=app_id)["EmailChannelResponse"]
    assert got == ch

    channels = pp.get_channels(ApplicationId=app_id)["ChannelsResponse"]["Channels"]
    assert list(channels) == ["EMAIL"]
    assert channels["EMAIL"]["Version"] == 1
    assert channels["EMAIL"]["Enabled"] is True
    assert channels["EMAIL"]["ApplicationId"] == app_id


def test_updates_replace_fields_keep_creation_date_and_bump_the_version(pp, app_id):
    first = pp.update_email_channel(ApplicationId=app_id, EmailChannelRequest=email())["EmailChannelResponse"]
    second = pp.update_email_channel(
        ApplicationId=app_id, EmailChannelRequest=email("hello@example.org", Enabled=False)
    )["EmailChannelResponse"]
    assert second["Version"] == 2
    assert second["CreationDate"] == first["CreationDate"]
    assert second["FromAddress"] == "hello@example.org"
    assert second["Enabled"] is False
    assert pp.get_channels(ApplicationId=app_id)["ChannelsResponse"]["Channels"]["EMAIL"]["Enabled"] is False


def test_delete_returns_the_channel_and_removes_it(pp, app_id):
    pp.update_email_channel(ApplicationId=app_id, EmailChannelRequest=email())
    resp = pp.delete_email_channel(ApplicationId=app_id)
    assert status_of(resp) == 200
    assert resp["EmailChannelResponse"]["FromAddress"] == "news@example.com"
    expect_error(pp.get_email_channel, "NotFoundException", 404, ApplicationId=app_id)
    expect_error(pp.delete_email_channel, "NotFoundException", 404, ApplicationId=app_id)
    assert pp.get_channels(ApplicationId=app_id)["ChannelsResponse"]["Channels"] == {}
    # A new channel after a delete starts over.
    again = pp.update_email_channel(ApplicationId=app_id, EmailChannelRequest=email())["EmailChannelResponse"]
    assert again["Version"] == 1


def test_invalid_requests_change_nothing(pp, app_id):
    pp.update_email_channel(ApplicationId=app_id, EmailChannelRequest=email())
    before = pp.get_email_channel(ApplicationId=app_id)["EmailChannelResponse"]
    for bad in ["not-an-address", "a@", "two words@example.com", ""]:
        err = expect_error(
            pp.update_email_channel, "BadRequestException", 400,
            ApplicationId=app_id, EmailChannelRequest=email(bad),
        )
        assert "FromAddress" in err["Error"]["Message"]
    err = expect_error(
        pp.update_email_channel, "BadRequestException", 400,
        ApplicationId=app_id, EmailChannelRequest={"FromAddress": "a@example.com", "Identity": ""},
    )
    assert "Identity" in err["Error"]["Message"]
    assert pp.get_email_channel(ApplicationId=app_id)["EmailChannelResponse"] == before


def test_channels_of_a_missing_app_are_not_found(pp):
    for call, kwargs in [
        (pp.get_channels, {}),
        (pp.get_email_channel, {}),
        (pp.delete_email_channel, {}),
        (pp.update_email_channel, {"EmailChannelRequest": email()}),
    ]:
        expect_error(call, "NotFoundException", 404, ApplicationId=MISSING_APP, **kwargs)


def test_the_channel_goes_with_its_app(pp, make_app):
    app_id = make_app()["Id"]
    pp.update_email_channel(ApplicationId=app_id, EmailChannelRequest=email())
    pp.delete_app(ApplicationId=app_id)
    expect_error(pp.get_email_channel, "NotFoundException", 404, ApplicationId=app_id)


def test_the_channel_survives_a_restart(start_server):
    server = start_server(name="channels")
    pp = server.client()
    app_id = pp.create_app(CreateApplicationRequest={"Name": "channels"})["ApplicationResponse"]["Id"]
    ch = pp.update_email_channel(ApplicationId=app_id, EmailChannelRequest=email())["EmailChannelResponse"]
    server.stop_gracefully()
    server.restart()
    assert server.client().get_email_channel(ApplicationId=app_id)["EmailChannelResponse"] == ch
    server.stop_gracefully()

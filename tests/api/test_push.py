"""APNs end to end: the channel APIs for the four APNs channel types, and
SendMessages to APNs endpoints and device tokens, with herald pushing over
HTTP/2 and TLS to the mock APNs (`mock-apns`, built from peers/) that the
test starts on loopback. The mock checks every push as Apple does (ES256
provider token against the team key it generated, topic, push type,
priority) and logs what it answered, which is what the tests read."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from harness import HeraldServer, expect_error, signed_request, unique

TEAM = "TEAM123456"
KEY_ID = "KEYID12345"
BUNDLE = "com.example.herald"
DEVICE = "0123456789abcdef" * 4


def peer_bin(name: str) -> Path:
    target = os.environ.get("CARGO_TARGET_DIR")
    base = Path(target) if target else Path(__file__).resolve().parents[2] / "target"
    path = base / "debug" / name
    assert path.exists(), f"{path} is missing: `cargo test --workspace` builds it"
    return path


class MockPeer:
    """A mock provider process (`peers/` binaries): started with `args`,
    serving once it prints `listening URL`, logging what it answered to
    `log` as JSON lines."""

    def __init__(self, name: str, log: Path, args: list):
        self.log = log
        self.proc = subprocess.Popen(
            [str(peer_bin(name)), "--log", str(log), *map(str, args)],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        line = self.proc.stdout.readline().decode()
        assert line.startswith("listening "), line
        self.url = line.split()[1]

    def logged(self, device_token=None, wait_for=0, timeout_s=5.0) -> list:
        """Logged requests (to `device_token`), waiting until there are `wait_for`."""
        deadline = time.time() + timeout_s
        while True:
            lines = self.log.read_text().splitlines() if self.log.exists() else []
            out = [json.loads(l) for l in lines]
            if device_token is not None:
                out = [p for p in out if p["device_token"] == device_token]
            if len(out) >= wait_for or time.time() > deadline:
                return out
            time.sleep(0.05)

    def stop(self):
        self.proc.kill()
        self.proc.wait()


class MockFcm(MockPeer):
    def __init__(self, base: Path):
        self.service_json = base / "service-account.json"
        super().__init__(
            "mock-fcm", base / "sent.ndjson",
            ["--service-json-out", self.service_json, "--project", "herald-test"],
        )

    sent = MockPeer.logged


@pytest.fixture(scope="session")
def fcm(tmp_path_factory):
    mock = MockFcm(tmp_path_factory.mktemp("fcm"))
    yield mock
    mock.stop()


class MockApns(MockPeer):
    def __init__(self, base: Path):
        self.key = base / "key.p8"
        self.ca = base / "ca.pem"
        super().__init__(
            "mock-apns", base / "pushes.ndjson",
            ["--team-id", TEAM, "--key-id", KEY_ID, "--key-out", self.key, "--ca-out", self.ca, "--streams", "100"],
        )

    pushes = MockPeer.logged


@pytest.fixture(scope="session")
def apns(tmp_path_factory):
    mock = MockApns(tmp_path_factory.mktemp("apns"))
    yield mock
    mock.stop()


@pytest.fixture(scope="session")
def push_server(apns, fcm, tmp_path_factory):
    base = tmp_path_factory.mktemp("herald-push")
    server = HeraldServer(
        base / "data",
        base / "herald.log",
        extra_env={
            "HERALD_PUSH_APNS_URL": apns.url,
            "HERALD_PUSH_APNS_SANDBOX_URL": apns.url,
            "HERALD_PUSH_APNS_CA_FILE": str(apns.ca),
            "HERALD_PUSH_FCM_URL": fcm.url,
            "HERALD_DELIVERY_RETRY_BASE_MS": "20",
            "HERALD_DELIVERY_RETRY_MAX_MS": "100",
            "HERALD_DELIVERY_ATTEMPTS_MAX": "4",
        },
    )
    server.start()
    yield server
    server.kill_quietly()


@pytest.fixture
def ppp(request, push_server):
    request.node._herald_servers = [push_server]
    return push_server.client()


def token_channel(apns, **extra) -> dict:
    return {"TokenKey": apns.key.read_text(), "TokenKeyId": KEY_ID, "TeamId": TEAM, "BundleId": BUNDLE, **extra}


@pytest.fixture
def push_app(ppp, apns):
    app_id = ppp.create_app(CreateApplicationRequest={"Name": unique("push")})["ApplicationResponse"]["Id"]
    ppp.update_apns_channel(ApplicationId=app_id, APNSChannelRequest=token_channel(apns))
    yield app_id
    ppp.delete_app(ApplicationId=app_id)


def test_apns_channels_are_created_read_listed_updated_and_deleted(ppp, apns, push_server):
    app_id = ppp.create_app(CreateApplicationRequest={"Name": unique("ch")})["ApplicationResponse"]["Id"]
    ch = ppp.update_apns_channel(ApplicationId=app_id, APNSChannelRequest=token_channel(apns))[
        "APNSChannelResponse"
    ]
    assert ch["Platform"] == "APNS" and ch["Version"] == 1 and ch["Enabled"] is True
    assert ch["HasTokenKey"] is True and ch["DefaultAuthenticationMethod"] == "TOKEN"
    assert "TokenKey" not in ch
    sandbox = ppp.update_apns_sandbox_channel(ApplicationId=app_id, APNSSandboxChannelRequest=token_channel(apns))
    assert sandbox["APNSSandboxChannelResponse"]["Platform"] == "APNS_SANDBOX"
    voip = ppp.update_apns_voip_channel(ApplicationId=app_id, APNSVoipChannelRequest=token_channel(apns))
    assert voip["APNSVoipChannelResponse"]["Platform"] == "APNS_VOIP"
    listed = ppp.get_channels(ApplicationId=app_id)["ChannelsResponse"]["Channels"]
    assert {"APNS", "APNS_SANDBOX", "APNS_VOIP"} <= set(listed)
    # An update without credentials keeps them and bumps the version.
    off = ppp.update_apns_channel(ApplicationId=app_id, APNSChannelRequest={"Enabled": False})["APNSChannelResponse"]
    assert (off["Enabled"], off["Version"], off["HasTokenKey"]) == (False, 2, True)
    assert ppp.get_apns_channel(ApplicationId=app_id)["APNSChannelResponse"]["Version"] == 2
    # The key never reaches the log or the tables in the clear.
    marker = apns.key.read_text().splitlines()[1][:40]
    for f in (push_server.data_dir).rglob("*"):
        if f.is_file():
            assert marker.encode() not in f.read_bytes(), f"the team key is readable in {f}"
    deleted = ppp.delete_apns_voip_channel(ApplicationId=app_id)["APNSVoipChannelResponse"]
    assert deleted["Platform"] == "APNS_VOIP"
    expect_error(ppp.get_apns_voip_channel, "NotFoundException", 404, ApplicationId=app_id)
    ppp.delete_app(ApplicationId=app_id)


def test_bad_apns_credentials_are_refused_and_change_nothing(ppp, apns):
    app_id = ppp.create_app(CreateApplicationRequest={"Name": unique("bad")})["ApplicationResponse"]["Id"]
    for req, words in [
        (token_channel(apns, TokenKey="-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), "TokenKey"),
        ({"TokenKey": apns.key.read_text(), "TeamId": TEAM, "BundleId": BUNDLE}, "TokenKeyId"),
        ({k: v for k, v in token_channel(apns).items() if k != "BundleId"}, "BundleId"),
        ({"Certificate": "not a certificate", "PrivateKey": "nope", "BundleId": BUNDLE}, "Certificate"),
        ({"Enabled": True}, "credentials"),
    ]:
        err = expect_error(
            ppp.update_apns_channel, "BadRequestException", 400, ApplicationId=app_id, APNSChannelRequest=req
        )
        assert words in err["Error"]["Message"], err
    expect_error(ppp.get_apns_channel, "NotFoundException", 404, ApplicationId=app_id)
    ppp.delete_app(ApplicationId=app_id)


def test_a_push_to_an_endpoint_is_rendered_and_reaches_apns(ppp, apns, push_app):
    token = unique("0a").encode().hex()[:64].ljust(64, "0")
    ppp.update_endpoint(
        ApplicationId=push_app,
        EndpointId="phone-1",
        EndpointRequest={"ChannelType": "APNS", "Address": token, "User": {"UserAttributes": {"name": ["Ada"]}}},
    )
    resp = ppp.send_messages(
        ApplicationId=push_app,
        MessageRequest={
            "Endpoints": {"phone-1": {}},
            "MessageConfiguration": {
                "DefaultPushNotificationMessage": {"Title": "Hi {{User.UserAttributes.name}}", "Body": "default"},
                "APNSMessage": {"Body": "Your order shipped", "Badge": 2, "Sound": "default", "TimeToLive": 600},
            },
        },
    )["MessageResponse"]
    result = resp["EndpointResult"]["phone-1"]
    assert result["DeliveryStatus"] == "SUCCESSFUL", result
    assert result["StatusCode"] == 200
    [push] = apns.pushes(token, wait_for=1)
    assert push["status"] == 200
    assert push["topic"] == BUNDLE and push["push_type"] == "alert" and push["priority"] == "10"
    assert push["payload"]["aps"]["alert"] == {"title": "Hi Ada", "body": "Your order shipped"}
    assert push["payload"]["aps"]["badge"] == 2
    assert push["token_issued_at"] is not None
    assert int(push["expiration"]) > time.time()


def test_sandbox_voip_and_silent_pushes_use_their_topic_and_type(ppp, apns, push_app):
    ppp.update_apns_voip_sandbox_channel(ApplicationId=push_app, APNSVoipSandboxChannelRequest=token_channel(apns))
    voip_token, silent_token = "ab" * 32, "cd" * 32
    resp = ppp.send_messages(
        ApplicationId=push_app,
        MessageRequest={
            "Addresses": {voip_token: {"ChannelType": "APNS_VOIP_SANDBOX"}, silent_token: {"ChannelType": "APNS"}},
            "MessageConfiguration": {"APNSMessage": {"SilentPush": True, "Data": {"k": "v"}}},
        },
    )["MessageResponse"]["Result"]
    assert {a: r["DeliveryStatus"] for a, r in resp.items()} == {voip_token: "SUCCESSFUL", silent_token: "SUCCESSFUL"}
    [voip] = apns.pushes(voip_token, wait_for=1)
    assert voip["topic"] == BUNDLE + ".voip" and voip["push_type"] == "voip"
    [silent] = apns.pushes(silent_token, wait_for=1)
    assert silent["push_type"] == "background" and silent["priority"] == "5"
    assert silent["payload"] == {"aps": {"content-available": 1}, "data": {"k": "v"}}


def test_a_dead_device_token_makes_the_endpoint_inactive(ppp, apns, push_app):
    token = "dead" + "0" * 60
    ppp.update_endpoint(ApplicationId=push_app, EndpointId="old-phone", EndpointRequest={"ChannelType": "APNS", "Address": token})
    resp = ppp.send_messages(
        ApplicationId=push_app,
        MessageRequest={"Endpoints": {"old-phone": {}}, "MessageConfiguration": {"APNSMessage": {"Body": "hi"}}},
    )["MessageResponse"]["EndpointResult"]["old-phone"]
    assert resp["DeliveryStatus"] == "PERMANENT_FAILURE" and resp["StatusCode"] == 410, resp
    ep = ppp.get_endpoint(ApplicationId=push_app, EndpointId="old-phone")["EndpointResponse"]
    assert ep["EndpointStatus"] == "INACTIVE"
    # An inactive endpoint is not pushed to again.
    again = ppp.send_messages(
        ApplicationId=push_app,
        MessageRequest={"Endpoints": {"old-phone": {}}, "MessageConfiguration": {"APNSMessage": {"Body": "hi"}}},
    )["MessageResponse"]["EndpointResult"]["old-phone"]
    assert again["DeliveryStatus"] != "SUCCESSFUL"
    # (waits a second for a second push that must not come)
    assert len(apns.pushes(token, wait_for=2, timeout_s=1.0)) == 1


def test_throttled_and_unavailable_pushes_are_retried_until_delivered(ppp, apns, push_app):
    throttled, unavailable = "c429" + "1" * 60, "c503" + "2" * 60
    resp = ppp.send_messages(
        ApplicationId=push_app,
        MessageRequest={
            "Addresses": {throttled: {"ChannelType": "APNS"}, unavailable: {"ChannelType": "APNS"}},
            "MessageConfiguration": {"APNSMessage": {"Body": "retry me"}},
        },
    )["MessageResponse"]["Result"]
    assert resp[throttled]["DeliveryStatus"] == "SUCCESSFUL", resp
    assert resp[unavailable]["DeliveryStatus"] == "SUCCESSFUL", resp
    assert [p["status"] for p in apns.pushes(throttled, wait_for=3)] == [429, 429, 200]
    assert [p["status"] for p in apns.pushes(unavailable, wait_for=2)] == [503, 200]


def test_a_bad_apns_message_refuses_the_request(ppp, push_app):
    err = expect_error(
        ppp.send_messages,
        "BadRequestException",
        400,
        ApplicationId=push_app,
        MessageRequest={
            "Addresses": {DEVICE: {"ChannelType": "APNS"}},
            "MessageConfiguration": {"APNSMessage": {"Body": "x", "Priority": "urgent"}},
        },
    )
    assert "Priority" in err["Error"]["Message"]


def test_a_disabled_or_missing_channel_fails_only_its_recipients(ppp, apns, push_app):
    ppp.update_apns_channel(ApplicationId=push_app, APNSChannelRequest={"Enabled": False})
    resp = ppp.send_messages(
        ApplicationId=push_app,
        MessageRequest={
            "Addresses": {DEVICE: {"ChannelType": "APNS"}, "ef" * 32: {"ChannelType": "APNS_SANDBOX"}},
            "MessageConfiguration": {"APNSMessage": {"Body": "x"}},
        },
    )["MessageResponse"]["Result"]
    assert resp[DEVICE]["DeliveryStatus"] == "PERMANENT_FAILURE" and "disabled" in resp[DEVICE]["StatusMessage"]
    assert "not configured" in resp["ef" * 32]["StatusMessage"]


def test_a_campaign_pushes_to_its_apns_endpoints_once(ppp, apns, push_app):
    tag = unique("cp")
    tokens = {}
    items = []
    for i in range(12):
        token = (tag.encode().hex() + f"{i:04x}").ljust(64, "0")[:60] + f"{i:04x}"
        tokens[f"{tag}-{i}"] = token
        items.append({"Id": f"{tag}-{i}", "ChannelType": "APNS", "Address": token, "Attributes": {"Team": [tag]},
                      "User": {"UserAttributes": {"name": [f"n{i}"]}}})
    items.append({"Id": f"{tag}-out", "ChannelType": "APNS", "Address": "ee" * 32, "Attributes": {"Team": [tag]},
                  "OptOut": "ALL"})
    ppp.update_endpoints_batch(ApplicationId=push_app, EndpointBatchRequest={"Item": items})
    seg = ppp.create_segment(
        ApplicationId=push_app,
        WriteSegmentRequest={"Name": unique("seg"), "Dimensions": {"Attributes": {"Team": {"Values": [tag]}}}},
    )["SegmentResponse"]["Id"]
    c = ppp.create_campaign(
        ApplicationId=push_app,
        WriteCampaignRequest={
            "Name": unique("camp"),
            "SegmentId": seg,
            "MessageConfiguration": {
                "DefaultMessage": {"Title": "Hello {{User.UserAttributes.name}}", "Body": "default body"},
                "APNSMessage": {"Body": "campaign body", "Action": "URL", "Url": "https://example.com/x"},
            },
            "Schedule": {"StartTime": "IMMEDIATE", "Frequency": "ONCE"},
        },
    )["CampaignResponse"]
    deadline = time.time() + 20
    while time.time() < deadline:
        state = ppp.get_campaign(ApplicationId=push_app, CampaignId=c["Id"])["CampaignResponse"]["State"]
        if state["CampaignStatus"] == "COMPLETED":
            break
        time.sleep(0.1)
    assert state["CampaignStatus"] == "COMPLETED", state
    for i, (eid, token) in enumerate(tokens.items()):
        [push] = apns.pushes(token, wait_for=1)
        assert push["payload"]["aps"]["alert"] == {"title": f"Hello n{i}", "body": "campaign body"}
        assert push["payload"]["data"]["pinpoint"]["deeplink"] == "https://example.com/x"
    assert apns.pushes("ee" * 32) == []
    activity = ppp.get_campaign_activities(ApplicationId=push_app, CampaignId=c["Id"])["ActivitiesResponse"]["Item"][0]
    assert activity["SuccessfulEndpointCount"] == 12, activity


@pytest.fixture
def gcm_app(ppp, fcm):
    app_id = ppp.create_app(CreateApplicationRequest={"Name": unique("gcm")})["ApplicationResponse"]["Id"]
    ppp.update_gcm_channel(ApplicationId=app_id, GCMChannelRequest={"ServiceJson": fcm.service_json.read_text()})
    yield app_id
    ppp.delete_app(ApplicationId=app_id)


def test_the_gcm_channel_takes_a_service_account_and_refuses_the_legacy_key(ppp, fcm):
    app_id = ppp.create_app(CreateApplicationRequest={"Name": unique("gcmch")})["ApplicationResponse"]["Id"]
    err = expect_error(
        ppp.update_gcm_channel, "BadRequestException", 400, ApplicationId=app_id,
        GCMChannelRequest={"ApiKey": "AIzaSyLegacyServerKey"},
    )
    assert "legacy" in err["Error"]["Message"]
    err = expect_error(
        ppp.update_gcm_channel, "BadRequestException", 400, ApplicationId=app_id,
        GCMChannelRequest={"ServiceJson": '{"type": "service_account"}'},
    )
    assert "ServiceJson" in err["Error"]["Message"]
    ch = ppp.update_gcm_channel(ApplicationId=app_id, GCMChannelRequest={"ServiceJson": fcm.service_json.read_text()})[
        "GCMChannelResponse"
    ]
    assert ch["Platform"] == "GCM" and ch["HasFcmServiceCredentials"] is True and ch["Version"] == 1
    assert "ServiceJson" not in ch
    off = ppp.update_gcm_channel(ApplicationId=app_id, GCMChannelRequest={"Enabled": False})["GCMChannelResponse"]
    assert (off["Enabled"], off["Version"]) == (False, 2)
    assert "GCM" in ppp.get_channels(ApplicationId=app_id)["ChannelsResponse"]["Channels"]
    ppp.delete_gcm_channel(ApplicationId=app_id)
    expect_error(ppp.get_gcm_channel, "NotFoundException", 404, ApplicationId=app_id)
    ppp.delete_app(ApplicationId=app_id)


def test_an_fcm_message_is_rendered_and_sent_with_android_options(ppp, fcm, gcm_app):
    ppp.update_endpoint(
        ApplicationId=gcm_app, EndpointId="android-1",
        EndpointRequest={"ChannelType": "GCM", "Address": "reg-token-1", "Attributes": {"city": ["Oslo"]}},
    )
    resp = ppp.send_messages(
        ApplicationId=gcm_app,
        MessageRequest={
            "Endpoints": {"android-1": {}},
            "MessageConfiguration": {
                "DefaultPushNotificationMessage": {"Title": "Weather in {{Attributes.city}}"},
                "GCMMessage": {"Body": "Sunny", "Priority": "high", "TimeToLive": 120, "CollapseKey": "wx",
                               "Data": {"k": "v"}},
            },
        },
    )["MessageResponse"]["EndpointResult"]["android-1"]
    assert resp["DeliveryStatus"] == "SUCCESSFUL", resp
    [sent] = fcm.sent("reg-token-1", wait_for=1)
    assert sent["project"] == "herald-test" and sent["status"] == 200
    m = sent["message"]
    assert m["notification"] == {"title": "Weather in Oslo", "body": "Sunny"}
    assert m["android"] == {"priority": "HIGH", "ttl": "120s", "collapse_key": "wx"}
    assert m["data"] == {"k": "v"}


def test_fcm_unregistered_deactivates_and_throttling_is_retried(ppp, fcm, gcm_app):
    ppp.update_endpoint(ApplicationId=gcm_app, EndpointId="gone", EndpointRequest={"ChannelType": "GCM", "Address": "dead-token"})
    resp = ppp.send_messages(
        ApplicationId=gcm_app,
        MessageRequest={
            "Endpoints": {"gone": {}},
            "Addresses": {"q429-token": {"ChannelType": "GCM"}, "u503-token": {"ChannelType": "GCM"}},
            "MessageConfiguration": {"GCMMessage": {"Body": "x"}},
        },
    )["MessageResponse"]
    assert resp["EndpointResult"]["gone"]["DeliveryStatus"] == "PERMANENT_FAILURE"
    ep = ppp.get_endpoint(ApplicationId=gcm_app, EndpointId="gone")["EndpointResponse"]
    assert ep["EndpointStatus"] == "INACTIVE"
    assert resp["Result"]["q429-token"]["DeliveryStatus"] == "SUCCESSFUL", resp
    assert resp["Result"]["u503-token"]["DeliveryStatus"] == "SUCCESSFUL", resp
    throttled = fcm.sent("q429-token", wait_for=2)
    assert [s["status"] for s in throttled] == [429, 200]


def test_a_push_template_fills_what_the_request_leaves_out(ppp, apns, fcm, push_app):
    ppp.update_gcm_channel(ApplicationId=push_app, GCMChannelRequest={"ServiceJson": fcm.service_json.read_text()})
    name = unique("pt")
    ppp.create_push_template(
        TemplateName=name,
        PushNotificationTemplateRequest={
            "Default": {"Title": "Hi {{User.UserAttributes.FirstName}}", "Body": "default body"},
            "APNS": {"Body": "apns body", "Sound": "chime"},
            "DefaultSubstitutions": '{"User.UserAttributes.FirstName": "friend"}',
        },
    )
    apns_token, fcm_token = "fa" * 32, unique("reg")
    try:
        resp = ppp.send_messages(
            ApplicationId=push_app,
            MessageRequest={
                "Addresses": {apns_token: {"ChannelType": "APNS"}, fcm_token: {"ChannelType": "GCM"}},
                "MessageConfiguration": {"GCMMessage": {"Body": "gcm body from the request"}},
                "TemplateConfiguration": {"PushTemplate": {"Name": name}},
            },
        )["MessageResponse"]["Result"]
        assert {a: r["DeliveryStatus"] for a, r in resp.items()} == {apns_token: "SUCCESSFUL", fcm_token: "SUCCESSFUL"}
        [push] = apns.pushes(apns_token, wait_for=1)
        assert push["payload"]["aps"]["alert"] == {"title": "Hi friend", "body": "apns body"}
        assert push["payload"]["aps"]["sound"] == "chime"
        [sent] = fcm.sent(fcm_token, wait_for=1)
        assert sent["message"]["notification"] == {"title": "Hi friend", "body": "gcm body from the request"}
    finally:
        ppp.delete_push_template(TemplateName=name)


def test_a_campaign_sends_its_gcm_message_to_android_endpoints(ppp, fcm, gcm_app):
    tag = unique("gc")
    tokens = {f"{tag}-{i}": f"{tag}-token-{i}" for i in range(4)}
    ppp.update_endpoints_batch(ApplicationId=gcm_app, EndpointBatchRequest={"Item": [
        {"Id": eid, "ChannelType": "GCM", "Address": tok, "Attributes": {"Team": [tag]},
         "User": {"UserAttributes": {"name": [f"n{i}"]}}}
        for i, (eid, tok) in enumerate(tokens.items())]})
    seg = ppp.create_segment(ApplicationId=gcm_app, WriteSegmentRequest={
        "Name": unique("seg"), "Dimensions": {"Attributes": {"Team": {"Values": [tag]}}}})["SegmentResponse"]["Id"]
    c = ppp.create_campaign(ApplicationId=gcm_app, WriteCampaignRequest={
        "Name": unique("camp"), "SegmentId": seg,
        "MessageConfiguration": {"GCMMessage": {"Title": "Hi {{User.UserAttributes.name}}", "Body": "campaign body",
                                                "Action": "OPEN_APP"}},
        "Schedule": {"StartTime": "IMMEDIATE", "Frequency": "ONCE"},
    })["CampaignResponse"]
    deadline = time.time() + 20
    while time.time() < deadline:
        state = ppp.get_campaign(ApplicationId=gcm_app, CampaignId=c["Id"])["CampaignResponse"]["State"]
        if state["CampaignStatus"] == "COMPLETED":
            break
        time.sleep(0.1)
    assert state["CampaignStatus"] == "COMPLETED", state
    for i, tok in enumerate(tokens.values()):
        [sent] = fcm.sent(tok, wait_for=1)
        assert sent["message"]["notification"] == {"title": f"Hi n{i}", "body": "campaign body"}

"""SMS over SMPP through the Pinpoint API: the SMS channel, sends to
endpoints and numbers (long and Unicode messages), delivery receipts as
events, two-way keywords (STOP, START, HELP, a custom one) answered from the
origination number, and a campaign. The SMSC is `mock-smsc` (peers/), which
decodes what herald submits with its own GSM and UCS-2 tables."""

from __future__ import annotations

import json
import random
import subprocess
import time
from pathlib import Path

import pytest
import requests

from harness import HeraldServer, expect_error, signed_request, unique
from test_push import peer_bin

NUMBER = "+12065550100"
OTHER_NUMBER = "+12065550199"


class MockSmsc:
    """`mock-smsc`: SMPP on one port, a control API (MO messages, stats) on another."""

    def __init__(self, base: Path):
        self.log = base / "submits.ndjson"
        self.proc = subprocess.Popen(
            [str(peer_bin("mock-smsc")), "--log", str(self.log), "--system-id", "herald", "--password", "secret",
             "--receipt-delay-ms", "0"],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        line = self.proc.stdout.readline().decode()
        assert line.startswith("listening smpp://"), line
        smpp, control = line.split()[1:3]
        self.smpp = smpp.removeprefix("smpp://")
        self.control = control

    def submits(self, to=None, wait_for=0, timeout_s=5.0) -> list:
        """Submits (to `to`, E.164), waiting until there are `wait_for`."""
        deadline = time.time() + timeout_s
        while True:
            lines = self.log.read_text().splitlines() if self.log.exists() else []
            out = [json.loads(l) for l in lines]
            if to is not None:
                out = [s for s in out if s["destination_addr"] == to.removeprefix("+")]
            if len(out) >= wait_for or time.time() > deadline:
                return out
            time.sleep(0.05)

    def mo(self, sender: str, to: str, text: str) -> None:
        r = requests.post(self.control + "/mo", json={"from": sender, "to": to, "text": text}, timeout=10)
        assert r.status_code == 200, r.text

    def stop(self):
        self.proc.kill()
        self.proc.wait()


@pytest.fixture(scope="session")
def smsc(tmp_path_factory):
    mock = MockSmsc(tmp_path_factory.mktemp("smsc"))
    yield mock
    mock.stop()


@pytest.fixture(scope="session")
def sms_server(smsc, tmp_path_factory):
    base = tmp_path_factory.mktemp("herald-sms")
    config = base / "herald.toml"
    config.write_text(
        f"""
[sms]
smsc = "{smsc.smpp}"
system_id = "herald"
password = "secret"
help_reply = "Herald test line. Reply STOP to unsubscribe."

[[sms.numbers]]
number = "{NUMBER}"
[sms.numbers.keywords]
DEALS = "Today: 20% off everything."

[[sms.numbers]]
number = "{OTHER_NUMBER}"
stop_reply = "Unsubscribed from the other line."
"""
    )
    server = HeraldServer(
        base / "data",
        base / "herald.log",
        extra_env={
            "HERALD_CONFIG": str(config),
            "HERALD_DELIVERY_RETRY_BASE_MS": "20",
            "HERALD_DELIVERY_RETRY_MAX_MS": "100",
            "HERALD_DELIVERY_ATTEMPTS_MAX": "4",
        },
    )
    server.start()
    yield server
    server.kill_quietly()


@pytest.fixture
def spp(request, sms_server):
    request.node._herald_servers = [sms_server]
    return sms_server.client()


@pytest.fixture
def sms_app(spp):
    app_id = spp.create_app(CreateApplicationRequest={"Name": unique("sms")})["ApplicationResponse"]["Id"]
    spp.update_sms_channel(ApplicationId=app_id, SMSChannelRequest={"Enabled": True})
    yield app_id
    spp.delete_app(ApplicationId=app_id)


def phone() -> str:
    """A fresh US number (not one of the endings the mock SMSC scripts failures for)."""
    n = random.randint(2_000_000, 8_999_999)
    if f"{n:07d}"[-3:] in ("000", "404", "429", "503"):
        n += 1
    return f"+1206{n:07d}"


def events_of(server: HeraldServer, app_id: str, endpoint_id: str) -> list:
    resp = signed_request(server.url, "GET", f"/herald/v1/apps/{app_id}/endpoints/{endpoint_id}/events")
    assert resp.status_code == 200, resp.text
    return [i["Event"] for i in resp.json()["Item"]]


def wait_events(server, app_id, endpoint_id, event_type, n=1, timeout_s=10.0) -> list:
    deadline = time.time() + timeout_s
    while True:
        got = [e for e in events_of(server, app_id, endpoint_id) if e["EventType"] == event_type]
        if len(got) >= n or time.time() > deadline:
            return got
        time.sleep(0.1)


def sms_endpoint(spp, app_id, endpoint_id, number, **extra):
    spp.update_endpoint(
        ApplicationId=app_id, EndpointId=endpoint_id,
        EndpointRequest={"ChannelType": "SMS", "Address": number, **extra},
    )


def send_sms(spp, app_id, endpoints=None, addresses=None, **message):
    req = {"MessageConfiguration": {"SMSMessage": {"MessageType": "TRANSACTIONAL", **message}}}
    if endpoints is not None:
        req["Endpoints"] = {e: {} for e in endpoints}
    if addresses is not None:
        req["Addresses"] = {a: {"ChannelType": "SMS"} for a in addresses}
    return spp.send_messages(ApplicationId=app_id, MessageRequest=req)["MessageResponse"]


def test_the_sms_channel_is_created_read_listed_updated_and_deleted(spp):
    app_id = spp.create_app(CreateApplicationRequest={"Name": unique("smsch")})["ApplicationResponse"]["Id"]
    try:
        expect_error(spp.get_sms_channel, "NotFoundException", 404, ApplicationId=app_id)
        ch = spp.update_sms_channel(
            ApplicationId=app_id, SMSChannelRequest={"SenderId": "Herald", "ShortCode": "22333"}
        )["SMSChannelResponse"]
        assert (ch["Platform"], ch["Enabled"], ch["Version"], ch["SenderId"], ch["ShortCode"]) == (
            "SMS", True, 1, "Herald", "22333")
        assert spp.get_sms_channel(ApplicationId=app_id)["SMSChannelResponse"]["SenderId"] == "Herald"
        assert "SMS" in spp.get_channels(ApplicationId=app_id)["ChannelsResponse"]["Channels"]
        err = expect_error(spp.update_sms_channel, "BadRequestException", 400, ApplicationId=app_id,
                           SMSChannelRequest={"SenderId": "A sender id far too long"})
        assert "SenderId" in err["Error"]["Message"]
        # The refused update changed nothing.
        assert spp.get_sms_channel(ApplicationId=app_id)["SMSChannelResponse"]["Version"] == 1
        off = spp.update_sms_channel(ApplicationId=app_id, SMSChannelRequest={"Enabled": False})["SMSChannelResponse"]
        assert (off["Enabled"], off["Version"]) == (False, 2)
        spp.delete_sms_channel(ApplicationId=app_id)
        expect_error(spp.get_sms_channel, "NotFoundException", 404, ApplicationId=app_id)
    finally:
        spp.delete_app(ApplicationId=app_id)


def test_an_sms_to_an_endpoint_is_rendered_sent_and_its_receipt_recorded(spp, smsc, sms_app, sms_server):
    number = phone()
    sms_endpoint(spp, sms_app, "ada", number, User={"UserAttributes": {"name": ["Ada"]}})
    resp = send_sms(spp, sms_app, endpoints=["ada"], Body="Hi {{User.UserAttributes.name}}, your code is ready")
    r = resp["EndpointResult"]["ada"]
    assert r["DeliveryStatus"] == "SUCCESSFUL", r
    assert "1 part" in r["StatusMessage"] and "GSM" in r["StatusMessage"], r
    [sub] = smsc.submits(number, wait_for=1)
    assert sub["text"] == "Hi Ada, your code is ready"
    assert sub["source_addr"] == NUMBER.removeprefix("+"), "the node's first number by default"
    assert sub["registered_delivery"] == 1
    [buffered] = wait_events(sms_server, sms_app, "ada", "_SMS.BUFFERED")
    assert buffered["Attributes"]["number_of_message_parts"] == "1"
    [success] = wait_events(sms_server, sms_app, "ada", "_SMS.SUCCESS")
    assert success["Attributes"]["record_status"] == "DELIVERED"
    assert success["Attributes"]["message_id"] == r["MessageId"]


def test_long_and_unicode_messages_are_split_and_read_back_whole(spp, smsc, sms_app):
    long_to, uni_to = phone(), phone()
    long_text = "Your order #1234 has shipped. " * 8  # 240 GSM characters
    uni_text = "Ваш заказ отправлен 📦 — спасибо! " * 3
    resp = send_sms(spp, sms_app, addresses=[long_to], Body=long_text)["Result"][long_to]
    assert resp["DeliveryStatus"] == "SUCCESSFUL" and "2 parts" in resp["StatusMessage"], resp
    parts = smsc.submits(long_to, wait_for=2)
    assert len(parts) == 2
    assert [p["udh"]["seq"] for p in parts] == [1, 2] and all(p["udh"]["total"] == 2 for p in parts)
    assert "".join(p["text"] for p in parts) == long_text
    resp = send_sms(spp, sms_app, addresses=[uni_to], Body=uni_text)["Result"][uni_to]
    assert resp["DeliveryStatus"] == "SUCCESSFUL" and "UCS2" in resp["StatusMessage"], resp
    parts = smsc.submits(uni_to, wait_for=2)
    assert len(parts) >= 2 and all(p["data_coding"] == 8 for p in parts)
    assert "".join(p["text"] for p in parts) == uni_text


def test_bad_numbers_and_messages_are_refused_clearly(spp, smsc, sms_app):
    resp = send_sms(spp, sms_app, addresses=["2065550123"], Body="x")["Result"]["2065550123"]
    assert resp["DeliveryStatus"] == "PERMANENT_FAILURE" and "E.164" in resp["StatusMessage"], resp
    err = expect_error(spp.send_messages, "BadRequestException", 400, ApplicationId=sms_app, MessageRequest={
        "Addresses": {phone(): {"ChannelType": "SMS"}},
        "MessageConfiguration": {"SMSMessage": {"Body": "x", "MessageType": "MARKETING"}}})
    assert "MessageType" in err["Error"]["Message"]
    err = expect_error(spp.send_messages, "BadRequestException", 400, ApplicationId=sms_app, MessageRequest={
        "Addresses": {phone(): {"ChannelType": "SMS"}},
        "MessageConfiguration": {"SMSMessage": {"Body": "x", "OriginationNumber": "+12065550177"}}})
    assert "origination numbers" in err["Error"]["Message"]
    # The SMSC refusing a number is a permanent failure; throttling is retried.
    bad, busy = "+12065551404", "+12065551429"
    res = send_sms(spp, sms_app, addresses=[bad, busy], Body="x")["Result"]
    assert res[bad]["DeliveryStatus"] == "PERMANENT_FAILURE", res
    assert res[busy]["DeliveryStatus"] == "SUCCESSFUL", res
    assert [s["command_status"] for s in smsc.submits(busy, wait_for=3)] == [0x58, 0x58, 0]


def test_an_undelivered_receipt_is_a_failure_event(spp, smsc, sms_app, sms_server):
    number = "+12065552000"
    sms_endpoint(spp, sms_app, "gone", number)
    r = send_sms(spp, sms_app, endpoints=["gone"], Body="hello?")["EndpointResult"]["gone"]
    assert r["DeliveryStatus"] == "SUCCESSFUL", r
    [failure] = wait_events(sms_server, sms_app, "gone", "_SMS.FAILURE")
    assert failure["Attributes"]["smsc_status"] == "UNDELIV"


def test_stop_opts_the_number_out_and_start_back_in(spp, smsc, sms_app, sms_server):
    number = phone()
    sms_endpoint(spp, sms_app, "bob", number)
    smsc.mo(number, NUMBER, "stop")
    # The opt-out reply comes from the number written to.
    [reply] = smsc.submits(number, wait_for=1)
    assert reply["source_addr"] == NUMBER.removeprefix("+")
    assert reply["text"].startswith("You are unsubscribed")
    deadline = time.time() + 10
    while spp.get_endpoint(ApplicationId=sms_app, EndpointId="bob")["EndpointResponse"].get("OptOut") != "ALL":
        assert time.time() < deadline, "OptOut ALL after STOP"
        time.sleep(0.1)
    assert wait_events(sms_server, sms_app, "bob", "_SMS.OPTOUT")
    [received] = wait_events(sms_server, sms_app, "bob", "_SMS.RECEIVED")
    assert received["Attributes"]["keyword"] == "STOP" and received["Attributes"]["message_body"] == "stop"
    # No more sends to that number.
    r = send_sms(spp, sms_app, endpoints=["bob"], Body="promo")["EndpointResult"]["bob"]
    assert r["DeliveryStatus"] != "SUCCESSFUL", r
    # Nor to the bare number: it is on the app's SMS opt-out list.
    r = send_sms(spp, sms_app, addresses=[number], Body="promo")["Result"][number]
    assert r["DeliveryStatus"] == "OPT_OUT", r
    assert len(smsc.submits(number, wait_for=2, timeout_s=1.0)) == 1, "only the opt-out reply"
    # START opts back in, and sends reach the number again.
    smsc.mo(number, NUMBER, "START")
    assert smsc.submits(number, wait_for=2)[1]["text"].startswith("You are subscribed again")
    deadline = time.time() + 10
    while spp.get_endpoint(ApplicationId=sms_app, EndpointId="bob")["EndpointResponse"].get("OptOut") != "NONE":
        assert time.time() < deadline, "OptOut NONE after START"
        time.sleep(0.1)
    r = send_sms(spp, sms_app, endpoints=["bob"], Body="welcome back")["EndpointResult"]["bob"]
    assert r["DeliveryStatus"] == "SUCCESSFUL", r
    assert smsc.submits(number, wait_for=3)[2]["text"] == "welcome back"
    r = send_sms(spp, sms_app, addresses=[number], Body="and hello")["Result"][number]
    assert r["DeliveryStatus"] == "SUCCESSFUL", r


def test_help_and_custom_keywords_are_answered_per_number(spp, smsc, sms_app):
    number = phone()
    smsc.mo(number, NUMBER, "HELP")
    assert smsc.submits(number, wait_for=1)[0]["text"] == "Herald test line. Reply STOP to unsubscribe."
    smsc.mo(number, NUMBER, "deals please")
    assert smsc.submits(number, wait_for=2)[1]["text"] == "Today: 20% off everything."
    # The other number has no DEALS keyword, and its own STOP reply.
    smsc.mo(number, OTHER_NUMBER, "DEALS")
    smsc.mo(number, OTHER_NUMBER, "stop")
    got = smsc.submits(number, wait_for=3)
    assert [s["text"] for s in got[2:]] == ["Unsubscribed from the other line."]
    assert got[2]["source_addr"] == OTHER_NUMBER.removeprefix("+")
    # Anything else is not answered.
    smsc.mo(number, NUMBER, "thanks!")
    assert len(smsc.submits(number, wait_for=4, timeout_s=1.0)) == 3


def test_a_campaign_texts_its_sms_endpoints_once(spp, smsc, sms_app):
    tag = unique("sc")
    numbers = {f"{tag}-{i}": f"+1206555{3100 + i:04d}" for i in range(6)}
    items = [{"Id": eid, "ChannelType": "SMS", "Address": n, "Attributes": {"Team": [tag]},
              "User": {"UserAttributes": {"name": [f"n{i}"]}}} for i, (eid, n) in enumerate(numbers.items())]
    items.append({"Id": f"{tag}-out", "ChannelType": "SMS", "Address": "+12065553999", "Attributes": {"Team": [tag]},
                  "OptOut": "ALL"})
    spp.update_endpoints_batch(ApplicationId=sms_app, EndpointBatchRequest={"Item": items})
    seg = spp.create_segment(
        ApplicationId=sms_app,
        WriteSegmentRequest={"Name": unique("seg"), "Dimensions": {"Attributes": {"Team": {"Values": [tag]}}}},
    )["SegmentResponse"]["Id"]
    c = spp.create_campaign(
        ApplicationId=sms_app,
        WriteCampaignRequest={
            "Name": unique("camp"),
            "SegmentId": seg,
            "MessageConfiguration": {"SMSMessage": {"Body": "Hello {{User.UserAttributes.name}}",
                                                    "MessageType": "PROMOTIONAL"}},
            "Schedule": {"StartTime": "IMMEDIATE", "Frequency": "ONCE"},
        },
    )["CampaignResponse"]
    deadline = time.time() + 20
    while time.time() < deadline:
        state = spp.get_campaign(ApplicationId=sms_app, CampaignId=c["Id"])["CampaignResponse"]["State"]
        if state["CampaignStatus"] == "COMPLETED":
            break
        time.sleep(0.1)
    assert state["CampaignStatus"] == "COMPLETED", state
    for i, n in enumerate(numbers.values()):
        [sub] = smsc.submits(n, wait_for=1)
        assert sub["text"] == f"Hello n{i}"
    assert smsc.submits("+12065553999", timeout_s=0.5) == []
    activity = spp.get_campaign_activities(ApplicationId=sms_app, CampaignId=c["Id"])["ActivitiesResponse"]["Item"][0]
    assert activity["SuccessfulEndpointCount"] == 6, activity


def test_an_sms_template_fills_the_body(spp, smsc, sms_app):
    name = unique("smstpl")
    spp.create_sms_template(TemplateName=name, SMSTemplateRequest={
        "Body": "Hi {{Name}}, welcome to {{Brand}}", "DefaultSubstitutions": json.dumps({"Brand": "Herald"})})
    try:
        to = phone()
        resp = spp.send_messages(ApplicationId=sms_app, MessageRequest={
            "Addresses": {to: {"ChannelType": "SMS", "Substitutions": {"Name": ["Lin"]}}},
            "MessageConfiguration": {"SMSMessage": {"MessageType": "TRANSACTIONAL"}},
            "TemplateConfiguration": {"SMSTemplate": {"Name": name}},
        })["MessageResponse"]["Result"][to]
        assert resp["DeliveryStatus"] == "SUCCESSFUL", resp
        assert smsc.submits(to, wait_for=1)[0]["text"] == "Hi Lin, welcome to Herald"
    finally:
        spp.delete_sms_template(TemplateName=name)


def otp_code(smsc, number: str, n: int) -> str:
    """The code of the `n`th SMS (1-based) sent to `number`."""
    sub = smsc.submits(number, wait_for=n)[n - 1]
    assert "verification code" in sub["text"], sub
    return sub["text"].split()[0]


def send_otp(spp, app_id, number, ref="login", **extra):
    return spp.send_otp_message(ApplicationId=app_id, SendOTPMessageRequestParameters={
        "BrandName": "Acme", "Channel": "SMS", "DestinationIdentity": number,
        "OriginationIdentity": NUMBER, "ReferenceId": ref, **extra,
    })["MessageResponse"]


def verify_otp(spp, app_id, number, otp, ref="login") -> bool:
    return spp.verify_otp_message(ApplicationId=app_id, VerifyOTPMessageRequestParameters={
        "DestinationIdentity": number, "Otp": otp, "ReferenceId": ref,
    })["VerificationResponse"]["Valid"]


def test_a_one_time_password_is_sent_by_sms_and_valid_once(spp, smsc, sms_app):
    number = phone()
    resp = send_otp(spp, sms_app, number, CodeLength=7, ValidityPeriod=10)
    assert resp["Result"][number]["DeliveryStatus"] == "SUCCESSFUL", resp
    code = otp_code(smsc, number, 1)
    assert len(code) == 7 and code.isdigit()
    assert "expires in 10 minutes" in smsc.submits(number)[0]["text"]
    wrong = str((int(code) + 1) % 10**7).zfill(7)
    assert verify_otp(spp, sms_app, number, wrong) is False
    assert verify_otp(spp, sms_app, number, code, ref="other") is False, "scoped to its reference id"
    assert verify_otp(spp, sms_app, number, code) is True
    assert verify_otp(spp, sms_app, number, code) is False, "used once"


def test_a_one_time_password_allows_only_its_attempts(spp, smsc, sms_app):
    number = phone()
    send_otp(spp, sms_app, number, AllowedAttempts=2)
    code = otp_code(smsc, number, 1)
    wrong = "000000" if code != "000000" else "111111"
    assert verify_otp(spp, sms_app, number, wrong) is False
    assert verify_otp(spp, sms_app, number, wrong) is False
    assert verify_otp(spp, sms_app, number, code) is False, "no attempts left"
    # A new code replaces the spent one.
    send_otp(spp, sms_app, number)
    assert verify_otp(spp, sms_app, number, otp_code(smsc, number, 2)) is True


def test_bad_otp_requests_are_refused(spp, sms_app):
    for extra, field in [({"Channel": "EMAIL"}, "Channel"), ({"CodeLength": 3}, "CodeLength"),
                         ({"ValidityPeriod": 90}, "ValidityPeriod"), ({"DestinationIdentity": "555"}, "DestinationIdentity"),
                         ({"OriginationIdentity": "+12065550177"}, "OriginationIdentity")]:
        req = {"BrandName": "Acme", "Channel": "SMS", "DestinationIdentity": phone(),
               "OriginationIdentity": NUMBER, "ReferenceId": "r", **extra}
        err = expect_error(spp.send_otp_message, "BadRequestException", 400, ApplicationId=sms_app,
                           SendOTPMessageRequestParameters=req)
        assert field in err["Error"]["Message"], (field, err)


def test_sms_events_reach_the_apps_event_stream(spp, smsc, sms_app, tmp_path):
    directory = tmp_path / "sms-stream"
    spp.put_event_stream(ApplicationId=sms_app, WriteEventStream={
        "DestinationStreamArn": f"file://{directory}", "RoleArn": "arn:aws:iam::000000000000:role/x"})
    number = phone()
    sms_endpoint(spp, sms_app, "streamed", number)
    r = send_sms(spp, sms_app, endpoints=["streamed"], Body="hello stream")["EndpointResult"]["streamed"]
    assert r["DeliveryStatus"] == "SUCCESSFUL", r
    smsc.mo(number, NUMBER, "HELP")
    deadline = time.time() + 15
    types = set()
    while time.time() < deadline and not {"_SMS.BUFFERED", "_SMS.SUCCESS", "_SMS.RECEIVED"} <= types:
        types = set()
        for f in directory.glob("herald-events-*.ndjson"):
            types |= {json.loads(l)["event_type"] for l in f.read_text().splitlines()
                      if json.loads(l)["client"]["client_id"] == "streamed"}
        time.sleep(0.1)
    assert {"_SMS.BUFFERED", "_SMS.SUCCESS", "_SMS.RECEIVED"} <= types, types

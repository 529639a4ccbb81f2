"""SendMessages and SendUsersMessages end to end: herald sends over SMTP to a
real SMTP server on loopback that the test starts, and every outcome is
checked where a user would see it (the response, the mailbox, the endpoint,
its events, tracking URLs)."""

from __future__ import annotations

import time

import pytest
import requests

from harness import HeraldServer, expect_error, signed_request, status_of, unique

from conftest import IDENTITY


def simple(subject="Hello", text="plain body", html=None, **extra) -> dict:
    se = {"Subject": {"Data": subject, "Charset": "UTF-8"}, "TextPart": {"Data": text}}
    if html is not None:
        se["HtmlPart"] = {"Data": html}
    se.update(extra)
    return {"EmailMessage": {"SimpleEmail": se}}


def email_endpoint(pp, app_id, endpoint_id, address, **extra):
    req = {"ChannelType": "EMAIL", "Address": address, **extra}
    pp.update_endpoint(ApplicationId=app_id, EndpointId=endpoint_id, EndpointRequest=req)


def events_of(server: HeraldServer, app_id: str, endpoint_id: str) -> list:
    resp = signed_request(server.url, "GET", f"/herald/v1/apps/{app_id}/endpoints/{endpoint_id}/events")
    assert resp.status_code == 200, resp.text
    return [i["Event"]["EventType"] for i in resp.json()["Item"]]


def test_addresses_get_subject_text_html_and_headers(mpp, mail_app, smtp):
    to = f"{unique('ada')}@example.org"
    resp = mpp.send_messages(
        ApplicationId=mail_app,
        MessageRequest={
            "Addresses": {to: {"ChannelType": "EMAIL"}},
            "MessageConfiguration": simple(
                subject="Welcome {{Name}}",
                text="Hi {{Name}}",
                html="<p>Hi {{Name}}</p>",
                Headers=[{"Name": "X-Campaign-Tag", "Value": "spring-{{Name}}"}],
            ),
            "Context": {"k": "v"},
        },
    )
    assert status_of(resp) == 200
    mr = resp["MessageResponse"]
    assert mr["ApplicationId"] == mail_app
    result = mr["Result"][to]
    assert result["DeliveryStatus"] == "SUCCESSFUL", result
    assert result["StatusCode"] == 200
    assert len(result["MessageId"]) == 32
    got = smtp.messages_to(to)
    assert len(got) == 1
    m = got[0].message
    # Substitutions with no value render empty, as Pinpoint does.
    assert m["Subject"] == "Welcome "
    assert m["From"] == "news@example.com"
    assert m["Message-ID"].startswith(f"<{result['MessageId']}@")
    assert m["X-Campaign-Tag"] == "spring-"
    assert got[0].part("text/plain").strip() == "Hi"
    assert got[0].part("text/html").startswith("<p>Hi </p>")


def test_substitutions_and_endpoint_variables_personalise(mpp, mail_app, smtp):
    to = f"{unique('grace')}@example.org"
    email_endpoint(
        mpp, mail_app, "ep-grace", to,
        User={"UserId": "u-grace", "UserAttributes": {"FirstName": ["Grace"]}},
        Attributes={"Interests": ["ships", "compilers"]},
    )
    resp = mpp.send_messages(
        ApplicationId=mail_app,
        MessageRequest={
            "Endpoints": {"ep-grace": {"Substitutions": {"Promo": ["SPRING"]}}},
            "MessageConfiguration": simple(
                subject="{{User.UserAttributes.FirstName}}, your code",
                text="Code {{Promo}} for {{Attributes.Interests}} at {{Address}}",
            ),
        },
    )
    r = resp["MessageResponse"]["EndpointResult"]["ep-grace"]
    assert r["DeliveryStatus"] == "SUCCESSFUL", r
    assert r["Address"] == to
    m = smtp.messages_to(to)[0]
    assert m.message["Subject"] == "Grace, your code"
    assert m.part("text/plain").strip() == f"Code SPRING for ships, compilers at {to}"


def test_opted_out_inactive_missing_and_duplicate_recipients(mpp, mail_app, smtp):
    addr = f"{unique('dup')}@example.org"
    out = f"{unique('out')}@example.org"
    email_endpoint(mpp, mail_app, "ep-ok", addr)
    email_endpoint(mpp, mail_app, "ep-out", out, OptOut="ALL")
    email_endpoint(mpp, mail_app, "ep-inactive", f"{unique('in')}@example.org", EndpointStatus="INACTIVE")
    resp = mpp.send_messages(
        ApplicationId=mail_app,
        MessageRequest={
            "Addresses": {addr: {"ChannelType": "EMAIL"}},
            "Endpoints": {"ep-ok": {}, "ep-out": {}, "ep-inactive": {}, "ep-missing": {}},
            "MessageConfiguration": simple(),
        },
    )["MessageResponse"]
    assert resp["Result"][addr]["DeliveryStatus"] == "SUCCESSFUL"
    er = resp["EndpointResult"]
    assert er["ep-ok"]["DeliveryStatus"] == "DUPLICATE"
    assert er["ep-out"]["DeliveryStatus"] == "OPT_OUT"
    assert er["ep-inactive"]["DeliveryStatus"] == "PERMANENT_FAILURE"
    assert er["ep-missing"]["DeliveryStatus"] == "PERMANENT_FAILURE"
    assert er["ep-missing"]["StatusCode"] == 404
    assert len(smtp.messages_to(addr)) == 1
    assert smtp.messages_to(out) == []


def test_send_users_messages_reaches_every_endpoint_of_each_user(mpp, mail_app, smtp):
    a, b = f"{unique('a')}@example.org", f"{unique('b')}@example.org"
    user = {"UserId": "u-multi"}
    email_endpoint(mpp, mail_app, "ep-a", a, User=user)
    email_endpoint(mpp, mail_app, "ep-b", b, User=user)
    mpp.update_endpoint(
        ApplicationId=mail_app, EndpointId="ep-sms",
        EndpointRequest={"ChannelType": "SMS", "Address": "+14155550100", "User": user},
    )
    resp = mpp.send_users_messages(
        ApplicationId=mail_app,
        SendUsersMessageRequest={
            "Users": {"u-multi": {}, "u-nobody": {}},
            "MessageConfiguration": simple(subject="For you"),
        },
    )["SendUsersMessageResponse"]
    res = resp["Result"]
    assert res["u-nobody"] == {}
    assert res["u-multi"]["ep-a"]["DeliveryStatus"] == "SUCCESSFUL"
    assert res["u-multi"]["ep-b"]["DeliveryStatus"] == "SUCCESSFUL"
    assert res["u-multi"]["ep-sms"]["DeliveryStatus"] == "PERMANENT_FAILURE"
    assert len(smtp.messages_to(a)) == 1 and len(smtp.messages_to(b)) == 1


def test_a_hundred_recipients_each_get_exactly_one_message(mpp, mail_app, smtp):
    tag = unique("bulk")
    addresses = [f"{tag}-{i}@example.org" for i in range(100)]
    resp = mpp.send_messages(
        ApplicationId=mail_app,
        MessageRequest={
            "Addresses": {a: {"ChannelType": "EMAIL", "Substitutions": {"N": [str(i)]}} for i, a in enumerate(addresses)},
            "MessageConfiguration": simple(subject="n={{N}}"),
        },
    )["MessageResponse"]["Result"]
    assert {r["DeliveryStatus"] for r in resp.values()} == {"SUCCESSFUL"}
    assert len({r["MessageId"] for r in resp.values()}) == 100
    for i, a in enumerate(addresses):
        got = smtp.messages_to(a)
        assert len(got) == 1, a
        assert got[0].message["Subject"] == f"n={i}"
    # The peer offers PIPELINING, so herald ran its own pipelined
    # transactions (MAIL, RCPT and DATA in one segment).
    assert smtp.handler.pipelined >= 100


def test_a_retried_request_with_the_same_trace_id_is_not_sent_again(mpp, mail_app, smtp):
    to = f"{unique('once')}@example.org"
    req = {
        "Addresses": {to: {"ChannelType": "EMAIL"}},
        "MessageConfiguration": simple(),
        "TraceId": unique("trace"),
    }
    first = mpp.send_messages(ApplicationId=mail_app, MessageRequest=req)["MessageResponse"]["Result"][to]
    second = mpp.send_messages(ApplicationId=mail_app, MessageRequest=req)["MessageResponse"]["Result"][to]
    assert first["DeliveryStatus"] == second["DeliveryStatus"] == "SUCCESSFUL"
    assert first["MessageId"] == second["MessageId"]
    assert len(smtp.messages_to(to)) == 1
    # Another trace id is another message.
    req["TraceId"] = unique("trace")
    third = mpp.send_messages(ApplicationId=mail_app, MessageRequest=req)["MessageResponse"]["Result"][to]
    assert third["MessageId"] != first["MessageId"]
    assert len(smtp.messages_to(to)) == 2


def test_temporary_refusals_are_retried_and_delivered_once(mpp, mail_app, smtp, mail_server):
    to = f"{unique('busy')}@example.org"
    smtp.handler.transient[to] = 2
    email_endpoint(mpp, mail_app, "ep-busy", to)
    r = mpp.send_messages(
        ApplicationId=mail_app,
        MessageRequest={"Endpoints": {"ep-busy": {}}, "MessageConfiguration": simple()},
    )["MessageResponse"]["EndpointResult"]["ep-busy"]
    assert r["DeliveryStatus"] == "SUCCESSFUL", r
    assert smtp.handler.attempts[to] == 3
    assert len(smtp.messages_to(to)) == 1
    assert events_of(mail_server, mail_app, "ep-busy").count("_email.delivered") == 1


def test_a_hard_bounce_is_a_permanent_failure_and_marks_the_endpoint(mpp, mail_app, smtp, mail_server):
    to = f"{unique('gone')}@example.org"
    smtp.handler.refuse[to] = "550 5.1.1 no such user"
    email_endpoint(mpp, mail_app, "ep-gone", to)
    r = mpp.send_messages(
        ApplicationId=mail_app,
        MessageRequest={"Endpoints": {"ep-gone": {}}, "MessageConfiguration": simple()},
    )["MessageResponse"]["EndpointResult"]["ep-gone"]
    assert r["DeliveryStatus"] == "PERMANENT_FAILURE", r
    assert r["StatusCode"] == 550
    assert smtp.handler.attempts[to] == 1, "a permanent refusal is not retried"
    ep = mpp.get_endpoint(ApplicationId=mail_app, EndpointId="ep-gone")["EndpointResponse"]
    assert ep["EndpointStatus"] == "INACTIVE"
    assert "_email.hardbounce" in events_of(mail_server, mail_app, "ep-gone")
    # Nothing more goes to it.
    again = mpp.send_messages(
        ApplicationId=mail_app,
        MessageRequest={"Endpoints": {"ep-gone": {}}, "MessageConfiguration": simple()},
    )["MessageResponse"]["EndpointResult"]["ep-gone"]
    assert again["DeliveryStatus"] == "PERMANENT_FAILURE"
    assert smtp.handler.attempts[to] == 1


def test_a_server_that_is_down_is_a_temporary_failure_after_bounded_retries(start_server):
    server = start_server(env={"HERALD_SMTP_URL": "smtp://127.0.0.1:9/x", "HERALD_DELIVERY_RETRY_BASE_MS": "20",
                               "HERALD_DELIVERY_RETRY_MAX_MS": "50"})
    pp = server.client()
    app_id = pp.create_app(CreateApplicationRequest={"Name": unique("down")})["ApplicationResponse"]["Id"]
    pp.update_email_channel(ApplicationId=app_id, EmailChannelRequest={"FromAddress": "a@example.com", "Identity": IDENTITY})
    started = time.monotonic()
    r = pp.send_messages(
        ApplicationId=app_id,
        MessageRequest={"Addresses": {"x@example.org": {"ChannelType": "EMAIL"}}, "MessageConfiguration": simple()},
    )["MessageResponse"]["Result"]["x@example.org"]
    assert r["DeliveryStatus"] == "TEMPORARY_FAILURE", r
    assert "gave up after 4 attempts" in r["StatusMessage"]
    assert time.monotonic() - started < 60


def test_open_click_and_one_click_unsubscribe_are_tracked(mpp, mail_app, smtp, mail_server):
    to = f"{unique('track')}@example.org"
    email_endpoint(mpp, mail_app, "ep-track", to)
    mpp.send_messages(
        ApplicationId=mail_app,
        MessageRequest={
            "Endpoints": {"ep-track": {}},
            "MessageConfiguration": simple(html='<html><body><a href="https://example.com/offer?a=1&amp;b=2">offer</a></body></html>'),
        },
    )
    m = smtp.messages_to(to)[0]
    html = m.part("text/html")
    server = mail_server
    assert "https://example.com/offer" not in html, "links go through click redirects"
    click = html.split('href="')[1].split('"')[0].replace("&amp;", "&")
    pixel = html.split('<img src="')[1].split('"')[0]
    assert click.startswith(server.url + "/herald/v1/t/c/")
    assert pixel.startswith(server.url + "/herald/v1/t/o/")
    # Unsigned: the recipient's mail client fetches these.
    r = requests.get(pixel, timeout=10)
    assert r.status_code == 200 and r.headers["content-type"] == "image/gif"
    r = requests.get(click, allow_redirects=False, timeout=10)
    assert r.status_code == 302
    assert r.headers["location"] == "https://example.com/offer?a=1&b=2"
    # A forged token changes nothing.
    assert requests.get(click[:-3] + "AAA", allow_redirects=False, timeout=10).status_code == 404
    unsub = m.message["List-Unsubscribe"].strip("<>")
    assert m.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert requests.get(unsub, timeout=10).status_code == 200  # a confirmation page only
    # An unsubscribe token used as an open pixel or a click records nothing.
    token = unsub.rsplit("/", 1)[1]
    assert requests.get(f"{server.url}/herald/v1/t/o/{token}", timeout=10).status_code == 200
    assert requests.get(f"{server.url}/herald/v1/t/c/{token}", allow_redirects=False, timeout=10).status_code == 404
    ep = mpp.get_endpoint(ApplicationId=mail_app, EndpointId="ep-track")["EndpointResponse"]
    assert ep.get("OptOut") != "ALL"
    r = requests.post(unsub, data="List-Unsubscribe=One-Click", timeout=10,
                      headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200
    ep = mpp.get_endpoint(ApplicationId=mail_app, EndpointId="ep-track")["EndpointResponse"]
    assert ep["OptOut"] == "ALL"
    events = events_of(server, mail_app, "ep-track")
    for e in ["_email.send", "_email.delivered", "_email.open", "_email.click", "_email.unsubscribe"]:
        assert e in events, (e, events)
    # Opted out now: the next send is refused.
    r = mpp.send_messages(
        ApplicationId=mail_app,
        MessageRequest={"Endpoints": {"ep-track": {}}, "MessageConfiguration": simple()},
    )["MessageResponse"]["EndpointResult"]["ep-track"]
    assert r["DeliveryStatus"] == "OPT_OUT"


def test_requests_without_content_or_recipients_are_bad_requests(mpp, mail_app):
    expect_error(mpp.send_messages, "BadRequestException", 400, ApplicationId=mail_app,
                 MessageRequest={"MessageConfiguration": simple()})
    expect_error(mpp.send_messages, "BadRequestException", 400, ApplicationId=mail_app,
                 MessageRequest={"Addresses": {"a@example.org": {}}, "MessageConfiguration": simple()})
    expect_error(mpp.send_messages, "BadRequestException", 400, ApplicationId=mail_app,
                 MessageRequest={"Addresses": {f"a{i}@example.org": {"ChannelType": "EMAIL"} for i in range(101)},
                                 "MessageConfiguration": simple()})
    expect_error(mpp.send_messages, "NotFoundException", 404, ApplicationId="0" * 32,
                 MessageRequest={"Addresses": {"a@example.org": {"ChannelType": "EMAIL"}}, "MessageConfiguration": simple()})
    expect_error(mpp.send_users_messages, "BadRequestException", 400, ApplicationId=mail_app,
                 SendUsersMessageRequest={"Users": {}, "MessageConfiguration": simple()})
    # A header that would change where the message goes is refused.
    err = expect_error(mpp.send_messages, "BadRequestException", 400, ApplicationId=mail_app,
                       MessageRequest={"Addresses": {"a@example.org": {"ChannelType": "EMAIL"}},
                                       "MessageConfiguration": simple(Headers=[{"Name": "Bcc", "Value": "x@evil.example"}])})
    assert "Bcc" in err["Message"]


def test_without_an_email_channel_email_recipients_fail(pp, app_id):
    r = pp.send_messages(
        ApplicationId=app_id,
        MessageRequest={"Addresses": {"a@example.org": {"ChannelType": "EMAIL"}}, "MessageConfiguration": simple()},
    )["MessageResponse"]["Result"]["a@example.org"]
    assert r["DeliveryStatus"] == "PERMANENT_FAILURE"
    assert "not configured" in r["StatusMessage"]


def test_without_smtp_mail_lands_in_the_dev_outbox(pp, app_id, herald_server):
    pp.update_email_channel(ApplicationId=app_id, EmailChannelRequest={"FromAddress": "dev@example.com", "Identity": IDENTITY})
    to = f"{unique('dev')}@example.org"
    r = pp.send_messages(
        ApplicationId=app_id,
        MessageRequest={"Addresses": {to: {"ChannelType": "EMAIL"}}, "MessageConfiguration": simple(subject="Outbox!")},
    )["MessageResponse"]["Result"][to]
    assert r["DeliveryStatus"] == "SUCCESSFUL"
    resp = signed_request(herald_server.url, "GET", "/herald/v1/outbox?limit=50")
    assert resp.status_code == 200
    items = [i["Message"] for i in resp.json()["Item"]]
    mine = [m for m in items if m["To"] == to]
    assert len(mine) == 1
    assert mine[0]["Subject"] == "Outbox!"
    assert mine[0]["MessageId"] == r["MessageId"]
    assert mine[0]["ApplicationId"] == app_id


class _Receiver:
    """A webhook receiver on loopback that records each POST; answers the
    status queued for it (default 200)."""

    def __init__(self):
        import http.server
        import threading

        self.posts = []
        self.statuses = []
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                outer.posts.append((self.path, self.headers, body))
                status = outer.statuses.pop(0) if outer.statuses else 200
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_custom_channel_posts_signed_json_to_the_webhook(mpp, mail_app, mail_server):
    import hashlib
    import hmac
    import json

    rx = _Receiver()
    try:
        path = f"/herald/v1/apps/{mail_app}/channels/custom"
        resp = signed_request(mail_server.url, "PUT", path, {"DeliveryUri": f"http://127.0.0.1:{rx.port}/hook"})
        assert resp.status_code == 200, resp.text
        ch = resp.json()
        secret = ch["SigningSecret"]
        assert ch["Version"] == 1 and ch["Enabled"] is True
        assert signed_request(mail_server.url, "GET", path).json()["SigningSecret"] == secret
        bad = signed_request(mail_server.url, "PUT", path, {"DeliveryUri": "ftp://x"})
        assert bad.status_code == 400

        mpp.update_endpoint(ApplicationId=mail_app, EndpointId="ep-hook",
                            EndpointRequest={"ChannelType": "CUSTOM", "Address": "slack:U123",
                                             "User": {"UserId": "u-hook"}})
        rx.statuses = [503]  # a temporary failure first: retried
        r = mpp.send_messages(
            ApplicationId=mail_app,
            MessageRequest={
                "Endpoints": {"ep-hook": {"Substitutions": {"Item": ["book"]}}},
                "MessageConfiguration": {"DefaultMessage": {"Body": "{{User.UserId}} bought a {{Item}}"}},
                "Context": {"campaign": "c1"},
            },
        )["MessageResponse"]["EndpointResult"]["ep-hook"]
        assert r["DeliveryStatus"] == "SUCCESSFUL", r
        assert len(rx.posts) == 2, "one refused with 503, then delivered"
        pth, headers, body = rx.posts[-1]
        assert pth == "/hook"
        ts = headers["X-Herald-Timestamp"]
        want = "v1=" + hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
        assert headers["X-Herald-Signature"] == want
        doc = json.loads(body)
        assert doc["ApplicationId"] == mail_app
        assert doc["MessageId"] == r["MessageId"]
        assert doc["EndpointId"] == "ep-hook"
        assert doc["Address"] == "slack:U123"
        assert doc["Message"]["Body"] == "u-hook bought a book"
        assert doc["Context"] == {"campaign": "c1"}
        events = events_of(mail_server, mail_app, "ep-hook")
        assert "_custom.send" in events and "_custom.delivered" in events

        # A receiver that refuses for good: PERMANENT_FAILURE, no retry.
        rx.statuses = [410]
        n = len(rx.posts)
        r = mpp.send_messages(
            ApplicationId=mail_app,
            MessageRequest={"Endpoints": {"ep-hook": {}},
                            "MessageConfiguration": {"DefaultMessage": {"Body": "x"}}},
        )["MessageResponse"]["EndpointResult"]["ep-hook"]
        assert r["DeliveryStatus"] == "PERMANENT_FAILURE" and r["StatusCode"] == 410, r
        assert len(rx.posts) == n + 1
        assert mpp.get_endpoint(ApplicationId=mail_app, EndpointId="ep-hook")["EndpointResponse"]["EndpointStatus"] == "ACTIVE"
        assert signed_request(mail_server.url, "DELETE", path).status_code == 200
        assert signed_request(mail_server.url, "GET", path).status_code == 404
    finally:
        rx.close()

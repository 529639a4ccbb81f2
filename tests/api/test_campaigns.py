"""Campaigns end to end: the SDK creates segments and campaigns, herald's
scheduler runs them, and the messages arrive at a real SMTP server on
loopback that the tests start. Each test checks what a user would see: the
mailbox, the campaign's state and its activities."""

from __future__ import annotations

import datetime as dt
import email.utils
import time

from harness import expect_error, status_of, unique


def iso(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def email_endpoints(pp, app_id, tag, n, **req):
    """n EMAIL endpoints `{tag}-{i}` with addresses `{tag}-{i}@example.org`."""
    items = []
    for i in range(n):
        eid = f"{tag}-{i}"
        items.append({"Id": eid, "ChannelType": "EMAIL", "Address": f"{eid}@example.org", **req})
    for k in range(0, n, 100):
        pp.update_endpoints_batch(ApplicationId=app_id, EndpointBatchRequest={"Item": items[k : k + 100]})
    return [i["Address"] for i in items]


def segment(pp, app_id, dims) -> str:
    return pp.create_segment(ApplicationId=app_id, WriteSegmentRequest={"Name": unique("seg"), "Dimensions": dims})[
        "SegmentResponse"
    ]["Id"]


def email_message(subject: str, body: str = "Hello {{Attributes.Name}}") -> dict:
    return {"EmailMessage": {"Title": subject, "Body": body, "HtmlBody": f"<p>{body}</p>"}}


def campaign(pp, app_id, seg_id, subject, start="IMMEDIATE", frequency="ONCE", **extra) -> dict:
    body = {
        "Name": unique("camp"),
        "SegmentId": seg_id,
        "MessageConfiguration": email_message(subject),
        "Schedule": {"StartTime": start, "Frequency": frequency},
    }
    body.update(extra)
    resp = pp.create_campaign(ApplicationId=app_id, WriteCampaignRequest=body)
    assert status_of(resp) == 201
    return resp["CampaignResponse"]


def wait_state(pp, app_id, cid, states, timeout_s=20.0) -> dict:
    deadline = time.monotonic() + timeout_s
    c = None
    while time.monotonic() < deadline:
        c = pp.get_campaign(ApplicationId=app_id, CampaignId=cid)["CampaignResponse"]
        if c["State"]["CampaignStatus"] in states:
            return c
        time.sleep(0.1)
    raise AssertionError(f"campaign {cid} never reached {states}: {c}")


def activities(pp, app_id, cid) -> list:
    return pp.get_campaign_activities(ApplicationId=app_id, CampaignId=cid)["ActivitiesResponse"]["Item"]


def with_subject(smtp, subject) -> list:
    return [m for m in smtp.all() if m.message["Subject"] == subject]


def test_an_immediate_campaign_reaches_exactly_its_segment_once(mpp, mail_app, smtp):
    tag = unique("imm")
    pros = email_endpoints(mpp, mail_app, f"{tag}-pro", 30, Attributes={"Plan": ["pro"], "Name": ["Ada"]})
    email_endpoints(mpp, mail_app, f"{tag}-free", 20, Attributes={"Plan": ["free"]})
    opted = email_endpoints(mpp, mail_app, f"{tag}-out", 3, Attributes={"Plan": ["pro"]}, OptOut="ALL")
    seg = segment(mpp, mail_app, {"Attributes": {"Plan": {"Values": ["pro"]}}})
    subject = unique("launch")
    c = campaign(mpp, mail_app, seg, subject)
    assert c["SegmentVersion"] == 1
    done = wait_state(mpp, mail_app, c["Id"], {"COMPLETED"})
    assert done["Version"] == 1
    got = with_subject(smtp, subject)
    assert sorted(m.rcpt_tos[0] for m in got) == sorted(pros)
    assert not set(opted) & {m.rcpt_tos[0] for m in got}
    m = got[0]
    assert m.part("text/plain").strip() == "Hello Ada"
    # Campaign mail always carries one-click unsubscribe (RFC 8058).
    assert m.message["List-Unsubscribe"].startswith("<http://127.0.0.1:")
    assert m.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    (a,) = activities(mpp, mail_app, c["Id"])
    assert a["State"] == "COMPLETED" and a["Result"] == "SUCCESS"
    assert a["TotalEndpointCount"] == 33
    assert a["SuccessfulEndpointCount"] == 30
    assert a["ExecutionMetrics"]["skipped_opted_out"] == "3"
    assert a["TreatmentId"] == "0"
    # Nothing more arrives later (the run is never repeated).
    time.sleep(1.5)
    assert len(with_subject(smtp, subject)) == 30


def test_a_b_test_with_holdout_splits_within_bounds(mpp, mail_app, smtp):
    tag = unique("ab")
    n = 400
    email_endpoints(mpp, mail_app, tag, n, Attributes={"Cohort": [tag]})
    seg = segment(mpp, mail_app, {"Attributes": {"Cohort": {"Values": [tag]}}})
    sa, sb = unique("A"), unique("B")
    c = campaign(
        mpp,
        mail_app,
        seg,
        sa,
        HoldoutPercent=20,
        AdditionalTreatments=[{"SizePercent": 50, "MessageConfiguration": email_message(sb), "TreatmentName": "B"}],
    )
    assert c["AdditionalTreatments"][0]["Id"] == "1"
    wait_state(mpp, mail_app, c["Id"], {"COMPLETED"})
    a, b = len(with_subject(smtp, sa)), len(with_subject(smtp, sb))
    held = n - a - b
    # 20% held out, the rest split 50/50: binomial bounds at ~4 sigma.
    assert 40 <= held <= 120, (a, b, held)
    assert 110 <= a <= 210 and 110 <= b <= 210, (a, b, held)
    acts = {x["TreatmentId"]: x for x in activities(mpp, mail_app, c["Id"])}
    assert acts["0"]["SuccessfulEndpointCount"] == a
    assert acts["1"]["SuccessfulEndpointCount"] == b
    assert int(acts["0"]["ExecutionMetrics"]["skipped_holdout"]) == held
    # Nobody got both.
    assert not {m.rcpt_tos[0] for m in with_subject(smtp, sa)} & {m.rcpt_tos[0] for m in with_subject(smtp, sb)}


def test_quiet_time_holds_back_endpoints_in_their_quiet_hours(mpp, mail_app, smtp):
    tag = unique("quiet")
    # Quiet time covering the current hour in UTC; Kiritimati is UTC+14,
    # where the same hour is never quiet in that window.
    h = now_utc().hour
    quiet = {"Start": f"{h:02d}:00", "End": f"{(h + 1) % 24:02d}:00"}
    utc = email_endpoints(mpp, mail_app, f"{tag}-utc", 5, Demographic={"Timezone": "Etc/UTC"}, Attributes={"T": [tag]})
    far = email_endpoints(
        mpp, mail_app, f"{tag}-kiri", 5, Demographic={"Timezone": "Pacific/Kiritimati"}, Attributes={"T": [tag]}
    )
    nozone = email_endpoints(mpp, mail_app, f"{tag}-none", 5, Attributes={"T": [tag]})
    seg = segment(mpp, mail_app, {"Attributes": {"T": {"Values": [tag]}}})
    subject = unique("quiet")
    body = {
        "Name": unique("camp"),
        "SegmentId": seg,
        "MessageConfiguration": email_message(subject),
        "Schedule": {"StartTime": "IMMEDIATE", "Frequency": "ONCE", "QuietTime": quiet},
    }
    c = mpp.create_campaign(ApplicationId=mail_app, WriteCampaignRequest=body)["CampaignResponse"]
    wait_state(mpp, mail_app, c["Id"], {"COMPLETED"})
    got = {m.rcpt_tos[0] for m in with_subject(smtp, subject)}
    assert got == set(far) | set(nozone), "endpoints without a time zone are never held back"
    assert not got & set(utc)
    (a,) = activities(mpp, mail_app, c["Id"])
    assert a["ExecutionMetrics"]["skipped_quiet_time"] == "5"
    # Pinpoint does not send a held-back message later: nothing more arrives.
    time.sleep(1.5)
    assert {m.rcpt_tos[0] for m in with_subject(smtp, subject)} == got


def test_a_campaign_scheduled_seconds_ahead_waits_then_sends(mpp, mail_app, smtp):
    tag = unique("sched")
    addrs = email_endpoints(mpp, mail_app, tag, 3, Attributes={"T": [tag]})
    seg = segment(mpp, mail_app, {"Attributes": {"T": {"Values": [tag]}}})
    subject = unique("later")
    start = now_utc() + dt.timedelta(seconds=4)
    c = campaign(mpp, mail_app, seg, subject, start=iso(start))
    assert c["State"]["CampaignStatus"] == "SCHEDULED"
    time.sleep(2)
    assert with_subject(smtp, subject) == []
    assert activities(mpp, mail_app, c["Id"]) == []
    wait_state(mpp, mail_app, c["Id"], {"COMPLETED"}, timeout_s=15)
    got = with_subject(smtp, subject)
    assert sorted(m.rcpt_tos[0] for m in got) == sorted(addrs)
    # Sent no earlier than scheduled, by herald's own clock (the mail's Date,
    # whole seconds): this machine's wall clock can step back between
    # herald's decision and a reading taken here.
    for m in got:
        sent = email.utils.parsedate_to_datetime(m.message["Date"])
        assert sent >= start.replace(microsecond=0), (sent, start)


def test_is_local_time_sends_at_the_wall_clock_time_of_each_endpoint_zone(mpp, mail_app, smtp):
    # Scheduled an hour ahead in wall-clock time: where that time has come
    # already (UTC+2, UTC+9) the message goes out in the run's first wave;
    # in UTC, UTC-5 and for an endpoint without a time zone (the scheduled
    # UTC instant) it is an hour or more away.
    tag = unique("local")
    zones = {
        "east2": "Etc/GMT-2",
        "tokyo": "Asia/Tokyo",
        "utc": "Etc/UTC",
        "newyork": "America/New_York",
        "nozone": None,
    }
    for name, zone in zones.items():
        demo = {"Timezone": zone} if zone else {}
        mpp.update_endpoint(
            ApplicationId=mail_app,
            EndpointId=f"{tag}-{name}",
            EndpointRequest={
                "ChannelType": "EMAIL",
                "Address": f"{tag}-{name}@example.org",
                "Attributes": {"T": [tag]},
                "Demographic": demo,
            },
        )
    seg = segment(mpp, mail_app, {"Attributes": {"T": {"Values": [tag]}}})
    subject = unique("local")
    start = iso(now_utc() + dt.timedelta(hours=1))
    c = campaign(
        mpp,
        mail_app,
        seg,
        subject,
        Schedule={"StartTime": start, "Frequency": "ONCE", "IsLocalTime": True},
    )
    assert c["Schedule"]["IsLocalTime"] is True
    want = {f"{tag}-east2@example.org", f"{tag}-tokyo@example.org"}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(with_subject(smtp, subject)) < len(want):
        time.sleep(0.1)
    time.sleep(1.5)  # nothing else follows
    got = sorted(m.rcpt_tos[0] for m in with_subject(smtp, subject))
    assert got == sorted(want)
    state = mpp.get_campaign(ApplicationId=mail_app, CampaignId=c["Id"])["CampaignResponse"]["State"]
    assert state["CampaignStatus"] == "EXECUTING", "the run waits for the other zones"
    acts = activities(mpp, mail_app, c["Id"])
    assert [a["SuccessfulEndpointCount"] for a in acts] == [2]
    mpp.delete_campaign(ApplicationId=mail_app, CampaignId=c["Id"])


def test_a_recurring_campaign_runs_again_and_respects_total(mpp, mail_app, smtp):
    tag = unique("hourly")
    addrs = email_endpoints(mpp, mail_app, tag, 4, Attributes={"T": [tag]})
    seg = segment(mpp, mail_app, {"Attributes": {"T": {"Values": [tag]}}})
    subject = unique("every-hour")
    # Run 0 was due an hour ago (less 3 s); run 1 falls 3 s from now.
    start = now_utc() - dt.timedelta(hours=1) + dt.timedelta(seconds=3)
    c = campaign(mpp, mail_app, seg, subject, start=iso(start), frequency="HOURLY", Limits={"Total": 1})
    deadline = time.monotonic() + 20
    acts = []
    while time.monotonic() < deadline:
        acts = activities(mpp, mail_app, c["Id"])
        if len(acts) == 2 and all(a["State"] == "COMPLETED" for a in acts):
            break
        time.sleep(0.2)
    assert len(acts) == 2, acts
    by_run = sorted(acts, key=lambda a: a["Id"])
    first, second = by_run
    assert first["SuccessfulEndpointCount"] == 4
    assert second["SuccessfulEndpointCount"] == 0
    assert second["ExecutionMetrics"]["skipped_total_limit"] == "4"
    assert sorted(m.rcpt_tos[0] for m in with_subject(smtp, subject)) == sorted(addrs)
    assert mpp.get_campaign(ApplicationId=mail_app, CampaignId=c["Id"])["CampaignResponse"]["State"][
        "CampaignStatus"
    ] == "PENDING_NEXT_RUN"
    mpp.delete_campaign(ApplicationId=mail_app, CampaignId=c["Id"])


def test_crud_versions_pause_and_delete(mpp, mail_app, smtp):
    seg = segment(mpp, mail_app, {"Attributes": {"T": {"Values": [unique("none")]}}})
    start = iso(now_utc() + dt.timedelta(days=1))
    c = campaign(mpp, mail_app, seg, "later", start=start)
    assert c["State"]["CampaignStatus"] == "SCHEDULED"
    assert c["IsPaused"] is False
    u = mpp.update_campaign(
        ApplicationId=mail_app, CampaignId=c["Id"], WriteCampaignRequest={"IsPaused": True, "Name": "renamed"}
    )["CampaignResponse"]
    assert u["Version"] == 2 and u["Name"] == "renamed" and u["IsPaused"] is True
    assert u["State"]["CampaignStatus"] == "PAUSED"
    assert u["SegmentId"] == seg, "members left out keep their values"
    v1 = mpp.get_campaign_version(ApplicationId=mail_app, CampaignId=c["Id"], Version="1")["CampaignResponse"]
    assert v1["Name"] == c["Name"]
    vs = mpp.get_campaign_versions(ApplicationId=mail_app, CampaignId=c["Id"])["CampaignsResponse"]["Item"]
    assert [v["Version"] for v in vs] == [2, 1]
    listed = mpp.get_campaigns(ApplicationId=mail_app)["CampaignsResponse"]["Item"]
    assert c["Id"] in [x["Id"] for x in listed]
    err = expect_error(lambda: mpp.delete_segment(ApplicationId=mail_app, SegmentId=seg), "BadRequestException", 400)
    assert c["Id"] in err["Error"]["Message"]
    d = mpp.delete_campaign(ApplicationId=mail_app, CampaignId=c["Id"])["CampaignResponse"]
    assert d["State"]["CampaignStatus"] == "DELETED"
    expect_error(lambda: mpp.get_campaign(ApplicationId=mail_app, CampaignId=c["Id"]), "NotFoundException", 404)
    mpp.delete_segment(ApplicationId=mail_app, SegmentId=seg)


def test_invalid_campaigns_are_refused(mpp, mail_app):
    seg = segment(mpp, mail_app, {})
    good = {"SegmentId": seg, "Schedule": {"StartTime": "IMMEDIATE"}, "MessageConfiguration": email_message("x")}
    for bad, fragment in [
        ({**good, "SegmentId": "0" * 32}, "SegmentId"),
        ({**good, "Schedule": {"StartTime": "tomorrow"}}, "StartTime"),
        ({**good, "Schedule": {"StartTime": "IMMEDIATE", "Frequency": "YEARLY"}}, "Frequency"),
        ({**good, "HoldoutPercent": 101}, "HoldoutPercent"),
        ({**good, "AdditionalTreatments": [{"SizePercent": 60}, {"SizePercent": 60}]}, "SizePercent"),
        ({**good, "Schedule": {"StartTime": "IMMEDIATE", "QuietTime": {"Start": "25:00", "End": "07:00"}}}, "QuietTime"),
    ]:
        err = expect_error(
            lambda: mpp.create_campaign(ApplicationId=mail_app, WriteCampaignRequest=bad), "BadRequestException", 400
        )
        assert fragment in err["Error"]["Message"], (fragment, err["Error"]["Message"])
    assert mpp.get_campaigns(ApplicationId=mail_app)["CampaignsResponse"]["Item"] == []


def put_event(pp, app_id, endpoint_id, event_id, event_type, **attrs):
    pp.put_events(
        ApplicationId=app_id,
        EventsRequest={
            "BatchItem": {
                endpoint_id: {
                    "Endpoint": {},
                    "Events": {
                        event_id: {
                            "EventType": event_type,
                            "Timestamp": iso(now_utc()),
                            "Attributes": attrs,
                        }
                    },
                }
            }
        },
    )


def test_an_event_triggered_campaign_fires_within_a_second_and_honours_daily(mpp, mail_app, smtp):
    tag = unique("evt")
    (member,) = email_endpoints(mpp, mail_app, f"{tag}-in", 1, Attributes={"T": [tag]})
    (outsider,) = email_endpoints(mpp, mail_app, f"{tag}-out", 1, Attributes={"T": ["other"]})
    seg = segment(mpp, mail_app, {"Attributes": {"T": {"Values": [tag]}}})
    subject = unique("thanks")
    c = campaign(
        mpp,
        mail_app,
        seg,
        subject,
        frequency="EVENT",
        Limits={"Daily": 1},
        Schedule={
            "StartTime": iso(now_utc() - dt.timedelta(minutes=1)),
            "Frequency": "EVENT",
            "EventFilter": {
                "FilterType": "ENDPOINT",
                "Dimensions": {
                    "EventType": {"DimensionType": "INCLUSIVE", "Values": ["purchase"]},
                    "Attributes": {"tier": {"AttributeType": "INCLUSIVE", "Values": ["gold"]}},
                },
            },
        },
    )
    assert c["State"]["CampaignStatus"] == "SCHEDULED"
    time.sleep(0.5)  # the scheduler learns of the campaign on its wake-up
    put_event(mpp, mail_app, f"{tag}-in-0", "e1", "browse", tier="gold")
    put_event(mpp, mail_app, f"{tag}-in-0", "e2", "purchase", tier="silver")
    put_event(mpp, mail_app, f"{tag}-out-0", "e3", "purchase", tier="gold")
    t0 = time.monotonic()
    put_event(mpp, mail_app, f"{tag}-in-0", "e4", "purchase", tier="gold")
    deadline = t0 + 1.0
    while time.monotonic() < deadline and not with_subject(smtp, subject):
        time.sleep(0.02)
    got = with_subject(smtp, subject)
    assert [m.rcpt_tos[0] for m in got] == [member], "one message to the member within a second"
    # A second matching event the same day: Daily 1 holds it back.
    put_event(mpp, mail_app, f"{tag}-in-0", "e5", "purchase", tier="gold")
    time.sleep(1.0)
    assert [m.rcpt_tos[0] for m in with_subject(smtp, subject)] == [member]
    assert outsider not in {m.rcpt_tos[0] for m in with_subject(smtp, subject)}
    (a,) = activities(mpp, mail_app, c["Id"])
    assert a["SuccessfulEndpointCount"] == 1
    assert a["ExecutionMetrics"]["skipped_daily_limit"] == "1"


class _Hook:
    """A campaign hook on loopback: records each POST and answers with
    `answer(doc)` (JSON), or 200 with an empty body."""

    def __init__(self, answer=None):
        import http.server
        import json
        import threading

        self.posts = []
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                doc = json.loads(body)
                outer.posts.append((dict(self.headers), doc))
                out = json.dumps(answer(doc)).encode() if answer else b""
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_the_filter_hook_removes_endpoints_and_may_personalise(mpp, mail_app, smtp):
    tag = unique("hook")
    addrs = email_endpoints(mpp, mail_app, tag, 10, Attributes={"T": [tag], "Name": ["Ada"]})

    def keep_even(doc):
        kept = {}
        for eid, ep in doc["Endpoints"].items():
            if int(eid.rsplit("-", 1)[1]) % 2 == 0:
                ep["Attributes"]["Name"] = ["Grace"]
                kept[eid] = ep
        return kept

    hook = _Hook(keep_even)
    try:
        seg = segment(mpp, mail_app, {"Attributes": {"T": {"Values": [tag]}}})
        subject = unique("filtered")
        c = campaign(mpp, mail_app, seg, subject, Hook={"Mode": "FILTER", "WebUrl": hook.url})
        wait_state(mpp, mail_app, c["Id"], {"COMPLETED"})
        got = with_subject(smtp, subject)
        assert sorted(m.rcpt_tos[0] for m in got) == sorted(addrs[0::2])
        assert {m.part("text/plain").strip() for m in got} == {"Hello Grace"}
        (headers, doc) = hook.posts[0]
        assert doc["CampaignId"] == c["Id"] and doc["TreatmentId"] == "0"
        assert headers["x-herald-signature"].startswith("v1=")
        assert sum(len(d["Endpoints"]) for _, d in hook.posts) == 10
        (a,) = activities(mpp, mail_app, c["Id"])
        assert a["ExecutionMetrics"]["skipped_hook"] == "5"
        assert a["SuccessfulEndpointCount"] == 5 and a["TotalEndpointCount"] == 10
    finally:
        hook.close()


def test_the_delivery_hook_delivers_instead_of_herald(mpp, mail_app, smtp):
    tag = unique("dhook")
    email_endpoints(mpp, mail_app, tag, 3, Attributes={"T": [tag]})
    hook = _Hook()
    try:
        seg = segment(mpp, mail_app, {"Attributes": {"T": {"Values": [tag]}}})
        subject = unique("delegated")
        c = campaign(mpp, mail_app, seg, subject, Hook={"Mode": "DELIVERY", "WebUrl": hook.url})
        wait_state(mpp, mail_app, c["Id"], {"COMPLETED"})
        assert with_subject(smtp, subject) == []
        ids = sorted(eid for _, d in hook.posts for eid in d["Endpoints"])
        assert ids == sorted(f"{tag}-{i}" for i in range(3)), "one POST per endpoint, once each"
        (a,) = activities(mpp, mail_app, c["Id"])
        assert a["SuccessfulEndpointCount"] == 3
    finally:
        hook.close()

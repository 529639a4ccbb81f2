"""Pinpoint's KPI APIs (GetApplicationDateRangeKpi, GetCampaignDateRangeKpi,
GetJourneyDateRangeKpi) through boto3, after real sends over SMTP to the
loopback peer, real bounces and real open/click tracking requests; and the
privacy and retention rules of analytics: deleting an endpoint or a user
removes its raw events and takes it out of future rollups, and raw events
past an app's retention are removed while rollups stay."""

from __future__ import annotations

import datetime as dt
import time
from urllib.parse import quote

import pytest
import requests

from harness import expect_error, signed_request, unique
from test_campaigns import activities, campaign, email_endpoints, segment, wait_state, with_subject
from test_messages import email_endpoint, events_of, simple

HTML = '<html><body><a href="https://example.com/offer">offer</a></body></html>'


def today() -> str:
    return dt.datetime.now(dt.timezone.utc).date().isoformat()


def rows(resp, payload="ApplicationDateRangeKpiResponse"):
    body = resp[payload]
    return body["KpiResult"]["Rows"]


def single(pp, app_id, name, **kw):
    r = rows(pp.get_application_date_range_kpi(ApplicationId=app_id, KpiName=name, **kw))
    if not r:
        return None
    assert len(r) == 1 and not r[0].get("GroupedBys"), r
    (v,) = r[0]["Values"]
    assert v["Type"] == "Double"
    return float(v["Value"])


def grouped(resp, payload):
    out = {}
    for r in rows(resp, payload):
        (g,) = r["GroupedBys"]
        (v,) = r["Values"]
        out[g["Value"]] = float(v["Value"])
    return out


def open_and_click(msg, opens=1, click=False):
    html = msg.part("text/html")
    pixel = html.split('<img src="')[1].split('"')[0]
    for _ in range(opens):
        assert requests.get(pixel, timeout=10).status_code == 200
    if click:
        link = html.split('href="')[1].split('"')[0].replace("&amp;", "&")
        assert requests.get(link, allow_redirects=False, timeout=10).status_code == 302


def test_transactional_email_kpis(mpp, mail_app, smtp):
    tag = unique("txn")
    addrs = {}
    for i in range(5):
        addrs[f"{tag}-{i}"] = f"{tag}-{i}@example.org"
        email_endpoint(mpp, mail_app, f"{tag}-{i}", addrs[f"{tag}-{i}"])
    smtp.handler.refuse[addrs[f"{tag}-4"]] = "550 5.1.1 no such user"
    smtp.handler.transient[addrs[f"{tag}-3"]] = 1
    r = mpp.send_messages(ApplicationId=mail_app, MessageRequest={
        "Endpoints": {e: {} for e in addrs}, "MessageConfiguration": simple(html=HTML)})
    statuses = sorted(x["DeliveryStatus"] for x in r["MessageResponse"]["EndpointResult"].values())
    assert statuses == ["PERMANENT_FAILURE"] + ["SUCCESSFUL"] * 4
    open_and_click(smtp.messages_to(addrs[f"{tag}-0"])[0], opens=2, click=True)
    open_and_click(smtp.messages_to(addrs[f"{tag}-1"])[0], opens=1)
    expect = {
        "txn-emails-sent": 5.0, "txn-emails-delivered": 4.0, "txn-emails-hard-bounced": 1.0,
        "txn-emails-delivery-rate": 0.8, "txn-emails-opened": 3.0, "txn-emails-unique-opens": 2.0,
        "txn-emails-clicked": 1.0, "txn-emails-unique-clicks": 1.0,
    }
    deadline = time.monotonic() + 10
    while single(mpp, mail_app, "txn-emails-opened") != 3.0 and time.monotonic() < deadline:
        time.sleep(0.1)
    for name, v in expect.items():
        assert single(mpp, mail_app, name) == v, name
    # Nothing was a soft bounce or a complaint: no data is no row, as in Pinpoint.
    assert single(mpp, mail_app, "txn-emails-soft-bounced") is None
    assert single(mpp, mail_app, "txn-emails-complaint-rate") == 0.0
    by_date = grouped(mpp.get_application_date_range_kpi(ApplicationId=mail_app, KpiName="txn-emails-sent-grouped-by-date"),
                      "ApplicationDateRangeKpiResponse")
    assert by_date == {today(): 5.0}
    # Direct sends are not campaign messages.
    assert single(mpp, mail_app, "unique-deliveries") is None
    # The date range is honoured: nothing last month.
    month_ago = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=40)
    assert single(mpp, mail_app, "txn-emails-sent", StartTime=month_ago,
                  EndTime=month_ago + dt.timedelta(days=5)) is None
    resp = mpp.get_application_date_range_kpi(ApplicationId=mail_app, KpiName="txn-emails-sent")
    body = resp["ApplicationDateRangeKpiResponse"]
    assert body["ApplicationId"] == mail_app and body["KpiName"] == "txn-emails-sent"
    start = dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=30)
    assert body["StartTime"] == dt.datetime(start.year, start.month, start.day, tzinfo=dt.timezone.utc)
    assert "NextToken" not in body


def test_campaign_kpis_per_treatment(mpp, mail_app, smtp):
    tag = unique("ckpi")
    addrs = email_endpoints(mpp, mail_app, tag, 12, Attributes={"Cohort": [tag]})
    smtp.handler.refuse[addrs[0]] = "550 5.1.1 no such user"
    seg = segment(mpp, mail_app, {"Attributes": {"Cohort": {"Values": [tag]}}})
    sa, sb = unique("A"), unique("B")
    c = campaign(mpp, mail_app, seg, sa, AdditionalTreatments=[{
        "SizePercent": 50, "TreatmentName": "B",
        "MessageConfiguration": {"EmailMessage": {"Title": sb, "Body": "b", "HtmlBody": HTML}}}],
        MessageConfiguration={"EmailMessage": {"Title": sa, "Body": "a", "HtmlBody": HTML}})
    wait_state(mpp, mail_app, c["Id"], {"COMPLETED"})
    runs = {a["TreatmentId"]: a for a in activities(mpp, mail_app, c["Id"])}
    acts = {t: a["Id"] for t, a in runs.items()}
    got_a, got_b = with_subject(smtp, sa), with_subject(smtp, sb)
    assert len(got_a) + len(got_b) == 11, "the bounced address got nothing"
    sent = {"0": len(got_a), "1": len(got_b)}
    # The bounced endpoint is in the treatment with a failure.
    (bounced_in,) = [t for t, a in runs.items() if a["SuccessfulEndpointCount"] < a["TotalEndpointCount"]]
    sent[bounced_in] += 1
    assert all(runs[t]["TotalEndpointCount"] == n for t, n in sent.items())
    # Two recipients of A open (one twice), one of them clicks.
    open_and_click(got_a[0], opens=2, click=True)
    if len(got_a) > 1:
        open_and_click(got_a[1])
    opened_a = min(2, len(got_a))

    def campaign_kpi(name):
        return mpp.get_campaign_date_range_kpi(ApplicationId=mail_app, CampaignId=c["Id"], KpiName=name)

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        opens = grouped(campaign_kpi("direct-email-opens-grouped-by-campaign-activity"), "CampaignDateRangeKpiResponse")
        if opens.get(acts["0"]) == opened_a + 1:
            break
        time.sleep(0.1)
    assert opens == {acts["0"]: float(opened_a + 1)}
    attempted = grouped(campaign_kpi("attempted-deliveries-grouped-by-campaign-activity"), "CampaignDateRangeKpiResponse")
    assert attempted == {acts[t]: float(n) for t, n in sent.items() if n}
    ok = grouped(campaign_kpi("successful-deliveries-grouped-by-campaign-activity"), "CampaignDateRangeKpiResponse")
    assert ok[acts[bounced_in]] == sent[bounced_in] - 1
    unique_by = grouped(campaign_kpi("unique-deliveries-grouped-by-campaign-activity"), "CampaignDateRangeKpiResponse")
    assert sum(unique_by.values()) == 11
    body = campaign_kpi("unique-deliveries")["CampaignDateRangeKpiResponse"]
    assert body["CampaignId"] == c["Id"]
    assert float(body["KpiResult"]["Rows"][0]["Values"][0]["Value"]) == 11.0
    assert body["KpiResult"]["Rows"][0]["Values"][0]["Key"] == "UniqueDeliveries"
    rate = campaign_kpi("hard-bounce-rate")["CampaignDateRangeKpiResponse"]["KpiResult"]["Rows"][0]["Values"][0]
    assert float(rate["Value"]) == 1 / 12
    open_rate = float(campaign_kpi("email-open-rate")["CampaignDateRangeKpiResponse"]["KpiResult"]["Rows"][0]["Values"][0]["Value"])
    assert open_rate == opened_a / 11
    clicks = grouped(campaign_kpi("clicks-grouped-by-campaign-activity"), "CampaignDateRangeKpiResponse")
    assert clicks == {acts["0"]: 1.0}
    # The application's campaign family groups by campaign; transactional KPIs stay empty.
    by_campaign = grouped(mpp.get_application_date_range_kpi(ApplicationId=mail_app, KpiName="unique-deliveries-grouped-by-campaign"),
                          "ApplicationDateRangeKpiResponse")
    assert by_campaign == {c["Id"]: 11.0}
    assert single(mpp, mail_app, "successful-delivery-rate") == 11 / 12
    assert single(mpp, mail_app, "txn-emails-sent") is None
    # Refusals.
    expect_error(mpp.get_campaign_date_range_kpi, "NotFoundException", 404, ApplicationId=mail_app,
                 CampaignId="nope", KpiName="unique-deliveries")
    expect_error(mpp.get_journey_date_range_kpi, "NotFoundException", 404, ApplicationId=mail_app,
                 JourneyId="j1", KpiName="journey-emails-sent")
    err = expect_error(mpp.get_application_date_range_kpi, "BadRequestException", 400, ApplicationId=mail_app,
                       KpiName="happiness-index")
    assert "happiness-index" in err["Error"]["Message"]
    now = dt.datetime.now(dt.timezone.utc)
    err = expect_error(mpp.get_application_date_range_kpi, "BadRequestException", 400, ApplicationId=mail_app,
                       KpiName="txn-emails-sent", StartTime=now - dt.timedelta(days=40), EndTime=now)
    assert "31" in err["Error"]["Message"]
    expect_error(mpp.get_application_date_range_kpi, "BadRequestException", 400, ApplicationId=mail_app,
                 KpiName="txn-emails-sent", StartTime=now, EndTime=now - dt.timedelta(days=1))


def analytics(server, app_id, report, **q):
    query = "&".join(f"{k}={quote(str(v), safe='')}" for k, v in q.items())
    r = signed_request(server.url, "GET", f"/herald/v1/apps/{app_id}/analytics/{report}", query=query)
    assert r.status_code == 200, r.text
    return r.json()


def put(pp, app_id, endpoint_id, user, day, *types):
    ep = {"ChannelType": "EMAIL", "Address": f"{endpoint_id}@example.org"}
    if user:
        ep["User"] = {"UserId": user}
    pp.put_events(ApplicationId=app_id, EventsRequest={"BatchItem": {endpoint_id: {
        "Endpoint": ep,
        "Events": {f"{endpoint_id}-{day}-{i}": {"EventType": t, "Timestamp": f"{day}T10:0{i}:00.000Z"}
                   for i, t in enumerate(types)}}}})


def test_deleted_endpoints_and_users_leave_future_rollups(pp, app_id, herald_server):
    day = (dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=1)).isoformat()
    put(pp, app_id, "anon", None, day, "play", "buy")
    put(pp, app_id, "ada-phone", "ada", day, "play")
    put(pp, app_id, "ada-laptop", "ada", day, "play", "buy")
    put(pp, app_id, "bob-phone", "bob", day, "play")

    def daily(by):
        (row,) = analytics(herald_server, app_id, "active-users", by=by, **{"from": day, "to": day})["Days"]
        return row["Daily"]

    def funnel_users():
        steps = analytics(herald_server, app_id, "funnel", steps="play,buy", **{"from": day, "to": day})["Steps"]
        return [s["Users"] for s in steps]

    assert (daily("users"), daily("endpoints")) == (3, 4)
    assert funnel_users() == [3, 2]
    assert events_of(herald_server, app_id, "anon") == ["play", "buy"]
    pp.delete_endpoint(ApplicationId=app_id, EndpointId="anon")
    assert events_of(herald_server, app_id, "anon") == [], "raw events are gone"
    assert (daily("users"), daily("endpoints")) == (2, 3)
    assert funnel_users() == [2, 1]
    # One of ada's endpoints goes: ada is still a user with another endpoint.
    pp.delete_endpoint(ApplicationId=app_id, EndpointId="ada-phone")
    assert (daily("users"), daily("endpoints")) == (2, 2)
    pp.delete_user_endpoints(ApplicationId=app_id, UserId="ada")
    assert (daily("users"), daily("endpoints")) == (1, 1)
    assert funnel_users() == [1, 0]
    assert events_of(herald_server, app_id, "ada-laptop") == []
    # Aggregates keep what they counted.
    counts = {r["EventType"]: r["Count"] for r in
              analytics(herald_server, app_id, "events", **{"from": day, "to": day})["EventTypes"]}
    assert counts == {"play": 4, "buy": 2}
    # The same endpoint id coming back is someone new.
    put(pp, app_id, "anon", None, day, "play")
    assert (daily("users"), daily("endpoints")) == (2, 2)


def test_raw_events_past_retention_are_removed_and_rollups_stay(start_server):
    server = start_server(env={"HERALD_ANALYTICS_EXPIRY_INTERVAL_SECS": "1"})
    pp = server.client()
    app_id = pp.create_app(CreateApplicationRequest={"Name": unique("ret")})["ApplicationResponse"]["Id"]
    url = f"/herald/v1/apps/{app_id}/settings/event-retention"
    r = signed_request(server.url, "GET", url)
    assert r.json() == {"ApplicationId": app_id, "Days": 90, "Default": True}
    assert signed_request(server.url, "PUT", url, {"Days": 0}).status_code == 400
    r = signed_request(server.url, "PUT", url, {"Days": 2})
    assert r.status_code == 200 and r.json()["Days"] == 2 and not r.json()["Default"]
    d = dt.datetime.now(dt.timezone.utc).date()
    old, new = (d - dt.timedelta(days=5)).isoformat(), d.isoformat()
    put(pp, app_id, "ep1", None, old, "play", "buy")
    put(pp, app_id, "ep1", None, new, "play")
    deadline = time.monotonic() + 30
    while events_of(server, app_id, "ep1") != ["play"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert events_of(server, app_id, "ep1") == ["play"], "the 5-day-old events are gone"
    counts = {r["EventType"]: r["Count"] for r in
              analytics(server, app_id, "events", **{"from": old, "to": new})["EventTypes"]}
    assert counts == {"play": 2, "buy": 1}, "rollups stay"
    (row,) = analytics(server, app_id, "active-users", **{"from": old, "to": old})["Days"]
    assert row["Daily"] == 1
    # Funnels need the raw occurrences: none are left for the old day.
    steps = analytics(server, app_id, "funnel", steps="play,buy", **{"from": old, "to": old})["Steps"]
    assert [s["Users"] for s in steps] == [0, 0]
    r = signed_request(server.url, "DELETE", url)
    assert r.json() == {"ApplicationId": app_id, "Days": 90, "Default": True}


def test_a_deleted_user_leaves_every_shard_that_counted_it(pp, app_id, herald_server):
    # Ten users with two endpoints each (almost surely in two shards); one
    # endpoint of each is deleted first, then the user.
    day = (dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=2)).isoformat()
    for i in range(10):
        put(pp, app_id, f"u{i}-a", f"user{i}", day, "play")
        put(pp, app_id, f"u{i}-b", f"user{i}", day, "play")

    def daily():
        (row,) = analytics(herald_server, app_id, "active-users", **{"from": day, "to": day})["Days"]
        return row["Daily"]

    assert daily() == 10
    for i in range(10):
        pp.delete_endpoint(ApplicationId=app_id, EndpointId=f"u{i}-a")
    assert daily() == 10, "deleting a device does not delete the user"
    for i in range(5):
        pp.delete_user_endpoints(ApplicationId=app_id, UserId=f"user{i}")
    assert daily() == 5


def campaign_results(server, app_id, campaign_id, expect=200, **q):
    query = "&".join(f"{k}={quote(str(v), safe='')}" for k, v in q.items())
    r = signed_request(server.url, "GET", f"/herald/v1/apps/{app_id}/analytics/campaigns/{campaign_id}", query=query)
    assert r.status_code == expect, r.text
    return r.json()


def iso(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def test_campaign_results_attribute_sessions_and_purchases_per_treatment(mpp, mail_app, smtp, mail_server):
    tag = unique("attr")
    addrs = email_endpoints(mpp, mail_app, tag, 12, Attributes={"Cohort": [tag]})
    smtp.handler.refuse[addrs[0]] = "550 5.1.1 no such user"
    seg = segment(mpp, mail_app, {"Attributes": {"Cohort": {"Values": [tag]}}})
    sa, sb = unique("A"), unique("B")
    c = campaign(mpp, mail_app, seg, sa, AdditionalTreatments=[{
        "SizePercent": 50, "TreatmentName": "B",
        "MessageConfiguration": {"EmailMessage": {"Title": sb, "Body": "b", "HtmlBody": HTML}}}],
        MessageConfiguration={"EmailMessage": {"Title": sa, "Body": "a", "HtmlBody": HTML}})
    wait_state(mpp, mail_app, c["Id"], {"COMPLETED"})
    acts = {a["TreatmentId"]: a["Id"] for a in activities(mpp, mail_app, c["Id"])}
    got = {"0": with_subject(smtp, sa), "1": with_subject(smtp, sb)}
    ids = {t: [m.rcpt_tos[0].split("@")[0] for m in got[t]] for t in got}
    assert len(ids["0"]) >= 2 and len(ids["1"]) >= 2, "12 endpoints split 50/50 by hash"
    bounced = addrs[0].split("@")[0]
    open_and_click(got["0"][0], opens=2, click=True)
    now = dt.datetime.now(dt.timezone.utc)
    a0, a1, b0, b1 = ids["0"][0], ids["0"][1], ids["1"][0], ids["1"][1]
    outsider = f"{tag}-outsider"

    def events(eid, *evs):
        mpp.put_events(ApplicationId=mail_app, EventsRequest={"BatchItem": {eid: {
            "Endpoint": {"ChannelType": "EMAIL", "Address": f"{eid}@example.org"},
            "Events": {unique("ev"): e for e in evs}}}})

    def purchase(price, qty, currency, **attrs):
        return {"EventType": "_monetization.purchase", "Timestamp": iso(now),
                "Metrics": {"_item_price": price, "_quantity": qty},
                "Attributes": {"_currency": currency, **attrs}}

    session = {"EventType": "_session.start", "Timestamp": iso(now), "Session": {"Id": unique("s"), "StartTimestamp": iso(now)}}
    # Within a day after the delivery: counted for the treatment that reached them.
    events(a0, session, purchase(2.5, 2, "EUR"), purchase(1.0, 1, "USD"))
    events(a1, dict(session, Session={"Id": unique("s"), "StartTimestamp": iso(now)}))
    events(b0, dict(session, Session={"Id": unique("s"), "StartTimestamp": iso(now)}), purchase(4.0, 1, "EUR"))
    # Before the message arrived, or after the bounce (no message): not the campaign's.
    earlier = iso(now - dt.timedelta(hours=2))
    events(b1, {"EventType": "_session.start", "Timestamp": earlier, "Session": {"Id": unique("s"), "StartTimestamp": earlier}})
    events(bounced, purchase(9.0, 1, "EUR"))
    # An app that names the campaign on its events (as Pinpoint's SDKs do
    # after a notification was opened) attributes them without a delivery.
    events(outsider, purchase(3.0, 1, "EUR", campaign_id=c["Id"], campaign_activity_id=acts["1"]))
    # Other campaigns' and unrelated events stay out.
    events(a0, {"EventType": "level.up", "Timestamp": iso(now)})

    delivered = {t: len(ids[t]) for t in ids}
    # The refused address got no mail, so its treatment shows only in the
    # bounce: wait for it, then expect it there.
    deadline = time.monotonic() + 10
    while True:
        total = {g["TreatmentId"]: g for g in campaign_results(mail_server, mail_app, c["Id"])["Total"]}
        bounces = {t: g["Bounced"] for t, g in total.items()}
        if sum(bounces.values()) == 1 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    (bounced_in,) = [t for t, b in bounces.items() if b == 1]
    expect = {
        "0": {"Sessions": 2, "Purchases": 2, "Purchasers": 1, "Revenue": {"EUR": 5.0, "USD": 1.0},
              "Opens": 2, "UniqueOpens": 1, "Clicks": 1, "UniqueClicks": 1},
        "1": {"Sessions": 1, "Purchases": 2, "Purchasers": 2, "Revenue": {"EUR": 7.0},
              "Opens": 0, "UniqueOpens": 0, "Clicks": 0, "UniqueClicks": 0},
    }
    for t in expect:
        expect[t].update({"Delivered": delivered[t], "UniqueDelivered": delivered[t],
                          "Sent": delivered[t] + (t == bounced_in), "Bounced": int(t == bounced_in),
                          "Failed": 0, "OptedOut": 0, "Complaints": 0})
    deadline = time.monotonic() + 10
    while True:
        body = campaign_results(mail_server, mail_app, c["Id"])
        total = {g["TreatmentId"]: g for g in body["Total"]}
        if (total.get("0", {}).get("Opens") == 2 and total.get("1", {}).get("Purchases") == 2) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert set(total) == {"0", "1"}, total
    for t, want in expect.items():
        got_t = {k: total[t][k] for k in want}
        assert got_t == want, (t, got_t, want)
    assert body["CampaignId"] == c["Id"] and body["AttributionWindowSeconds"] == 86400
    (day,) = body["Days"]
    assert day["Date"] == today()
    assert {g["TreatmentId"]: g["Sessions"] for g in day["Groups"]} == {"0": 2, "1": 1}
    # By activity: one run, so the activity ids of the two treatments.
    by_act = campaign_results(mail_server, mail_app, c["Id"], by="activity")
    assert {g["ActivityId"]: g["Purchases"] for g in by_act["Total"]} == {acts["0"]: 2, acts["1"]: 2}
    # A range without the campaign's days has nothing; refusals change nothing.
    last_month = (now - dt.timedelta(days=40)).date().isoformat()
    empty = campaign_results(mail_server, mail_app, c["Id"], **{"from": last_month, "to": last_month})
    assert empty["Days"] == [] and empty["Total"] == []
    campaign_results(mail_server, mail_app, "nope", expect=404)
    campaign_results(mail_server, mail_app, c["Id"], expect=400, by="country")
    campaign_results(mail_server, mail_app, c["Id"], expect=400, window="3600")
    # A deleted endpoint stays in the counts but leaves the distinct ones.
    mpp.delete_endpoint(ApplicationId=mail_app, EndpointId=b0)
    after = {g["TreatmentId"]: g for g in campaign_results(mail_server, mail_app, c["Id"])["Total"]}
    assert after["1"]["Purchases"] == 2 and after["1"]["Purchasers"] == 1
    assert after["1"]["UniqueDelivered"] == delivered["1"] - 1


def test_campaign_results_compare_the_holdout_group(mpp, mail_app, smtp, mail_server):
    tag = unique("hold")
    addrs = email_endpoints(mpp, mail_app, tag, 16, Attributes={"Cohort": [tag]})
    seg = segment(mpp, mail_app, {"Attributes": {"Cohort": {"Values": [tag]}}})
    subject = unique("held")
    c = campaign(mpp, mail_app, seg, subject, HoldoutPercent=50)
    wait_state(mpp, mail_app, c["Id"], {"COMPLETED"})
    reached = {m.rcpt_tos[0].split("@")[0] for m in with_subject(smtp, subject)}
    held = sorted(a.split("@")[0] for a in addrs if a.split("@")[0] not in reached)
    assert len(reached) >= 2 and len(held) >= 2, "16 endpoints, half held out by hash"
    now = dt.datetime.now(dt.timezone.utc)

    def buy(eid, price):
        mpp.put_events(ApplicationId=mail_app, EventsRequest={"BatchItem": {eid: {
            "Endpoint": {"ChannelType": "EMAIL", "Address": f"{eid}@example.org"},
            "Events": {unique("ev"): {"EventType": "_monetization.purchase", "Timestamp": iso(now),
                                      "Metrics": {"_item_price": price, "_quantity": 1},
                                      "Attributes": {"_currency": "EUR"}}}}}})

    # Held-out members' purchases within the window count for the holdout
    # group, so the treatment's conversion can be compared with theirs.
    buy(held[0], 3.0)
    buy(held[0], 1.0)
    buy(sorted(reached)[0], 5.0)
    deadline = time.monotonic() + 10
    while True:
        total = {g["TreatmentId"]: g for g in campaign_results(mail_server, mail_app, c["Id"])["Total"]}
        if total.get("holdout", {}).get("Purchases") == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert set(total) == {"0", "holdout"}, total
    h, t = total["holdout"], total["0"]
    assert (h["HeldOut"], h["Sent"], h["Delivered"]) == (len(held), 0, 0)
    assert (h["Purchases"], h["Purchasers"], h["Revenue"]) == (2, 1, {"EUR": 4.0})
    assert (t["UniqueDelivered"], t["Purchasers"], t["Revenue"]) == (len(reached), 1, {"EUR": 5.0})
    assert "HeldOut" not in t
    (run,) = activities(mpp, mail_app, c["Id"])
    assert run["ExecutionMetrics"]["skipped_holdout"] == str(len(held))

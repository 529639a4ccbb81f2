"""herald's analytics API against a generated event history.

A fixed-seed history (300 persons, some with two endpoints, over 45 days:
sessions with app events, purchases, and delivery events that must not count
as activity) is sent through PutEvents; every expected figure (daily, weekly
and monthly active users, sticky factor, new users, the retention table,
sessions, metric aggregates, attribute breakdowns, revenue, a funnel,
demographics) is computed here from the raw list, independently of herald,
and compared with herald's answers: counts exactly, floats to 1e-9.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections import defaultdict
from urllib.parse import quote

import pytest

from harness import signed_request

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
TOKYO_MS = 9 * HOUR_MS  # Asia/Tokyo: +09:00 all year
DELIVERY = ("_email.", "_SMS.", "_push.", "_custom.", "_campaign.", "_journey.")
TYPES = ["view_item", "add_to_cart", "_monetization.purchase", "level_up"]
PLATFORMS = ["ios", "android", "web"]


def iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def local_day(ms: int, offset_ms: int) -> dt.date:
    return dt.datetime.fromtimestamp((ms + offset_ms) // 1000, dt.timezone.utc).date()


def generate(start_day: dt.date):
    """The history: (persons, endpoints, events, sessions)."""
    rnd = random.Random(20261207)
    base = int(dt.datetime(start_day.year, start_day.month, start_day.day, tzinfo=dt.timezone.utc).timestamp() * 1000)
    endpoints = {}  # endpoint id -> (person, platform, user id or None)
    persons = {}  # person -> [endpoint ids]
    for p in range(300):
        user = f"user-{p}" if p % 4 != 0 else None
        eps = [f"ep-{p}-a"] + ([f"ep-{p}-b"] if user and p % 3 == 0 else [])
        person = f"u:{user}" if user else f"e:{eps[0]}"
        persons[person] = eps
        for e in eps:
            endpoints[e] = (person, rnd.choice(PLATFORMS), user)
    events = []  # (endpoint, type, ms, attrs, metrics)
    sessions = []  # (person, start_ms, end_ms)
    for person, eps in persons.items():
        first = rnd.randrange(45)
        p_active = rnd.choice([0.1, 0.3, 0.6])
        for day in range(first, 45):
            if day != first and rnd.random() > p_active:
                # Some inactive days still get mail: not activity.
                if rnd.random() < 0.2:
                    ms = base + day * DAY_MS + rnd.randrange(DAY_MS)
                    # Half are campaign mail (attributed by its attributes).
                    camp = rnd.choice([None, "camp-1", "camp-2"])
                    attrs = {"campaign_id": camp, "campaign_activity_id": f"{camp}-run"} if camp else {}
                    events.append((rnd.choice(eps), "_email.delivered", ms, attrs, {}))
                continue
            t = base + day * DAY_MS + rnd.randrange(20 * HOUR_MS)
            for _ in range(rnd.choice([1, 1, 2])):
                ep = rnd.choice(eps)
                sid = f"s-{ep}-{t}"
                start = t
                events.append((ep, "_session.start", t, {}, {}))
                for _ in range(rnd.randrange(1, 6)):
                    t += rnd.randrange(1_000, 15 * 60_000)
                    et = rnd.choice(TYPES)
                    attrs = {"category": rnd.choice(["books", "games", "music", "tools"])}
                    metrics = {"score": float(rnd.randrange(100))}
                    if et == "_monetization.purchase":
                        attrs["_currency"] = rnd.choice(["USD", "EUR"])
                        metrics = {"_item_price": rnd.choice([0.99, 4.99, 9.5]),
                                   "_quantity": float(rnd.randrange(1, 4))}
                    events.append((ep, et, t, attrs, metrics))
                t += rnd.randrange(1_000, 60_000)
                events.append((ep, "_session.stop", t, {}, {}))
                sessions.append((person, start, t, sid, ep))
                t += rnd.randrange(60_000, 3 * HOUR_MS)
    return base, persons, endpoints, events, sessions


def send(pp, app_id, endpoints, events, sessions):
    session_of = {}
    for person, start, end, sid, ep in sessions:
        session_of[(ep, start)] = (sid, start)
    # Each event carries its session (by endpoint and start time).
    open_sid = {}
    enriched = []
    for ep, et, ms, attrs, metrics in sorted(events, key=lambda e: (e[0], e[2])):
        if et == "_session.start":
            open_sid[ep] = session_of[(ep, ms)]
        sess = open_sid.get(ep) if not et.startswith("_email.") else None
        enriched.append((ep, et, ms, attrs, metrics, sess))
        if et == "_session.stop":
            open_sid.pop(ep, None)
    described = set()
    batch, n = {}, 0
    counter = 0

    def flush():
        nonlocal batch, n
        if batch:
            r = pp.put_events(ApplicationId=app_id, EventsRequest={"BatchItem": batch})
            for item in r["EventsResponse"]["Results"].values():
                for ev in item["EventsItemResponse"].values():
                    assert ev["StatusCode"] == 202, ev
        batch, n = {}, 0

    for ep, et, ms, attrs, metrics, sess in enriched:
        if n >= 100 or (ep not in batch and len(batch) >= 50):
            flush()
        item = batch.get(ep)
        if item is None:
            item = {"Endpoint": {}, "Events": {}}
            if ep not in described:
                person, platform, user = endpoints[ep]
                item["Endpoint"] = {"ChannelType": "EMAIL", "Address": f"{ep}@example.org",
                                    "Demographic": {"Platform": platform}}
                if user:
                    item["Endpoint"]["User"] = {"UserId": user}
                described.add(ep)
            batch[ep] = item
        counter += 1
        ev = {"EventType": et, "Timestamp": iso(ms)}
        if attrs:
            ev["Attributes"] = attrs
        if metrics:
            ev["Metrics"] = metrics
        if sess:
            ev["Session"] = {"Id": sess[0], "StartTimestamp": iso(sess[1])}
        item["Events"][f"e{counter}"] = ev
        n += 1
    flush()


def get(server, app_id, report, **q):
    query = "&".join(f"{k}={quote(str(v), safe='')}" for k, v in q.items())
    r = signed_request(server.url, "GET", f"/herald/v1/apps/{app_id}/analytics/{report}", query=query)
    assert r.status_code == 200, r.text
    return r.json()


def close(a, b):
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


@pytest.fixture(scope="module")
def history(request):
    """One app with the whole history, shared by the tests of this module."""
    server = request.getfixturevalue("_shared_server")
    pp = server.client()
    app_id = pp.create_app(CreateApplicationRequest={"Name": "analytics-history"})["ApplicationResponse"]["Id"]
    today = dt.datetime.now(dt.timezone.utc).date()
    start_day = today - dt.timedelta(days=100)
    base, persons, endpoints, events, sessions = generate(start_day)
    send(pp, app_id, endpoints, events, sessions)
    return dict(server=server, app_id=app_id, base=base, persons=persons, endpoints=endpoints,
                events=events, sessions=sessions, start_day=start_day)


def activity(h, offset_ms, by="users"):
    """local day -> set of persons (or endpoints) with a non-delivery event."""
    out = defaultdict(set)
    for ep, et, ms, _, _ in h["events"]:
        if et.startswith(DELIVERY):
            continue
        who = h["endpoints"][ep][0] if by == "users" else ep
        out[local_day(ms, offset_ms)].add(who)
    return out


@pytest.mark.parametrize("tz,offset_ms", [("UTC", 0), ("Asia/Tokyo", TOKYO_MS)])
@pytest.mark.parametrize("by", ["users", "endpoints"])
def test_active_users_sticky_factor_and_new_users(history, tz, offset_ms, by):
    h = history
    act = activity(h, offset_ms, by)
    first_day = {}
    for day in sorted(act):
        for p in act[day]:
            first_day.setdefault(p, day)
    frm = h["start_day"] + dt.timedelta(days=10)
    to = h["start_day"] + dt.timedelta(days=44)
    got = get(h["server"], h["app_id"], "active-users", tz=tz, by=by, **{"from": frm, "to": to})
    assert (got["From"], got["To"], got["TimeZone"]) == (str(frm), str(to), tz)
    assert len(got["Days"]) == 35
    for row in got["Days"]:
        d = dt.date.fromisoformat(row["Date"])
        week = set().union(*(act.get(d - dt.timedelta(days=i), set()) for i in range(7)))
        month = set().union(*(act.get(d - dt.timedelta(days=i), set()) for i in range(30)))
        daily = len(act.get(d, set()))
        assert (row["Daily"], row["Weekly"], row["Monthly"]) == (daily, len(week), len(month)), row
        assert close(row["StickyFactor"], daily / len(month) if month else 0.0)
        assert row["New"] == sum(1 for f in first_day.values() if f == d), row
    assert sum(r["Daily"] for r in got["Days"]) > 500, "the history is not trivial"


@pytest.mark.parametrize("tz,offset_ms", [("UTC", 0), ("Asia/Tokyo", TOKYO_MS)])
def test_retention_table(history, tz, offset_ms):
    h = history
    act = activity(h, offset_ms)
    first_day = {}
    for day in sorted(act):
        for p in act[day]:
            first_day.setdefault(p, day)
    frm = h["start_day"]
    to = h["start_day"] + dt.timedelta(days=30)
    got = get(h["server"], h["app_id"], "retention", tz=tz, **{"from": frm, "to": to})["Cohorts"]
    assert len(got) == 31
    for row in got:
        c = dt.date.fromisoformat(row["Date"])
        cohort = {p for p, f in first_day.items() if f == c}
        assert row["Cohort"] == len(cohort), row
        for k, name in [(1, "Day1"), (7, "Day7"), (14, "Day14"), (30, "Day30")]:
            back = {p for p in cohort
                    if any(p in act.get(c + dt.timedelta(days=i), set()) for i in range(1, k + 1))}
            assert row[name] == len(back), (row, name)
    assert sum(r["Day7"] for r in got) > 0


def test_sessions_per_day(history):
    h = history
    frm = h["start_day"] + dt.timedelta(days=5)
    to = h["start_day"] + dt.timedelta(days=20)
    act = activity(h, 0)
    got = get(h["server"], h["app_id"], "sessions", **{"from": frm, "to": to})["Days"]
    by_day = defaultdict(list)
    for person, start, end, _, _ in h["sessions"]:
        by_day[local_day(start, 0)].append(end - start)
    starts = defaultdict(int)
    for _, et, ms, _, _ in h["events"]:
        if et == "_session.start":
            starts[local_day(ms, 0)] += 1
    assert len(got) == 16
    for row in got:
        d = dt.date.fromisoformat(row["Date"])
        durs = by_day.get(d, [])
        assert row["Sessions"] == len(durs), row
        assert row["SessionStarts"] == starts[d], row
        assert row["ActiveUsers"] == len(act.get(d, set()))
        assert close(row["AverageDurationSeconds"], sum(durs) / len(durs) / 1000 if durs else 0.0)
        assert close(row["SessionsPerActiveUser"], len(durs) / row["ActiveUsers"] if row["ActiveUsers"] else 0.0)


def test_custom_event_report_metrics_attributes_and_revenue(history):
    h = history
    frm = h["start_day"] + dt.timedelta(days=3)
    to = h["start_day"] + dt.timedelta(days=33)
    in_range = [e for e in h["events"] if frm <= local_day(e[2], 0) <= to]
    sessions = sum(1 for s in h["sessions"] if frm <= local_day(s[1], 0) <= to)
    got = {r["EventType"]: r for r in get(h["server"], h["app_id"], "events", **{"from": frm, "to": to})["EventTypes"]}
    types = defaultdict(list)
    for e in in_range:
        types[e[1]].append(e)
    assert set(got) == set(types)
    for et, evs in types.items():
        r = got[et]
        assert r["Count"] == len(evs)
        per_day = defaultdict(int)
        for e in evs:
            per_day[str(local_day(e[2], 0))] += 1
        assert {d["Date"]: d["Count"] for d in r["Days"] if d["Count"]} == dict(per_day)
        names = {m for e in evs for m in e[4]}
        assert set(r["Metrics"]) == names
        for m in names:
            vals = [e[4][m] for e in evs if m in e[4]]
            got_m = r["Metrics"][m]
            assert got_m["Count"] == len(vals)
            assert close(got_m["Sum"], sum(vals)) and got_m["Min"] == min(vals) and got_m["Max"] == max(vals)
            assert close(got_m["Average"], sum(vals) / len(vals))
            assert close(got_m["PerSession"], sum(vals) / sessions)
        cats = defaultdict(int)
        for e in evs:
            if "category" in e[3]:
                cats[e[3]["category"]] += 1
        assert r.get("Attributes", {}).get("category", {}) == dict(cats)
    revenue = defaultdict(float)
    for e in types["_monetization.purchase"]:
        revenue[e[3]["_currency"]] += e[4]["_item_price"] * e[4]["_quantity"]
    assert set(got["_monetization.purchase"]["Revenue"]) == set(revenue)
    for c, v in revenue.items():
        assert close(got["_monetization.purchase"]["Revenue"][c], v)
    # One attribute value, one type.
    only = get(h["server"], h["app_id"], "events", **{"from": frm, "to": to, "event-type": "level_up",
                                                      "attribute": "category:games"})["EventTypes"]
    games = [e for e in types["level_up"] if e[3].get("category") == "games"]
    assert [r["EventType"] for r in only] == ["level_up"] and only[0]["Count"] == len(games)
    assert close(only[0]["Metrics"]["score"]["Sum"], sum(e[4]["score"] for e in games))


def expected_funnel(h, steps, frm_ms, to_ms, window_ms):
    occ = defaultdict(lambda: defaultdict(list))
    for ep, et, ms, _, _ in h["events"]:
        if et in steps:
            occ[h["endpoints"][ep][0]][et].append(ms)
    reached = [0] * len(steps)
    for person, by_type in occ.items():
        best = 0
        for t0 in by_type.get(steps[0], []):
            if not frm_ms <= t0 < to_ms:
                continue

            def deepest(k, t):
                if k == len(steps):
                    return 0
                return max([1 + deepest(k + 1, x) for x in by_type.get(steps[k], []) if t < x <= t0 + window_ms] or [0])
            best = max(best, 1 + deepest(1, t0))
        for i in range(best):
            reached[i] += 1
    return reached


def test_funnel(history):
    h = history
    steps = ["view_item", "add_to_cart", "_monetization.purchase"]
    frm = h["start_day"] + dt.timedelta(days=2)
    to = h["start_day"] + dt.timedelta(days=40)
    got = get(h["server"], h["app_id"], "funnel", steps=",".join(steps), window=3600,
              **{"from": frm, "to": to})
    frm_ms = h["base"] + 2 * DAY_MS
    to_ms = h["base"] + 41 * DAY_MS
    expect = expected_funnel(h, steps, frm_ms, to_ms, 3_600_000)
    assert [s["Users"] for s in got["Steps"]] == expect
    assert expect[2] > 0 and expect[0] > expect[2]
    assert close(got["Steps"][1]["ConversionFromPrevious"], expect[1] / expect[0])


def test_demographics_of_active_endpoints(history):
    h = history
    frm = h["start_day"] + dt.timedelta(days=30)
    to = h["start_day"] + dt.timedelta(days=44)
    act = activity(h, 0, "endpoints")
    active = set().union(*(act.get(frm + dt.timedelta(days=i), set()) for i in range(15)))
    expect = defaultdict(int)
    for ep in active:
        expect[h["endpoints"][ep][1]] += 1
    got = get(h["server"], h["app_id"], "demographics", dimension="platform", **{"from": frm, "to": to})
    assert got["Counts"] == dict(expect)


def test_kpi_rows_match_the_history(history):
    h = history
    pp = h["server"].client()
    start = h["start_day"] + dt.timedelta(days=5)
    end = start + dt.timedelta(days=30)
    t0 = dt.datetime(start.year, start.month, start.day, tzinfo=dt.timezone.utc)
    t1 = dt.datetime(end.year, end.month, end.day, 23, 59, 59, tzinfo=dt.timezone.utc)
    in_range = [e for e in h["events"] if e[1] == "_email.delivered" and start <= local_day(e[2], 0) <= end]
    txn = [e for e in in_range if "campaign_id" not in e[3]]
    per_day = defaultdict(int)
    for e in txn:
        per_day[str(local_day(e[2], 0))] += 1

    def kpi(name):
        r = pp.get_application_date_range_kpi(ApplicationId=h["app_id"], KpiName=name, StartTime=t0, EndTime=t1)
        return r["ApplicationDateRangeKpiResponse"]["KpiResult"]["Rows"]

    rows = kpi("txn-emails-delivered-grouped-by-date")
    assert {r["GroupedBys"][0]["Value"]: float(r["Values"][0]["Value"]) for r in rows} == dict(per_day)
    assert [r["GroupedBys"][0]["Key"] for r in rows] == ["Date"] * len(rows)
    (total,) = kpi("txn-emails-delivered")
    assert total["Values"][0] == {"Key": "TxnEmailsDelivered", "Type": "Double", "Value": f"{float(len(txn))}"}
    unique = defaultdict(set)
    for e in in_range:
        if "campaign_id" in e[3]:
            unique[e[3]["campaign_id"]].add(e[0])
    rows = kpi("unique-deliveries-grouped-by-campaign")
    assert {r["GroupedBys"][0]["Value"]: float(r["Values"][0]["Value"]) for r in rows} == \
        {c: float(len(eps)) for c, eps in unique.items()}
    assert len(unique) == 2 and all(len(v) > 3 for v in unique.values())


def test_bad_analytics_queries_are_refused(history):
    h = history
    for report, q, words in [
        ("active-users", "tz=Mars%2FOlympus", "IANA"),
        ("active-users", "from=2026-13-01", "YYYY-MM-DD"),
        ("active-users", "from=2026-02-01&to=2026-01-01", "after"),
        ("active-users", "from=2020-01-01&to=2026-01-01", "366"),
        ("active-users", "by=devices", "users or endpoints"),
        ("active-users", "color=red", "unknown parameter"),
        ("funnel", "steps=a", "2 to 10"),
        ("funnel", "steps=a%2Cb&window=0", "window"),
        ("events", "attribute=nocolon", "name:value"),
        ("demographics", "dimension=shoe-size", "dimension"),
    ]:
        r = signed_request(h["server"].url, "GET", f"/herald/v1/apps/{h['app_id']}/analytics/{report}", query=q)
        assert r.status_code == 400, (report, q, r.text)
        assert words in r.json()["Message"], (q, r.text)
    r = signed_request(h["server"].url, "GET", f"/herald/v1/apps/{h['app_id']}/analytics/weather")
    assert r.status_code == 404
    r = signed_request(h["server"].url, "GET", "/herald/v1/apps/no-such-app/analytics/active-users")
    assert r.status_code == 404

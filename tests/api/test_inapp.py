"""In-app messages: IN_APP_EVENT campaigns (their message or an in-app
template), and GetInAppMessages answering the campaigns an endpoint may be
shown now, in priority order, within the campaigns' daily, session and
total display caps counted from `_inapp.message_displayed` events."""

from __future__ import annotations

import datetime

from harness import expect_error, unique

BANNER = {
    "Layout": "BOTTOM_BANNER",
    "Content": [{
        "BackgroundColor": "#FFFFFF",
        "HeaderConfig": {"Alignment": "CENTER", "Header": "Welcome", "TextColor": "#000000"},
        "BodyConfig": {"Alignment": "LEFT", "Body": "Glad you are here", "TextColor": "#333333"},
    }],
    "CustomConfig": {"screen": "home"},
}


def now_iso(offset_s=0) -> str:
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=offset_s)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def in_app_campaign(pp, app_id, segment_id, priority, limits, message=None, template=None, **extra):
    req = {
        "Name": unique("inapp"),
        "SegmentId": segment_id,
        "Priority": priority,
        "Limits": limits,
        "Schedule": {
            "StartTime": "IMMEDIATE", "Frequency": "IN_APP_EVENT",
            "EventFilter": {"FilterType": "ENDPOINT", "Dimensions": {"EventType": {"DimensionType": "INCLUSIVE", "Values": ["app_open"]}}},
        },
        "MessageConfiguration": {"InAppMessage": message} if message else {},
        **extra,
    }
    if template:
        req["TemplateConfiguration"] = {"InAppTemplate": {"Name": template}}
    return pp.create_campaign(ApplicationId=app_id, WriteCampaignRequest=req)["CampaignResponse"]["Id"]


def shown(pp, app_id, endpoint_id, campaign_id, session):
    pp.put_events(ApplicationId=app_id, EventsRequest={"BatchItem": {endpoint_id: {
        "Endpoint": {},
        "Events": {unique("ev"): {
            "EventType": "_inapp.message_displayed", "Timestamp": now_iso(),
            "Attributes": {"campaign_id": campaign_id, "treatment_id": "0"},
            "Session": {"Id": session, "StartTimestamp": now_iso(-5)},
        }},
    }}})


def messages(pp, app_id, endpoint_id) -> list:
    resp = pp.get_in_app_messages(ApplicationId=app_id, EndpointId=endpoint_id)["InAppMessagesResponse"]
    return resp["InAppMessageCampaigns"]


def test_in_app_campaigns_are_served_by_priority_within_their_caps(pp, app_id):
    tag = unique("t")
    pp.update_endpoint(ApplicationId=app_id, EndpointId="reader", EndpointRequest={
        "ChannelType": "IN_APP", "Address": "reader-device", "Attributes": {"Team": [tag]}})
    pp.update_endpoint(ApplicationId=app_id, EndpointId="outsider", EndpointRequest={
        "ChannelType": "IN_APP", "Address": "outsider-device", "Attributes": {"Team": ["other"]}})
    seg = pp.create_segment(ApplicationId=app_id, WriteSegmentRequest={
        "Name": unique("seg"), "Dimensions": {"Attributes": {"Team": {"Values": [tag]}}}})["SegmentResponse"]["Id"]
    template = unique("inapptpl")
    pp.create_in_app_template(TemplateName=template, InAppTemplateRequest={
        "Layout": "TOP_BANNER",
        "Content": [{"BodyConfig": {"Alignment": "CENTER", "Body": "From the template", "TextColor": "#000000"}}],
    })
    try:
        total_capped = in_app_campaign(pp, app_id, seg, priority=2, limits={"Total": 2, "Daily": 5}, message=BANNER)
        session_capped = in_app_campaign(pp, app_id, seg, priority=1, limits={"Session": 1}, template=template)
        paused = in_app_campaign(pp, app_id, seg, priority=1, limits={}, message=BANNER, IsPaused=True)

        got = messages(pp, app_id, "reader")
        assert [c["CampaignId"] for c in got] == [session_capped, total_capped], "priority 1 first; paused left out"
        first, second = got
        assert first["InAppMessage"]["Layout"] == "TOP_BANNER"
        assert first["InAppMessage"]["Content"][0]["BodyConfig"]["Body"] == "From the template"
        assert second["InAppMessage"] == BANNER
        assert (second["TotalCap"], second["DailyCap"], second["SessionCap"], second["Priority"]) == (2, 5, 0, 2)
        assert second["Schedule"]["EventFilter"]["Dimensions"]["EventType"]["Values"] == ["app_open"]
        assert first["TreatmentId"] == "0"

        # Shown once in session s1: the session-capped campaign rests until the next session.
        shown(pp, app_id, "reader", session_capped, "s1")
        assert [c["CampaignId"] for c in messages(pp, app_id, "reader")] == [total_capped]
        shown(pp, app_id, "reader", total_capped, "s2")
        assert [c["CampaignId"] for c in messages(pp, app_id, "reader")] == [session_capped, total_capped]
        # Shown twice in all: the total cap is reached.
        shown(pp, app_id, "reader", total_capped, "s2")
        assert [c["CampaignId"] for c in messages(pp, app_id, "reader")] == [session_capped]

        assert messages(pp, app_id, "outsider") == [], "not in the segment"
        pp.update_endpoint(ApplicationId=app_id, EndpointId="reader", EndpointRequest={"OptOut": "ALL"})
        assert messages(pp, app_id, "reader") == [], "opted out"
        expect_error(pp.get_in_app_messages, "NotFoundException", 404, ApplicationId=app_id, EndpointId="nobody")
        assert paused
    finally:
        pp.delete_in_app_template(TemplateName=template)


def test_in_app_campaigns_need_a_valid_in_app_message(pp, app_id):
    seg = pp.create_segment(ApplicationId=app_id, WriteSegmentRequest={
        "Name": unique("seg"), "Dimensions": {"Attributes": {"Team": {"Values": ["x"]}}}})["SegmentResponse"]["Id"]
    err = expect_error(pp.create_campaign, "BadRequestException", 400, ApplicationId=app_id, WriteCampaignRequest={
        "Name": "no message", "SegmentId": seg,
        "Schedule": {"StartTime": "IMMEDIATE", "Frequency": "IN_APP_EVENT"}})
    assert "InAppMessage" in err["Error"]["Message"]
    err = expect_error(pp.create_campaign, "BadRequestException", 400, ApplicationId=app_id, WriteCampaignRequest={
        "Name": "bad layout", "SegmentId": seg,
        "Schedule": {"StartTime": "IMMEDIATE", "Frequency": "IN_APP_EVENT"},
        "MessageConfiguration": {"InAppMessage": {**BANNER, "Layout": "SIDEWAYS"}}})
    assert "Layout" in err["Error"]["Message"]
    assert pp.get_campaigns(ApplicationId=app_id)["CampaignsResponse"]["Item"] == [], "nothing was stored"

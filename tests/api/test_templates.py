"""Message templates: Create/Get/Update/Delete for every type, versions,
the active version, ListTemplates, and sends that use a template."""

from __future__ import annotations

import pytest

from harness import assert_iso8601, expect_error, status_of, unique


def test_email_template_lifecycle(pp):
    name = unique("welcome")
    resp = pp.create_email_template(
        TemplateName=name,
        EmailTemplateRequest={
            "Subject": "Hi {{User.UserAttributes.FirstName}}",
            "TextPart": "text v1",
            "HtmlPart": "<p>v1</p>",
            "DefaultSubstitutions": '{"User.UserAttributes.FirstName": "friend"}',
            "TemplateDescription": "first",
            "tags": {"team": "growth"},
        },
    )
    assert status_of(resp) == 201
    arn = resp["CreateTemplateMessageBody"]["Arn"]
    assert arn.endswith(f":templates/{name}/EMAIL")
    got = pp.get_email_template(TemplateName=name)["EmailTemplateResponse"]
    assert got["TemplateName"] == name
    assert got["TemplateType"] == "EMAIL"
    assert got["Version"] == "1"
    assert got["Subject"] == "Hi {{User.UserAttributes.FirstName}}"
    assert got["tags"] == {"team": "growth"}
    assert got["Arn"] == arn
    assert_iso8601(got["CreationDate"])
    assert_iso8601(got["LastModifiedDate"])

    # A second create of the same name is refused.
    expect_error(pp.create_email_template, "BadRequestException", 400, TemplateName=name,
                 EmailTemplateRequest={"Subject": "x", "TextPart": "y"})

    # New version: the active version stays 1 until it is changed.
    resp = pp.update_email_template(TemplateName=name, CreateNewVersion=True,
                                    EmailTemplateRequest={"Subject": "v2", "TextPart": "text v2"})
    assert status_of(resp) == 202
    assert pp.get_email_template(TemplateName=name)["EmailTemplateResponse"]["Version"] == "1"
    v2 = pp.get_email_template(TemplateName=name, Version="2")["EmailTemplateResponse"]
    assert (v2["Version"], v2["Subject"]) == ("2", "v2")
    # Overwrite the latest version in place (no new version).
    pp.update_email_template(TemplateName=name, EmailTemplateRequest={"Subject": "v2b", "TextPart": "t"})
    assert pp.get_email_template(TemplateName=name, Version="2")["EmailTemplateResponse"]["Subject"] == "v2b"
    versions = pp.list_template_versions(TemplateName=name, TemplateType="EMAIL")["TemplateVersionsResponse"]
    assert [v["Version"] for v in versions["Item"]] == ["1", "2"]

    resp = pp.update_template_active_version(
        TemplateName=name, TemplateType="EMAIL", TemplateActiveVersionRequest={"Version": "2"})
    assert status_of(resp) == 200
    assert pp.get_email_template(TemplateName=name)["EmailTemplateResponse"]["Subject"] == "v2b"
    expect_error(pp.update_template_active_version, "NotFoundException", 404, TemplateName=name,
                 TemplateType="EMAIL", TemplateActiveVersionRequest={"Version": "9"})
    # The active version cannot be deleted while others exist.
    expect_error(pp.delete_email_template, "BadRequestException", 400, TemplateName=name, Version="2")
    assert status_of(pp.delete_email_template(TemplateName=name, Version="1")) == 202
    versions = pp.list_template_versions(TemplateName=name, TemplateType="EMAIL")["TemplateVersionsResponse"]
    assert [v["Version"] for v in versions["Item"]] == ["2"]
    pp.delete_email_template(TemplateName=name)
    expect_error(pp.get_email_template, "NotFoundException", 404, TemplateName=name)


def test_a_template_that_does_not_parse_is_refused_naming_the_line(pp):
    name = unique("broken")
    err = expect_error(
        pp.create_email_template, "BadRequestException", 400, TemplateName=name,
        EmailTemplateRequest={"Subject": "ok", "HtmlPart": "<p>\n{{#if x}}\n<b>\n{{/each}}\n"},
    )
    assert "HtmlPart" in err["Message"] and "line" in err["Message"], err
    expect_error(pp.get_email_template, "NotFoundException", 404, TemplateName=name)
    expect_error(pp.create_email_template, "BadRequestException", 400, TemplateName="bad name!",
                 EmailTemplateRequest={"Subject": "x"})


@pytest.mark.parametrize(
    "kind,create,get,body,check",
    [
        ("SMS", "create_sms_template", "get_sms_template", {"SMSTemplateRequest": {"Body": "Code {{Attributes.Code}}"}},
         lambda t: t["Body"] == "Code {{Attributes.Code}}"),
        ("VOICE", "create_voice_template", "get_voice_template",
         {"VoiceTemplateRequest": {"Body": "Hello", "LanguageCode": "en-US", "VoiceId": "Joanna"}},
         lambda t: t["LanguageCode"] == "en-US"),
        ("PUSH", "create_push_template", "get_push_template",
         {"PushNotificationTemplateRequest": {"Default": {"Title": "T {{User.UserId}}", "Body": "B"}}},
         lambda t: t["Default"]["Title"] == "T {{User.UserId}}"),
        ("INAPP", "create_in_app_template", "get_in_app_template",
         {"InAppTemplateRequest": {"Layout": "BOTTOM_BANNER", "Content": [{"BodyConfig": {"Body": "Hi", "Alignment": "LEFT", "TextColor": "#000000"}}]}},
         lambda t: t["Layout"] == "BOTTOM_BANNER"),
    ],
)
def test_other_template_types(pp, kind, create, get, body, check):
    name = unique(kind.lower())
    resp = getattr(pp, create)(TemplateName=name, **body)
    assert status_of(resp) == 201
    got = getattr(pp, get)(TemplateName=name)
    t = next(v for k, v in got.items() if k.endswith("Response") and k != "ResponseMetadata")
    assert t["TemplateType"] == kind
    assert check(t), t
    listed = pp.list_templates(Prefix=name)["TemplatesResponse"]["Item"]
    assert [(i["TemplateName"], i["TemplateType"]) for i in listed] == [(name, kind)]


def test_list_templates_pages_and_filters(pp):
    prefix = unique("lst")
    for i in range(5):
        pp.create_email_template(TemplateName=f"{prefix}-{i}", EmailTemplateRequest={"Subject": "s", "TextPart": "t"})
    pp.create_sms_template(TemplateName=f"{prefix}-sms", SMSTemplateRequest={"Body": "b"})
    seen, token = [], None
    for _ in range(10):
        kw = {"Prefix": prefix, "PageSize": "2"}
        if token:
            kw["NextToken"] = token
        page = pp.list_templates(**kw)["TemplatesResponse"]
        seen += [i["TemplateName"] for i in page["Item"]]
        token = page.get("NextToken")
        if not token:
            break
    assert seen == [f"{prefix}-{i}" for i in range(5)] + [f"{prefix}-sms"]
    only_sms = pp.list_templates(Prefix=prefix, TemplateType="SMS")["TemplatesResponse"]["Item"]
    assert [i["TemplateName"] for i in only_sms] == [f"{prefix}-sms"]


def test_sends_render_the_template_version_asked_for(mpp, mail_app, smtp):
    name = unique("tpl")
    mpp.create_email_template(
        TemplateName=name,
        EmailTemplateRequest={
            "Subject": "v1 for {{User.UserAttributes.FirstName}}",
            "TextPart": "Plan {{Attributes.Plan}}",
            "HtmlPart": "<p>{{Attributes.Plan}} &amp; more</p>",
            "DefaultSubstitutions": '{"User.UserAttributes.FirstName": "friend"}',
        },
    )
    mpp.update_email_template(TemplateName=name, CreateNewVersion=True,
                              EmailTemplateRequest={"Subject": "v2 {{Promo}}", "TextPart": "second"})
    to = f"{unique('t')}@example.org"
    mpp.update_endpoint(ApplicationId=mail_app, EndpointId="ep-t",
                        EndpointRequest={"ChannelType": "EMAIL", "Address": to, "Attributes": {"Plan": ["<gold>"]}})

    def send(version=None, subs=None):
        tpl = {"Name": name}
        if version:
            tpl["Version"] = version
        cfg = {"Substitutions": subs} if subs else {}
        r = mpp.send_messages(
            ApplicationId=mail_app,
            MessageRequest={"Endpoints": {"ep-t": cfg}, "MessageConfiguration": {},
                            "TemplateConfiguration": {"EmailTemplate": tpl}},
        )["MessageResponse"]["EndpointResult"]["ep-t"]
        assert r["DeliveryStatus"] == "SUCCESSFUL", r
        return smtp.messages_to(to)[-1]

    m = send()
    assert m.message["Subject"] == "v1 for friend"
    assert m.part("text/plain").strip() == "Plan <gold>"
    assert "<p>&lt;gold&gt; &amp; more</p>" in m.part("text/html")
    m = send(version="2", subs={"Promo": ["P10"]})
    assert m.message["Subject"] == "v2 P10"
    expect_error(mpp.send_messages, "NotFoundException", 404, ApplicationId=mail_app,
                 MessageRequest={"Endpoints": {"ep-t": {}}, "MessageConfiguration": {},
                                 "TemplateConfiguration": {"EmailTemplate": {"Name": unique("nope")}}})

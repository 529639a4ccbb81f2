"""GetApplicationSettings and UpdateApplicationSettings."""

from __future__ import annotations

import pytest

from harness import assert_iso8601, expect_error, status_of

MISSING_APP = "0" * 32

FULL_SETTINGS = {
    "CampaignHook": {
        "LambdaFunctionName": "arn:aws:lambda:us-east-1:123456789012:function:hook",
        "Mode": "FILTER",
    },
    "CloudWatchMetricsEnabled": True,
    "Limits": {"Daily": 10, "MaximumDuration": 600, "MessagesPerSecond": 50, "Total": 100, "Session": 5},
    "QuietTime": {"Start": "22:00", "End": "07:00"},
    "JourneyLimits": {"DailyCap": 3, "TimeframeCap": {"Cap": 5, "Days": 7}, "TotalCap": 20},
}


def _check_full(settings: dict, app_id: str) -> None:
    assert settings["ApplicationId"] == app_id
    assert settings["CampaignHook"] == FULL_SETTINGS["CampaignHook"]
    assert settings["Limits"] == FULL_SETTINGS["Limits"]
    assert settings["QuietTime"] == FULL_SETTINGS["QuietTime"]
    assert settings["JourneyLimits"] == FULL_SETTINGS["JourneyLimits"]


def test_get_settings_of_a_new_app(pp, app_id):
    resp = pp.get_application_settings(ApplicationId=app_id)
    assert status_of(resp) == 200
    settings = resp["ApplicationSettingsResource"]
    assert settings["ApplicationId"] == app_id
    # Nothing configured yet: no quiet time, no hook function.
    assert not settings.get("QuietTime", {}).get("Start")
    assert not settings.get("CampaignHook", {}).get("LambdaFunctionName")


def test_update_settings_round_trips(pp, app_id):
    resp = pp.update_application_settings(ApplicationId=app_id, WriteApplicationSettingsRequest=FULL_SETTINGS)
    assert status_of(resp) == 200
    _check_full(resp["ApplicationSettingsResource"], app_id)
    assert_iso8601(resp["ApplicationSettingsResource"].get("LastModifiedDate"), "LastModifiedDate")

    got = pp.get_application_settings(ApplicationId=app_id)["ApplicationSettingsResource"]
    _check_full(got, app_id)
    assert_iso8601(got.get("LastModifiedDate"), "LastModifiedDate")


def test_update_settings_web_url_hook(pp, app_id):
    hook = {"WebUrl": "https://hooks.example.com/filter", "Mode": "FILTER"}
    resp = pp.update_application_settings(
        ApplicationId=app_id, WriteApplicationSettingsRequest={"CampaignHook": hook}
    )
    assert resp["ApplicationSettingsResource"]["CampaignHook"] == hook
    got = pp.get_application_settings(ApplicationId=app_id)["ApplicationSettingsResource"]
    assert got["CampaignHook"] == hook


def test_partial_update_keeps_other_settings(pp, app_id):
    pp.update_application_settings(ApplicationId=app_id, WriteApplicationSettingsRequest=FULL_SETTINGS)
    pp.update_application_settings(
        ApplicationId=app_id, WriteApplicationSettingsRequest={"QuietTime": {"Start": "23:30", "End": "06:15"}}
    )
    got = pp.get_application_settings(ApplicationId=app_id)["ApplicationSettingsResource"]
    assert got["QuietTime"] == {"Start": "23:30", "End": "06:15"}
    assert got["Limits"] == FULL_SETTINGS["Limits"]
    assert got["CampaignHook"] == FULL_SETTINGS["CampaignHook"]
    assert got["JourneyLimits"] == FULL_SETTINGS["JourneyLimits"]


def test_settings_are_per_app(pp, make_app):
    a, b = make_app()["Id"], make_app()["Id"]
    pp.update_application_settings(ApplicationId=a, WriteApplicationSettingsRequest=FULL_SETTINGS)
    got_b = pp.get_application_settings(ApplicationId=b)["ApplicationSettingsResource"]
    assert got_b["ApplicationId"] == b
    assert got_b.get("Limits", {}).get("Daily") != FULL_SETTINGS["Limits"]["Daily"]
    assert not got_b.get("QuietTime", {}).get("Start")


def test_settings_of_unknown_app_are_not_found(pp):
    expect_error(pp.get_application_settings, "NotFoundException", 404, ApplicationId=MISSING_APP)
    expect_error(
        pp.update_application_settings,
        "NotFoundException",
        404,
        ApplicationId=MISSING_APP,
        WriteApplicationSettingsRequest={"Limits": {"Daily": 1}},
    )


BAD_SETTINGS = {
    "quiet-time-hour-25": {"QuietTime": {"Start": "25:00", "End": "07:00"}},
    "quiet-time-minute-60": {"QuietTime": {"Start": "22:60", "End": "07:00"}},
    "quiet-time-12h-clock": {"QuietTime": {"Start": "10pm", "End": "07:00"}},
    "quiet-time-no-leading-zero": {"QuietTime": {"Start": "22:00", "End": "7:00"}},
    "quiet-time-seconds": {"QuietTime": {"Start": "22:00:00", "End": "07:00"}},
    "daily-over-100": {"Limits": {"Daily": 101}},
    "total-over-100": {"Limits": {"Total": 101}},
    "mps-zero": {"Limits": {"MessagesPerSecond": 0}},
    "mps-over-20000": {"Limits": {"MessagesPerSecond": 20001}},
    "max-duration-under-60": {"Limits": {"MaximumDuration": 59}},
    "negative-daily": {"Limits": {"Daily": -1}},
    "hook-mode-enum": {"CampaignHook": {"WebUrl": "https://hooks.example.com/x", "Mode": "SOMETIMES"}},
    "journey-timeframe-days-over-30": {"JourneyLimits": {"TimeframeCap": {"Cap": 5, "Days": 31}}},
    "journey-timeframe-cap-over-100": {"JourneyLimits": {"TimeframeCap": {"Cap": 101, "Days": 7}}},
    "journey-daily-cap-over-100": {"JourneyLimits": {"DailyCap": 101}},
}


@pytest.mark.parametrize("body", list(BAD_SETTINGS.values()), ids=list(BAD_SETTINGS))
def test_invalid_settings_are_bad_request_and_change_nothing(pp, app_id, body):
    pp.update_application_settings(ApplicationId=app_id, WriteApplicationSettingsRequest=FULL_SETTINGS)
    before = pp.get_application_settings(ApplicationId=app_id)["ApplicationSettingsResource"]
    expect_error(
        pp.update_application_settings,
        "BadRequestException",
        400,
        ApplicationId=app_id,
        WriteApplicationSettingsRequest=body,
    )
    after = pp.get_application_settings(ApplicationId=app_id)["ApplicationSettingsResource"]
    assert after == before


def test_settings_limit_boundaries_are_accepted(pp, app_id):
    edge = {"Limits": {"Daily": 100, "Total": 100, "MessagesPerSecond": 20000, "MaximumDuration": 60}}
    got = pp.update_application_settings(ApplicationId=app_id, WriteApplicationSettingsRequest=edge)
    assert got["ApplicationSettingsResource"]["Limits"] == edge["Limits"]
    edge2 = {"Limits": {"MessagesPerSecond": 1}, "QuietTime": {"Start": "00:00", "End": "23:59"}}
    got = pp.update_application_settings(ApplicationId=app_id, WriteApplicationSettingsRequest=edge2)
    assert got["ApplicationSettingsResource"]["Limits"]["MessagesPerSecond"] == 1
    assert got["ApplicationSettingsResource"]["QuietTime"] == edge2["QuietTime"]

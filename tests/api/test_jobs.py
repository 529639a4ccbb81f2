"""Import and export jobs through the AWS SDK: CSV and JSON-lines imports
from file:// and http:// URLs, row failures with their line numbers, the
imported segment they define (and a campaign that reaches it over real
SMTP), exports of a segment to NDJSON part files, and refused requests."""

from __future__ import annotations

import functools
import http.server
import json
import threading
import time
from pathlib import Path

from harness import expect_error, expect_raw_error, status_of, unique

ROLE = "arn:aws:iam::000000000000:role/herald-import"


def wait_job(get, app_id, job_id, timeout_s=30.0) -> dict:
    deadline = time.monotonic() + timeout_s
    job = None
    while time.monotonic() < deadline:
        job = get(ApplicationId=app_id, JobId=job_id)
        job = job.get("ImportJobResponse") or job.get("ExportJobResponse")
        if job["JobStatus"] in ("COMPLETED", "FAILED"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} never finished: {job}")


def import_job(pp, app_id, url, fmt="CSV", **extra) -> dict:
    req = {"S3Url": url, "Format": fmt, "RoleArn": ROLE, **extra}
    resp = pp.create_import_job(ApplicationId=app_id, ImportJobRequest=req)
    assert status_of(resp) == 201
    job = resp["ImportJobResponse"]
    assert job["Type"] == "IMPORT" and job["ApplicationId"] == app_id
    assert job["Definition"]["S3Url"] == url and job["Definition"]["Format"] == fmt
    return wait_job(pp.get_import_job, app_id, job["Id"])


CSV_TEXT = (
    "ChannelType,Address,Id,User.UserId,Attributes.Plan,Demographic.Timezone,Metrics.score\n"
    "EMAIL,ada@example.org,ada,u-ada,\"gold, annual\",Europe/Paris,4.5\n"
    "EMAIL,bob@example.org,bob,u-bob,free,America/New_York,1\n"
    "EMAIL,bad@example.org,bad,u-bad,free,UTC,lots\n"
    "EMAIL,,noaddr,u-none,free,UTC,2\n"
    "EMAIL,cy@example.org,,u-cy,pro,UTC,3\n"
)


def test_csv_import_registers_endpoints_and_defines_an_imported_segment(pp, app_id, tmp_path):
    src = tmp_path / "endpoints.csv"
    src.write_text(CSV_TEXT)
    name = unique("imported")
    job = import_job(pp, app_id, f"file://{src}", RegisterEndpoints=True, DefineSegment=True, SegmentName=name)
    assert job["JobStatus"] == "COMPLETED", job
    assert job["TotalProcessed"] == 5
    assert job["TotalFailures"] == 2
    failures = job["Failures"]
    assert len(failures) == 2
    assert failures[0].startswith("line 4: ") and "Metrics.score" in failures[0], failures
    assert failures[1].startswith("line 5: ") and "Address" in failures[1], failures
    assert job["CompletedPieces"] == job["TotalPieces"] >= 1
    assert "CompletionDate" in job

    ada = pp.get_endpoint(ApplicationId=app_id, EndpointId="ada")["EndpointResponse"]
    assert ada["Address"] == "ada@example.org"
    assert ada["Attributes"]["Plan"] == ["gold, annual"]
    assert ada["User"]["UserId"] == "u-ada"
    assert ada["Demographic"]["Timezone"] == "Europe/Paris"
    assert ada["Metrics"]["score"] == 4.5
    expect_error(lambda: pp.get_endpoint(ApplicationId=app_id, EndpointId="bad"), "NotFoundException", 404)
    expect_error(lambda: pp.get_endpoint(ApplicationId=app_id, EndpointId="noaddr"), "NotFoundException", 404)

    seg_id = job["Definition"]["SegmentId"]
    seg = pp.get_segment(ApplicationId=app_id, SegmentId=seg_id)["SegmentResponse"]
    assert seg["SegmentType"] == "IMPORT"
    assert seg["Name"] == name
    imp = seg["ImportDefinition"]
    assert imp["Format"] == "CSV" and imp["S3Url"] == f"file://{src}" and imp["RoleArn"] == ROLE
    assert imp["Size"] == 3 and imp["ChannelCounts"] == {"EMAIL": 3}

    listed = pp.get_segment_import_jobs(ApplicationId=app_id, SegmentId=seg_id)["ImportJobsResponse"]["Item"]
    assert [j["Id"] for j in listed] == [job["Id"]]
    all_jobs = pp.get_import_jobs(ApplicationId=app_id)["ImportJobsResponse"]["Item"]
    assert job["Id"] in [j["Id"] for j in all_jobs]

    # A second import into the same segment adds a version; its members join.
    more = tmp_path / "more.csv"
    more.write_text("ChannelType,Address,Id\nEMAIL,dee@example.org,dee\n")
    job2 = import_job(pp, app_id, f"file://{more}", RegisterEndpoints=True, DefineSegment=True, SegmentId=seg_id)
    assert job2["JobStatus"] == "COMPLETED" and job2["TotalFailures"] == 0, job2
    seg = pp.get_segment(ApplicationId=app_id, SegmentId=seg_id)["SegmentResponse"]
    assert seg["Version"] == 2 and seg["SegmentType"] == "IMPORT" and seg["Name"] == name
    listed = pp.get_segment_import_jobs(ApplicationId=app_id, SegmentId=seg_id)["ImportJobsResponse"]["Item"]
    assert [j["Id"] for j in listed] == [job2["Id"], job["Id"]]
    page = pp.get_segment_import_jobs(ApplicationId=app_id, SegmentId=seg_id, PageSize="1")["ImportJobsResponse"]
    assert [j["Id"] for j in page["Item"]] == [job2["Id"]]
    rest = pp.get_segment_import_jobs(
        ApplicationId=app_id, SegmentId=seg_id, PageSize="1", Token=page["NextToken"]
    )["ImportJobsResponse"]
    assert [j["Id"] for j in rest["Item"]] == [job["Id"]] and "NextToken" not in rest

    # Imported segments are written by imports only.
    expect_error(
        lambda: pp.update_segment(
            ApplicationId=app_id, SegmentId=seg_id, WriteSegmentRequest={"Name": "x", "Dimensions": {}}
        ),
        "BadRequestException",
        400,
    )


def test_json_lines_import(pp, app_id, tmp_path):
    src = tmp_path / "endpoints.ndjson"
    lines = [
        {"ChannelType": "EMAIL", "Address": "j1@example.org", "Id": "j1", "Attributes": {"Plan": ["pro"]}},
        "not json",
        {"ChannelType": "SMS", "Address": "+15555550100", "Id": "j2"},
        {"ChannelType": "EMAIL", "Address": "j3@example.org", "User": {"UserId": "u-j3"}},
    ]
    src.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n\n")
    job = import_job(pp, app_id, f"file://{src}", fmt="JSON", RegisterEndpoints=True)
    assert job["JobStatus"] == "COMPLETED", job
    assert job["TotalProcessed"] == 4 and job["TotalFailures"] == 1
    assert job["Failures"][0].startswith("line 2: ")
    assert "SegmentId" not in job["Definition"]
    j1 = pp.get_endpoint(ApplicationId=app_id, EndpointId="j1")["EndpointResponse"]
    assert j1["Attributes"]["Plan"] == ["pro"]
    j2 = pp.get_endpoint(ApplicationId=app_id, EndpointId="j2")["EndpointResponse"]
    assert j2["ChannelType"] == "SMS"
    users = pp.get_user_endpoints(ApplicationId=app_id, UserId="u-j3")["EndpointsResponse"]["Item"]
    assert [u["Address"] for u in users] == ["j3@example.org"]


def serve_dir(directory: Path):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_import_from_an_http_url(pp, app_id, tmp_path):
    rows = "".join(f"EMAIL,h{i}@example.org,h{i}\n" for i in range(250))
    (tmp_path / "h.csv").write_text("ChannelType,Address,Id\n" + rows)
    server = serve_dir(tmp_path)
    try:
        port = server.server_address[1]
        job = import_job(pp, app_id, f"http://127.0.0.1:{port}/h.csv", RegisterEndpoints=True)
        assert job["JobStatus"] == "COMPLETED", job
        assert job["TotalProcessed"] == 250 and job["TotalFailures"] == 0
        assert job["TotalPieces"] == 3 and job["CompletedPieces"] == 3
        ep = pp.get_endpoint(ApplicationId=app_id, EndpointId="h249")["EndpointResponse"]
        assert ep["Address"] == "h249@example.org"
        missing = import_job(pp, app_id, f"http://127.0.0.1:{port}/nope.csv", RegisterEndpoints=True)
        assert missing["JobStatus"] == "FAILED"
        assert "404" in missing["Failures"][0]
    finally:
        server.shutdown()


def test_a_missing_file_fails_the_job_with_its_reason(pp, app_id, tmp_path):
    job = import_job(pp, app_id, f"file://{tmp_path}/absent.csv", RegisterEndpoints=True)
    assert job["JobStatus"] == "FAILED"
    assert "absent.csv" in job["Failures"][0]


def test_invalid_import_requests_are_refused_and_create_no_job(pp, app_id, raw, tmp_path):
    before = pp.get_import_jobs(ApplicationId=app_id)["ImportJobsResponse"]["Item"]
    expect_error(
        lambda: pp.create_import_job(
            ApplicationId=app_id,
            ImportJobRequest={"S3Url": "s3://bucket/key.csv", "Format": "CSV", "RoleArn": ROLE},
        ),
        "BadRequestException",
        400,
    )
    resp = raw("POST", f"/v1/apps/{app_id}/jobs/import", {"S3Url": f"file://{tmp_path}/x.csv", "RoleArn": ROLE})
    body = expect_raw_error(resp, "BadRequestException", 400)
    assert "Format" in body["Message"]
    expect_error(
        lambda: pp.create_import_job(
            ApplicationId=app_id,
            ImportJobRequest={"S3Url": f"file://{tmp_path}/x.csv", "Format": "CSV", "RoleArn": ROLE, "DefineSegment": True},
        ),
        "BadRequestException",
        400,
    )
    expect_error(
        lambda: pp.create_import_job(
            ApplicationId="0" * 32,
            ImportJobRequest={"S3Url": f"file://{tmp_path}/x.csv", "Format": "CSV", "RoleArn": ROLE},
        ),
        "NotFoundException",
        404,
    )
    after = pp.get_import_jobs(ApplicationId=app_id)["ImportJobsResponse"]["Item"]
    assert after == before
    expect_error(lambda: pp.get_import_job(ApplicationId=app_id, JobId="nope"), "NotFoundException", 404)
    expect_error(
        lambda: pp.create_export_job(
            ApplicationId=app_id, ExportJobRequest={"S3UrlPrefix": "s3://bucket/out", "RoleArn": ROLE}
        ),
        "BadRequestException",
        400,
    )
    expect_error(
        lambda: pp.create_export_job(
            ApplicationId=app_id,
            ExportJobRequest={"S3UrlPrefix": f"file://{tmp_path}/out", "RoleArn": ROLE, "SegmentId": "missing"},
        ),
        "NotFoundException",
        404,
    )
    assert pp.get_export_jobs(ApplicationId=app_id)["ExportJobsResponse"]["Item"] == []


def test_export_of_a_segment_writes_its_endpoints_as_ndjson_parts(pp, app_id, tmp_path):
    items = [
        {"Id": f"x{i}", "ChannelType": "EMAIL", "Address": f"x{i}@example.org", "Attributes": {"Plan": ["pro" if i % 3 == 0 else "free"]}}
        for i in range(30)
    ]
    pp.update_endpoints_batch(ApplicationId=app_id, EndpointBatchRequest={"Item": items})
    seg_id = pp.create_segment(
        ApplicationId=app_id,
        WriteSegmentRequest={"Name": "pros", "Dimensions": {"Attributes": {"Plan": {"Values": ["pro"]}}}},
    )["SegmentResponse"]["Id"]
    out = tmp_path / "out"
    resp = pp.create_export_job(
        ApplicationId=app_id, ExportJobRequest={"S3UrlPrefix": f"file://{out}", "RoleArn": ROLE, "SegmentId": seg_id}
    )
    assert status_of(resp) == 202
    created = resp["ExportJobResponse"]
    assert created["Type"] == "EXPORT" and created["Definition"]["SegmentId"] == seg_id
    job = wait_job(pp.get_export_job, app_id, created["Id"])
    assert job["JobStatus"] == "COMPLETED", job
    assert job["TotalProcessed"] == 10
    assert job["CompletedPieces"] == job["TotalPieces"]
    parts = sorted((out / created["Id"]).glob("part-*.json"))
    assert parts, list(out.rglob("*"))
    exported = [json.loads(line) for p in parts for line in p.read_text().splitlines()]
    assert sorted(e["Id"] for e in exported) == sorted(f"x{i}" for i in range(0, 30, 3))
    assert all(e["Attributes"]["Plan"] == ["pro"] and e["ApplicationId"] == app_id for e in exported)
    listed = pp.get_segment_export_jobs(ApplicationId=app_id, SegmentId=seg_id)["ExportJobsResponse"]["Item"]
    assert [j["Id"] for j in listed] == [created["Id"]]
    assert created["Id"] in [j["Id"] for j in pp.get_export_jobs(ApplicationId=app_id)["ExportJobsResponse"]["Item"]]

    # The whole app, no segment.
    whole = pp.create_export_job(ApplicationId=app_id, ExportJobRequest={"S3UrlPrefix": f"file://{out}", "RoleArn": ROLE})
    job = wait_job(pp.get_export_job, app_id, whole["ExportJobResponse"]["Id"])
    assert job["JobStatus"] == "COMPLETED" and job["TotalProcessed"] == 30


def test_an_export_of_an_imported_segment_has_exactly_its_members(pp, app_id, tmp_path):
    pp.update_endpoints_batch(
        ApplicationId=app_id,
        EndpointBatchRequest={"Item": [{"Id": "other", "ChannelType": "EMAIL", "Address": "other@example.org"}]},
    )
    src = tmp_path / "m.csv"
    src.write_text("ChannelType,Address,Id\nEMAIL,m1@example.org,m1\nEMAIL,m2@example.org,m2\n")
    job = import_job(pp, app_id, f"file://{src}", RegisterEndpoints=True, DefineSegment=True, SegmentName="m")
    seg_id = job["Definition"]["SegmentId"]
    out = tmp_path / "out"
    exp = pp.create_export_job(
        ApplicationId=app_id, ExportJobRequest={"S3UrlPrefix": f"file://{out}", "RoleArn": ROLE, "SegmentId": seg_id}
    )["ExportJobResponse"]
    done = wait_job(pp.get_export_job, app_id, exp["Id"])
    assert done["JobStatus"] == "COMPLETED" and done["TotalProcessed"] == 2
    ids = [json.loads(line)["Id"] for p in (out / exp["Id"]).glob("part-*.json") for line in p.read_text().splitlines()]
    assert sorted(ids) == ["m1", "m2"]
    # Deleting a member endpoint takes it out of the segment.
    pp.delete_endpoint(ApplicationId=app_id, EndpointId="m1")
    exp = pp.create_export_job(
        ApplicationId=app_id, ExportJobRequest={"S3UrlPrefix": f"file://{out}", "RoleArn": ROLE, "SegmentId": seg_id}
    )["ExportJobResponse"]
    assert wait_job(pp.get_export_job, app_id, exp["Id"])["TotalProcessed"] == 1


def test_a_csv_import_defines_a_segment_a_campaign_reaches(mpp, mail_app, smtp, tmp_path):
    tag = unique("imp")
    # Endpoints that are not imported must not receive the campaign.
    mpp.update_endpoints_batch(
        ApplicationId=mail_app,
        EndpointBatchRequest={
            "Item": [{"Id": f"{tag}-out{i}", "ChannelType": "EMAIL", "Address": f"{tag}-out{i}@example.org"} for i in range(3)]
        },
    )
    addresses = [f"{tag}-{i}@example.org" for i in range(5)]
    src = tmp_path / "campaign.csv"
    src.write_text("ChannelType,Address,Attributes.Name\n" + "".join(f"EMAIL,{a},Ada\n" for a in addresses))
    job = import_job(mpp, mail_app, f"file://{src}", RegisterEndpoints=True, DefineSegment=True, SegmentName=tag)
    assert job["JobStatus"] == "COMPLETED" and job["TotalFailures"] == 0, job
    seg_id = job["Definition"]["SegmentId"]
    subject = unique("imported")
    c = mpp.create_campaign(
        ApplicationId=mail_app,
        WriteCampaignRequest={
            "Name": unique("camp"),
            "SegmentId": seg_id,
            "MessageConfiguration": {"EmailMessage": {"Title": subject, "Body": "Hello {{Attributes.Name}}"}},
            "Schedule": {"StartTime": "IMMEDIATE", "Frequency": "ONCE"},
        },
    )["CampaignResponse"]
    deadline = time.monotonic() + 20
    state = None
    while time.monotonic() < deadline:
        state = mpp.get_campaign(ApplicationId=mail_app, CampaignId=c["Id"])["CampaignResponse"]["State"]["CampaignStatus"]
        if state == "COMPLETED":
            break
        time.sleep(0.1)
    assert state == "COMPLETED"
    got = [m for m in smtp.all() if m.message["Subject"] == subject]
    assert sorted(m.rcpt_tos[0] for m in got) == sorted(addresses)


def test_file_roots_confine_file_urls(start_server, tmp_path):
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "ok.csv").write_text("ChannelType,Address,Id\nEMAIL,r@example.org,r\n")
    (tmp_path / "secret.csv").write_text("ChannelType,Address\nEMAIL,s@example.org\n")
    server = start_server(env={"HERALD_JOBS_FILE_ROOTS": f"{allowed},/nonexistent-root"})
    pp = server.client()
    app_id = pp.create_app(CreateApplicationRequest={"Name": unique("roots")})["ApplicationResponse"]["Id"]
    err = expect_error(
        lambda: pp.create_import_job(
            ApplicationId=app_id,
            ImportJobRequest={"S3Url": f"file://{tmp_path}/secret.csv", "Format": "CSV", "RoleArn": ROLE},
        ),
        "BadRequestException",
        400,
    )
    assert "not under" in err["Message"]
    expect_error(
        lambda: pp.create_export_job(
            ApplicationId=app_id, ExportJobRequest={"S3UrlPrefix": f"file://{tmp_path}/out", "RoleArn": ROLE}
        ),
        "BadRequestException",
        400,
    )
    job = import_job(pp, app_id, f"file://{allowed}/ok.csv", RegisterEndpoints=True)
    assert job["JobStatus"] == "COMPLETED" and job["TotalProcessed"] == 1
    exp = pp.create_export_job(
        ApplicationId=app_id, ExportJobRequest={"S3UrlPrefix": f"file://{allowed}/out", "RoleArn": ROLE}
    )["ExportJobResponse"]
    assert wait_job(pp.get_export_job, app_id, exp["Id"])["JobStatus"] == "COMPLETED"
    assert list((allowed / "out" / exp["Id"]).glob("part-*.json"))


def test_a_job_interrupted_by_a_crash_is_failed_at_restart(start_server):
    release = threading.Event()

    class Stalling(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ChannelType,Address\nEMAIL,z@example.org\n")
            self.wfile.flush()
            release.wait(30)

        def log_message(self, *a):
            pass

    source = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Stalling)
    threading.Thread(target=source.serve_forever, daemon=True).start()
    try:
        server = start_server()
        pp = server.client()
        app_id = pp.create_app(CreateApplicationRequest={"Name": unique("crash")})["ApplicationResponse"]["Id"]
        url = f"http://127.0.0.1:{source.server_address[1]}/stall.csv"
        job_id = pp.create_import_job(
            ApplicationId=app_id, ImportJobRequest={"S3Url": url, "Format": "CSV", "RoleArn": ROLE}
        )["ImportJobResponse"]["Id"]
        deadline = time.monotonic() + 10
        while pp.get_import_job(ApplicationId=app_id, JobId=job_id)["ImportJobResponse"]["JobStatus"] != "PROCESSING":
            assert time.monotonic() < deadline, "the job never started processing"
            time.sleep(0.05)
        server.kill()
        server.restart()
        job = server.client().get_import_job(ApplicationId=app_id, JobId=job_id)["ImportJobResponse"]
        assert job["JobStatus"] == "FAILED"
        assert "stopped" in job["Failures"][0]
        assert "CompletionDate" in job
    finally:
        release.set()
        source.shutdown()

"""Fixtures for herald's API conformance suite.

- `herald_server`: one server for the whole session (tests share it but each
  creates its own app, so they stay independent).
- `pp`: a boto3 Pinpoint client for that server.
- `app` / `make_app`: a fresh app per test, deleted afterwards.
- `start_server`: a dedicated server on a data dir the test controls, for
  restart and crash tests; stopped (SIGKILL) after the test if still running.
- `raw`: SigV4-signed raw requests against the shared server.

A failing test gets the tail of every herald log it touched in its report.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Optional

import pytest

import harness
from harness import HeraldServer, delete_app_quietly, signed_request, unique
from smtp_peer import SmtpPeer

IDENTITY = "arn:aws:ses:us-east-1:123456789012:identity/example.com"


def _track(request, server: HeraldServer) -> None:
    servers = getattr(request.node, "_herald_servers", None)
    if servers is None:
        servers = []
        request.node._herald_servers = servers
    if server not in servers:
        servers.append(server)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for server in getattr(item, "_herald_servers", []):
            report.sections.append((f"herald log ({server.log_path})", server.log_tail()))


@pytest.fixture(scope="session")
def _shared_server(tmp_path_factory):
    base = tmp_path_factory.mktemp("herald-shared")
    server = HeraldServer(base / "data", base / "herald.log")
    try:
        server.start()
    except AssertionError as e:
        # Nothing can pass without it: stop the session with the reason, once.
        pytest.exit(f"the shared herald server failed to start:\n{e}", returncode=3)
    yield server
    if server.running:
        server.stop()


@pytest.fixture
def herald_server(request, _shared_server) -> HeraldServer:
    assert _shared_server.running, "the shared herald server has died\n" + _shared_server.log_tail()
    _track(request, _shared_server)
    return _shared_server


@pytest.fixture
def pp(herald_server):
    return herald_server.client()


@pytest.fixture
def raw(herald_server):
    """`raw(method, path, body=None, **kw)` -> requests.Response, signed for the shared server."""
    return functools.partial(signed_request, herald_server.url)


@pytest.fixture
def make_app(pp):
    """Factory: `make_app(name=None, tags=None)` -> ApplicationResponse; deleted at teardown."""
    created = []

    def make(name: Optional[str] = None, tags: Optional[dict] = None) -> dict:
        body = {"Name": name or unique("app")}
        if tags is not None:
            body["tags"] = tags
        resp = pp.create_app(CreateApplicationRequest=body)
        app = resp["ApplicationResponse"]
        created.append(app["Id"])
        return app

    yield make
    for app_id in created:
        delete_app_quietly(pp, app_id)


@pytest.fixture
def app(make_app) -> dict:
    """A fresh app (ApplicationResponse dict: Id, Arn, Name, tags, CreationDate)."""
    return make_app()


@pytest.fixture
def app_id(app) -> str:
    return app["Id"]


@pytest.fixture
def start_server(request, tmp_path):
    """Factory: `start_server(data_dir=None, env=None)` -> a started, dedicated HeraldServer.

    The same HeraldServer object can be `.stop_gracefully()`-ed / `.kill()`-ed and
    `.restart()`-ed on the same data dir. Anything still running at teardown is
    SIGKILLed.
    """
    servers = []

    def start(data_dir: Optional[Path] = None, name: str = "dedicated", env: Optional[dict] = None) -> HeraldServer:
        base = tmp_path / f"{name}-{len(servers)}"
        base.mkdir(parents=True, exist_ok=True)
        server = HeraldServer(Path(data_dir) if data_dir else base / "data", base / "herald.log", extra_env=env)
        servers.append(server)
        _track(request, server)
        server.start()
        return server

    yield start
    for server in servers:
        server.kill_quietly()


# ---- messaging: a loopback SMTP server and a herald that sends to it ----


@pytest.fixture(scope="session")
def smtp():
    peer = SmtpPeer().start()
    yield peer
    peer.stop()


@pytest.fixture(scope="session")
def mail_server(smtp, tmp_path_factory):
    base = tmp_path_factory.mktemp("herald-mail")
    server = HeraldServer(
        base / "data",
        base / "herald.log",
        extra_env={
            "HERALD_SMTP_URL": smtp.url,
            "HERALD_DELIVERY_RETRY_BASE_MS": "20",
            "HERALD_DELIVERY_RETRY_MAX_MS": "100",
            "HERALD_DELIVERY_ATTEMPTS_MAX": "4",
            "HERALD_TRACKING_LIST_UNSUBSCRIBE_ON_DIRECT": "true",
            "HERALD_PUBLIC_URL": "http://127.0.0.1:{port}",
        },
    )
    server.start()
    yield server
    server.kill_quietly()


@pytest.fixture
def mpp(request, mail_server):
    request.node._herald_servers = [mail_server]
    return mail_server.client()


@pytest.fixture
def mail_app(mpp):
    app_id = mpp.create_app(CreateApplicationRequest={"Name": unique("mail")})["ApplicationResponse"]["Id"]
    mpp.update_email_channel(
        ApplicationId=app_id,
        EmailChannelRequest={"FromAddress": "news@example.com", "Identity": IDENTITY},
    )
    yield app_id
    mpp.delete_app(ApplicationId=app_id)


def pytest_report_header(config):
    return f"herald binary: {harness.herald_bin()}"

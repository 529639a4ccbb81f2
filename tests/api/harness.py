"""Process harness and wire helpers for herald's API conformance suite.

Starts the real `herald` binary on loopback, waits for `/health`, hands out
boto3 clients, signs raw requests with botocore's SigV4 signer, and checks the
Pinpoint error wire format (`X-Amzn-ErrorType` header plus a
`{"Message", "RequestID"}` body).

Every wait here is bounded; every process started here is ended by its own
handle (never by name).
"""

from __future__ import annotations

import atexit
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Optional
from urllib.parse import quote

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.config
import botocore.credentials
import pytest
import requests
from botocore.exceptions import BotoCoreError, ClientError

REPO_ROOT = Path(__file__).resolve().parents[2]

ACCESS_KEY_ID = "AKIAHERALDTEST000001"
SECRET_ACCESS_KEY = "heraldtestsecret0000000000000000000000"
REGION = "us-east-1"
SIGNING_NAME = "mobiletargeting"

READY_TIMEOUT_S = 60.0
READY_POLL_INTERVAL_S = 0.05
STOP_TIMEOUT_S = 30.0
HTTP_TIMEOUT_S = 30.0
LOG_TAIL_LINES = 80

ISO_8601_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")
APP_ID = re.compile(r"^[0-9a-f]{32}$")


# --------------------------------------------------------------------------
# Locating and running the binary
# --------------------------------------------------------------------------


def herald_bin() -> Path:
    """`$HERALD_BIN`, else `$CARGO_TARGET_DIR/debug/herald`, else `<repo>/target/debug/herald`."""
    explicit = os.environ.get("HERALD_BIN")
    if explicit:
        return Path(explicit)
    target_dir = os.environ.get("CARGO_TARGET_DIR")
    if target_dir:
        return Path(target_dir) / "debug" / "herald"
    return REPO_ROOT / "target" / "debug" / "herald"


def require_herald_bin() -> Path:
    """Stop the whole pytest session at once, with a clear message, if there is no binary."""
    path = herald_bin()
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.exit(
            f"herald binary not found or not executable at {path}. Build it with "
            "`cargo build -p herald-node` (or set HERALD_BIN / CARGO_TARGET_DIR).",
            returncode=3,
        )
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Every server process this module starts, so a crashed test run never leaves one behind.
_LIVE: "set[HeraldServer]" = set()
_LIVE_LOCK = threading.Lock()


def _kill_leftovers() -> None:
    with _LIVE_LOCK:
        servers = list(_LIVE)
    for s in servers:
        s.kill_quietly()


atexit.register(_kill_leftovers)


class HeraldServer:
    """One `herald serve` process on a data directory that outlives restarts."""

    def __init__(
        self,
        data_dir: Path,
        log_path: Path,
        extra_env: Optional[dict] = None,
        extra_args: Optional[list] = None,
    ):
        self.data_dir = Path(data_dir)
        self.log_path = Path(log_path)
        self.extra_env = dict(extra_env or {})
        self.extra_args = [str(a) for a in (extra_args or [])]
        self.proc: Optional[subprocess.Popen] = None
        self.port: Optional[int] = None
        self.starts = 0
        self._clients: dict = {}

    # -- lifecycle ---------------------------------------------------------

    @property
    def url(self) -> str:
        assert self.port is not None, "server not started"
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait: bool = True) -> "HeraldServer":
        """Starts the process; with `wait`, returns once /health answers
        (a cluster node is not ready until its groups have leaders, so start
        every node with `wait=False`, then `wait_ready()` each)."""
        assert self.proc is None or self.proc.poll() is not None, "server already running"
        binary = require_herald_bin()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self._clients = {}
        self.starts += 1
        env = dict(os.environ)
        env.update(
            {
                "HERALD_ACCESS_KEY_ID": ACCESS_KEY_ID,
                "HERALD_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
                "RUST_LOG": "info",
                "RUST_BACKTRACE": "1",
            }
        )
        # `{port}` in a value is this start's HTTP port (e.g. HERALD_PUBLIC_URL).
        env.update({k: v.replace("{port}", str(self.port)) for k, v in self.extra_env.items()})
        cmd = [
            str(binary),
            "serve",
            "--data-dir",
            str(self.data_dir),
            "--http",
            f"127.0.0.1:{self.port}",
            *self.extra_args,
        ]
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== start #{self.starts}: {' '.join(cmd)} =====\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=str(self.data_dir.parent),
            )
        with _LIVE_LOCK:
            _LIVE.add(self)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        last_error = "no attempt"
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                raise AssertionError(
                    f"herald exited with code {code} before it was ready\n{self.log_tail()}"
                )
            try:
                r = requests.get(self.url + "/health", timeout=1.0)
                if r.status_code == 200:
                    return
                last_error = f"GET /health -> {r.status_code}"
            except requests.RequestException as e:  # not listening yet
                last_error = repr(e)
            time.sleep(READY_POLL_INTERVAL_S)
        self.kill_quietly()
        raise AssertionError(
            f"herald not ready after {READY_TIMEOUT_S:.0f}s (last: {last_error})\n{self.log_tail()}"
        )

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> int:
        """Graceful stop with SIGTERM; returns the exit code. Fails (after a SIGKILL) on timeout."""
        assert self.proc is not None, "server not started"
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.kill_quietly()
                raise AssertionError(
                    f"herald did not exit within {timeout_s:.0f}s of SIGTERM\n{self.log_tail()}"
                )
        self._forget()
        return self.proc.returncode

    def stop_gracefully(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        code = self.stop(timeout_s)
        assert code == 0, f"herald exited with {code} after SIGTERM (want 0)\n{self.log_tail()}"

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to flush anything."""
        assert self.proc is not None, "server not started"
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        self._forget()

    def restart(self, wait: bool = True) -> "HeraldServer":
        return self.start(wait)

    def kill_quietly(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGKILL)
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except Exception:
                pass
        self._forget()

    def _forget(self) -> None:
        with _LIVE_LOCK:
            _LIVE.discard(self)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as e:
            return f"(no herald log at {self.log_path}: {e})"
        tail = text.splitlines()[-lines:]
        return f"--- last {len(tail)} lines of {self.log_path} ---\n" + "\n".join(tail)

    # -- clients -----------------------------------------------------------

    def client(self, region: str = REGION, access_key: str = ACCESS_KEY_ID, secret_key: str = SECRET_ACCESS_KEY):
        key = (self.url, region, access_key, secret_key)
        if key not in self._clients:
            self._clients[key] = make_client(self.url, region, access_key, secret_key)
        return self._clients[key]


def make_client(url: str, region: str = REGION, access_key: str = ACCESS_KEY_ID, secret_key: str = SECRET_ACCESS_KEY):
    return boto3.client(
        "pinpoint",
        endpoint_url=url,
        region_name=region,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=botocore.config.Config(
            retries={"max_attempts": 1},
            connect_timeout=5,
            read_timeout=HTTP_TIMEOUT_S,
            max_pool_connections=16,
        ),
    )


# --------------------------------------------------------------------------
# Raw signed requests (for bodies boto3 would never send)
# --------------------------------------------------------------------------


def signed_request(
    base_url: str,
    method: str,
    path: str,
    body: Optional[Any] = None,
    *,
    query: str = "",
    content_type: Optional[str] = "application/json",
    access_key: str = ACCESS_KEY_ID,
    secret_key: str = SECRET_ACCESS_KEY,
    region: str = REGION,
    service: str = SIGNING_NAME,
    send_body: Optional[bytes] = None,
    extra_headers: Optional[dict] = None,
) -> requests.Response:
    """Sign with botocore's SigV4Auth and send with `requests`.

    `path` must already be percent-encoded. `body` may be bytes, str or a
    JSON-serialisable object. `send_body`, when given, replaces the signed
    body on the wire (to test that the payload hash is verified).
    """
    if body is None:
        data = b""
    elif isinstance(body, bytes):
        data = body
    elif isinstance(body, str):
        data = body.encode()
    else:
        data = json.dumps(body).encode()
    url = base_url + path + (("?" + query) if query else "")
    headers = {}
    if data and content_type:
        headers["Content-Type"] = content_type
    headers.update(extra_headers or {})
    req = botocore.awsrequest.AWSRequest(method=method, url=url, data=data, headers=headers)
    creds = botocore.credentials.Credentials(access_key, secret_key)
    botocore.auth.SigV4Auth(creds, service, region).add_auth(req)
    return requests.request(
        method,
        url,
        data=send_body if send_body is not None else data,
        headers=dict(req.headers.items()),
        timeout=HTTP_TIMEOUT_S,
    )


def enc(segment: str) -> str:
    """Percent-encode one path segment the way botocore does (`/` and `:` included)."""
    return quote(segment, safe="-_.~")


# --------------------------------------------------------------------------
# Assertions
# --------------------------------------------------------------------------


def status_of(resp: dict) -> int:
    return resp["ResponseMetadata"]["HTTPStatusCode"]


def request_id_of(resp: dict) -> str:
    return resp["ResponseMetadata"].get("RequestId", "")


def assert_iso8601(value: Any, what: str = "date") -> None:
    assert isinstance(value, str) and ISO_8601_UTC.match(value), f"{what} is not ISO 8601: {value!r}"


def expect_error(call: Callable, code: str, status: int, *args, modeled: bool = True, **kwargs) -> dict:
    """Call a boto3 operation that must fail with Pinpoint error `code`/`status`.

    Checks the `X-Amzn-ErrorType` header, that botocore resolved the code (not a
    generic status-code error), a non-empty message, and, for modeled errors,
    the `Message`/`RequestID` body members that botocore lifts into the response.
    Returns the error response dict.
    """
    with pytest.raises(ClientError) as info:
        call(*args, **kwargs)
    err = info.value.response
    meta = err.get("ResponseMetadata", {})
    headers = {k.lower(): v for k, v in meta.get("HTTPHeaders", {}).items()}
    got = (err.get("Error", {}).get("Code"), meta.get("HTTPStatusCode"))
    assert got == (code, status), f"want {code}/{status}, got {got}: {err}"
    error_type = headers.get("x-amzn-errortype", "")
    assert error_type.split(":")[0] == code, f"X-Amzn-ErrorType header is {error_type!r}, want {code}"
    message = err.get("Error", {}).get("Message")
    assert isinstance(message, str) and message.strip(), f"error without a message: {err}"
    if modeled:
        assert isinstance(err.get("Message"), str) and err["Message"].strip(), f"body has no Message: {err}"
        assert isinstance(err.get("RequestID"), str) and err["RequestID"].strip(), f"body has no RequestID: {err}"
    return err


def expect_raw_error(resp: requests.Response, code: str, status: int) -> dict:
    """Check a raw HTTP error response for Pinpoint's error wire format; returns the body."""
    assert resp.status_code == status, f"want HTTP {status}, got {resp.status_code}: {resp.text[:500]}"
    error_type = resp.headers.get("X-Amzn-ErrorType", "")
    assert error_type.split(":")[0] == code, f"X-Amzn-ErrorType header is {error_type!r}, want {code}"
    try:
        body = resp.json()
    except ValueError:
        raise AssertionError(f"error body is not JSON: {resp.text[:500]!r}")
    assert isinstance(body, dict), f"error body is not an object: {body!r}"
    assert isinstance(body.get("Message"), str) and body["Message"].strip(), f"no Message in {body}"
    assert isinstance(body.get("RequestID"), str) and body["RequestID"].strip(), f"no RequestID in {body}"
    return body


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def delete_app_quietly(client, app_id: str) -> None:
    try:
        client.delete_app(ApplicationId=app_id)
    except (ClientError, BotoCoreError):
        pass


def list_all_apps(client, pages_max: int = 200) -> list:
    apps, token = [], None
    for _ in range(pages_max):
        body = client.get_apps(**({"Token": token} if token else {}))["ApplicationsResponse"]
        apps += body.get("Item", [])
        token = body.get("NextToken")
        if not token:
            return apps
    raise AssertionError(f"GetApps still had a NextToken after {pages_max} pages")


def delete_apps_named(client, name: str) -> list:
    """Delete every app called `name`; returns their ids (for leak checks after a rejected create)."""
    ids = [a["Id"] for a in list_all_apps(client) if a.get("Name") == name]
    for app_id in ids:
        delete_app_quietly(client, app_id)
    return ids

"""Chaos tests: real herald processes, real RocksDB, real QUIC on loopback.

A failing test gets the tail of the log of every node it listed in
`request.node._herald_servers`.
"""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from support import three_nodes  # noqa: E402


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for server in getattr(item, "_herald_servers", []):
            report.sections.append((f"herald log ({server.log_path})", server.log_tail()))


@pytest.fixture
def cluster(tmp_path, request):
    """Three nodes; see `support.three_nodes`."""
    with three_nodes(tmp_path, request) as c:
        yield c

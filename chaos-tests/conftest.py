"""Chaos tests: real herald processes, real RocksDB, real QUIC on loopback.

A failing test gets the tail of the log of every node it listed in
`request.node._herald_servers`.
"""

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for server in getattr(item, "_herald_servers", []):
            report.sections.append((f"herald log ({server.log_path})", server.log_tail()))

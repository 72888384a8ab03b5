"""Concurrent reads against the sandbox: the same records as one worker, none lost or doubled, parents listed once."""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from typing import Any, Dict, Iterator, List
from urllib.parse import parse_qs, urlsplit

import pytest
from airbyte_cdk.models import SyncMode
from airbyte_cdk.test.catalog_builder import CatalogBuilder
from airbyte_cdk.test.entrypoint_wrapper import read
from urllib3.connection import HTTPConnection

from sandbox import SandboxOptions, SandboxServer
from source_northpass_lms import SourceNorthpassLms
from source_northpass_lms.paging import MAX_PAGES_IN_FLIGHT

STREAMS = ("people", "courses", "course_enrollments")


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    # 500 people (5 pages), 150 courses (2 pages, so the shared listing pages too), no server-side limit.
    with SandboxServer(SandboxOptions(seed=7, people=500, courses=150, requests_per_second=None)) as sb:
        yield sb


def sync(sandbox: SandboxServer, num_workers: int) -> Dict[str, List[str]]:
    """Every record of every stream as canonical JSON, in the order emitted."""
    config = {"api_key": "sandbox-key", "base_url": sandbox.base_url, "num_workers": num_workers}
    config["requests_per_second"] = 1000
    builder = CatalogBuilder()
    for name in STREAMS:
        builder.with_stream(name, SyncMode.full_refresh)
    configured = builder.build()
    output = read(SourceNorthpassLms(configured, config, None), config, configured)
    assert not output.errors, [error.trace.error.message for error in output.errors]
    records: Dict[str, List[str]] = {name: [] for name in STREAMS}
    for message in output.records:
        records[message.record.stream].append(json.dumps(message.record.data, sort_keys=True))
    return records


def test_given_eight_workers_when_read_then_exactly_the_records_of_one_worker_none_lost_or_doubled(
    sandbox: SandboxServer,
) -> None:
    one = sync(sandbox, num_workers=1)
    eight = sync(sandbox, num_workers=8)

    for name in STREAMS:
        assert len(one[name]) == len(sandbox.expected_records(name)), name
        assert Counter(eight[name]) == Counter(one[name]), name  # same multiset: nothing lost, nothing doubled
        assert len(set(eight[name])) == len(eight[name]), name


def pages_requested(stats: Dict[str, Any]) -> Dict[str, Counter[int]]:
    """How many times each page of each list was requested."""
    pages: Dict[str, Counter[int]] = {}
    for entry in stats["requests_log"]:
        target = urlsplit(entry["target"])
        page = int(parse_qs(target.query).get("page", ["1"])[0])
        pages.setdefault(target.path, Counter())[page] += 1
    return pages


def test_given_courses_selected_with_their_enrollments_when_read_by_eight_workers_then_every_page_requested_once(
    sandbox: SandboxServer,
) -> None:
    sandbox.reset_stats()

    sync(sandbox, num_workers=8)

    stats = sandbox.stats()
    assert stats["requests"] <= len(stats["requests_log"])  # the log holds every request
    per_course = Counter(record["course_id"] for record in sandbox.expected_records("course_enrollments"))
    lists = {"/v2/people": 5, "/v2/courses": 2}  # the course list once, for the courses and their enrollments
    for course in sandbox.expected_records("courses"):
        lists[f"/v2/courses/{course['id']}/enrollments"] = max(1, math.ceil(per_course[course["id"]] / 100))
    requested = pages_requested(stats)
    assert set(requested) == set(lists)
    for path, pages in lists.items():
        assert [requested[path][page] for page in range(1, pages + 1)] == [1] * pages, path
        # Read ahead at 1000 requests/s: a long list may cost a few pages past its end, never a page twice.
        past_the_end = [page for page in requested[path] if page > pages]
        assert all(requested[path][page] == 1 for page in past_the_end), path
        assert len(past_the_end) < MAX_PAGES_IN_FLIGHT, path
    statuses = Counter(entry["status"] for entry in stats["requests_log"])
    assert set(statuses) <= {"200", "404"}


def test_given_connections_slow_to_open_when_a_long_list_is_read_ahead_then_never_over_the_limit_at_the_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A new connection is opened each time the read-ahead widens. Stamped before it opens, such a request arrives
    # 0.3 s after its stamp while the next ones, on open connections, arrive at once: 11 in the server's second.
    open_connection = HTTPConnection.connect

    def slow_connect(self: HTTPConnection) -> None:
        time.sleep(0.3)
        open_connection(self)

    monkeypatch.setattr(HTTPConnection, "connect", slow_connect)
    options = SandboxOptions(seed=3, people=3_000, courses=2, requests_per_second=10, latency_ms=250)
    with SandboxServer(options) as sandbox:
        config = {"api_key": "sandbox-key", "base_url": sandbox.base_url}
        configured = CatalogBuilder().with_stream("people", SyncMode.full_refresh).build()

        output = read(SourceNorthpassLms(configured, config, None), config, configured)

        stats = sandbox.stats()
    assert not output.errors
    assert len(output.records) == 3_000
    assert stats["by_status"].get("429", 0) == 0 and stats["by_status"]["200"] == 30
    assert stats["max_in_window"] <= 10

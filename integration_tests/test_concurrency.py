"""Concurrent reads against the sandbox: the same records as one worker, none lost or doubled, parents listed once."""

from __future__ import annotations

import json
import math
from collections import Counter
from typing import Dict, Iterator, List

import pytest
from airbyte_cdk.models import SyncMode
from airbyte_cdk.test.catalog_builder import CatalogBuilder
from airbyte_cdk.test.entrypoint_wrapper import read

from integration_tests.sandbox import SandboxOptions, SandboxServer
from source_northpass_lms import SourceNorthpassLms

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


def test_given_courses_selected_with_their_enrollments_when_read_by_eight_workers_then_course_list_requested_once(
    sandbox: SandboxServer,
) -> None:
    sandbox.reset_stats()

    sync(sandbox, num_workers=8)

    stats = sandbox.stats()
    courses_pages = math.ceil(len(sandbox.expected_records("courses")) / 100)
    assert stats["by_path"]["/v2/courses"] == courses_pages == 2
    per_course = Counter(record["course_id"] for record in sandbox.expected_records("course_enrollments"))
    enrollment_floor = sum(max(1, math.ceil(per_course[c["id"]] / 100)) for c in sandbox.expected_records("courses"))
    assert stats["by_path"]["/v2/courses/{id}/enrollments"] == enrollment_floor
    assert stats["by_path"]["/v2/people"] == 5

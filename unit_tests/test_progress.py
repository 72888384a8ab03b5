"""Progress lines on long syncs: one report per interval, naming each stream that moved; silent otherwise. A child
stream that counted its parents says how many are done and the time left, and gets an ESTIMATE with each report."""

from __future__ import annotations

import functools
import json
import re
from typing import List

import pytest
import requests_mock
from airbyte_cdk.models import AirbyteEstimateTraceMessage, AirbyteMessage, EstimateType, TraceType, Type
from airbyte_cdk.sources.message import InMemoryMessageRepository

from source_northpass_lms import source as source_module
from source_northpass_lms.progress import SyncProgress

from .conftest import API, jsonapi_page, make_config, person, records_of, run_read


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_given_pages_within_the_interval_then_silent_and_after_it_one_report_per_active_stream() -> None:
    repository, clock, requests = InMemoryMessageRepository(), FakeClock(), [0]
    progress = SyncProgress(repository, lambda: requests[0], interval=30, clock=clock)

    for _ in range(3):
        requests[0] += 1
        progress.page_read("people", 100)
    assert list(repository.consume_queue()) == []

    clock.now += 30
    requests[0] += 2
    progress.page_read("course_enrollments", 40)
    (message,) = list(repository.consume_queue())
    report = message.log.message
    assert "0.2 requests/s over the last 30 s" in report  # 5 requests in 30 s
    assert "people: 300 records, 3 pages so far" in report
    assert "course_enrollments: 40 records, 1 pages so far" in report

    clock.now += 30
    progress.page_read("course_enrollments", 10)
    (message,) = list(repository.consume_queue())
    assert "people" not in message.log.message  # it did not move in the last interval
    assert "course_enrollments: 50 records, 2 pages so far" in message.log.message


def test_given_a_sync_shorter_than_the_interval_then_no_progress_lines(http: requests_mock.Mocker) -> None:
    http.get(f"{API}/people", json=jsonapi_page([person(1)]))

    output = run_read(make_config(), ["people"])

    assert len(records_of(output, "people")) == 1
    assert not [m for m in output.logs if m.log.message.startswith("Progress:")]


def estimates_of(messages: List[AirbyteMessage]) -> List[AirbyteEstimateTraceMessage]:
    return [m.trace.estimate for m in messages if m.type == Type.TRACE and m.trace.type == TraceType.ESTIMATE]


def test_given_a_child_with_its_parents_counted_when_the_interval_passes_then_done_of_total_time_left_and_estimate() -> (
    None
):
    repository, clock = InMemoryMessageRepository(), FakeClock()
    progress = SyncProgress(repository, lambda: 0, interval=30, clock=clock)
    progress.parents_to_read("transcripts", "people", 30_000)

    # One parent every 0.25 s (4 people/s), each one page of 3 records in 1,000 bytes; a report every 120 parents.
    for _ in range(12_000):
        clock.now += 0.2
        progress.page_read("transcripts", 3, 1_000)
        clock.now += 0.05
        progress.parent_read("transcripts")
    messages = list(repository.consume_queue())

    *_, report, estimate = messages
    # 18,000 people left at 4 people/s (11,999 since the first one done, in 2,999.75 s): 75 minutes.
    assert "  transcripts: 12,000 of 30,000 people read, 36,000 records, about 1 h 15 min left at 4.0 people/s" in (
        report.log.message.splitlines()
    )
    assert estimate.trace.estimate == AirbyteEstimateTraceMessage(
        name="transcripts", type=EstimateType.STREAM, namespace=None, row_estimate=90_000, byte_estimate=30_000_000
    )
    assert len(estimates_of(messages)) == 100  # one with each report: 12,000 parents, a report every 120


def test_given_a_child_before_its_second_parent_or_without_a_count_then_no_time_left_and_no_estimate_without_a_parent() -> (
    None
):
    repository, clock = InMemoryMessageRepository(), FakeClock()
    progress = SyncProgress(repository, lambda: 0, interval=30, clock=clock)
    progress.parents_to_read("course_enrollments", "courses", 300)
    progress.parents_to_read("group_memberships", "groups", 40)
    progress.page_read("course_enrollments", 100, 5_000)
    progress.parent_read("course_enrollments")
    progress.page_read("group_memberships", 100, 4_000)  # its first group has more than a page
    progress.page_read("course_activities", 7, 900)  # no count of its parents (yet): today's line

    clock.now += 30
    progress.page_read("people", 100, 20_000)
    messages = list(repository.consume_queue())

    lines = messages[0].log.message.splitlines()
    assert "  course_enrollments: 1 of 300 courses read, 100 records" in lines  # a pace needs two parents
    assert "  group_memberships: 0 of 40 groups read, 100 records" in lines
    assert "  course_activities: 7 records, 1 pages so far, 0.0 pages/s" in lines
    assert "  people: 100 records, 1 pages so far, 0.0 pages/s" in lines
    assert estimates_of(messages) == [
        AirbyteEstimateTraceMessage(
            name="course_enrollments", type=EstimateType.STREAM, row_estimate=30_000, byte_estimate=1_500_000
        )
    ]


def test_given_transcripts_read_with_a_tiny_interval_then_lines_count_people_and_the_last_estimate_is_exact(
    http: requests_mock.Mocker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(source_module, "SyncProgress", functools.partial(SyncProgress, interval=0))
    http.get(f"{API}/people", json=jsonapi_page([person(i) for i in range(1, 6)]))
    items = [{"id": f"item-{n}", "type": "transcript_items", "attributes": {"name": "Course"}} for n in (1, 2)]
    body = json.dumps(jsonapi_page(items))
    for index in range(1, 6):
        http.get(f"{API}/transcripts/person-{index:04d}", text=body)

    output = run_read(make_config(), ["transcripts"])

    assert len(records_of(output, "transcripts")) == 10
    reports = [m.log.message for m in output.logs if m.log.message.startswith("Progress:")]
    assert any(re.search(r"  transcripts: \d of 5 people read, \d+ records", report) for report in reports)
    estimates = [e for e in estimates_of(output.trace_messages) if e.name == "transcripts"]
    assert estimates and all(e.row_estimate and e.byte_estimate for e in estimates)
    # The last parent done: every record and byte is counted, nothing is extrapolated.
    assert (estimates[-1].row_estimate, estimates[-1].byte_estimate) == (10, 5 * len(body))

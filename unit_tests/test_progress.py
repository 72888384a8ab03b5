"""Progress lines on long syncs: one report per interval, naming each stream that moved; silent otherwise."""

from __future__ import annotations

import requests_mock
from airbyte_cdk.sources.message import InMemoryMessageRepository

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

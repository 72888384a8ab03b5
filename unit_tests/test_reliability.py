"""Faults of the API and the network, through the Source with requests-mock: every record once, or a clear error.

The CDK sleeps in `rate_limiting.time.sleep` between retries; tests replace it with a recorder, so they
assert each wait exactly (Retry-After honoured, backoff growing) without spending it.
"""

from __future__ import annotations

import random
from types import SimpleNamespace
from typing import Any, Dict, List
from urllib.parse import urlsplit

import pytest
import requests
import requests_mock
from airbyte_cdk.models import AirbyteStreamStatus
from airbyte_cdk.sources.streams.http import rate_limiting

from source_northpass_lms.errors import KEY_REJECTED, MAX_BACKOFF_SECONDS, NorthpassBackoff, parse_retry_after

from .conftest import (
    API,
    API_KEY,
    NOT_FOUND,
    UNAUTHORIZED,
    course,
    enrollment,
    jsonapi_page,
    make_config,
    person,
    records_of,
    run_read,
    stream_error,
)

HTML_502 = "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"
FOREIGN = "https://evil.example.invalid"


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> List[float]:
    """Every wait the CDK's retry loop asks for, recorded instead of slept."""
    recorded: List[float] = []
    fake_time = SimpleNamespace(sleep=recorded.append)
    monkeypatch.setattr(rate_limiting, "time", fake_time)
    return recorded


def _page(*resources: Dict[str, Any], next_url: str | None = None) -> Dict[str, Any]:
    return {"json": jsonapi_page(resources, next_url), "status_code": 200}


def _statuses(output: Any, stream: str) -> List[AirbyteStreamStatus]:
    return [
        m.trace.stream_status.status
        for m in output.trace_messages
        if m.trace.stream_status and m.trace.stream_status.stream_descriptor.name == stream
    ]


# ----------------------------------------------------------------------------------------------- 429


def test_given_429_with_retry_after_when_read_then_waits_at_least_the_header_and_gets_every_record(
    http: requests_mock.Mocker, sleeps: List[float]
) -> None:
    http.get(
        f"{API}/people",
        [{"status_code": 429, "headers": {"Retry-After": "7"}, "json": {"errors": []}}, _page(person(1), person(2))],
    )

    output = run_read(make_config(retry_budget_seconds=60), ["people"])

    assert [r["id"] for r in records_of(output, "people")] == ["person-0001", "person-0002"]
    assert len(sleeps) == 1 and sleeps[0] >= 7
    assert not output.errors


def test_given_retry_after_as_http_date_when_parsed_then_seconds_until_it() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past: retry now
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("soon") is None


def test_given_retry_after_longer_than_the_retry_budget_when_backing_off_then_wait_capped_at_the_budget() -> None:
    response = requests.Response()
    response.status_code = 429
    response.headers["Retry-After"] = "86400"

    assert NorthpassBackoff(1.0, max_wait_seconds=600).backoff_time(response, 1) == 600


def test_given_429_burst_without_retry_after_when_read_then_backs_off_exponentially_and_never_gives_up_early(
    http: requests_mock.Mocker, sleeps: List[float]
) -> None:
    http.get(f"{API}/people", [{"status_code": 429, "json": {"errors": []}}] * 6 + [_page(person(1))])

    output = run_read(make_config(retry_budget_seconds=60, backoff_base_seconds=0.5), ["people"])

    assert len(records_of(output, "people")) == 1 and not output.errors
    assert len(sleeps) == 6
    # The CDK adds 1 s to every wait; ours doubles from 0.5 s with full jitter (half to all of the step).
    ours = [s - 1 for s in sleeps]
    for attempt, wait in enumerate(ours, start=1):
        step = 0.5 * 2 ** (attempt - 1)
        assert step / 2 <= wait <= step, (attempt, wait)


def test_given_many_attempts_when_backing_off_then_each_step_capped_and_jittered() -> None:
    backoff = NorthpassBackoff(1.0, max_wait_seconds=600, rng=random.Random(3))
    waits = [backoff.backoff_time(None, attempt) for attempt in range(1, 12)]

    assert all(w is not None and w <= MAX_BACKOFF_SECONDS for w in waits)
    assert (waits[-1] or 0) >= MAX_BACKOFF_SECONDS / 2
    assert len({round(w or 0, 6) for w in waits[:3]}) == 3


# -------------------------------------------------------------------------------------- 5xx and 408


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
@pytest.mark.parametrize("body", ["html", "empty"])
def test_given_server_error_with_html_or_empty_body_when_read_then_retried_and_every_record_read(
    http: requests_mock.Mocker, sleeps: List[float], status: int, body: str
) -> None:
    failing: Dict[str, Any] = {"status_code": status}
    if body == "html":
        failing.update(text=HTML_502, headers={"Content-Type": "text/html"})
    else:
        failing.update(content=b"")
    http.get(f"{API}/people?limit=1", complete_qs=True, json=jsonapi_page([person(1)], f"{API}/people?page=2"))
    http.get(f"{API}/people?page=2&limit=1", complete_qs=True, response_list=[failing, _page(person(2))])

    output = run_read(make_config(page_size=1), ["people"])

    assert [r["id"] for r in records_of(output, "people")] == ["person-0001", "person-0002"]
    assert http.call_count == 3 and len(sleeps) == 1
    assert not output.errors


# ------------------------------------------------------------------------------------------ network


@pytest.mark.parametrize(
    "failure",
    [
        requests.exceptions.ConnectionError("[Errno 111] Connection refused"),
        requests.exceptions.ConnectionError(ConnectionResetError(104, "Connection reset by peer")),
        requests.exceptions.ChunkedEncodingError("Connection broken: IncompleteRead(10 bytes read)"),
        requests.exceptions.ReadTimeout("Read timed out. (read timeout=0.5)"),
        requests.exceptions.ConnectTimeout("Connection to api.northpass.test timed out."),
    ],
    ids=["refused", "reset", "cut-off", "read-stall", "connect-stall"],
)
def test_given_network_failure_when_read_then_retried_and_every_record_read(
    http: requests_mock.Mocker, sleeps: List[float], failure: Exception
) -> None:
    http.get(f"{API}/people", [{"exc": failure}, {"exc": failure}, _page(person(1), person(2))])

    output = run_read(make_config(), ["people"])

    assert len(records_of(output, "people")) == 2
    assert http.call_count == 3 and len(sleeps) == 2
    assert not output.errors


def test_given_request_timeout_setting_when_read_then_every_request_carries_it(http: requests_mock.Mocker) -> None:
    http.get(f"{API}/people", json=jsonapi_page([person(1)]))
    seen: List[Any] = []
    original = requests.Session.send

    def spy(self: requests.Session, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        seen.append(kwargs.get("timeout"))
        return original(self, request, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(requests.Session, "send", spy)
        run_read(make_config(request_timeout_seconds=0.5), ["people"])

    assert seen and all(timeout is not None and timeout[1] == 0.5 for timeout in seen)


# ------------------------------------------------------------------------------------ truncated 200


def test_given_truncated_200_once_when_read_then_same_page_retried_and_every_record_read(
    http: requests_mock.Mocker, sleeps: List[float]
) -> None:
    full = jsonapi_page([person(1), person(2)])
    http.get(f"{API}/people", [{"text": '{"data": [{"id": "person-0001", "ty'}, {"json": full}])

    output = run_read(make_config(), ["people"])

    assert [r["id"] for r in records_of(output, "people")] == ["person-0001", "person-0002"]
    assert http.call_count == 2 and not output.errors


def test_given_body_that_stays_truncated_when_read_then_stream_fails_naming_endpoint_never_zero_records_success(
    http: requests_mock.Mocker, monkeypatch: pytest.MonkeyPatch
) -> None:
    waits: List[float] = []

    def wait(seconds: float) -> None:
        waits.append(seconds)
        _nap()

    monkeypatch.setattr(rate_limiting, "time", SimpleNamespace(sleep=wait))
    http.get(f"{API}/people", text='{"data": [{"id": "person-0001", "ty')
    http.get(f"{API}/courses", json=jsonapi_page([course(1)]))

    output = run_read(make_config(retry_budget_seconds=1), ["people", "courses"])

    error = stream_error(output, "people")
    attempts = sum(1 for r in http.request_history if r.path == "/v2/people")
    assert attempts > 2
    assert error.failure_type.value == "transient_error"
    assert f"GET {API}/people after {attempts} attempts" in error.message
    assert "HTTP 200 with a body that is not complete JSON" in error.message
    assert records_of(output, "people") == []
    assert AirbyteStreamStatus.INCOMPLETE in _statuses(output, "people")
    assert AirbyteStreamStatus.COMPLETE not in _statuses(output, "people")
    assert len(records_of(output, "courses")) == 1


def _nap() -> None:
    import time

    time.sleep(0.2)  # a real, short wait, so the retry budget (wall time) runs out in a few attempts


# ----------------------------------------------------------------------------- retries exhausted


def test_given_endpoint_failing_past_the_retry_budget_when_read_then_error_says_endpoint_status_and_attempts(
    http: requests_mock.Mocker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rate_limiting, "time", SimpleNamespace(sleep=lambda s: _nap()))
    http.get(f"{API}/people", status_code=503, text="<html>503 Service Unavailable</html>")

    output = run_read(make_config(retry_budget_seconds=1), ["people"])

    error = stream_error(output, "people")
    attempts = http.call_count
    assert attempts > 2
    assert error.failure_type.value == "transient_error"
    assert f"gave up on GET {API}/people after {attempts} attempts" in error.message
    assert "(retry budget 1 s); last answer: HTTP 503." in error.message


def test_given_retry_budget_below_a_second_when_read_then_still_retried(
    http: requests_mock.Mocker, sleeps: List[float]
) -> None:
    # The CDK keeps the budget in whole seconds; truncating 0.5 to 0 would silently disable retries.
    http.get(f"{API}/people", [{"status_code": 503, "text": ""}, _page(person(1))])

    output = run_read(make_config(retry_budget_seconds=0.5), ["people"])

    assert len(records_of(output, "people")) == 1 and not output.errors


# ------------------------------------------------------------------------------- parents and plans


def test_given_courses_without_enrollments_or_deleted_when_enrollments_read_then_one_info_summary_no_warning(
    http: requests_mock.Mocker,
) -> None:
    http.get(f"{API}/courses", json=jsonapi_page([course(index) for index in range(1, 6)]))
    for index in (1, 3):
        http.get(f"{API}/courses/course-{index}/enrollments", json=jsonapi_page([enrollment(index)]))
    for index in (2, 4, 5):  # empty, or deleted after the listing: the API answers 404 either way
        http.get(f"{API}/courses/course-{index}/enrollments", status_code=404, json=NOT_FOUND)

    output = run_read(make_config(), ["courses", "course_enrollments"])

    assert sorted(r["course_id"] for r in records_of(output, "course_enrollments")) == ["course-1", "course-3"]
    assert not output.errors
    assert [m.log.message for m in output.logs if m.log.level.value in ("WARN", "ERROR", "FATAL")] == []
    summaries = [m.log.message for m in output.logs if "had no course_enrollments" in m.log.message]
    assert summaries == [
        "Stream course_enrollments: 3 of 5 courses had no course_enrollments: the API answers 404 for an empty "
        "collection (or for a course_id deleted after it was listed)."
    ]
    assert all(m.log.level.value == "INFO" for m in output.logs if m.log.message in summaries)
    # The summary is the only line about the 404s: none per empty collection (the CDK logs each IGNORE it is given).
    assert [m.log.message for m in output.logs if "404" in m.log.message or "Not Found" in m.log.message] == summaries


def test_given_every_course_has_enrollments_when_read_then_no_empty_collection_summary(
    http: requests_mock.Mocker,
) -> None:
    http.get(f"{API}/courses", json=jsonapi_page([course(1), course(2)]))
    for index in (1, 2):
        http.get(f"{API}/courses/course-{index}/enrollments", json=jsonapi_page([enrollment(index)]))

    output = run_read(make_config(), ["course_enrollments"])

    assert len(records_of(output, "course_enrollments")) == 2
    assert not [m for m in output.logs if "had no" in m.log.message]


# --------------------------------------------------------------------------------- fail loudly


def test_given_key_revoked_mid_sync_when_read_then_config_error_saying_to_replace_the_key(
    http: requests_mock.Mocker,
) -> None:
    http.get(f"{API}/people?limit=1", complete_qs=True, json=jsonapi_page([person(1)], f"{API}/people?page=2"))
    http.get(f"{API}/people?page=2&limit=1", complete_qs=True, status_code=401, json=UNAUTHORIZED)

    output = run_read(make_config(page_size=1), ["people"])

    error = stream_error(output, "people")
    assert error.failure_type.value == "config_error"
    assert error.message == KEY_REJECTED and error.internal_message == KEY_REJECTED
    summary = output.errors[-1].trace.error.message
    assert KEY_REJECTED in summary and "Response (headers)" not in summary
    assert http.call_count == 2  # a 401 is not retried


def test_given_next_link_looping_back_when_read_then_stream_fails_fast_naming_the_endpoint(
    http: requests_mock.Mocker,
) -> None:
    http.get(f"{API}/people?limit=1", complete_qs=True, json=jsonapi_page([person(1)], f"{API}/people?page=2"))
    http.get(f"{API}/people?page=2&limit=1", complete_qs=True, json=jsonapi_page([person(2)], f"{API}/people?page=1"))

    output = run_read(make_config(page_size=1), ["people"])

    error = stream_error(output, "people")
    assert f"links.next on {API}/people points back to a page already read" in error.message
    assert http.call_count == 2


def test_given_next_link_to_another_host_when_read_then_refused_and_nothing_sent_there(
    http: requests_mock.Mocker,
) -> None:
    http.get(f"{API}/people", json=jsonapi_page([person(1)], f"{FOREIGN}/v2/people?page=2"))
    foreign = http.get(f"{FOREIGN}/v2/people", json=jsonapi_page([person(2)]))

    output = run_read(make_config(), ["people"])

    error = stream_error(output, "people")
    assert "links.next points to 'evil.example.invalid'" in error.message and "Refused" in error.message
    assert not foreign.called
    assert {urlsplit(r.url).netloc for r in http.request_history} == {"api.northpass.test"}


@pytest.mark.parametrize(
    "next_url", ["http://api.northpass.test/v2/people?page=2", "https://api.northpass.test:8443/v2/people?page=2"]
)
def test_given_next_link_to_another_scheme_or_port_when_read_then_refused(
    http: requests_mock.Mocker, next_url: str
) -> None:
    http.get(f"{API}/people", json=jsonapi_page([person(1)], next_url))

    output = run_read(make_config(), ["people"])

    assert "Refused to follow it" in stream_error(output, "people").message
    assert http.call_count == 1


def test_given_redirect_to_another_host_when_read_then_not_followed_and_the_key_stays_home(
    http: requests_mock.Mocker,
) -> None:
    http.get(f"{API}/people", status_code=302, headers={"Location": f"{FOREIGN}/steal"})
    foreign = http.get(f"{FOREIGN}/steal", json=jsonapi_page([person(1)]))

    output = run_read(make_config(), ["people"])

    error = stream_error(output, "people")
    assert error.failure_type.value == "config_error"
    assert "redirecting to evil.example.invalid. Not followed" in error.message
    assert not foreign.called
    assert all(urlsplit(r.url).netloc == "api.northpass.test" for r in http.request_history)
    assert API_KEY not in error.message

"""Long lists read with pages in flight: every page in order and exactly once, the end found without waste,
links that do not match page numbers followed one by one, and a reader that stops early stops the requests."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any, Dict, List, Mapping, Optional, Set, Tuple
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest
import requests
import requests_mock
from airbyte_cdk.models import AirbyteStreamStatus, Level, SyncMode
from requests.adapters import HTTPAdapter

from source_northpass_lms import SourceNorthpassLms
from source_northpass_lms.jsonapi import page_number
from source_northpass_lms.paging import MAX_PAGES_IN_FLIGHT, PageChain
from source_northpass_lms.rate_limit import SlidingWindowBudget

from .conftest import (
    API,
    NOT_FOUND,
    course,
    enrollment,
    jsonapi_page,
    make_config,
    person,
    records_of,
    run_read,
    stream_error,
)

PAGE_SIZE = 2
LATENCY = 0.06  # with 1000 requests/s allowed, 60 ms calls for the deepest read-ahead


class PagedList:
    """A requests-mock answer for a list of `pages` numbered pages, answering after `latency` seconds.

    Records who asked for what and how many requests were on the wire at once.
    """

    def __init__(self, path: str, pages: int, make: Any, latency: float = LATENCY) -> None:
        self.path, self.pages, self.make, self.latency = path, pages, make, latency
        self.requested: List[int] = []
        self.failures: Dict[int, int] = {}  # page -> how many times it answers 500 before succeeding
        self.gone_from: Optional[int] = None  # pages from this one on answer 404 (the parent was deleted)
        self._lock = threading.Lock()
        self.on_wire = 0
        self.most_on_wire = 0

    def __call__(self, request: Any, context: Any) -> Dict[str, Any]:
        page = int(parse_qs(urlsplit(request.url).query).get("page", ["1"])[0])
        with self._lock:
            self.requested.append(page)
            self.on_wire += 1
            self.most_on_wire = max(self.most_on_wire, self.on_wire)
        try:
            time.sleep(self.latency)
            with self._lock:
                if self.failures.get(page, 0) > 0:
                    self.failures[page] -= 1
                    context.status_code = 500
                    return {"errors": [{"status": "500"}]}
            if page > self.pages or (self.gone_from is not None and page >= self.gone_from):
                context.status_code = 404
                return NOT_FOUND
            first = (page - 1) * PAGE_SIZE + 1
            last_page = page == self.pages
            size = 1 if last_page else PAGE_SIZE  # the last page is short
            next_url = None if last_page else f"{API}/{self.path}?page={page + 1}"
            return jsonapi_page([self.make(i) for i in range(first, first + size)], next_url)
        finally:
            with self._lock:
                self.on_wire -= 1


class Context:
    status_code = 200


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Dict[str, Any]:
    """Answers by path, from any number of threads at once (requests-mock answers one request at a time)."""
    routes: Dict[str, Any] = {}

    def send(adapter: HTTPAdapter, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        context = Context()
        body = routes[urlsplit(request.url or "").path](request, context)
        response = requests.Response()
        response.status_code = context.status_code
        response._content = body if isinstance(body, bytes) else orjson.dumps(body)
        response.headers["Content-Type"] = "application/vnd.api+json"
        response.url, response.request = request.url or "", request
        return response

    monkeypatch.setattr(HTTPAdapter, "send", send)
    return routes


def mock_list(api: Dict[str, Any], paged: PagedList) -> None:
    api[urlsplit(f"{API}/{paged.path}").path] = paged


def test_given_long_list_and_slow_api_when_read_then_pages_in_flight_and_every_record_once_in_order(
    api: Dict[str, Any],
) -> None:
    people = PagedList("people", pages=30, make=person)
    mock_list(api, people)

    output = run_read(make_config(page_size=PAGE_SIZE), ["people"])

    assert [r["id"] for r in records_of(output, "people")] == [person(i)["id"] for i in range(1, 60)]
    assert not output.errors
    assert people.most_on_wire > 1  # read ahead: later pages were requested before the earlier ones answered
    assert all(people.requested.count(page) == 1 for page in range(1, 31))
    past_the_end = [page for page in people.requested if page > 30]
    assert len(past_the_end) < MAX_PAGES_IN_FLIGHT and len(set(past_the_end)) == len(past_the_end)


def test_given_page_in_flight_failing_then_recovering_when_read_then_retried_and_every_record_once_in_order(
    api: Dict[str, Any],
) -> None:
    people = PagedList("people", pages=12, make=person)
    people.failures = {5: 2, 6: 1}
    mock_list(api, people)

    output = run_read(make_config(page_size=PAGE_SIZE), ["people"])

    assert [r["id"] for r in records_of(output, "people")] == [person(i)["id"] for i in range(1, 24)]
    assert not output.errors
    assert people.requested.count(5) == 3 and people.requested.count(6) == 2
    assert people.most_on_wire > 1


def test_given_page_in_flight_failing_past_the_retry_budget_when_read_then_stream_fails_never_skips_it(
    api: Dict[str, Any],
) -> None:
    people = PagedList("people", pages=12, make=person)
    people.failures = {7: 10_000}
    mock_list(api, people)

    output = run_read(make_config(page_size=PAGE_SIZE, retry_budget_seconds=1), ["people"])

    assert [r["id"] for r in records_of(output, "people")] == [person(i)["id"] for i in range(1, 13)]
    assert "gave up on GET" in stream_error(output, "people").message
    assert output.get_stream_statuses("people")[-1] == AirbyteStreamStatus.INCOMPLETE


def test_given_parent_deleted_mid_read_when_child_list_answers_404_then_records_before_kept_and_stream_complete(
    api: Dict[str, Any],
) -> None:
    api["/v2/courses"] = lambda request, context: jsonapi_page([course(1)])
    enrollments = PagedList("courses/course-1/enrollments", pages=20, make=enrollment)
    enrollments.gone_from = 9
    mock_list(api, enrollments)

    output = run_read(make_config(page_size=PAGE_SIZE), ["course_enrollments"])

    records = records_of(output, "course_enrollments")
    assert [r["id"] for r in records] == [enrollment(i)["id"] for i in range(1, 17)]  # pages 1-8, in order
    assert not output.errors
    assert output.get_stream_statuses("course_enrollments")[-1] == AirbyteStreamStatus.COMPLETE
    infos = [m.log.message for m in output.logs if m.log.level == Level.INFO]
    assert any("answered 404 on page 9, so no records after page 8 for course_id=course-1" in m for m in infos)


def test_given_404_mid_list_that_is_not_the_apis_when_the_page_is_needed_then_stream_fails(api: Dict[str, Any]) -> None:
    people = PagedList("people", pages=3, make=person)

    def answer(request: Any, context: Any) -> Any:
        if "page=2" in (request.url or ""):
            context.status_code = 404
            return b"<html>proxy error</html>"
        return people(request, context)

    api["/v2/people"] = answer

    output = run_read(make_config(page_size=PAGE_SIZE), ["people"], expecting_exception=True)

    assert [r["id"] for r in records_of(output, "people")] == [person(1)["id"], person(2)["id"]]
    error = stream_error(output, "people")
    assert "not the Northpass API" in error.message and error.failure_type.value == "config_error"


def test_given_links_that_are_not_page_numbers_when_read_then_followed_one_at_a_time(api: Dict[str, Any]) -> None:
    on_wire: List[int] = [0]
    most: List[int] = [0]
    requested: List[str] = []
    lock = threading.Lock()

    def cursor_page(request: Any, context: Any) -> Dict[str, Any]:
        cursor = parse_qs(urlsplit(request.url).query).get("cursor", ["0"])[0]
        with lock:
            requested.append(cursor)
            on_wire[0] += 1
            most[0] = max(most[0], on_wire[0])
        time.sleep(LATENCY)
        with lock:
            on_wire[0] -= 1
        n = int(cursor)
        next_url = f"{API}/people?cursor={n + 1}" if n < 9 else None
        return jsonapi_page([person(2 * n + 1), person(2 * n + 2)], next_url)

    api["/v2/people"] = cursor_page

    output = run_read(make_config(page_size=PAGE_SIZE), ["people"])

    assert [r["id"] for r in records_of(output, "people")] == [person(i)["id"] for i in range(1, 21)]
    assert requested == [str(n) for n in range(10)] and most[0] == 1  # never a page number the API did not link
    assert not output.errors


def test_given_numbered_links_that_stop_matching_when_read_then_pages_in_flight_dropped_and_links_followed(
    api: Dict[str, Any],
) -> None:
    people = PagedList("people", pages=40, make=person)

    def answer(request: Any, context: Any) -> Dict[str, Any]:
        body = people(request, context)
        page = int(parse_qs(urlsplit(request.url).query).get("page", ["1"])[0])
        if page == 10:  # from here on the API skips a page number: page 10 links to 12
            body["links"]["next"] = f"{API}/people?page=12"
        return body

    api["/v2/people"] = answer

    output = run_read(make_config(page_size=PAGE_SIZE), ["people"])

    pages_read = list(range(1, 11)) + list(range(12, 41))
    expected = [
        person(i)["id"] for p in pages_read for i in range((p - 1) * 2 + 1, (p - 1) * 2 + (1 if p == 40 else 2) + 1)
    ]
    assert [r["id"] for r in records_of(output, "people")] == expected
    assert not output.errors
    assert people.requested.count(11) <= 1  # requested ahead at most, its answer dropped; never asked for again


def legacy_stream(name: str, config: Dict[str, Any]) -> Any:
    """The NorthpassStream itself, not the CDK's concurrent wrapper around it."""
    return next(s for s in SourceNorthpassLms().streams(config) if s.name == name)._legacy_stream  # type: ignore[attr-defined]


def page_response(url: str, page: int, pages: int, latency: float) -> requests.Response:
    response = requests.Response()
    response.status_code = 200
    next_url = f"{API}/people?page={page + 1}&limit={PAGE_SIZE}" if page < pages else None
    response._content = orjson.dumps(jsonapi_page([person(2 * page - 1), person(2 * page)], next_url))
    response.url = url
    response.elapsed = timedelta(seconds=latency)
    return response


def test_given_reader_stopping_early_when_pages_wait_for_the_limiter_then_they_are_never_sent_and_threads_end() -> None:
    budget = SlidingWindowBudget(5)  # slower than the read-ahead asks for: pages in flight queue for their call
    sent: List[int] = []
    lock = threading.Lock()
    people = legacy_stream("people", make_config(page_size=PAGE_SIZE))

    def fetch(token: Optional[Mapping[str, Any]]) -> Tuple[requests.PreparedRequest, requests.Response]:
        url = str(token["next_url"]) if token else f"{API}/people?limit={PAGE_SIZE}"
        page = int(parse_qs(urlsplit(url).query).get("page", ["1"])[0])
        budget.acquire_call(None)
        with lock:
            sent.append(page)
        time.sleep(0.05)
        request = requests.Request("GET", url).prepare()
        return request, page_response(url, page, 1000, latency=0.1)

    chain = PageChain(
        "early-close",
        fetch=fetch,
        next_token=people.next_page_token,
        is_full=people._is_full_page,
        requests_per_second=1000,  # deepest read-ahead: 8 pages in flight
        critical_path=True,
    )
    pages = iter(chain)
    for page in pages:
        if page_number(page.request.url or "") == 8:
            break
    pages.close()  # type: ignore[attr-defined]
    with lock:
        sent_at_close = set(sent)
    time.sleep(2.5)  # long enough for every page that was waiting to have had its call

    with lock:
        sent_later: Set[int] = set(sent) - sent_at_close
    # Pages 9 to 14 were in flight, waiting for the limiter (5 calls/s): none but one whose call was granted
    # just as the reader stopped went out.
    assert len(sent_later) <= 1, sent_later
    assert sorted(sent_at_close) == list(range(1, max(sent_at_close) + 1))
    assert not [t for t in threading.enumerate() if t.name.startswith("early-close-pages")]


def test_given_endpoint_with_smaller_pages_when_read_then_limit_capped_to_its_page_size(
    http: requests_mock.Mocker,
) -> None:
    http.get(f"{API}/people", json=jsonapi_page([person(1)]))
    people = legacy_stream("people", make_config())
    people.max_page_size = 50

    records = list(people.read_records(SyncMode.full_refresh, stream_slice=None))

    assert [r["id"] for r in records] == [person(1)["id"]]
    assert parse_qs(urlsplit(http.request_history[0].url).query)["limit"] == ["50"]

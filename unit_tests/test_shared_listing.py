"""The course list is fetched once per sync for the courses stream and its children, and never read as empty."""

from __future__ import annotations

from urllib.parse import urlsplit

import requests_mock
from airbyte_cdk.models import SyncMode

from source_northpass_lms.auth import ApiKeyAuthenticator
from source_northpass_lms.config import NorthpassConfig
from source_northpass_lms.rate_limit import SlidingWindowBudget
from source_northpass_lms.streams import CourseEnrollments, Courses
from source_northpass_lms.sync import ListingPlan, ReadPlan, SyncClock, SyncContext

from .conftest import API, course, enrollment, jsonapi_page, make_config, records_of, run_read


def courses_requests(http: requests_mock.Mocker) -> int:
    return sum(1 for r in http.request_history if urlsplit(r.url).path == "/v2/courses")


def two_pages_of_courses(http: requests_mock.Mocker) -> None:
    http.get(f"{API}/courses?limit=100", complete_qs=True, json=jsonapi_page([course(1)], f"{API}/courses?page=2"))
    http.get(f"{API}/courses?page=2&limit=100", complete_qs=True, json=jsonapi_page([course(2)]))
    for index in (1, 2):
        http.get(f"{API}/courses/course-{index}/enrollments", json=jsonapi_page([enrollment(index)]))


def test_given_only_enrollments_selected_when_read_then_courses_listed_once_and_not_emitted(
    http: requests_mock.Mocker,
) -> None:
    two_pages_of_courses(http)

    output = run_read(make_config(), ["course_enrollments"])

    assert sorted(r["course_id"] for r in records_of(output, "course_enrollments")) == ["course-1", "course-2"]
    assert records_of(output, "courses") == []
    assert courses_requests(http) == 2  # two pages, each once


def test_given_courses_and_enrollments_selected_when_read_then_both_pages_listed_once_for_both(
    http: requests_mock.Mocker,
) -> None:
    two_pages_of_courses(http)

    output = run_read(make_config(), ["courses", "course_enrollments"])

    assert sorted(r["id"] for r in records_of(output, "courses")) == ["course-1", "course-2"]
    assert sorted(r["course_id"] for r in records_of(output, "course_enrollments")) == ["course-1", "course-2"]
    assert courses_requests(http) == 2


def test_given_shared_list_already_handed_over_when_courses_read_again_then_list_fetched_again_not_empty(
    http: requests_mock.Mocker,
) -> None:
    two_pages_of_courses(http)
    config = NorthpassConfig.parse(make_config())
    budget = SlidingWindowBudget(config.requests_per_second)
    context = SyncContext(config, ApiKeyAuthenticator(config.api_key, config.base_url), budget, SyncClock())
    courses = Courses(context, ReadPlan(listing=ListingPlan(emits_records=True)))
    assert courses.listing is not None
    enrollments = CourseEnrollments(courses.listing, context)

    slices = list(enrollments.stream_slices(SyncMode.full_refresh))
    first = list(courses.read_records(SyncMode.full_refresh))
    second = list(courses.read_records(SyncMode.full_refresh))

    assert slices == [{"course_id": "course-1"}, {"course_id": "course-2"}]
    assert [r["id"] for r in first] == [r["id"] for r in second] == ["course-1", "course-2"]
    assert courses_requests(http) == 4  # listed once for both, then once more for the second read


def test_given_a_course_listed_twice_when_children_read_then_its_collection_read_once(
    http: requests_mock.Mocker,
) -> None:
    # The list shifted between its pages: course-1 is on both.
    http.get(f"{API}/courses?limit=100", complete_qs=True, json=jsonapi_page([course(1)], f"{API}/courses?page=2"))
    http.get(f"{API}/courses?page=2&limit=100", complete_qs=True, json=jsonapi_page([course(1), course(2)]))
    for index in (1, 2):
        http.get(f"{API}/courses/course-{index}/enrollments", json=jsonapi_page([enrollment(index)]))

    output = run_read(make_config(), ["course_enrollments"])

    assert sorted(r["course_id"] for r in records_of(output, "course_enrollments")) == ["course-1", "course-2"]
    enrollment_reads = [r for r in http.request_history if r.path.endswith("/enrollments")]
    assert len(enrollment_reads) == 2

"""Paging through links.next, empty collections, the record shape, and re-reading with a final state."""

from __future__ import annotations

import logging
from typing import Any, Dict
from urllib.parse import parse_qs, urlsplit

import pytest
import requests_mock
from airbyte_cdk.models import AirbyteStreamStatus

from source_northpass_lms import SourceNorthpassLms

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


def _query(request: Any) -> dict:
    return {key: values[0] for key, values in parse_qs(urlsplit(request.url).query).items()}


def test_given_two_pages_when_read_then_next_link_followed_with_limit_put_back(http: requests_mock.Mocker) -> None:
    http.get(
        f"{API}/people?limit=2", complete_qs=True, json=jsonapi_page([person(1), person(2)], f"{API}/people?page=2")
    )
    http.get(f"{API}/people?page=2&limit=2", complete_qs=True, json=jsonapi_page([person(3)]))

    output = run_read(make_config(page_size=2), ["people"])

    assert [r["id"] for r in records_of(output, "people")] == ["person-0001", "person-0002", "person-0003"]
    assert [_query(r) for r in http.request_history] == [{"limit": "2"}, {"page": "2", "limit": "2"}]
    assert all(r.headers["Accept"] == "application/json" for r in http.request_history)
    assert not output.errors


def test_given_next_link_with_filters_when_followed_then_other_parameters_kept_and_limit_replaced(
    http: requests_mock.Mocker,
) -> None:
    next_url = f"{API}/people?filter%5Bname%5D%5Bcont%5D=a&page=2&limit=10"
    http.get(f"{API}/people", json=jsonapi_page([person(2)]))
    http.get(f"{API}/people?limit=3", complete_qs=True, json=jsonapi_page([person(1)], next_url))

    run_read(make_config(page_size=3), ["people"])

    assert _query(http.request_history[1]) == {"filter[name][cont]": "a", "page": "2", "limit": "3"}


def test_given_last_page_exactly_full_when_read_then_stops_without_requesting_past_the_end(
    http: requests_mock.Mocker,
) -> None:
    http.get(
        f"{API}/people?limit=2", complete_qs=True, json=jsonapi_page([person(1), person(2)], f"{API}/people?page=2")
    )
    http.get(f"{API}/people?page=2&limit=2", complete_qs=True, json=jsonapi_page([person(3), person(4)]))

    output = run_read(make_config(page_size=2), ["people"])

    assert len(records_of(output, "people")) == 4
    assert http.call_count == 2


def test_given_empty_collection_answering_404_when_read_then_zero_records_and_stream_complete(
    http: requests_mock.Mocker,
) -> None:
    http.get(f"{API}/people", status_code=404, json=NOT_FOUND)

    output = run_read(make_config(), ["people"])

    assert records_of(output, "people") == []
    assert not output.errors
    assert output.get_stream_statuses("people")[-1] == AirbyteStreamStatus.COMPLETE


def test_given_404_that_is_not_a_jsonapi_error_when_read_then_fails_pointing_at_base_url(
    http: requests_mock.Mocker,
) -> None:
    http.get(f"{API}/people", status_code=404, text="<html>Not Found</html>")

    output = run_read(make_config(), ["people"], expecting_exception=True)

    assert records_of(output, "people") == []
    assert output.errors
    error = stream_error(output, "people")
    assert "base_url" in error.message
    assert error.failure_type.value == "config_error"


def test_given_jsonapi_resource_when_read_then_attributes_flattened_and_invite_token_dropped(
    http: requests_mock.Mocker,
) -> None:
    http.get(f"{API}/people", json=jsonapi_page([person(7, sso_uid=None, first_name="Zoë 🚀")]))

    (record,) = records_of(run_read(make_config(), ["people"]), "people")

    assert record == {
        "id": "person-0007",
        "type": "people",
        "name": "Person 7",
        "email": "p7@example.com",
        "first_name": "Zoë 🚀",
        "relationships": {"school": {"data": {"type": "schools", "id": "school-1"}}},
        "links": {"self": f"{API}/people/person-0007"},
    }
    assert "attributes" not in record and "invite_token" not in record
    assert record.get("sso_uid") is None  # the CDK's message serializer omits null values


def test_given_enrollments_without_course_id_when_read_then_course_id_taken_from_parent(
    http: requests_mock.Mocker,
) -> None:
    http.get(f"{API}/courses", json=jsonapi_page([course(1), course(2)]))
    http.get(f"{API}/courses/course-1/enrollments", json=jsonapi_page([enrollment(1), enrollment(2)]))
    # The same enrollment id under another course: ids are unique only within their course.
    http.get(f"{API}/courses/course-2/enrollments", json=jsonapi_page([enrollment(1, course_id="course-2")]))

    records = records_of(run_read(make_config(), ["course_enrollments"]), "course_enrollments")

    assert sorted((r["course_id"], r["id"]) for r in records) == [
        ("course-1", "enrollment-1"),
        ("course-1", "enrollment-2"),
        ("course-2", "enrollment-1"),
    ]


def _related_person(resource: Dict[str, Any], person_id: str) -> Dict[str, Any]:
    return {**resource, "relationships": {"person": {"data": {"type": "people", "id": person_id}}}}


def test_given_memberships_naming_their_person_only_in_relationships_when_read_then_person_id_is_a_declared_column(
    http: requests_mock.Mocker,
) -> None:
    member = {"id": "membership-1", "type": "memberships", "attributes": {"created_at": "2024-01-01T00:00:00Z"}}
    http.get(f"{API}/groups", json=jsonapi_page([{"id": "group-1", "type": "groups", "attributes": {}}]))
    http.get(
        f"{API}/groups/group-1/memberships",
        json=jsonapi_page([_related_person(member, "person-0001"), {**member, "id": "membership-2"}]),
    )

    records = records_of(run_read(make_config(), ["group_memberships"]), "group_memberships")
    schema = _schema("group_memberships")

    assert [(r["id"], r.get("person_id")) for r in records] == [("membership-1", "person-0001"), ("membership-2", None)]
    assert records[0]["relationships"] == {"person": {"data": {"type": "people", "id": "person-0001"}}}  # kept
    assert schema["properties"]["person_id"] == {"type": ["null", "string"]}


@pytest.mark.parametrize(
    "stream, parents",
    [("course_enrollments", "courses"), ("learning_path_enrollments", "learning-paths")],
)
def test_given_enrollments_with_and_without_a_person_id_attribute_when_read_then_the_apis_kept_and_the_relationship_fills_in(
    http: requests_mock.Mocker, stream: str, parents: str
) -> None:
    http.get(f"{API}/{parents}", json=jsonapi_page([{"id": "parent-1", "type": parents, "attributes": {}}]))
    page = [
        _related_person(enrollment(1, person_id="person-attribute"), "person-relationship"),
        _related_person(enrollment(2), "person-0002"),
        enrollment(3, person_id="person-0003"),
        enrollment(4),
    ]
    http.get(f"{API}/{parents}/parent-1/enrollments", json=jsonapi_page(page))

    records = records_of(run_read(make_config(), [stream]), stream)

    assert [(r["id"], r.get("person_id")) for r in records] == [
        ("enrollment-1", "person-attribute"),
        ("enrollment-2", "person-0002"),
        ("enrollment-3", "person-0003"),
        ("enrollment-4", None),
    ]
    assert _schema(stream)["properties"]["person_id"] == {"type": ["null", "string"]}


def _schema(stream: str) -> Dict[str, Any]:
    (found,) = [
        s.json_schema
        for s in SourceNorthpassLms().discover(logging.getLogger("test"), make_config()).streams
        if s.name == stream
    ]
    return dict(found)


def test_given_course_with_no_enrollments_when_read_then_other_courses_still_read(http: requests_mock.Mocker) -> None:
    http.get(f"{API}/courses", json=jsonapi_page([course(1), course(2)]))
    http.get(f"{API}/courses/course-1/enrollments", status_code=404, json=NOT_FOUND)
    http.get(f"{API}/courses/course-2/enrollments", json=jsonapi_page([enrollment(1)]))

    output = run_read(make_config(), ["course_enrollments"])

    assert [(r["course_id"], r["id"]) for r in records_of(output, "course_enrollments")] == [
        ("course-2", "enrollment-1")
    ]
    assert not output.errors


def test_given_courses_and_enrollments_selected_when_read_then_courses_listed_once(http: requests_mock.Mocker) -> None:
    http.get(f"{API}/courses", json=jsonapi_page([course(1), course(2)]))
    http.get(f"{API}/courses/course-1/enrollments", json=jsonapi_page([enrollment(1)]))
    http.get(f"{API}/courses/course-2/enrollments", json=jsonapi_page([enrollment(2)]))

    output = run_read(make_config(), ["courses", "course_enrollments"])

    assert len(records_of(output, "courses")) == 2
    assert len(records_of(output, "course_enrollments")) == 2
    assert sum(1 for r in http.request_history if urlsplit(r.url).path == "/v2/courses") == 1


def test_given_final_state_of_a_full_refresh_when_read_again_then_every_record_returned(
    http: requests_mock.Mocker,
) -> None:
    http.get(
        f"{API}/people?limit=2", complete_qs=True, json=jsonapi_page([person(1), person(2)], f"{API}/people?page=2")
    )
    http.get(f"{API}/people?page=2&limit=2", complete_qs=True, json=jsonapi_page([person(3)]))
    http.get(f"{API}/courses", json=jsonapi_page([course(1)]))
    http.get(f"{API}/courses/course-1/enrollments", json=jsonapi_page([enrollment(1)]))
    streams = ["people", "courses", "course_enrollments"]
    config = make_config(page_size=2)

    first = run_read(config, streams)
    final_states = [m.state for m in first.state_messages if m.state is not None]
    second = run_read(config, streams, state=final_states)

    assert final_states, "a full refresh must still end each stream with a state message"
    for stream, expected in (("people", 3), ("courses", 1), ("course_enrollments", 1)):
        assert len(records_of(first, stream)) == expected
        assert len(records_of(second, stream)) == expected

"""Incremental sync on updated_at: no change missed, the cursor moves only after a complete read."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import requests_mock
from airbyte_cdk.models import AirbyteStateMessage, AirbyteStreamStatus, SyncMode
from airbyte_cdk.test.entrypoint_wrapper import EntrypointOutput
from airbyte_cdk.test.state_builder import StateBuilder

from .conftest import API, NOT_FOUND, jsonapi_page, make_config, person, records_of, run_read


def updated(index: int, updated_at: str) -> Dict[str, Any]:
    return person(index, updated_at=updated_at)


def incremental(
    config: Dict[str, Any], state: Optional[List[AirbyteStateMessage]] = None, **kwargs: Any
) -> EntrypointOutput:
    return run_read(config, ["people"], state=state, sync_mode=SyncMode.incremental, **kwargs)


def people_state(updated_at: str) -> List[AirbyteStateMessage]:
    return StateBuilder().with_stream_state("people", {"updated_at": updated_at}).build()


def final_state(output: EntrypointOutput) -> Dict[str, Any]:
    return output.most_recent_state.stream_state.__dict__


def test_given_no_state_when_incremental_read_then_everything_without_filter_and_state_is_largest_updated_at(
    http: requests_mock.Mocker,
) -> None:
    http.get(
        f"{API}/people",
        json=jsonapi_page(
            [
                updated(1, "2024-03-01T10:00:00Z"),
                updated(2, "2024-05-01T09:00:00+02:00"),
                updated(3, "2024-04-01T00:00:00Z"),
            ]
        ),
    )

    output = incremental(make_config())

    assert len(records_of(output, "people")) == 3
    assert "filter[updated_at][gteq]" not in http.last_request.url
    # Compared as instants, not strings: 09:00+02:00 is 07:00Z, later than 2024-04-01.
    assert final_state(output) == {"updated_at": "2024-05-01T07:00:00Z"}


def test_given_state_when_server_honours_filter_then_filtered_sorted_request_and_log_says_so(
    http: requests_mock.Mocker,
) -> None:
    http.get(
        f"{API}/people", json=jsonapi_page([updated(4, "2024-05-01T07:00:00Z"), updated(5, "2024-06-01T00:00:00Z")])
    )

    output = incremental(make_config(), people_state("2024-05-01T07:00:00Z"))

    assert http.last_request.qs["filter[updated_at][gteq]"] == ["2024-05-01t07:00:00z"]
    assert http.last_request.qs["sort"] == ["updated_at"]
    # The record at exactly the cursor is emitted again (dedup makes that harmless), never dropped.
    assert [r["id"] for r in records_of(output, "people")] == ["person-0004", "person-0005"]
    assert any("honoured filter[updated_at][gteq]" in m.log.message for m in output.logs)
    assert final_state(output) == {"updated_at": "2024-06-01T00:00:00Z"}


def test_given_state_when_server_ignores_filter_then_client_filters_and_logs_it_once(
    http: requests_mock.Mocker,
) -> None:
    old = [updated(i, "2024-01-01T00:00:00Z") for i in range(1, 4)]
    http.get(f"{API}/people?limit=2", complete_qs=False, json=jsonapi_page(old[:2], f"{API}/people?page=2"))
    http.get(f"{API}/people?page=2", json=jsonapi_page([old[2], updated(9, "2024-07-01T00:00:00Z")]))

    output = incremental(make_config(page_size=2), people_state("2024-05-01T00:00:00Z"))

    assert [r["id"] for r in records_of(output, "people")] == ["person-0009"]
    ignored = [m for m in output.logs if "ignored filter[updated_at][gteq]" in m.log.message]
    assert len(ignored) == 1
    assert final_state(output) == {"updated_at": "2024-07-01T00:00:00Z"}


def test_given_records_sharing_the_cursor_timestamp_across_a_page_boundary_then_all_arrive(
    http: requests_mock.Mocker,
) -> None:
    same = "2024-08-08T08:08:08Z"
    http.get(f"{API}/people?limit=2", json=jsonapi_page([updated(1, same), updated(2, same)], f"{API}/people?page=2"))
    http.get(f"{API}/people?page=2", json=jsonapi_page([updated(3, same)]))

    first = incremental(make_config(page_size=2), people_state("2024-01-01T00:00:00Z"))
    second = incremental(make_config(page_size=2), people_state(final_state(first)["updated_at"]))

    assert final_state(first) == {"updated_at": same}
    assert [r["id"] for r in records_of(first, "people")] == ["person-0001", "person-0002", "person-0003"]
    assert [r["id"] for r in records_of(second, "people")] == ["person-0001", "person-0002", "person-0003"]


def test_given_sync_failing_midway_when_read_then_previous_cursor_kept(http: requests_mock.Mocker) -> None:
    http.get(f"{API}/people?limit=2", json=jsonapi_page([updated(1, "2030-01-01T00:00:00Z")], f"{API}/people?page=2"))
    http.get(f"{API}/people?page=2", status_code=200, text='{"data": [')  # stays truncated: retries run out

    output = incremental(
        make_config(page_size=2, retry_budget_seconds=0.2),
        people_state("2024-01-01T00:00:00Z"),
        expecting_exception=True,
    )

    assert output.errors
    assert output.get_stream_statuses("people")[-1] == AirbyteStreamStatus.INCOMPLETE
    assert [m.state.stream.stream_state.__dict__ for m in output.state_messages] == [
        {"updated_at": "2024-01-01T00:00:00Z"}
    ]


def test_given_start_date_when_incremental_without_state_then_older_records_skipped(http: requests_mock.Mocker) -> None:
    http.get(
        f"{API}/people", json=jsonapi_page([updated(1, "2023-12-31T23:59:59Z"), updated(2, "2024-01-01T00:00:00Z")])
    )

    output = incremental(make_config(start_date="2024-01-01T00:00:00Z"))

    assert [r["id"] for r in records_of(output, "people")] == ["person-0002"]
    assert http.last_request.qs["filter[updated_at][gteq]"] == ["2024-01-01t00:00:00z"]


def test_given_start_date_when_full_refresh_then_ignored(http: requests_mock.Mocker) -> None:
    http.get(f"{API}/people", json=jsonapi_page([updated(1, "2023-12-31T23:59:59Z")]))

    output = run_read(make_config(start_date="2024-01-01T00:00:00Z"), ["people"])

    assert len(records_of(output, "people")) == 1
    assert "filter" not in http.last_request.url


def test_given_malformed_cursor_in_state_when_read_then_warning_and_whole_stream(http: requests_mock.Mocker) -> None:
    http.get(f"{API}/people", json=jsonapi_page([updated(1, "2020-01-01T00:00:00Z")]))

    output = incremental(make_config(), people_state("not a date"))

    assert len(records_of(output, "people")) == 1
    assert any("is not a timestamp" in m.log.message for m in output.logs)


def test_given_empty_collection_when_incremental_then_previous_state_kept(http: requests_mock.Mocker) -> None:
    http.get(f"{API}/people", status_code=404, json=NOT_FOUND)

    output = incremental(make_config(), people_state("2024-01-01T00:00:00Z"))

    assert records_of(output, "people") == []
    assert final_state(output) == {"updated_at": "2024-01-01T00:00:00Z"}


def test_given_discover_then_updated_at_streams_incremental_and_children_full_refresh_only() -> None:
    import logging

    from source_northpass_lms import SourceNorthpassLms

    catalog = SourceNorthpassLms(None, make_config(), None).discover(logging.getLogger("test"), make_config())
    modes = {s.name: [m.value for m in s.supported_sync_modes] for s in catalog.streams}
    cursors = {s.name: s.default_cursor_field for s in catalog.streams}

    for name in ("people", "courses", "groups", "learning_paths", "categories"):
        assert modes[name] == ["full_refresh", "incremental"] and cursors[name] == ["updated_at"]
    for name in (
        "quizzes",
        "course_enrollments",
        "course_activities",
        "group_memberships",
        "learning_path_enrollments",
    ):
        assert modes[name] == ["full_refresh"]


def test_given_incremental_courses_and_their_enrollments_when_read_then_one_unfiltered_listing_filtered_on_client(
    http: requests_mock.Mocker,
) -> None:
    from airbyte_cdk.models import ConfiguredAirbyteCatalog
    from airbyte_cdk.test.catalog_builder import CatalogBuilder
    from airbyte_cdk.test.entrypoint_wrapper import read

    from source_northpass_lms import SourceNorthpassLms

    old = {"id": "course-1", "type": "courses", "attributes": {"name": "Old", "updated_at": "2020-01-01T00:00:00Z"}}
    new = {"id": "course-2", "type": "courses", "attributes": {"name": "New", "updated_at": "2025-01-01T00:00:00Z"}}
    http.get(f"{API}/courses", json=jsonapi_page([old, new]))
    http.get(f"{API}/courses/course-1/enrollments", json=jsonapi_page([{"id": "e1", "type": "enrollments"}]))
    http.get(f"{API}/courses/course-2/enrollments", json=jsonapi_page([{"id": "e2", "type": "enrollments"}]))
    catalog: ConfiguredAirbyteCatalog = (
        CatalogBuilder()
        .with_stream("courses", SyncMode.incremental)
        .with_stream("course_enrollments", SyncMode.full_refresh)
        .build()
    )
    state = StateBuilder().with_stream_state("courses", {"updated_at": "2024-01-01T00:00:00Z"}).build()
    config = make_config()

    output = read(SourceNorthpassLms(catalog, config, state), config, catalog, state)

    course_requests = [r for r in http.request_history if r.path == "/v2/courses"]
    assert len(course_requests) == 1 and "filter" not in course_requests[0].url  # children need every course
    assert [r["id"] for r in records_of(output, "courses")] == ["course-2"]
    assert sorted(r["course_id"] for r in records_of(output, "course_enrollments")) == ["course-1", "course-2"]
    states = {
        m.state.stream.stream_descriptor.name: m.state.stream.stream_state.__dict__ for m in output.state_messages
    }
    assert states["courses"] == {"updated_at": "2025-01-01T00:00:00Z"}

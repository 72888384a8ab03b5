"""A stream is COMPLETE only when it delivered everything: a shared parent list that fails, a 403, an evidence read.

Each case asserts the stream statuses, the records, the final state and what a retried attempt (or the next sync)
delivers: the union of the attempts is exact, and no stream that missed a record ended COMPLETE.
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, List, Mapping, Optional
from urllib.parse import urlsplit

import pytest
import requests_mock as rm
from airbyte_cdk.models import AirbyteStateMessage, ConfiguredAirbyteCatalog, FailureType, SyncMode
from airbyte_cdk.test.entrypoint_wrapper import EntrypointOutput, read
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_northpass_lms import SourceNorthpassLms
from source_northpass_lms.errors import failure
from source_northpass_lms.listing import ParentListFailed, ParentListing
from source_northpass_lms.sync import ListingPlan

from .conftest import API, FORBIDDEN, NOT_FOUND, catalog, course, enrollment, jsonapi_page, make_config, records_of
from .test_activity import event, message
from .test_checkpoint import last_states, state_message
from .test_transcripts import item, people_list, person, transcript_requests

BOOM = "<html>500 Internal Server Error</html>"


def statuses(output: EntrypointOutput) -> Dict[str, str]:
    """Each stream's last status (STARTED, RUNNING, COMPLETE, INCOMPLETE)."""
    last: Dict[str, str] = {}
    for message_ in output.trace_messages:
        status = message_.trace.stream_status
        if status is not None:
            last[status.stream_descriptor.name] = status.status.name
    return last


def errors_by_stream(output: EntrypointOutput) -> Dict[str, List[Any]]:
    out: Dict[str, List[Any]] = {}
    for m in output.errors:
        if m.trace.error.stream_descriptor:
            out.setdefault(m.trace.error.stream_descriptor.name, []).append(m.trace.error)
    return out


def run(
    streams: List[str],
    state: Optional[List[AirbyteStateMessage]] = None,
    sync_id: Optional[int] = None,
    sync_mode: SyncMode = SyncMode.full_refresh,
    expecting_exception: bool = True,
    **config: Any,
) -> EntrypointOutput:
    configured: ConfiguredAirbyteCatalog = catalog(*streams, sync_mode=sync_mode)
    for stream in configured.streams:
        stream.sync_id = sync_id
    cfg = make_config(retry_budget_seconds=0.2, **config)
    return read(
        SourceNorthpassLms(configured, cfg, state), cfg, configured, state, expecting_exception=expecting_exception
    )


def states_as_messages(output: EntrypointOutput) -> List[AirbyteStateMessage]:
    return [state_message(name, value) for name, value in last_states(output).items()]


def keys(records: List[Dict[str, Any]], *key: str) -> set[tuple[Any, ...]]:
    return {tuple(r[k] for k in key) for r in records}


# ------------------------------------------------------------------------- the shared listing, in either order


class FailingList:
    """A parent stream whose list yields two records, then fails as a read past the retry budget does."""

    name = "courses"
    cursor_field = "updated_at"

    def __init__(self) -> None:
        self.reads = 0

    def read_list(self, since: Any) -> Iterator[Mapping[str, Any]]:
        self.reads += 1
        yield {"id": "course-1", "updated_at": None}
        yield {"id": "course-2", "updated_at": None}
        raise failure("Stream courses: gave up on GET /v2/courses?page=2", FailureType.transient_error)


@pytest.mark.parametrize("first", ["parent stream", "child stream"])
def test_given_list_failing_after_a_page_when_read_by_parent_and_two_children_in_either_order_then_all_fail(
    first: str,
) -> None:
    stream = FailingList()
    listing: ParentListing[Any] = ParentListing(stream, ListingPlan(emits_records=True))
    readers = {
        "parent stream": lambda: list(listing.take()),
        "enrollments": lambda: listing.ids("course_enrollments"),
        "activities": lambda: listing.ids("course_activities"),
    }
    order = (
        ["parent stream", "enrollments", "activities"]
        if first == "parent stream"
        else [
            "enrollments",
            "parent stream",
            "activities",
        ]
    )

    raised: Dict[str, AirbyteTracedException] = {}
    for reader in order:
        with pytest.raises(AirbyteTracedException) as caught:
            readers[reader]()
        raised[reader] = caught.value

    assert stream.reads == 1  # read once; the pages read before the failure are never handed on
    assert raised["parent stream"].message == "Stream courses: gave up on GET /v2/courses?page=2"
    for reader, child in (("enrollments", "course_enrollments"), ("activities", "course_activities")):
        assert isinstance(raised[reader], ParentListFailed)
        assert raised[reader].message == (
            f"Stream {child}: not read, because the list of its parents (courses) could not be read whole: "
            "Stream courses: gave up on GET /v2/courses?page=2"
        )
    assert {e.failure_type for e in raised.values()} == {FailureType.transient_error}


class BrokenList(FailingList):
    """A parent stream whose read fails with an error that is not the API's (a bug, a lost connection mid-body)."""

    def read_list(self, since: Any) -> Iterator[Mapping[str, Any]]:
        yield {"id": "course-1", "updated_at": None}
        raise KeyError("links")


@pytest.mark.parametrize("first", ["parent stream", "child stream"])
def test_given_list_failing_when_read_then_the_error_raised_is_the_apis_own_not_chained_to_itself(first: str) -> None:
    listing: ParentListing[Any] = ParentListing(FailingList(), ListingPlan(emits_records=True))

    with pytest.raises(AirbyteTracedException) as caught:
        list(listing.take()) if first == "parent stream" else listing.ids("course_enrollments")

    error = caught.value.__cause__ if first == "child stream" else caught.value
    assert isinstance(error, AirbyteTracedException)
    assert error.message == "Stream courses: gave up on GET /v2/courses?page=2"
    assert error.__cause__ is None  # raised as it came: a cause of itself would loop its traceback


def test_given_list_failing_with_a_plain_exception_when_read_then_failure_names_the_list_caused_by_it() -> None:
    listing: ParentListing[Any] = ParentListing(BrokenList(), ListingPlan(emits_records=True))

    with pytest.raises(AirbyteTracedException) as caught:
        list(listing.take())
    with pytest.raises(ParentListFailed) as child:
        listing.ids("course_enrollments")

    assert caught.value.message == "Stream courses: reading its list failed: KeyError: 'links'"
    assert isinstance(caught.value.__cause__, KeyError)
    assert child.value.message == (
        "Stream course_enrollments: not read, because the list of its parents (courses) could not be read whole: "
        "Stream courses: reading its list failed: KeyError: 'links'"
    )


def courses_with_page_2(http: rm.Mocker, page_2: Optional[Dict[str, Any]]) -> None:
    http.get(
        f"{API}/courses?limit=100", complete_qs=True, json=jsonapi_page([course(1), course(2)], f"{API}/courses?page=2")
    )
    if page_2 is None:
        http.get(f"{API}/courses?page=2&limit=100", complete_qs=True, status_code=500, text=BOOM)
    else:
        http.get(f"{API}/courses?page=2&limit=100", complete_qs=True, json=page_2)
    for index in (1, 2, 3):
        http.get(f"{API}/courses/course-{index}/enrollments", json=jsonapi_page([enrollment(index)]))
        http.get(f"{API}/courses/course-{index}/activities", json=jsonapi_page([{"id": f"a-{index}", "type": "x"}]))


@pytest.mark.parametrize(
    "streams",
    [
        ["course_enrollments", "course_activities"],
        ["courses", "course_enrollments", "course_activities"],
        ["course_activities", "course_enrollments", "courses"],
    ],
)
def test_given_courses_page_2_failing_past_the_budget_when_children_read_then_none_complete_and_retry_makes_it_exact(
    http: rm.Mocker, streams: List[str]
) -> None:
    courses_with_page_2(http, None)

    first = run(streams, sync_id=9, num_workers=2)

    assert all(statuses(first)[s] == "INCOMPLETE" for s in streams), statuses(first)
    assert records_of(first, "course_enrollments") == records_of(first, "course_activities") == []
    failed = errors_by_stream(first)
    for child in ("course_enrollments", "course_activities"):
        assert "could not be read whole" in failed[child][0].message and "/v2/courses" in failed[child][0].message
    state = last_states(first)
    assert all(state[s].get("complete") is not True for s in streams), state
    assert not any(s.get("__ab_no_cursor_state_message") for s in state.values())

    # The retried attempt of the same sync, with the API answering again: every record, from the attempts together.
    http.reset_mock()
    courses_with_page_2(http, jsonapi_page([course(3)]))
    second = run(streams, state=states_as_messages(first), sync_id=9, expecting_exception=False)

    assert all(statuses(second)[s] == "COMPLETE" for s in streams)
    for child in ("course_enrollments", "course_activities"):
        got = records_of(first, child) + records_of(second, child)
        assert sorted(r["course_id"] for r in got) == ["course-1", "course-2", "course-3"], child
    if "courses" in streams:
        union = keys(records_of(first, "courses") + records_of(second, "courses"), "id")
        assert union == {("course-1",), ("course-2",), ("course-3",)}


def test_given_incremental_child_when_its_parent_list_fails_then_cursor_kept_and_next_sync_reads_from_it(
    http: rm.Mocker,
) -> None:
    http.get(f"{API}/webhooks", status_code=500, text=BOOM)
    cursor = {"webhook_created_at": "2024-06-01T00:00:00Z"}
    state = [state_message("quiz_attempt_answers", cursor)]

    output = run(["quiz_attempt_answers"], state=state, sync_mode=SyncMode.incremental)

    assert statuses(output)["quiz_attempt_answers"] == "INCOMPLETE"
    assert last_states(output)["quiz_attempt_answers"] == cursor


# ----------------------------------------------------------------------------------------- refusals (403)


def test_given_403_on_a_parent_list_when_read_then_it_and_its_child_fail_with_config_error_and_others_complete(
    http: rm.Mocker,
) -> None:
    http.get(f"{API}/groups", status_code=403, json=FORBIDDEN)
    http.get(f"{API}/people", json=jsonapi_page([person(1), person(2)]))

    output = run(["people", "groups", "group_memberships"])

    assert statuses(output) == {"people": "COMPLETE", "groups": "INCOMPLETE", "group_memberships": "INCOMPLETE"}
    assert len(records_of(output, "people")) == 2
    failed = errors_by_stream(output)
    groups, memberships = failed["groups"][0], failed["group_memberships"][0]
    assert groups.failure_type == memberships.failure_type == FailureType.config_error
    assert groups.message.startswith("Stream groups: the Northpass API refused its list ")
    assert f"{API}/groups (HTTP 403)" in groups.message
    assert "Use the API key of a user who may read it" in groups.message
    assert "deselect the groups stream and the streams read from its list" in groups.message
    assert memberships.message.startswith(
        "Stream group_memberships: not read, because the list of its parents (groups)"
    )
    assert groups.message in memberships.message
    # The sync fails (non-zero exit) while the others are delivered: Airbyte reports a partial success.
    summary = [m.trace.error for m in output.errors if not m.trace.error.stream_descriptor]
    assert summary and "groups" in summary[-1].message


def test_given_403_on_the_list_when_read_incrementally_then_its_state_is_kept(http: rm.Mocker) -> None:
    http.get(f"{API}/events", status_code=403, json=FORBIDDEN)
    cursor = {"created_at": "2024-06-01T00:00:00Z"}

    output = run(["events"], state=[state_message("events", cursor)], sync_mode=SyncMode.incremental)

    assert statuses(output)["events"] == "INCOMPLETE"
    assert errors_by_stream(output)["events"][0].failure_type == FailureType.config_error
    assert last_states(output)["events"] == cursor


def groups_with_one_refused(http: rm.Mocker, refused: bool) -> None:
    groups = [{"id": f"group-{i}", "type": "groups", "attributes": {}} for i in (1, 2, 3)]
    http.get(f"{API}/groups", json=jsonapi_page(groups))
    for index in (1, 2, 3):
        url = f"{API}/groups/group-{index}/memberships"
        if refused and index == 2:
            http.get(url, status_code=403, json=FORBIDDEN)
        else:
            http.get(url, json=jsonapi_page([{"id": f"m-{index}", "type": "memberships", "attributes": {}}]))


def test_given_403_on_one_parent_when_read_then_stream_fails_naming_it_and_retry_reads_what_was_not_read(
    http: rm.Mocker,
) -> None:
    groups_with_one_refused(http, refused=True)

    first = run(["groups", "group_memberships"], sync_id=4, num_workers=1)

    assert statuses(first) == {"groups": "COMPLETE", "group_memberships": "INCOMPLETE"}
    error = errors_by_stream(first)["group_memberships"]
    assert len(error) == 1 and error[0].failure_type == FailureType.config_error
    assert "refused the collection of group_id group-2" in error[0].message
    assert f"{API}/groups/group-2/memberships" in error[0].message
    assert "deselect the group_memberships stream" in error[0].message
    asked = [urlsplit(r.url).path for r in http.request_history if r.path.endswith("/memberships")]
    assert asked == ["/v2/groups/group-1/memberships", "/v2/groups/group-2/memberships"]  # group-3 not asked
    checkpoint = last_states(first)["group_memberships"]
    assert checkpoint["parents"]["prefix"] == 1 and checkpoint["parents"]["done"] == []  # only group-1 is done

    http.reset_mock()
    groups_with_one_refused(http, refused=False)  # the user gave the connector an admin's key
    second = run(["groups", "group_memberships"], state=states_as_messages(first), sync_id=4, expecting_exception=False)

    assert statuses(second)["group_memberships"] == "COMPLETE"
    union = records_of(first, "group_memberships") + records_of(second, "group_memberships")
    assert sorted(r["group_id"] for r in union) == ["group-1", "group-2", "group-3"]


def test_given_child_collection_refused_for_every_parent_when_read_then_one_config_error_and_few_requests(
    http: rm.Mocker,
) -> None:
    http.get(f"{API}/courses", json=jsonapi_page([course(index) for index in range(1, 101)]))
    http.get(rm.ANY, status_code=403, json=FORBIDDEN)
    http.get(f"{API}/courses", json=jsonapi_page([course(index) for index in range(1, 101)]))

    output = run(["course_activities"], num_workers=2)

    assert statuses(output)["course_activities"] == "INCOMPLETE"
    assert len(errors_by_stream(output)["course_activities"]) == 1
    asked = [r for r in http.request_history if r.path.endswith("/activities")]
    assert len(asked) <= 10  # the first 403s in flight, not one per course
    assert not [m for m in output.logs if m.log.level.value == "WARN"]  # said once, as the error
    info = [m.log.message for m in output.logs if m.log.level.value == "INFO"]
    assert not [line for line in info if line.startswith("HTTP 403")]  # no bare status line per answer


def test_given_transcripts_refused_when_read_then_config_error_few_requests_and_state_not_advanced(
    http: rm.Mocker,
) -> None:
    people_list(http, [person(i) for i in range(200)])
    http.get(rm.ANY, status_code=403, json=FORBIDDEN)
    people_list(http, [person(i) for i in range(200)])
    http.get(f"{API}/events", status_code=404, json=NOT_FOUND)
    http.get(f"{API}/webhooks", status_code=404, json=NOT_FOUND)
    incoming = {"evidence_since": "2024-06-01T00:00:00Z", "sweep_start": 5}

    output = run(
        ["transcripts"], state=[state_message("transcripts", incoming)], sync_mode=SyncMode.incremental, num_workers=2
    )

    assert statuses(output)["transcripts"] == "INCOMPLETE"
    error = errors_by_stream(output)["transcripts"]
    assert len(error) == 1 and error[0].failure_type == FailureType.config_error
    assert "/v2/transcripts/person-" in error[0].message and "deselect the transcripts stream" in error[0].message
    assert len(transcript_requests(http)) <= 10
    assert last_states(output)["transcripts"] == incoming


# ----------------------------------------------------------------------------- transcripts' evidence reads


def evidence_setup(http: rm.Mocker, events_fail: bool = False, events_refused: bool = False) -> None:
    people_list(http, [person(i) for i in range(30)])
    for index in range(30):
        http.get(f"{API}/transcripts/person-{index:04d}", json=jsonapi_page([item(index, 1)]))
    if events_refused:
        http.get(f"{API}/events", status_code=403, json=FORBIDDEN)
    elif events_fail:
        http.get(f"{API}/events", status_code=500, text=BOOM)
    else:
        http.get(f"{API}/events", json=jsonapi_page([event("person-0007", "2024-06-03T00:00:00Z")]))
    http.get(f"{API}/webhooks", json=jsonapi_page([message("a1", "2024-06-02T10:00:00Z", 0)]))


INCOMING = {"evidence_since": "2024-06-01T00:00:00Z", "sweep_start": 5}


@pytest.mark.parametrize("streams", [["transcripts"], ["transcripts", "events"], ["events", "transcripts"]])
def test_given_evidence_log_failing_past_the_budget_when_incremental_transcripts_then_failed_naming_the_evidence(
    http: rm.Mocker, streams: List[str]
) -> None:
    evidence_setup(http, events_fail=True)

    output = run(streams, state=[state_message("transcripts", INCOMING)], sync_mode=SyncMode.incremental)

    assert statuses(output)["transcripts"] == "INCOMPLETE"
    message_ = errors_by_stream(output)["transcripts"][0].message
    assert message_.startswith("Stream transcripts: could not read its evidence, the events log since 2024-06-01T")
    assert "gave up on GET" in message_ and "/v2/events" in message_
    assert records_of(output, "transcripts") == [] and transcript_requests(http) == []
    assert last_states(output)["transcripts"] == INCOMING  # the next sync looks for the same evidence
    if "events" in streams:
        assert statuses(output)["events"] == "INCOMPLETE"

    # The next sync, the log readable again: the same evidence is found, and the people it names are read.
    http.reset_mock()
    evidence_setup(http)
    state = [state_message("transcripts", last_states(output)["transcripts"])]
    after = run(["transcripts"], state=state, sync_mode=SyncMode.incremental, expecting_exception=False)
    assert "person-0007" in {r["person_id"] for r in records_of(after, "transcripts")}


def test_given_evidence_log_refused_when_incremental_transcripts_then_every_transcript_read_with_one_warning(
    http: rm.Mocker,
) -> None:
    evidence_setup(http, events_refused=True)

    output = run(
        ["transcripts"],
        state=[state_message("transcripts", INCOMING)],
        sync_mode=SyncMode.incremental,
        expecting_exception=False,
    )

    assert statuses(output)["transcripts"] == "COMPLETE"
    assert len({r["person_id"] for r in records_of(output, "transcripts")}) == 30
    warnings = [m.log.message for m in output.logs if m.log.level.value == "WARN"]
    assert len(warnings) == 1 and "all 30 transcripts are read" in warnings[0] and "403" in warnings[0]
    assert last_states(output)["transcripts"]["evidence_since"] != INCOMING["evidence_since"]


def test_given_webhook_log_failing_past_the_budget_when_attempts_and_answers_read_then_both_fail(
    http: rm.Mocker,
) -> None:
    http.get(f"{API}/webhooks", status_code=500, text=BOOM)

    output = run(["quiz_attempt_answers", "quiz_attempts"], num_workers=2)

    assert statuses(output) == {"quiz_attempts": "INCOMPLETE", "quiz_attempt_answers": "INCOMPLETE"}
    assert "could not be read whole" in errors_by_stream(output)["quiz_attempt_answers"][0].message

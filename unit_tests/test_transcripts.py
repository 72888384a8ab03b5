"""Transcripts and course properties: records, the unknowns failing safe, and which people an incremental sync reads."""

from __future__ import annotations

import json
import logging
import random
import uuid
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional
from urllib.parse import urlsplit

import requests_mock as rm
from airbyte_cdk.models import AirbyteStateMessage, FailureType, SyncMode
from airbyte_cdk.sources.connector_state_manager import ConnectorStateManager
from airbyte_cdk.test.entrypoint_wrapper import EntrypointOutput, read

from source_northpass_lms import SourceNorthpassLms
from source_northpass_lms.sync import SyncClock
from source_northpass_lms.transcripts import SWEEP_CIRCLE, Sweep, TranscriptCursor, sweep_point

from .conftest import API, NOT_FOUND, catalog, jsonapi_page, make_config, records_of, run_read, stream_error
from .test_activity import event, message
from .test_checkpoint import Captured, ParentPartition, last_states, state_message

logger = logging.getLogger("airbyte")

API_DATE = "Mon, 01 Jul 2024 12:00:00 GMT"  # the API's clock, behind ours: the sync's start by the earlier clock
API_START = "2024-07-01T12:00:00Z"
EVIDENCE_CUTOFF = "2024-07-01T11:45:00Z"  # 15 minutes before the start


def person(index: int, updated_at: str = "2024-01-01T00:00:00Z") -> Dict[str, Any]:
    return {"id": f"person-{index:04d}", "type": "people", "attributes": {"updated_at": updated_at}}


def item(person_index: int, n: int, **attributes: Any) -> Dict[str, Any]:
    return {
        "id": f"item-{person_index}-{n}",
        "type": "transcript_items",
        "attributes": {
            "resource_type": "course",
            "resource_id": f"course-{n}",
            "name": f"Course {n}",
            "progress_status": "completed",
            "enrolled_at": "2024-02-01T00:00:00Z",
            "completed_at": "2024-03-01T00:00:00Z",
            "expires_at": "2025-03-01T00:00:00Z",
            "score": 87.5,
            **attributes,
        },
    }


def people_list(http: rm.Mocker, people: List[Dict[str, Any]]) -> None:
    http.get(f"{API}/people", json=jsonapi_page(people), headers={"Date": API_DATE})


def transcripts_of(http: rm.Mocker, people: range) -> None:
    for index in people:
        http.get(f"{API}/transcripts/person-{index:04d}", json=jsonapi_page([item(index, 1)]))


def transcript_requests(http: rm.Mocker) -> List[str]:
    paths = [urlsplit(r.url).path.split("/") for r in http.request_history]
    return sorted(path[3] for path in paths if path[2] == "transcripts")


def read_incremental(
    state: Optional[List[AirbyteStateMessage]] = None, sync_id: Optional[int] = None, **config: Any
) -> EntrypointOutput:
    configured = catalog("transcripts", sync_mode=SyncMode.incremental)
    for configured_stream in configured.streams:
        configured_stream.sync_id = sync_id
    full_config = make_config(**config)
    source = SourceNorthpassLms(configured, full_config, state)
    return read(source, full_config, configured, state, expecting_exception=False)


def test_given_people_when_transcripts_read_then_items_flattened_with_person_id_and_read_at_pages_followed_404_empty(
    http: rm.Mocker,
) -> None:
    people_list(http, [person(1), person(2), person(3)])
    http.get(
        f"{API}/transcripts/person-0001",
        json=jsonapi_page([item(1, 1)], f"{API}/transcripts/person-0001?page=2"),
    )
    http.get(f"{API}/transcripts/person-0001?page=2", json=jsonapi_page([item(1, 2, score=None)]))
    http.get(f"{API}/transcripts/person-0002", status_code=404, json=NOT_FOUND)  # no enrollments: 404
    http.get(f"{API}/transcripts/person-0003", json={"data": [], "links": {"self": "x"}})  # or an empty list

    records = records_of(run_read(make_config(), ["transcripts"]), "transcripts")

    assert [(r["person_id"], r["id"]) for r in records] == [("person-0001", "item-1-1"), ("person-0001", "item-1-2")]
    first = records[0]
    assert (first["resource_type"], first["resource_id"], first["progress_status"], first["score"]) == (
        "course",
        "course-1",
        "completed",
        87.5,
    )
    assert first["expires_at"] == "2025-03-01T00:00:00Z"
    assert {r["read_at"] for r in records} == {API_START}  # the API's clock is behind ours: its start is taken
    assert transcript_requests(http) == ["person-0001", "person-0001", "person-0002", "person-0003"]


def test_given_transcript_not_a_list_when_read_then_stream_fails_never_read_as_no_data(http: rm.Mocker) -> None:
    people_list(http, [person(1)])
    http.get(f"{API}/transcripts/person-0001", json={"data": {"id": "x", "type": "transcripts"}})

    output = run_read(make_config(), ["transcripts"], expecting_exception=True)

    error = stream_error(output, "transcripts")
    assert error.failure_type == FailureType.system_error
    assert "without a JSON:API list" in error.message
    assert records_of(output, "transcripts") == []


def test_given_course_properties_when_read_then_one_record_per_course_with_properties_object(http: rm.Mocker) -> None:
    properties = {"Region": "EMEA", "Level": 2, "Certified": True, "Tags": ["a", "b"], "Owner": None}
    http.get(
        f"{API}/properties/courses",
        json=jsonapi_page(
            [
                {"id": "course-1", "type": "course_properties", "attributes": {"name": "C1", "properties": properties}},
                {"id": "course-2", "type": "course_properties", "attributes": {"name": "C2", "properties": {}}},
            ],
            f"{API}/properties/courses?page=2",
        ),
    )
    http.get(f"{API}/properties/courses?page=2", json={"data": [], "links": {"self": "x"}})  # read to an empty page

    records = records_of(run_read(make_config(), ["course_properties"]), "course_properties")

    assert [(r["id"], r["name"], r["properties"]) for r in records] == [
        ("course-1", "C1", properties),
        ("course-2", "C2", {}),
    ]


# Incremental: which people are read.


def test_given_no_state_when_incremental_then_everyone_read_and_state_is_the_start_less_overlap_and_sweep_origin(
    http: rm.Mocker,
) -> None:
    people_list(http, [person(i) for i in range(5)])
    transcripts_of(http, range(5))

    output = read_incremental()

    assert transcript_requests(http) == [f"person-{i:04d}" for i in range(5)]
    assert len(records_of(output, "transcripts")) == 5
    assert last_states(output)["transcripts"] == {"evidence_since": EVIDENCE_CUTOFF, "sweep_start": 0}
    assert not any(urlsplit(r.url).path in ("/v2/events", "/v2/webhooks") for r in http.request_history)


def test_given_state_when_incremental_then_only_people_with_evidence_and_this_syncs_sweep_are_read_each_once(
    http: rm.Mocker,
) -> None:
    since = "2024-06-01T00:00:00Z"
    people = [person(i) for i in range(300)]
    people[3] = person(3, updated_at="2024-06-02T00:00:00Z")  # updated since
    people[4] = person(4, updated_at="2024-06-01T00:00:00Z")  # updated exactly at the cutoff: a change
    people[5] = {"id": "person-0005", "type": "people", "attributes": {}}  # no updated_at: taken as a change
    people_list(http, people)
    transcripts_of(http, range(300))
    http.get(
        f"{API}/events",
        json=jsonapi_page([event("person-0007", "2024-06-03T00:00:00Z"), event("person-0008", "2024-06-02T00:00:00Z")]),
    )
    attempt = message("a1", "2024-06-02T10:00:00Z", 0)
    attempt["attributes"]["payload"]["data"]["relationships"]["person"] = {
        "data": {"type": "people", "id": "person-0009"}
    }
    http.get(f"{API}/webhooks", json=jsonapi_page([attempt, message("a1", "2024-06-02T10:00:00Z", 1)]))
    sweep = Sweep(start=123_456_789, syncs=7)
    state = [state_message("transcripts", {"evidence_since": since, "sweep_start": sweep.start})]

    output = read_incremental(state)

    evidence = {"person-0003", "person-0004", "person-0005", "person-0007", "person-0008", "person-0009"}
    swept = {p["id"] for p in people if sweep.covers(p["id"])}
    assert 20 <= len(swept) <= 70  # about 1/7 of 300
    requested = transcript_requests(http)
    assert len(requested) == len(set(requested))  # nobody twice
    assert set(requested) == evidence | swept
    assert {r["person_id"] for r in records_of(output, "transcripts")} == evidence | swept
    events_request = next(r for r in http.request_history if urlsplit(r.url).path == "/v2/events")
    assert events_request.qs["filter[created_at][gteq]"] == [since.lower()]
    assert last_states(output)["transcripts"] == {"evidence_since": EVIDENCE_CUTOFF, "sweep_start": sweep.next_start()}


def test_given_n_consecutive_syncs_then_everyone_swept_at_least_once_each_sync_about_one_nth() -> None:
    ids = [f"person-{i}" for i in range(20_000)]
    for syncs in (1, 3, 7, 30):
        start = 987_654_321
        read_count = dict.fromkeys(ids, 0)
        for _ in range(syncs):
            sweep = Sweep(start, syncs)
            share = sum(sweep.covers(i) for i in ids) / len(ids)
            assert share <= 1 / syncs + 0.02
            for i in ids:
                read_count[i] += sweep.covers(i)
            start = sweep.next_start()
        assert min(read_count.values()) >= 1, syncs
    assert all(0 <= sweep_point(i) < SWEEP_CIRCLE for i in ids[:100])


def test_given_transcript_failing_when_incremental_then_state_unmoved_and_next_sync_looks_for_the_same_evidence(
    http: rm.Mocker,
) -> None:
    since = "2024-06-01T00:00:00Z"
    people_list(http, [person(1, updated_at="2024-06-02T00:00:00Z"), person(2, updated_at="2024-06-02T00:00:00Z")])
    http.get(f"{API}/transcripts/person-0001", json=jsonapi_page([item(1, 1)]))
    http.get(f"{API}/transcripts/person-0002", status_code=500, text="boom")
    http.get(f"{API}/events", status_code=404, json=NOT_FOUND)
    http.get(f"{API}/webhooks", status_code=404, json=NOT_FOUND)
    state = [state_message("transcripts", {"evidence_since": since, "sweep_start": 5})]

    configured = catalog("transcripts", sync_mode=SyncMode.incremental)
    config = make_config(retry_budget_seconds=0.2)
    output = read(SourceNorthpassLms(configured, config, state), config, configured, state, expecting_exception=True)

    assert last_states(output)["transcripts"] == {"evidence_since": since, "sweep_start": 5}


def test_given_attempt_failed_when_retried_with_same_sync_id_then_people_read_whole_skipped_and_first_start_kept(
    http: rm.Mocker,
) -> None:
    people_list(http, [person(i) for i in range(4)])
    transcripts_of(http, range(3))
    http.get(f"{API}/transcripts/person-0003", status_code=500, text="boom")

    configured = catalog("transcripts", sync_mode=SyncMode.incremental)
    configured.streams[0].sync_id = 42
    config = make_config(retry_budget_seconds=0.2, num_workers=1)
    first = read(SourceNorthpassLms(configured, config, None), config, configured, None, expecting_exception=True)
    checkpoint = last_states(first)["transcripts"]
    assert checkpoint["sync_id"] == 42 and checkpoint["sync_started"] == API_START
    assert checkpoint["parents"]["prefix"] == 3  # people 0 to 2 read whole; 3 failed

    http.reset_mock()
    transcripts_of(http, range(4))
    http.get(
        f"{API}/people",
        json=jsonapi_page([person(i) for i in range(4)]),
        headers={"Date": "Tue, 02 Jul 2024 00:00:00 GMT"},
    )
    state = [state_message("transcripts", checkpoint)]
    second = read(SourceNorthpassLms(configured, config, state), config, configured, state)

    assert transcript_requests(http) == ["person-0003"]
    assert {r["read_at"] for r in records_of(second, "transcripts")} == {API_START}  # the sync's start: attempt 1's
    assert last_states(second)["transcripts"] == {"evidence_since": EVIDENCE_CUTOFF, "sweep_start": 0}


def test_given_100000_people_read_out_of_order_with_a_straggler_then_every_state_is_under_10_kb() -> None:
    rng = random.Random(5)
    listing = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(100_000)]
    clock = SyncClock(lambda: datetime(2024, 7, 1, 12, tzinfo=timezone.utc))
    cursor = TranscriptCursor(
        "transcripts", None, 3, {}, 7, clock, lambda: False, Captured(), ConnectorStateManager(), logger, "person_id"
    )
    order = listing[1:]
    for start in range(0, len(order), 8):  # eight workers finish their people in any order
        window = order[start : start + 8]
        rng.shuffle(window)
        order[start : start + 8] = window
    order.append(listing[0])  # the first person's transcript is the last to finish: the frontier stays at 0

    assert list(cursor.parents_to_read(listing)) == listing
    sizes = []
    for done, person_id in enumerate(order):
        cursor.close_partition(PersonPartition(person_id))
        if done % 5_000 == 0:
            sizes.append(len(json.dumps(dict(cursor.state))))

    assert max(sizes) <= 10_000, max(sizes)
    assert dict(cursor.state) == {"evidence_since": EVIDENCE_CUTOFF, "sweep_start": 0}
    print(f"\n100,000 people: largest transcripts state {max(sizes)} bytes")


class PersonPartition(ParentPartition):
    def __init__(self, person_id: str) -> None:
        self._slice = {"person_id": person_id}


def test_given_evidence_reads_when_incremental_then_named_as_evidence_in_the_transcripts_line_not_as_streams(
    http: rm.Mocker,
) -> None:
    people_list(http, [person(i) for i in range(40)])
    transcripts_of(http, range(40))
    http.get(f"{API}/events", json=jsonapi_page([event("person-0007", "2024-06-03T00:00:00Z")]))
    http.get(f"{API}/webhooks", status_code=404, json=NOT_FOUND)  # no webhook subscription
    state = [state_message("transcripts", {"evidence_since": "2024-06-01T00:00:00Z", "sweep_start": 0})]

    output = read_incremental(state)

    info = [m.log.message for m in output.logs if m.log.level.value == "INFO"]
    assert not [line for line in info if line.startswith(("Stream events:", "Stream quiz_attempts:"))], info
    (line,) = [line for line in info if line.startswith("Stream transcripts: reading ")]
    assert "evidence: 1 page of learning events, 1 page of the quiz log since 2024-06-01T00:00:00Z" in line
    assert "person-0007" in transcript_requests(http)


def test_given_logs_that_ignore_sort_and_filter_when_incremental_then_evidence_stops_at_what_it_could_spare(
    http: rm.Mocker,
) -> None:
    people = [person(i) for i in range(40)]  # none updated since the cutoff
    people_list(http, people)
    transcripts_of(http, range(40))

    def endless_old_log(request: Any, context: Any) -> Dict[str, Any]:  # the API ignores sort and filter
        page = int(request.qs.get("page", ["1"])[0])
        old = [event(f"person-{i:04d}", "2020-01-01T00:00:00Z") for i in range(100)]
        return jsonapi_page(old, f"{API}/events?page={page + 1}")

    http.get(f"{API}/events", json=endless_old_log)
    sweep = Sweep(start=0, syncs=7)
    swept = {p["id"] for p in people if sweep.covers(p["id"])}
    state = [state_message("transcripts", {"evidence_since": "2024-06-01T00:00:00Z", "sweep_start": 0})]

    output = read_incremental(state)

    spared = len(people) - len(swept)
    events_requests = [r for r in http.request_history if urlsplit(r.url).path == "/v2/events"]
    assert spared + 1 <= len(events_requests) <= spared + 1 + 4  # the budget, one page to see it run over, read-ahead
    assert not [r for r in http.request_history if urlsplit(r.url).path == "/v2/webhooks"]  # nothing left to spend
    warnings = [m.log.message for m in output.logs if m.log.level.value == "WARN"]
    assert len(warnings) == 1 and f"would cost more requests than the {spared} transcripts" in warnings[0]
    assert "learning events and the quiz log" in warnings[0] and "within 7 syncs" in warnings[0]
    assert set(transcript_requests(http)) == swept  # the sweep; nobody the old events name is taken as changed
    assert output.get_stream_statuses("transcripts")[-1].name == "COMPLETE"

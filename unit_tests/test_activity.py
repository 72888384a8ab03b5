"""Learning activity records: derived event ids, hoisted relationship ids, unwrapped webhooks, newest-first stops."""

from __future__ import annotations

import logging
from typing import Any, Dict, Iterator, List, Mapping

import requests_mock as rm
from airbyte_cdk.models import SyncMode
from airbyte_cdk.test.state_builder import StateBuilder

from source_northpass_lms.cursor import records_since

from .conftest import API, NOT_FOUND, jsonapi_page, make_config, records_of, run_read


def event(person: str, created_at: str, activity: str | None = "act-1", course: str | None = None) -> Dict[str, Any]:
    relationships: Dict[str, Any] = {"person": {"data": {"type": "people", "id": person}}}
    if activity:
        relationships["activity"] = {"data": {"type": "activities", "id": activity}}
    if course:
        relationships["course"] = {"data": {"type": "courses", "id": course}}
    return {
        "type": "learner_viewed_activity_events",
        "attributes": {"created_at": created_at},
        "relationships": relationships,
    }


def test_given_events_without_ids_when_read_twice_then_same_stable_distinct_ids_and_relationships_hoisted(
    http: rm.Mocker,
) -> None:
    page = [
        event("p1", "2024-03-01T10:00:00Z"),
        event("p1", "2024-03-01T10:00:00.000+00:00"),  # the same instant written otherwise: the same event
        event("p2", "2024-03-01T10:00:00Z"),
        event("p1", "2024-03-01T10:00:01Z"),
        event("p1", "2024-03-01T10:00:00Z", activity=None, course="c9"),
    ]
    http.get(f"{API}/events", json=jsonapi_page(page))

    first = records_of(run_read(make_config(), ["events"]), "events")
    second = records_of(run_read(make_config(), ["events"]), "events")

    ids = [r["id"] for r in first]
    assert ids == [r["id"] for r in second]
    assert ids[0] == ids[1] and len(set(ids)) == 4  # only the two identical events share an id
    assert all(len(i) == 36 for i in ids)
    assert (first[0]["person_id"], first[0]["activity_id"], first[0].get("course_id")) == ("p1", "act-1", None)
    assert (first[4]["person_id"], first[4].get("activity_id"), first[4]["course_id"]) == ("p1", None, "c9")


def message(uid: str | None, created_at: str, url: int, kind: str = "quiz_completed_events") -> Dict[str, Any]:
    attributes: Dict[str, Any] = {"value": 80, "created_at": "2024-03-01T09:59:58Z"}
    if uid:
        attributes["quiz_attempt_uuid"] = uid
    return {
        "id": f"msg-{uid}-{url}-{kind}",
        "type": "webhook",
        "attributes": {
            "type": kind,
            "created_at": created_at,
            "received_at": "2024-03-01T10:00:01.250Z",
            "url": f"https://hooks.example.com/{url}",
            "attempt_left": 3,
            "payload": {
                "data": {
                    "id": f"event-{uid}",
                    "type": "quiz_completed_events",
                    "attributes": attributes,
                    "relationships": {"quiz": {"data": {"type": "quizzes", "id": "q1"}}},
                }
            },
        },
    }


def test_given_webhook_log_when_read_then_attempts_unwrapped_once_each_at_most_50_a_page(http: rm.Mocker) -> None:
    log = [
        message("a1", "2024-03-01T10:00:00Z", 0),
        message("a1", "2024-03-01T10:00:00Z", 1),  # the second subscribed URL: dropped
        message(None, "2024-03-01T10:00:00Z", 0),  # no quiz_attempt_uuid: dropped
        message("c1", "2024-03-01T10:00:00Z", 0, kind="course_completed_events"),  # leaked through the filter
    ]
    http.get(f"{API}/webhooks", json=jsonapi_page(log))

    output = run_read(make_config(page_size=100), ["quiz_attempts"])

    assert http.last_request.qs["limit"] == ["50"]
    assert http.last_request.qs["filter[type][in]"] == ["quiz_completed_events"]
    records = records_of(output, "quiz_attempts")
    assert len(records) == 1
    record = records[0]
    assert (record["id"], record["quiz_id"], record["event_id"], record["value"]) == ("a1", "q1", "event-a1", 80)
    assert record["webhook_url"] == "https://hooks.example.com/0"  # the first delivery read wins
    assert record["created_at"] == "2024-03-01T09:59:58Z" and record["webhook_created_at"] == "2024-03-01T10:00:00Z"
    assert "payload" not in record
    assert any("dropped 1 of another type" in m.log.message for m in output.logs)


def _logged(values: List[str], since: str, window: int) -> Iterator[Mapping[str, Any]]:
    return records_since(
        iter([{"created_at": v} for v in values]),
        since,
        "created_at",
        "filter[created_at][gteq]",
        window,
        logging.getLogger("test"),
        "events",
    )


def test_given_unsorted_log_starting_with_a_page_of_equal_old_timestamps_then_read_to_the_end() -> None:
    # Oldest first (sort ignored), and the oldest page is a cluster sharing one second: it looks "ordered" and
    # "entirely older than the cursor", but proves nothing. Stopping there would lose the new events after it.
    old = ["2024-01-01T00:00:00Z"] * 150
    new = ["2024-06-01T00:00:00Z", "2024-06-02T00:00:00Z"]
    assert [r["created_at"] for r in _logged(old + ["2024-02-01T00:00:00Z"] + new, "2024-05-01T00:00:00Z", 100)] == new


def test_given_newest_first_log_when_a_page_of_older_records_read_then_stops_without_reading_further() -> None:
    consumed: List[str] = []

    def log() -> Iterator[Mapping[str, Any]]:
        for day in range(30, 0, -1):
            consumed.append(f"{day}")
            yield {"created_at": f"2024-03-{day:02d}T00:00:00Z"}

    kept = records_since(log(), "2024-03-25T00:00:00Z", "created_at", None, 5, logging.getLogger("t"), "events")

    assert [r["created_at"][8:10] for r in kept] == ["30", "29", "28", "27", "26", "25"]
    assert len(consumed) == 11  # the six new, then five older ones (a page's worth): never the 19 after them


def test_given_state_when_incremental_events_then_newest_first_and_filter_sent_and_ties_kept(http: rm.Mocker) -> None:
    http.get(
        f"{API}/events",
        json=jsonapi_page([event("p3", "2024-05-01T07:00:00.500Z"), event("p2", "2024-05-01T07:00:00Z")]),
    )
    state = StateBuilder().with_stream_state("events", {"created_at": "2024-05-01T07:00:00Z"}).build()

    output = run_read(make_config(), ["events"], state=state, sync_mode=SyncMode.incremental)

    assert http.last_request.qs["sort"] == ["-created_at"]
    assert http.last_request.qs["filter[created_at][gteq]"] == ["2024-05-01t07:00:00z"]
    assert [r["person_id"] for r in records_of(output, "events")] == ["p3", "p2"]
    assert output.most_recent_state.stream_state.__dict__ == {"created_at": "2024-05-01T07:00:00Z"}


def test_given_incremental_answers_when_one_attempt_fails_then_state_stays_and_only_new_attempts_are_read(
    http: rm.Mocker,
) -> None:
    log = [
        message("old", "2024-03-01T09:00:00Z", 0),
        message("new1", "2024-03-02T10:00:00Z", 0),
        message("new2", "2024-03-03T10:00:00Z", 0),
    ]
    http.get(f"{API}/webhooks", json=jsonapi_page(log))
    answer = {"id": "ans-1", "type": "learner_answers", "attributes": {"value": "A", "correct": True}}
    answer["relationships"] = {"question": {"data": {"type": "questions/choose", "id": "question-7"}}}
    http.get(f"{API}/quiz_attempts/new1/answers", json=jsonapi_page([answer]))
    failing = http.get(f"{API}/quiz_attempts/new2/answers", status_code=400, json={"errors": [{"status": "400"}]})
    state = StateBuilder().with_stream_state("quiz_attempt_answers", {"webhook_created_at": "2024-03-02T00:00:00Z"})

    output = run_read(
        make_config(), ["quiz_attempt_answers"], state=state.build(), sync_mode=SyncMode.incremental,
        expecting_exception=True,
    )  # fmt: skip

    assert failing.called
    assert not any("/quiz_attempts/old/" in r.url for r in http.request_history)  # before the cursor: not read
    records = records_of(output, "quiz_attempt_answers")
    assert [(r["quiz_attempt_id"], r["id"], r["question_id"]) for r in records] == [("new1", "ans-1", "question-7")]
    assert records[0]["webhook_created_at"] == "2024-03-02T10:00:00Z"
    # new2's answers were not read: the cursor must not pass new1's, or they would never be read.
    assert output.most_recent_state.stream_state.__dict__ == {"webhook_created_at": "2024-03-02T00:00:00Z"}


def test_given_newest_attempt_without_answers_when_incremental_then_state_is_past_it(http: rm.Mocker) -> None:
    http.get(
        f"{API}/webhooks",
        json=jsonapi_page([message("new1", "2024-03-02T10:00:00Z", 0), message("new2", "2024-03-03T10:00:00Z", 0)]),
    )
    answer = {"id": "ans-1", "type": "learner_answers", "attributes": {"value": "A", "correct": True}}
    http.get(f"{API}/quiz_attempts/new1/answers", json=jsonapi_page([answer]))
    http.get(f"{API}/quiz_attempts/new2/answers", status_code=404, json=NOT_FOUND)
    state = StateBuilder().with_stream_state("quiz_attempt_answers", {"webhook_created_at": "2024-03-02T00:00:00Z"})

    output = run_read(make_config(), ["quiz_attempt_answers"], state=state.build(), sync_mode=SyncMode.incremental)

    assert [r["quiz_attempt_id"] for r in records_of(output, "quiz_attempt_answers")] == ["new1"]
    # new2 was read to its end (it has no answers): the next sync need not ask again.
    assert output.most_recent_state.stream_state.__dict__ == {"webhook_created_at": "2024-03-03T10:00:00Z"}

"""States written by every release, and by Airbyte's 0.x connector, read as they meant: cursors kept, nothing lost.

The shapes come from git history (cursor.py, checkpoint.py, transcripts.py of 1.0.0 87bd778, 1.1.0 a723c6f, 1.2.0
2acaefa) and from Airbyte's manifest-only 0.x connector (airbytehq/airbyte, source-northpass-lms/manifest.yaml:
`people`, `courses` and `course_enrollments`, full refresh only, no incremental_sync, so its states are the CDK's
full-refresh markers). Each runs through the console script's code (`run.run`) with a --state file.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest
import requests_mock as rm
from airbyte_cdk.models import AirbyteMessageSerializer, ConfiguredAirbyteCatalogSerializer, SyncMode
from airbyte_cdk.test.catalog_builder import CatalogBuilder
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_northpass_lms.run import run
from source_northpass_lms.state_migrations import per_stream_states
from source_northpass_lms.transcripts import Sweep

from .conftest import API, course, enrollment, jsonapi_page, make_config, person
from .test_activity import event, message

CURSOR = "2024-05-01T07:00:00Z"
OLD, NEW = person(1, updated_at="2024-01-01T00:00:00Z"), person(2, updated_at="2024-06-01T00:00:00Z")
START_OVER = {"__ab_no_cursor_state_message": True}


def stream_state(name: str, state: Dict[str, Any]) -> Dict[str, Any]:
    """A STATE message as every release wrote it (and Airbyte passes it back): a stream descriptor and its state."""
    return {"type": "STREAM", "stream": {"stream_descriptor": {"name": name}, "stream_state": state}}


def run_read(
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    streams: List[Tuple[str, SyncMode]],
    state: Any,
    sync_id: Optional[int] = None,
) -> List[Dict[str, Any]]:
    builder = CatalogBuilder()
    for name, mode in streams:
        builder.with_stream(name, mode)
    configured = builder.build()
    for configured_stream in configured.streams:
        configured_stream.sync_id = sync_id
    files = {
        "config": make_config(),
        "catalog": ConfiguredAirbyteCatalogSerializer.dump(configured),
        "state": state,
    }
    args = ["read"]
    for kind, content in files.items():
        (tmp_path / f"{kind}.json").write_text(json.dumps(content))
        args += [f"--{kind}", str(tmp_path / f"{kind}.json")]
    capfd.readouterr()
    try:
        run(args)
    except AirbyteTracedException as exc:  # what the console script's exception hook prints
        print(json.dumps(AirbyteMessageSerializer.dump(exc.as_sanitized_airbyte_message())))
    return [json.loads(line) for line in capfd.readouterr().out.splitlines() if line.strip()]


def records(messages: List[Dict[str, Any]], stream: str) -> List[str]:
    return [m["record"]["data"]["id"] for m in messages if m["type"] == "RECORD" and m["record"]["stream"] == stream]


def last_states(messages: List[Dict[str, Any]]) -> Dict[str, Any]:
    found = {}
    for m in messages:
        if m["type"] == "STATE":
            found[m["state"]["stream"]["stream_descriptor"]["name"]] = m["state"]["stream"]["stream_state"]
    return found


def logs(messages: List[Dict[str, Any]], level: str) -> List[str]:
    return [m["log"]["message"] for m in messages if m["type"] == "LOG" and m["log"]["level"] == level]


def errors(messages: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    return [m["trace"]["error"] for m in messages if m["type"] == "TRACE" and m["trace"]["type"] == "ERROR"]


def people_since_cursor(http: rm.Mocker, messages: List[Dict[str, Any]]) -> None:
    """The incremental people read from CURSOR: the filter sent, the older record skipped, the state moved."""
    assert http.last_request.qs["filter[updated_at][gteq]"] == [CURSOR.lower()]
    assert records(messages, "people") == [NEW["id"]]
    assert last_states(messages)["people"] == {"updated_at": NEW["attributes"]["updated_at"]}
    assert errors(messages) == []


# ------------------------------------------------------------------------------------- 1.0, 1.1 and 1.2's own states


def test_given_people_cursor_as_1_0_1_1_and_1_2_wrote_it_when_incremental_then_read_from_it(
    http: rm.Mocker, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # One shape in every release: {"updated_at": <largest of the last complete read>} (the other entity streams too).
    http.get(f"{API}/people", json=jsonapi_page([OLD, NEW]))

    messages = run_read(
        tmp_path, capfd, [("people", SyncMode.incremental)], [stream_state("people", {"updated_at": CURSOR})]
    )

    people_since_cursor(http, messages)


def test_given_1_0_empty_state_of_a_stream_that_never_had_records_when_incremental_then_read_whole_without_warning(
    http: rm.Mocker, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    http.get(f"{API}/people", json=jsonapi_page([OLD, NEW]))

    messages = run_read(tmp_path, capfd, [("people", SyncMode.incremental)], [stream_state("people", {})])

    assert records(messages, "people") == [OLD["id"], NEW["id"]]
    assert logs(messages, "WARN") == []


@pytest.mark.parametrize("sync_id", [None, 7])
def test_given_1_0_or_1_1_start_over_state_when_full_refresh_then_everything_read(
    http: rm.Mocker, tmp_path: Path, capfd: pytest.CaptureFixture[str], sync_id: Optional[int]
) -> None:
    http.get(f"{API}/courses", json=jsonapi_page([course(i) for i in range(3)]))

    messages = run_read(
        tmp_path, capfd, [("courses", SyncMode.full_refresh)], [stream_state("courses", START_OVER)], sync_id
    )

    assert records(messages, "courses") == ["course-0", "course-1", "course-2"]


def test_given_1_1_activity_cursors_when_incremental_then_each_log_read_from_its_own(
    http: rm.Mocker, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    http.get(
        f"{API}/events", json=jsonapi_page([event("p2", "2024-05-02T00:00:00Z"), event("p1", "2024-04-01T00:00:00Z")])
    )
    http.get(
        f"{API}/webhooks",
        json=jsonapi_page([message("new", "2024-05-02T00:00:00Z", 0), message("old", "2024-04-01T00:00:00Z", 0)]),
    )
    answer = {"id": "ans-1", "type": "learner_answers", "attributes": {"value": "A"}}
    http.get(f"{API}/quiz_attempts/new/answers", json=jsonapi_page([answer]))
    state = [
        stream_state("events", {"created_at": CURSOR}),
        stream_state("quiz_attempts", {"webhook_created_at": CURSOR}),
        stream_state("quiz_attempt_answers", {"webhook_created_at": CURSOR}),
    ]
    streams = [(name, SyncMode.incremental) for name in ("events", "quiz_attempts", "quiz_attempt_answers")]

    messages = run_read(tmp_path, capfd, streams, state)

    assert [
        m["record"]["data"]["person_id"]
        for m in messages
        if m["type"] == "RECORD" and m["record"]["stream"] == "events"
    ] == ["p2"]
    assert records(messages, "quiz_attempts") == ["new"]
    assert records(messages, "quiz_attempt_answers") == ["ans-1"]
    assert not any("/quiz_attempts/old/" in r.url for r in http.request_history)  # before the cursor: not read
    events_request = next(r for r in http.request_history if "/v2/events" in r.url)
    assert events_request.qs["filter[created_at][gteq]"] == [CURSOR.lower()]
    assert last_states(messages) == {
        "events": {"created_at": "2024-05-02T00:00:00Z"},
        "quiz_attempts": {"webhook_created_at": "2024-05-02T00:00:00Z"},
        "quiz_attempt_answers": {"webhook_created_at": "2024-05-02T00:00:00Z"},
    }


def test_given_1_1_checkpoints_of_this_sync_when_retried_then_what_was_read_whole_is_skipped(
    http: rm.Mocker, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    http.get(f"{API}/courses", json=jsonapi_page([course(i) for i in range(3)]))
    for i in range(3):
        http.get(f"{API}/courses/course-{i}/enrollments", json=jsonapi_page([enrollment(i)]))
    # 1.1's checkpoint of a child stream, written out: course-0's collection was read whole (a run of 1 ending there,
    # its ids hashed as JSON lines), course-2's too, ahead of the run.
    parents = {
        "prefix": 1,
        "prefix_digest": hashlib.sha256(b'"course-0"\n').hexdigest(),
        "last": "course-0",
        "done": ["course-2"],
    }
    state = [
        stream_state("courses", {"sync_id": 7, "complete": True}),
        stream_state("course_enrollments", {"sync_id": 7, "parents": parents}),
    ]
    streams = [("courses", SyncMode.full_refresh), ("course_enrollments", SyncMode.full_refresh)]

    messages = run_read(tmp_path, capfd, streams, state, sync_id=7)

    enrollment_reads = sorted(
        r.url.split("/")[5] for r in http.request_history if r.url.split("?")[0].endswith("/enrollments")
    )
    assert enrollment_reads == ["course-1"]
    assert records(messages, "courses") == []  # read to its end by the earlier attempt
    assert last_states(messages) == {"courses": START_OVER, "course_enrollments": START_OVER}


def test_given_1_2_transcripts_state_when_incremental_then_evidence_since_it_and_the_next_arc_of_the_sweep(
    http: rm.Mocker, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    people = [person(i, updated_at="2024-01-01T00:00:00Z") for i in range(40)]
    people[3] = person(3, updated_at="2024-06-02T00:00:00Z")  # updated since evidence_since
    http.get(f"{API}/people", json=jsonapi_page(people))
    for i in range(40):
        http.get(f"{API}/transcripts/person-{i:04d}", json=jsonapi_page([]))
    http.get(f"{API}/events", json=jsonapi_page([event("person-0007", "2024-06-03T00:00:00Z")]))
    http.get(f"{API}/webhooks", json=jsonapi_page([]))
    sweep = Sweep(start=2_000_000_000, syncs=7)
    state = [stream_state("transcripts", {"evidence_since": "2024-06-01T00:00:00Z", "sweep_start": sweep.start})]

    messages = run_read(tmp_path, capfd, [("transcripts", SyncMode.incremental)], state)

    read = sorted(r.url.split("/")[5].split("?")[0] for r in http.request_history if "/v2/transcripts/" in r.url)
    swept = {p["id"] for p in people if sweep.covers(p["id"])}
    assert set(read) == {"person-0003", "person-0007"} | swept and len(read) < 40
    events_request = next(r for r in http.request_history if "/v2/events" in r.url)
    assert events_request.qs["filter[created_at][gteq]"] == ["2024-06-01t00:00:00z"]
    assert last_states(messages)["transcripts"]["sweep_start"] == sweep.next_start()


# ---------------------------------------------------------------------------------- Airbyte's 0.x low-code connector

# What the CDK's declarative full refresh wrote for 0.x's streams: the end-of-sync marker of a resumable full refresh,
# a page token mid-sync, the substream's per-partition form, or the concurrent CDK's no-cursor marker.
STATES_0X: Dict[str, Dict[str, Any]] = {
    "full refresh complete": {
        "people": {"__ab_full_refresh_sync_complete": True},
        "courses": {"__ab_full_refresh_sync_complete": True},
        "course_enrollments": {
            "states": [
                {
                    "partition": {"course_id": "course-0", "parent_slice": {}},
                    "cursor": {"__ab_full_refresh_sync_complete": True},
                }
            ]
        },
    },
    "mid-sync page token": {
        "people": {"next_page_token": "https://api.northpass.com/v2/people?page=3"},
        "courses": {"next_page_token": "https://api.northpass.com/v2/courses?page=2"},
        "course_enrollments": {
            "states": [{"partition": {"course_id": "course-1", "parent_slice": {}}, "cursor": {"next_page_token": "x"}}]
        },
    },
    "no cursor": dict.fromkeys(("people", "courses", "course_enrollments"), START_OVER),
}


def zero_x_streams(http: rm.Mocker) -> None:
    http.get(f"{API}/people", json=jsonapi_page([OLD, NEW]))
    http.get(f"{API}/courses", json=jsonapi_page([course(i) for i in range(2)]))
    for i in range(2):
        http.get(f"{API}/courses/course-{i}/enrollments", json=jsonapi_page([enrollment(i)]))


@pytest.mark.parametrize("sync_id", [None, 1])
@pytest.mark.parametrize("shape", list(STATES_0X))
def test_given_0x_state_when_full_refresh_then_every_record_read_never_zero(
    http: rm.Mocker, tmp_path: Path, capfd: pytest.CaptureFixture[str], shape: str, sync_id: Optional[int]
) -> None:
    zero_x_streams(http)
    state = [stream_state(name, value) for name, value in STATES_0X[shape].items()]
    streams = [(name, SyncMode.full_refresh) for name in ("people", "courses", "course_enrollments")]

    messages = run_read(tmp_path, capfd, streams, state, sync_id)

    assert records(messages, "people") == [OLD["id"], NEW["id"]]
    assert records(messages, "courses") == ["course-0", "course-1"]
    assert sorted(records(messages, "course_enrollments")) == ["enrollment-0", "enrollment-1"]
    assert errors(messages) == []


@pytest.mark.parametrize("shape", list(STATES_0X))
def test_given_0x_state_when_people_switched_to_incremental_then_first_incremental_sync_reads_everything(
    http: rm.Mocker, tmp_path: Path, capfd: pytest.CaptureFixture[str], shape: str
) -> None:
    """0.x had no cursor: nothing in its state bounds the read, and the read sets the first cursor."""
    zero_x_streams(http)

    messages = run_read(
        tmp_path, capfd, [("people", SyncMode.incremental)], [stream_state("people", STATES_0X[shape]["people"])]
    )

    assert records(messages, "people") == [OLD["id"], NEW["id"]]
    assert "filter[updated_at][gteq]" not in http.last_request.qs
    assert last_states(messages)["people"] == {"updated_at": NEW["attributes"]["updated_at"]}


# ------------------------------------------------------------------ the protocol's legacy and global shapes of a state


PROTOCOL_SHAPES: Dict[str, Any] = {
    "legacy file": {"people": {"updated_at": CURSOR}},
    "LEGACY message": [{"type": "LEGACY", "data": {"people": {"updated_at": CURSOR}}}],
    "GLOBAL message": [
        {
            "type": "GLOBAL",
            "global": {
                "stream_states": [{"stream_descriptor": {"name": "people"}, "stream_state": {"updated_at": CURSOR}}]
            },
        }
    ],
    "GLOBAL message with shared_state": [
        {
            "type": "GLOBAL",
            "global": {
                "shared_state": {"cdc_offset": 42},
                "stream_states": [{"stream_descriptor": {"name": "people"}, "stream_state": {"updated_at": CURSOR}}],
            },
        }
    ],
}


@pytest.mark.parametrize("shape", list(PROTOCOL_SHAPES))
def test_given_legacy_or_global_state_when_incremental_then_its_cursor_is_used_not_dropped_or_refused(
    http: rm.Mocker, tmp_path: Path, capfd: pytest.CaptureFixture[str], shape: str
) -> None:
    http.get(f"{API}/people", json=jsonapi_page([OLD, NEW]))

    messages = run_read(tmp_path, capfd, [("people", SyncMode.incremental)], PROTOCOL_SHAPES[shape])

    people_since_cursor(http, messages)
    assert any("legacy or global shape" in line for line in logs(messages, "INFO"))
    assert json.loads((tmp_path / "state.json").read_text()) == PROTOCOL_SHAPES[shape]  # the file given is not changed
    assert any("shared_state" in line for line in logs(messages, "WARN")) == ("shared_state" in shape)


def test_given_stream_and_legacy_state_of_one_stream_then_the_per_stream_state_wins() -> None:
    states = per_stream_states(
        [
            {"type": "LEGACY", "data": {"people": {"updated_at": "2020-01-01T00:00:00Z"}}},
            stream_state("people", {"updated_at": CURSOR}),
        ]
    )

    assert states == [stream_state("people", {"updated_at": CURSOR})]


@pytest.mark.parametrize("state", [[stream_state("people", {"updated_at": CURSOR})], [], {}])
def test_given_per_stream_or_empty_state_then_not_rewritten(state: Any) -> None:
    assert per_stream_states(state) is None


def test_given_state_in_no_shape_of_the_protocol_when_read_then_config_error_not_a_silent_full_read(
    http: rm.Mocker, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    messages = run_read(tmp_path, capfd, [("people", SyncMode.incremental)], {"people": "2024-05-01"})

    assert [e["failure_type"] for e in errors(messages)] == ["config_error"]
    assert "not in the format of the Airbyte protocol" in errors(messages)[0]["message"]
    assert not http.called

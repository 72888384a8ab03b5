"""Faults that outlast the retry budget, against the sandbox: no stream ends COMPLETE with a record missing.

Each fault sits at a chosen place (one page of one list, every page of one list, one child collection) and hits a
shared read (a parent listing with two or more readers, transcripts' evidence, the webhook log). Each case asserts
the stream statuses, the records, the final state, and that the retried attempt of the same sync (or the next sync)
makes the union exact. Thread order varies with the catalog's order and the number of workers.
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import pytest
from airbyte_cdk.models import AirbyteStateMessage, FailureType, SyncMode
from airbyte_cdk.test.catalog_builder import CatalogBuilder
from airbyte_cdk.test.entrypoint_wrapper import EntrypointOutput, read

from sandbox import SandboxOptions, SandboxServer
from sandbox.server import FaultConfig
from source_northpass_lms import SourceNorthpassLms

from .conftest import READ_TIME_COLUMNS, without_nulls

KEY = "np-sandbox-whole-7c1d"
PRIMARY_KEYS: Dict[str, Tuple[str, ...]] = {
    "people": ("id",),
    "courses": ("id",),
    "groups": ("id",),
    "course_enrollments": ("course_id", "id"),
    "course_activities": ("course_id", "id"),
    "group_memberships": ("group_id", "id"),
    "quiz_attempts": ("id",),
    "quiz_attempt_answers": ("quiz_attempt_id", "id"),
    "transcripts": ("person_id", "id"),
    "events": ("id",),
}


@pytest.fixture(scope="module")
def sb() -> Iterator[SandboxServer]:
    options = SandboxOptions(
        seed=11, people=150, courses=45, groups=4, quiz_attempts=15, events=200, requests_per_second=None, api_key=KEY
    )
    with SandboxServer(options) as server:
        yield server


def sync(
    sb: SandboxServer,
    streams: Sequence[str],
    faults: FaultConfig,
    state: Optional[List[AirbyteStateMessage]] = None,
    sync_id: Optional[int] = None,
    sync_mode: SyncMode = SyncMode.full_refresh,
    num_workers: int = 8,
) -> EntrypointOutput:
    sb.set_faults(faults)
    sb.reset_stats()
    builder = CatalogBuilder()
    for name in streams:
        builder.with_stream(name, sync_mode)
    catalog = builder.build()
    for stream in catalog.streams:
        stream.sync_id = sync_id
    config = {
        "api_key": KEY,
        "base_url": sb.base_url,
        "page_size": 20,
        "requests_per_second": 1000,
        "backoff_base_seconds": 0.01,
        "retry_budget_seconds": 1,
        "num_workers": num_workers,
    }
    source = SourceNorthpassLms(catalog, config, state)
    return read(source, config, catalog, state, expecting_exception=True)


def statuses(output: EntrypointOutput) -> Dict[str, str]:
    last: Dict[str, str] = {}
    for message in output.trace_messages:
        status = message.trace.stream_status
        if status is not None:
            last[status.stream_descriptor.name] = status.status.name
    return last


def errors(output: EntrypointOutput) -> Dict[str, Any]:
    return {
        m.trace.error.stream_descriptor.name: m.trace.error for m in output.errors if m.trace.error.stream_descriptor
    }


def final_states(output: EntrypointOutput) -> Dict[str, Dict[str, Any]]:
    states: Dict[str, Dict[str, Any]] = {}
    for message in output.state_messages:
        stream = message.state.stream
        assert stream is not None and stream.stream_state is not None
        states[stream.stream_descriptor.name] = dict(stream.stream_state.__dict__)
    return states


def carried_state(output: EntrypointOutput) -> List[AirbyteStateMessage]:
    """What the platform hands the next attempt: the last state of each stream."""
    return [m.state for m in output.state_messages if m.state.stream is not None]  # type: ignore[misc]


def union(outputs: Sequence[EntrypointOutput], stream: str) -> Dict[Tuple[Any, ...], Dict[str, Any]]:
    """The records of the attempts together, by primary key: a record read twice must be the same record."""
    got: Dict[Tuple[Any, ...], Dict[str, Any]] = {}
    for output in outputs:
        for message in output.records:
            if message.record.stream != stream:
                continue
            record = {k: v for k, v in without_nulls(message.record.data).items() if k not in READ_TIME_COLUMNS}
            pk = tuple(record[k] for k in PRIMARY_KEYS[stream])
            assert got.setdefault(pk, record) == record, pk
    return got


def expected(sb: SandboxServer, stream: str) -> Dict[Tuple[Any, ...], Dict[str, Any]]:
    records = sb.expected_records(stream)
    return {
        tuple(r[k] for k in PRIMARY_KEYS[stream]): {
            k: v for k, v in without_nulls(r).items() if k not in READ_TIME_COLUMNS
        }
        for r in records
    }


def assert_exact(sb: SandboxServer, outputs: Sequence[EntrypointOutput], streams: Sequence[str]) -> None:
    for stream in streams:
        assert union(outputs, stream) == expected(sb, stream), stream


def assert_none_complete_short(sb: SandboxServer, output: EntrypointOutput) -> None:
    """The rule itself: a stream that ended COMPLETE delivered every record of its table."""
    for stream, status in statuses(output).items():
        if status == "COMPLETE" and stream in PRIMARY_KEYS:
            assert union([output], stream) == expected(sb, stream), f"{stream} COMPLETE with records missing"


def failed_attempts(sb: SandboxServer) -> int:
    return int(sb.stats()["faults_injected"].get("persistent_500", 0))


# ------------------------------------------------------------------ a parent listing with two or more readers

ORDERS = [
    (["course_enrollments", "course_activities"], 2),
    (["course_activities", "course_enrollments"], 8),
    (["courses", "course_enrollments", "course_activities"], 2),
    (["course_enrollments", "course_activities", "courses"], 8),
]


@pytest.mark.parametrize("streams,workers", ORDERS)
def test_given_one_page_of_courses_failing_when_read_in_any_order_then_no_reader_complete_and_retry_exact(
    sb: SandboxServer, short_waits: List[float], streams: List[str], workers: int
) -> None:
    first = sync(sb, streams, FaultConfig(failing_paths=["/v2/courses?page=2"]), sync_id=5, num_workers=workers)

    assert failed_attempts(sb) >= 2  # retried, then given up: the fault outlasted the budget
    assert all(statuses(first)[s] == "INCOMPLETE" for s in streams), statuses(first)
    for child in ("course_enrollments", "course_activities"):
        assert "could not be read whole" in errors(first)[child].message
    assert not any(state.get("complete") for state in final_states(first).values())
    assert_none_complete_short(sb, first)

    retried = sync(sb, streams, FaultConfig(), state=carried_state(first), sync_id=5, num_workers=workers)

    assert all(statuses(retried)[s] == "COMPLETE" for s in streams)
    assert_exact(sb, [first, retried], streams)


def test_given_every_page_of_groups_failing_when_read_then_groups_and_memberships_fail_and_people_exact(
    sb: SandboxServer, short_waits: List[float]
) -> None:
    streams = ["people", "group_memberships", "groups"]
    first = sync(sb, streams, FaultConfig(failing_paths=["/v2/groups"]))

    assert statuses(first) == {"people": "COMPLETE", "groups": "INCOMPLETE", "group_memberships": "INCOMPLETE"}
    assert_exact(sb, [first], ["people"])
    assert union([first], "group_memberships") == {}

    # No sync_id: the next sync reads everything, and is exact by itself.
    after = sync(sb, streams, FaultConfig())
    assert set(statuses(after).values()) == {"COMPLETE"}
    assert_exact(sb, [after], streams)


def test_given_one_child_collection_failing_when_read_then_stream_fails_others_delivered_and_retry_reads_only_it(
    sb: SandboxServer, short_waits: List[float]
) -> None:
    course = sb.dataset.course_ids_by_index[3]
    broken = f"/v2/courses/{course}/enrollments"
    streams = ["courses", "course_enrollments"]

    first = sync(sb, streams, FaultConfig(failing_paths=[broken]), sync_id=8, num_workers=2)

    assert statuses(first) == {"courses": "COMPLETE", "course_enrollments": "INCOMPLETE"}
    assert broken in errors(first)["course_enrollments"].message
    delivered = {pk[0] for pk in union([first], "course_enrollments")}
    assert course not in delivered and delivered == {pk[0] for pk in expected(sb, "course_enrollments")} - {course}
    checkpoint = final_states(first)["course_enrollments"]
    assert checkpoint["sync_id"] == 8 and "parents" in checkpoint

    retried = sync(sb, streams, FaultConfig(), state=carried_state(first), sync_id=8, num_workers=2)

    asked = [e["target"] for e in sb.stats()["requests_log"] if "/enrollments" in e["target"]]
    assert asked and all(broken in target for target in asked)  # only the course that failed is read again
    assert statuses(retried)["course_enrollments"] == "COMPLETE"
    assert_exact(sb, [first, retried], ["course_enrollments"])


# -------------------------------------------------------------------- the webhook log, the transcripts evidence


@pytest.mark.parametrize("streams", [["quiz_attempts", "quiz_attempt_answers"], ["quiz_attempt_answers"]])
def test_given_webhook_log_failing_when_attempts_and_answers_read_then_both_fail_and_next_sync_exact(
    sb: SandboxServer, short_waits: List[float], streams: List[str]
) -> None:
    first = sync(sb, streams, FaultConfig(failing_paths=["/v2/webhooks?page=2"]), sync_mode=SyncMode.incremental)

    assert set(statuses(first).values()) == {"INCOMPLETE"}
    assert all(state == {} for state in final_states(first).values())  # no cursor: the next sync reads it all
    assert_none_complete_short(sb, first)

    after = sync(sb, streams, FaultConfig(), state=carried_state(first), sync_mode=SyncMode.incremental)
    assert set(statuses(after).values()) == {"COMPLETE"}
    assert_exact(sb, [first, after], streams)


@pytest.mark.parametrize(
    "streams,log",
    [
        (["transcripts"], "/v2/events"),
        (["events", "transcripts"], "/v2/events"),
        (["transcripts", "quiz_attempts"], "/v2/webhooks"),
    ],
)
def test_given_evidence_log_failing_when_incremental_transcripts_then_failed_state_kept_and_next_sync_finds_it(
    sb: SandboxServer, short_waits: List[float], streams: List[str], log: str
) -> None:
    baseline = sync(sb, ["transcripts"], FaultConfig(), sync_mode=SyncMode.incremental)
    assert statuses(baseline)["transcripts"] == "COMPLETE"
    incoming = final_states(baseline)["transcripts"]
    kind = "event" if log == "/v2/events" else "quiz_attempt"
    changed = sb.change_transcripts(evidence=3, kinds=[kind])["evidence"][kind]  # each leaves evidence in `log`

    first = sync(
        sb,
        streams,
        FaultConfig(failing_paths=[log]),
        state=carried_state(baseline),
        sync_mode=SyncMode.incremental,
    )

    assert statuses(first)["transcripts"] == "INCOMPLETE"
    message = errors(first)["transcripts"].message
    assert message.startswith("Stream transcripts: could not read its evidence") and log in message
    assert union([first], "transcripts") == {}
    assert final_states(first)["transcripts"] == incoming  # the next sync looks for the same evidence

    after = sync(sb, ["transcripts"], FaultConfig(), state=carried_state(first), sync_mode=SyncMode.incremental)

    assert statuses(after)["transcripts"] == "COMPLETE"
    people = {pk[0] for pk in union([after], "transcripts")}
    assert set(changed) <= people, (changed, len(people))
    got = union([after], "transcripts")
    assert all(got[pk] == record for pk, record in expected(sb, "transcripts").items() if pk[0] in people)


# ------------------------------------------------------------------------------------------------- refusals


def test_given_groups_refused_when_read_then_config_error_names_stream_endpoint_remedy_and_others_exact(
    sb: SandboxServer,
) -> None:
    streams = ["people", "courses", "groups", "group_memberships"]
    output = sync(sb, streams, FaultConfig(forbidden_paths=["/v2/groups"]))

    assert statuses(output) == {
        "people": "COMPLETE",
        "courses": "COMPLETE",
        "groups": "INCOMPLETE",
        "group_memberships": "INCOMPLETE",
    }
    assert_exact(sb, [output], ["people", "courses"])
    for stream in ("groups", "group_memberships"):
        error = errors(output)[stream]
        assert error.failure_type == FailureType.config_error
        assert error.message.startswith(f"Stream {stream}: ")
        assert f"{sb.base_url}/v2/groups" in error.message and "(HTTP 403)" in error.message
        assert "Use the API key of a user who may read it" in error.message and "deselect" in error.message


def test_given_one_group_refused_when_memberships_read_then_stream_fails_and_table_never_silently_smaller(
    sb: SandboxServer,
) -> None:
    group = sb.dataset.group_ids_by_index[1]
    output = sync(
        sb,
        ["groups", "group_memberships"],
        FaultConfig(forbidden_paths=[f"/v2/groups/{group}/memberships"]),
        num_workers=1,
    )

    assert statuses(output) == {"groups": "COMPLETE", "group_memberships": "INCOMPLETE"}
    error = errors(output)["group_memberships"]
    assert error.failure_type == FailureType.config_error and f"group_id {group}" in error.message
    assert_exact(sb, [output], ["groups"])

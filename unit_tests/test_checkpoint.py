"""Resume checkpoints (checkpoint.py): which parents an attempt skips, when a checkpoint is honoured, state size."""

from __future__ import annotations

import logging
import random
import uuid
from typing import Any, Dict, Iterable, List, Mapping, Optional
from urllib.parse import urlsplit

import requests_mock as rm
from airbyte_cdk.entrypoint import AirbyteEntrypoint
from airbyte_cdk.models import (
    AirbyteMessage,
    AirbyteStateBlob,
    AirbyteStateMessage,
    AirbyteStateType,
    AirbyteStreamState,
    Level,
    StreamDescriptor,
)
from airbyte_cdk.sources.connector_state_manager import ConnectorStateManager
from airbyte_cdk.sources.message import MessageRepository
from airbyte_cdk.sources.streams.concurrent.partitions.partition import Partition
from airbyte_cdk.sources.types import Record
from airbyte_cdk.test.entrypoint_wrapper import EntrypointOutput, read

from source_northpass_lms import SourceNorthpassLms
from source_northpass_lms.checkpoint import MAX_STATE_BYTES, ParentCheckpoint

from .conftest import API, catalog, course, enrollment, jsonapi_page, make_config, records_of

START_OVER = {"__ab_no_cursor_state_message": True}
logger = logging.getLogger("airbyte")


class Captured(MessageRepository):
    def __init__(self) -> None:
        self.messages: List[AirbyteMessage] = []

    def emit_message(self, message: AirbyteMessage) -> None:
        self.messages.append(message)

    def log_message(self, level: Level, message_provider: Any) -> None:
        pass

    def consume_queue(self) -> Iterable[AirbyteMessage]:
        return []


class ParentPartition(Partition):
    def __init__(self, parent_id: str) -> None:
        self._slice = {"course_id": parent_id}

    def read(self) -> Iterable[Record]:
        return []

    def to_slice(self) -> Optional[Mapping[str, Any]]:
        return self._slice

    def stream_name(self) -> str:
        return "course_enrollments"

    def __hash__(self) -> int:
        return hash(self._slice["course_id"])


def checkpoint(incoming: Optional[Mapping[str, Any]], repository: MessageRepository) -> ParentCheckpoint:
    return ParentCheckpoint(
        "course_enrollments",
        None,
        7,
        incoming,
        repository,
        ConnectorStateManager(),
        logger,
        parent_key="course_id",
        interval=0,  # a checkpoint at every parent: the worst case for size
    )


def state_after(listing: List[str], done: Iterable[str]) -> Dict[str, Any]:
    """The checkpoint an attempt leaves after reading the collections of `done`."""
    cursor = checkpoint(None, Captured())
    assert list(cursor.parents_to_read(listing)) == listing
    for parent_id in done:
        cursor.close_partition(ParentPartition(parent_id))
    return dict(cursor.state)


def test_given_10000_parents_done_out_of_order_when_checkpointed_then_every_state_message_is_at_most_10_kb() -> None:
    rng = random.Random(3)
    listing = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(10_000)]
    order = listing[:]
    for start in range(0, len(order), 8):  # eight workers finish their parents in any order
        window = order[start : start + 8]
        rng.shuffle(window)
        order[start : start + 8] = window
    order.remove(listing[5])
    order.append(listing[5])  # one parent with thousands of pages holds the frontier back to the end
    repository = Captured()
    cursor = checkpoint(None, repository)

    assert list(cursor.parents_to_read(listing)) == listing
    for parent_id in order:
        cursor.close_partition(ParentPartition(parent_id))
    cursor.ensure_at_least_one_state_emitted()

    sizes = [len(AirbyteEntrypoint.airbyte_message_to_string(message)) for message in repository.messages]
    assert len(sizes) == 10_001
    assert max(sizes) <= MAX_STATE_BYTES, max(sizes)
    last = repository.messages[-1].state.stream.stream_state  # type: ignore[union-attr]
    assert last.__dict__ == {"sync_id": 7, "complete": True}
    print(f"\n10,000 parents: largest state message {max(sizes)} bytes")


def test_given_checkpoint_and_same_listing_when_resumed_then_only_parents_not_done_are_read() -> None:
    listing = [f"course-{i}" for i in range(10)]
    state = state_after(listing, ["course-0", "course-1", "course-2", "course-6"])

    resumed = checkpoint(state, Captured())

    assert state["parents"]["prefix"] == 3 and state["parents"]["done"] == ["course-6"]
    assert list(resumed.parents_to_read(listing)) == [
        "course-3",
        "course-4",
        "course-5",
        "course-7",
        "course-8",
        "course-9",
    ]


def test_given_parents_added_before_the_done_run_when_resumed_then_they_are_read_and_the_run_skipped() -> None:
    listing = [f"course-{i}" for i in range(6)]
    state = state_after(listing, ["course-0", "course-1", "course-2"])

    resumed = checkpoint(state, Captured())

    new_listing = ["course-new-a", "course-new-b", *listing]
    assert list(resumed.parents_to_read(new_listing)) == [
        "course-new-a",
        "course-new-b",
        "course-3",
        "course-4",
        "course-5",
    ]


def test_given_a_parent_of_the_done_run_gone_when_resumed_then_only_the_ids_recorded_one_by_one_are_skipped() -> None:
    listing = [f"course-{i}" for i in range(6)]
    state = state_after(listing, ["course-0", "course-1", "course-2", "course-4"])

    resumed = checkpoint(state, Captured())

    # course-1 was deleted: the first three ids no longer hash to the digest, so nothing of the run is provably
    # done; course-4, recorded by id, is still skipped.
    without = [p for p in listing if p != "course-1"]
    assert list(resumed.parents_to_read(without)) == ["course-0", "course-2", "course-3", "course-5"]


def test_given_a_parent_inserted_inside_the_done_run_when_resumed_then_it_is_read() -> None:
    listing = [f"course-{i}" for i in range(6)]
    state = state_after(listing, ["course-0", "course-1", "course-2"])

    resumed = checkpoint(state, Captured())

    changed = ["course-0", "course-1", "course-new", "course-2", "course-3", "course-4", "course-5"]
    assert "course-new" in list(resumed.parents_to_read(changed))


# Through the source, as Airbyte runs it.


def state_message(stream: str, value: Mapping[str, Any]) -> AirbyteStateMessage:
    return AirbyteStateMessage(
        type=AirbyteStateType.STREAM,
        stream=AirbyteStreamState(
            stream_descriptor=StreamDescriptor(name=stream), stream_state=AirbyteStateBlob(**value)
        ),
    )


def read_with(
    streams: List[str], sync_id: Optional[int], state: List[AirbyteStateMessage], expecting_exception: bool = False
) -> EntrypointOutput:
    configured = catalog(*streams)
    for configured_stream in configured.streams:
        configured_stream.sync_id = sync_id
    config = make_config(retry_budget_seconds=0.5)
    return read(
        SourceNorthpassLms(configured, config, state),
        config,
        configured,
        state,
        expecting_exception=expecting_exception,
    )


def three_courses(http: rm.Mocker) -> None:
    http.get(f"{API}/courses", json=jsonapi_page([course(i) for i in range(3)]))
    for i in range(3):
        http.get(f"{API}/courses/course-{i}/enrollments", json=jsonapi_page([enrollment(i)]))


def enrollment_requests(http: rm.Mocker) -> List[str]:
    paths = [urlsplit(r.url).path.split("/") for r in http.request_history]
    return sorted(path[3] for path in paths if path[-1] == "enrollments")


def last_states(output: EntrypointOutput) -> Dict[str, Any]:
    states: Dict[str, Any] = {}
    for message in output.state_messages:
        stream_state = message.state.stream  # type: ignore[union-attr]
        assert stream_state is not None and stream_state.stream_state is not None
        states[stream_state.stream_descriptor.name] = stream_state.stream_state.__dict__
    return states


def test_given_checkpoint_of_this_sync_when_read_then_parents_done_are_skipped_and_the_read_ends_with_start_over(
    http: rm.Mocker,
) -> None:
    three_courses(http)
    listing = ["course-0", "course-1", "course-2"]
    incoming = [
        state_message("course_enrollments", state_after(listing, ["course-0"])),
        state_message("courses", {"sync_id": 7, "complete": True}),
    ]

    output = read_with(["courses", "course_enrollments"], 7, incoming)

    assert enrollment_requests(http) == ["course-1", "course-2"]
    assert records_of(output, "courses") == []  # read to its end by the earlier attempt
    assert sorted(r["course_id"] for r in records_of(output, "course_enrollments")) == ["course-1", "course-2"]
    assert last_states(output) == {"courses": START_OVER, "course_enrollments": START_OVER}
    assert any("1 of 3 parents were read whole then and are skipped" in m.log.message for m in output.logs)  # type: ignore[union-attr]


def test_given_checkpoint_of_another_sync_when_read_then_every_parent_read_with_info(http: rm.Mocker) -> None:
    three_courses(http)
    incoming = [state_message("course_enrollments", state_after(["course-0", "course-1", "course-2"], ["course-0"]))]

    output = read_with(["course_enrollments"], 8, incoming)

    assert enrollment_requests(http) == ["course-0", "course-1", "course-2"]
    assert any("checkpoint of sync 7, not of this sync (8)" in m.log.message for m in output.logs)  # type: ignore[union-attr]


def test_given_malformed_checkpoint_of_this_sync_when_read_then_every_parent_read_with_info(http: rm.Mocker) -> None:
    three_courses(http)
    incoming = [state_message("course_enrollments", {"sync_id": 7, "parents": {"prefix": "three"}})]

    output = read_with(["course_enrollments"], 7, incoming)

    assert enrollment_requests(http) == ["course-0", "course-1", "course-2"]
    info = [m.log.message for m in output.logs if m.log.level == Level.INFO]  # type: ignore[union-attr]
    assert any("was not written by this connector version (or was edited): reading the whole stream" in m for m in info)


def test_given_no_sync_id_when_read_then_states_are_those_of_a_plain_full_refresh(http: rm.Mocker) -> None:
    three_courses(http)

    output = read_with(["courses", "course_enrollments"], None, [])

    assert enrollment_requests(http) == ["course-0", "course-1", "course-2"]
    assert [m.state.stream.stream_state.__dict__ for m in output.state_messages] == [START_OVER, START_OVER]  # type: ignore[union-attr]


def test_given_a_parent_failing_when_read_then_the_last_state_checkpoints_the_others_and_no_start_over(
    http: rm.Mocker,
) -> None:
    http.get(f"{API}/courses", json=jsonapi_page([course(i) for i in range(3)]))
    for i in (0, 2):
        http.get(f"{API}/courses/course-{i}/enrollments", json=jsonapi_page([enrollment(i)]))
    http.get(f"{API}/courses/course-1/enrollments", status_code=500, text="<html>down</html>")

    output = read_with(["courses", "course_enrollments"], 7, [], expecting_exception=True)

    states = last_states(output)
    assert states["courses"] == {"sync_id": 7, "complete": True}
    assert states["course_enrollments"]["sync_id"] == 7
    assert states["course_enrollments"]["parents"]["prefix"] == 1
    assert states["course_enrollments"]["parents"]["done"] == ["course-2"]
    resumed = checkpoint(states["course_enrollments"], Captured())
    assert list(resumed.parents_to_read(["course-0", "course-1", "course-2"])) == ["course-1"]

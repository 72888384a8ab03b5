"""Resuming through the CLI against the sandbox: SIGKILLed and failed attempts, continued by the next one.

The rule under test (source_northpass_lms/checkpoint.py): a checkpoint is honoured only by an attempt
whose catalog carries the same sync_id; a read in which no stream failed ends with "start over" states.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, DefaultDict, Dict, Iterator, List, Mapping, Optional, Set, Tuple

import pytest

from sandbox import FaultConfig, SandboxOptions, SandboxServer
from source_northpass_lms.paging import MAX_PAGES_IN_FLIGHT
from tools.harness import request_floor

from .conftest import CONNECTOR, catalog_for, keyed

PARENT_STREAMS = {"course_enrollments": "course_id", "course_activities": "course_id"}
STREAMS = ("courses", "course_enrollments", "course_activities")
START_OVER = {"__ab_no_cursor_state_message": True}
MAX_STATE_BYTES = 10_000  # the bound for one state message
KILLS = 5  # then the next run is left to finish


@dataclass
class Attempt:
    returncode: int
    killed: bool
    messages: List[Dict[str, Any]]
    requests: List[str]  # request targets the sandbox received during the attempt
    stderr: str = ""
    last_states: Dict[str, Dict[str, Any]] = field(default_factory=dict)

    def records(self, stream: str) -> List[Mapping[str, Any]]:
        return [m["record"]["data"] for m in self.messages if m["type"] == "RECORD" and m["record"]["stream"] == stream]

    def states(self) -> List[Dict[str, Any]]:
        return [m["state"] for m in self.messages if m["type"] == "STATE"]


def catalog(sync_id: Optional[int], *streams: str) -> Dict[str, Any]:
    built = catalog_for(*streams)
    if sync_id is not None:
        for configured in built["streams"]:
            configured["sync_id"] = sync_id
    return built


def attempt(
    sb: SandboxServer,
    tmp_path: Path,
    config: Mapping[str, Any],
    configured_catalog: Mapping[str, Any],
    state: Optional[List[Dict[str, Any]]],
    kill_after: Optional[float] = None,
    kill_when: Optional[Callable[[Dict[str, Any]], bool]] = None,
) -> Attempt:
    """One `read` of the CLI, SIGKILLed after `kill_after` seconds or at the first message matching `kill_when`."""
    sb.reset_stats()
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "catalog.json").write_text(json.dumps(configured_catalog))
    args = [str(CONNECTOR), "read", "--config", str(tmp_path / "config.json")]
    args += ["--catalog", str(tmp_path / "catalog.json")]
    if state is not None:
        (tmp_path / "state.json").write_text(json.dumps(state))
        args += ["--state", str(tmp_path / "state.json")]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed = threading.Event()

    def kill() -> None:
        if proc.poll() is None:
            killed.set()
            os.kill(proc.pid, signal.SIGKILL)

    timer = threading.Timer(kill_after, kill) if kill_after is not None else None
    if timer:
        timer.start()
    stderr: List[str] = []
    drain = threading.Thread(target=lambda: stderr.extend(proc.stderr or []), daemon=True)
    drain.start()
    messages: List[Dict[str, Any]] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        if not line.startswith("{"):
            continue
        try:
            message = json.loads(line)
        except ValueError:
            break  # the last line, cut by the kill
        messages.append(message)
        if kill_when and kill_when(message):
            kill()
    proc.wait(timeout=120)
    if timer:
        timer.cancel()
    drain.join(timeout=10)
    stats = sb.stats()
    deadline = time.monotonic() + 5
    # After a kill, requests already sent are still being answered: count them in this attempt, not the next.
    while stats["requests"] != len(stats["requests_log"]) and time.monotonic() < deadline:
        time.sleep(0.05)
        stats = sb.stats()
    requests = [entry["target"] for entry in stats["requests_log"]]
    result = Attempt(proc.returncode, killed.is_set(), messages, requests, "".join(stderr))
    for stream_state in result.states():
        result.last_states[stream_state["stream"]["stream_descriptor"]["name"]] = stream_state
    return result


def next_state(previous: Optional[List[Dict[str, Any]]], run: Attempt) -> List[Dict[str, Any]]:
    """What a platform passes to the next attempt: the last state of each stream, the newest winning."""
    by_stream = {s["stream"]["stream_descriptor"]["name"]: s for s in previous or []}
    by_stream.update(run.last_states)
    return list(by_stream.values())


def covered_parents(stream_state: Mapping[str, Any], listing: List[str]) -> Set[str]:
    """The parents a child stream's state says were read whole, checking its digest against the listing."""
    if stream_state.get("complete") is True:
        return set(listing)
    parents = stream_state.get("parents")
    if not parents:
        return set()
    prefix = parents["prefix"]
    digest = hashlib.sha256()
    for parent_id in listing[:prefix]:
        digest.update(json.dumps(parent_id).encode() + b"\n")
    assert digest.hexdigest() == parents["prefix_digest"], "the prefix digest is not that of the listing's first ids"
    assert prefix == 0 or listing[prefix - 1] == parents["last"]
    return set(listing[:prefix]) | set(parents["done"])


def after_checkpoint_and_records(count: int) -> Callable[[Dict[str, Any]], bool]:
    """A kill_when that fires at the count-th child record after the attempt's first checkpoint."""
    seen: List[int] = []

    def reached(message: Dict[str, Any]) -> bool:
        if message["type"] == "STATE" and "parents" in message["state"]["stream"]["stream_state"] and not seen:
            seen.append(0)
        elif seen and message["type"] == "RECORD" and message["record"]["stream"] in PARENT_STREAMS:
            seen[0] += 1
        return bool(seen) and seen[0] >= count

    return reached


def parent_of_request(stream: str, target: str) -> Optional[str]:
    path = target.split("?")[0].strip("/").split("/")
    if (
        len(path) == 4
        and path[1] == "courses"
        and {"enrollments": "course_enrollments", "activities": "course_activities"}.get(path[3]) == stream
    ):
        return path[2]
    return None


@pytest.fixture(scope="module")
def many_courses() -> Iterator[SandboxServer]:
    # 320 courses, each with its enrollments and activities: about 650 requests per complete read.
    options = SandboxOptions(
        seed=11, people=400, courses=320, requests_per_second=None, latency_ms=15, requests_log_size=100_000
    )
    with SandboxServer(options) as sb:
        yield sb


def sandbox_config(sb: SandboxServer, **overrides: Any) -> Dict[str, Any]:
    return {"api_key": "sandbox-key", "base_url": sb.base_url, "requests_per_second": 20, **overrides}


def test_given_sigkills_at_random_moments_when_restarted_with_last_states_and_same_sync_id_then_union_is_every_record(
    many_courses: SandboxServer, tmp_path: Path
) -> None:
    sb = many_courses
    listing = [course["id"] for course in sb.dataset.collection("courses") or []]
    expected: Dict[str, List[Mapping[str, Any]]] = {stream: list(sb.expected_records(stream)) for stream in STREAMS}
    keys = {"courses": ("id",), **{s: (PARENT_STREAMS[s], "id") for s in PARENT_STREAMS}}
    floor = sum(request_floor(list(STREAMS), expected).values())
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    configured = catalog(4242, *STREAMS)
    state: Optional[List[Dict[str, Any]]] = None
    runs: List[Attempt] = []
    delivered_keys: Dict[str, Set[Tuple[Any, ...]]] = {stream: set() for stream in PARENT_STREAMS}
    while True:
        kills = sum(1 for r in runs if r.killed)
        kill_after: Optional[float] = None
        kill_when: Optional[Callable[[Dict[str, Any]], bool]] = None
        if kills == 0:
            kill_after = rng.uniform(0.5, 3.0)  # start-up, listing or first parents: maybe before any checkpoint
        elif kills < KILLS:
            # After this attempt's first checkpoint (so that each kill leaves progress to resume from), at a random
            # share of what remains to read, whatever the machine's speed.
            left = sum(len(expected[s]) for s in PARENT_STREAMS) - sum(len(delivered_keys[s]) for s in PARENT_STREAMS)
            kill_when = after_checkpoint_and_records(int(left * rng.uniform(0.0, 0.4)))
        run = attempt(sb, tmp_path, sandbox_config(sb), configured, state, kill_after=kill_after, kill_when=kill_when)
        for stream in PARENT_STREAMS:
            delivered_keys[stream].update(tuple(r[k] for k in keys[stream]) for r in run.records(stream))
        runs.append(run)
        # Never a request for a parent the state given to this attempt says was read whole.
        if state is not None:
            for stream in PARENT_STREAMS:
                given = next((s for s in state if s["stream"]["stream_descriptor"]["name"] == stream), None)
                covered = covered_parents(given["stream"]["stream_state"], listing) if given else set()
                again = {parent_of_request(stream, t) for t in run.requests} & covered
                assert not again, f"attempt {len(runs)} re-read {len(again)} {stream} parents its state covers"
        state = next_state(state, run)
        if not run.killed:
            break
        assert len(runs) < 20, f"no attempt completed (kill seed {seed})"
    assert runs[-1].returncode == 0, runs[-1].stderr[-3000:]

    delivered: DefaultDict[str, Counter[Tuple[Any, ...]]] = defaultdict(Counter)
    # Per kill: parents requested but not covered by the attempt's last state (in flight, or finished since
    # the last checkpoint), and among them those whose records were cut short by the kill.
    in_flight: List[int] = []
    cut_short: List[int] = []
    wasted_allowance = 0
    for index, run in enumerate(runs):
        # A checkpoint comes after every record of the parents it covers (same or earlier attempts).
        seen_so_far = {stream: set(delivered[stream]) for stream in STREAMS}
        for message in run.messages:
            if message["type"] == "RECORD":
                stream = message["record"]["stream"]
                seen_so_far[stream].add(tuple(message["record"]["data"][k] for k in keys[stream]))
            elif message["type"] == "STATE":
                assert len(json.dumps(message)) <= MAX_STATE_BYTES
                stream = message["state"]["stream"]["stream_descriptor"]["name"]
                if stream in PARENT_STREAMS and message["state"]["stream"]["stream_state"] != START_OVER:
                    covered = covered_parents(message["state"]["stream"]["stream_state"], listing)
                    owed = {
                        tuple(r[k] for k in keys[stream]) for r in expected[stream] if r[keys[stream][0]] in covered
                    }
                    assert owed <= seen_so_far[stream], f"attempt {index + 1}: a checkpoint overtook its records"
        for stream in STREAMS:
            delivered[stream].update(tuple(r[k] for k in keys[stream]) for r in run.records(stream))
        if run.killed:
            uncovered, cut = 0, 0
            for stream in PARENT_STREAMS:
                last = run.last_states.get(stream)
                covered = covered_parents(last["stream"]["stream_state"], listing) if last else set()
                requested = [p for p in (parent_of_request(stream, t) for t in run.requests) if p]
                uncovered += len({p for p in requested if p not in covered})
                wasted_allowance += sum(1 for p in requested if p not in covered)
                received = Counter(r[PARENT_STREAMS[stream]] for r in run.records(stream))
                whole = Counter(r[PARENT_STREAMS[stream]] for r in expected[stream])
                cut += len({p for p in requested if received[p] < whole[p]})
            wasted_allowance += sum(1 for t in run.requests if t.split("?")[0].rstrip("/") == "/v2/courses")
            in_flight.append(uncovered)
            cut_short.append(cut)

    total_requests = sum(len(run.requests) for run in runs)
    duplicates = {stream: sum(n - 1 for n in delivered[stream].values() if n > 1) for stream in STREAMS}
    union = {stream: len(delivered[stream]) for stream in STREAMS}
    print(
        f"\nkill seed {seed}: {len(runs) - 1} kills, attempts' exit codes {[r.returncode for r in runs]}; "
        f"records expected {sum(len(v) for v in expected.values())}, union {sum(union.values())} {union}; "
        f"duplicates {duplicates}; parents not checkpointed at each kill {in_flight}, of which cut short {cut_short}; "
        f"requests {total_requests} vs floor {floor} (allowance for the kills {wasted_allowance})"
    )
    for stream in STREAMS:
        assert set(delivered[stream]) == set(keyed(expected[stream], keys[stream])), stream
    assert len(runs) - 1 == KILLS
    # Every attempt after the second was given checkpoints, and read less than the whole list.
    assert all(len(run.requests) < floor for run in runs[2:])
    assert total_requests <= floor + wasted_allowance
    assert runs[-1].last_states and all(
        s["stream"]["stream_state"] == START_OVER for s in runs[-1].last_states.values()
    )


def test_given_checkpoint_of_a_killed_attempt_when_next_run_has_no_sync_id_or_another_then_it_reads_everything(
    many_courses: SandboxServer, tmp_path: Path
) -> None:
    sb = many_courses
    expected: Dict[str, List[Mapping[str, Any]]] = {
        s: list(sb.expected_records(s)) for s in ("courses", "course_enrollments")
    }
    floor = sum(request_floor(["course_enrollments"], expected).values())

    def is_checkpoint(message: Dict[str, Any]) -> bool:
        return message["type"] == "STATE" and "parents" in message["state"]["stream"]["stream_state"]

    config = sandbox_config(sb, requests_per_second=50)
    killed = attempt(sb, tmp_path, config, catalog(5, "course_enrollments"), None, kill_when=is_checkpoint)
    assert killed.killed and killed.last_states["course_enrollments"]["stream"]["stream_state"]["parents"]["prefix"] > 0
    state = next_state(None, killed)

    for sync_id, reason in ((None, "the catalog gives no sync_id"), (6, "not of this sync (6)")):
        again = attempt(sb, tmp_path, config, catalog(sync_id, "course_enrollments"), state)
        assert again.returncode == 0, again.stderr[-3000:]
        keyed(again.records("course_enrollments"), ("course_id", "id"))  # each record once
        assert len(again.records("course_enrollments")) == len(expected["course_enrollments"])
        assert_at_the_floor(again, floor)
        logs = [m["log"]["message"] for m in again.messages if m["type"] == "LOG" and m["log"]["level"] == "INFO"]
        assert any("checkpoint of sync 5" in line and reason in line for line in logs), logs[-20:]


def test_given_a_stream_failing_past_the_retry_budget_when_next_attempt_resumes_then_only_its_missing_parent_is_read(
    tmp_path: Path,
) -> None:
    options = SandboxOptions(seed=5, people=300, courses=40, requests_per_second=None, requests_log_size=10_000)
    streams = ("people", "courses", "course_enrollments", "course_activities")
    keys = {
        "people": ("id",),
        "courses": ("id",),
        "course_enrollments": ("course_id", "id"),
        "course_activities": ("course_id", "id"),
    }
    with SandboxServer(options) as sb:
        failing = sb.dataset.course_ids_by_index[10]
        sb.set_faults(FaultConfig(always_truncate_path=f"/v2/courses/{failing}/enrollments"))
        config = sandbox_config(sb, requests_per_second=1000, retry_budget_seconds=1, backoff_base_seconds=0.01)
        configured = catalog(9, *streams)

        first = attempt(sb, tmp_path, config, configured, None)
        sb.set_faults(FaultConfig())
        second = attempt(sb, tmp_path, config, configured, next_state(None, first))
        third = attempt(sb, tmp_path, config, configured, next_state(next_state(None, first), second))

        expected = {stream: keyed(list(sb.expected_records(stream)), keys[stream]) for stream in streams}
    statuses = {
        m["trace"]["stream_status"]["stream_descriptor"]["name"]: m["trace"]["stream_status"]["status"]
        for m in first.messages
        if m["type"] == "TRACE"
        and m["trace"]["type"] == "STREAM_STATUS"
        and m["trace"]["stream_status"]["status"] in ("COMPLETE", "INCOMPLETE")
    }
    assert first.returncode == 1
    assert statuses == {
        "people": "COMPLETE",
        "courses": "COMPLETE",
        "course_enrollments": "INCOMPLETE",
        "course_activities": "COMPLETE",
    }
    assert second.returncode == 0, second.stderr[-3000:]
    # The second attempt reads the failed course's enrollments and nothing else but the course list they need.
    assert {stream: len(second.records(stream)) for stream in streams} == {
        "people": 0,
        "courses": 0,
        "course_enrollments": sum(1 for key in expected["course_enrollments"] if key[0] == failing),
        "course_activities": 0,
    }
    assert sorted(t.split("?")[0] for t in second.requests) == ["/v2/courses", f"/v2/courses/{failing}/enrollments"]
    for stream in streams:
        union = keyed(first.records(stream) + second.records(stream), keys[stream])  # none delivered twice
        assert set(union) == set(expected[stream]), stream
    # The sync is whole: its last states say "start over", and a third read with the same sync_id reads everything.
    assert {name: s["stream"]["stream_state"] for name, s in second.last_states.items()} == dict.fromkeys(
        streams, START_OVER
    )
    assert third.returncode == 0
    for stream in streams:
        assert set(keyed(third.records(stream), keys[stream])) == set(expected[stream]), stream


def assert_at_the_floor(run: Attempt, floor: int) -> None:
    """Every page of every list asked for once, plus at most a few pages read-ahead asks for past a long list's end.

    Read-ahead opens when answers take 50 ms or more (paging.py), which a loaded machine makes of the sandbox's 15 ms:
    those few pages depend on the machine, not on the sync_id or the checkpoint.
    """
    assert len(set(run.requests)) == len(run.requests), "a page asked for twice"
    assert floor <= len(run.requests) <= floor + MAX_PAGES_IN_FLIGHT


def test_given_sync_id_and_no_state_when_read_then_same_records_and_requests_as_without_one(
    many_courses: SandboxServer, tmp_path: Path
) -> None:
    sb = many_courses
    expected: Dict[str, List[Mapping[str, Any]]] = {stream: list(sb.expected_records(stream)) for stream in STREAMS}
    floor = sum(request_floor(list(STREAMS), expected).values())
    config = sandbox_config(sb, requests_per_second=200)

    plain = attempt(sb, tmp_path, config, catalog(None, *STREAMS), None)
    with_id = attempt(sb, tmp_path, config, catalog(31, *STREAMS), None)

    for run in (plain, with_id):
        assert run.returncode == 0, run.stderr[-3000:]
        assert_at_the_floor(run, floor)
    for stream in STREAMS:
        key = ("id",) if stream == "courses" else (PARENT_STREAMS[stream], "id")
        assert keyed(with_id.records(stream), key) == keyed(plain.records(stream), key) == keyed(expected[stream], key)
    checkpoints = [s for s in with_id.states() if "parents" in s["stream"]["stream_state"]]
    assert checkpoints, "a sync of several seconds checkpoints its child streams"
    assert {name: s["stream"]["stream_state"] for name, s in with_id.last_states.items()} == dict.fromkeys(
        STREAMS, START_OVER
    )

"""Learning activity (events, quiz attempts, their answers) through the CLI, in every way the API might behave.

Whether `/v2/events` and `/v2/webhooks` honour `sort=-created_at` and `filter[created_at][gteq]` is unknown,
so each is switched on and off in the sandbox: an incremental sync must deliver exactly the new records
(ties at the cursor included) in all four cases, and cost about the pages that hold them when the sort is
honoured.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Dict, List

import pytest

from sandbox import SandboxOptions, SandboxServer
from sandbox.data import ACTIVITY_STREAMS, PRIMARY_KEYS, parse_ts

from .conftest import CliRun, catalog_for, keyed, run_cli

STREAMS = tuple(ACTIVITY_STREAMS)
FAST = {"api_key": "sandbox-key", "requests_per_second": 1000}
EVENTS_PAGE = 100  # the connector's default page size
NEW_EVENTS, NEW_ATTEMPTS = 300, 10
PARENT = {"quiz_attempt_answers": "quiz_attempts"}


def _states(run: CliRun) -> List[Dict[str, Any]]:
    return [m["state"] for m in run.of_type("STATE")]


def _state_of(run: CliRun, stream: str) -> Dict[str, Any]:
    states = [s["stream"]["stream_state"] for s in _states(run) if s["stream"]["stream_descriptor"]["name"] == stream]
    return states[-1]


def _logs(run: CliRun) -> List[str]:
    return [m["log"]["message"] for m in run.of_type("LOG")]


def _at_or_after(records: List[Dict[str, Any]], field: str, cursor: str) -> List[Dict[str, Any]]:
    bound = parse_ts(cursor)
    return [r for r in records if parse_ts(r[field]) >= bound]


@pytest.mark.parametrize("sort", ["honour", "ignore"])
@pytest.mark.parametrize("created_filter", ["honour", "ignore"])
def test_given_new_activity_when_second_incremental_sync_then_exactly_the_new_records_ties_included(
    sort: str, created_filter: str, tmp_path: Path
) -> None:
    options = SandboxOptions(
        seed=5, people=300, courses=8, events=3000, quiz_attempts=120, requests_per_second=None, activity_sort=sort,
        created_filter=created_filter, webhook_limit="reject",
    )  # fmt: skip
    with SandboxServer(options) as sandbox:
        config = {**FAST, "base_url": sandbox.base_url}
        first = run_cli("read", tmp_path, config, catalog_for(*STREAMS, sync_mode="incremental"))
        for stream in STREAMS:
            expected = keyed(sandbox.expected_records(stream), PRIMARY_KEYS[stream])
            assert keyed(first.records[stream], PRIMARY_KEYS[stream]) == expected, stream
        cursors = {stream: _state_of(first, stream)[ACTIVITY_STREAMS[stream]] for stream in STREAMS}

        # 300 new events, 160 of them at exactly the newest created_at already read; 10 new quiz attempts.
        sandbox.add_activity(events=NEW_EVENTS, quiz_attempts=NEW_ATTEMPTS)
        sandbox.reset_stats()
        second = run_cli("read", tmp_path, config, catalog_for(*STREAMS, sync_mode="incremental"), _states(first))
        incremental = sandbox.stats()
        sandbox.reset_stats()
        full = run_cli("read", tmp_path, config, catalog_for(*STREAMS))
        full_stats = sandbox.stats()

    assert first.returncode == second.returncode == full.returncode == 0, second.stderr[-2000:]
    delivered: Dict[str, int] = {}
    for stream in STREAMS:
        field = ACTIVITY_STREAMS[stream]
        wanted = _at_or_after(sandbox.expected_records(stream), field, cursors[stream])
        assert keyed(second.records.get(stream, []), PRIMARY_KEYS[stream]) == keyed(wanted, PRIMARY_KEYS[stream]), (
            stream
        )
        # The answers' cursor is their attempt's: the newest attempt read counts, with answers or without (404).
        newest = max(parse_ts(r[field]) for r in sandbox.expected_records(PARENT.get(stream, stream)))
        assert parse_ts(_state_of(second, stream)[field]) == newest.replace(microsecond=0), stream
        delivered[stream] = len(wanted)
    assert delivered["events"] > NEW_EVENTS  # the old events at the cursor's second came again
    assert delivered["quiz_attempts"] >= NEW_ATTEMPTS
    assert "400" not in incremental["by_status"] and "400" not in full_stats["by_status"]  # limit stayed <= 50

    events_second, events_full = incremental["by_path"]["/v2/events"], full_stats["by_path"]["/v2/events"]
    print(
        f"\n[sort {sort}, filter {created_filter}] records sync 1 "
        f"{ {s: len(first.records[s]) for s in STREAMS} }, sync 2 {delivered}; requests sync 2 "
        f"{incremental['requests']} (events {events_second}, webhooks {incremental['by_path']['/v2/webhooks']}, "
        f"answers {incremental['by_path'].get('/v2/quiz_attempts/{id}/answers', 0)}), a full read "
        f"{full_stats['requests']} (events {events_full})"
    )
    logs = _logs(second)
    pages_with_new = math.ceil(delivered["events"] / EVENTS_PAGE)
    webhooks_second, webhooks_full = incremental["by_path"]["/v2/webhooks"], full_stats["by_path"]["/v2/webhooks"]
    if sort == "honour" or created_filter == "honour":
        # The pages that hold the new records, plus at most one to prove the order or see the end. The webhook
        # log is listed once for both quiz streams, from their cursor since both are incremental.
        assert events_second <= pages_with_new + 1, events_second
        assert webhooks_second <= 2 < webhooks_full, (webhooks_second, webhooks_full)
    else:
        assert events_second == events_full
        assert webhooks_second == webhooks_full
        assert any("events: the Northpass API did not return newest first" in line for line in logs)
    if sort == "honour" and created_filter == "ignore":
        assert any("events: the Northpass API returned newest first; stopped after" in line for line in logs)
    if created_filter == "honour":
        assert any("events: the Northpass API honoured filter[created_at][gteq]" in line for line in logs)
    # Answers are read for the attempts delivered since the cursor only, not the whole log.
    answers_requests = incremental["by_path"].get("/v2/quiz_attempts/{id}/answers", 0)
    assert answers_requests == delivered["quiz_attempts"] < full_stats["by_path"]["/v2/quiz_attempts/{id}/answers"]


def test_given_webhook_log_past_its_three_months_when_incremental_sync_then_kept_attempts_stay_new_ones_come(
    tmp_path: Path,
) -> None:
    options = SandboxOptions(seed=9, people=200, courses=6, events=200, quiz_attempts=30, requests_per_second=None)
    with SandboxServer(options) as sandbox:
        config = {**FAST, "base_url": sandbox.base_url}
        catalog = catalog_for("quiz_attempts", sync_mode="incremental")
        first = run_cli("read", tmp_path, config, catalog)
        before = {r["id"] for r in sandbox.expected_records("quiz_attempts")}
        # Four months later: every attempt of the first sync has left the log; 5 new ones arrived.
        sandbox.add_activity(events=0, tie=0, quiz_attempts=5, after="2024-10-25T00:00:00Z", now="2024-10-28T00:00:00Z")
        second = run_cli("read", tmp_path, config, catalog, _states(first))
        after = {r["id"] for r in sandbox.expected_records("quiz_attempts")}

    assert first.returncode == second.returncode == 0, second.stderr[-2000:]
    assert {r["id"] for r in first.records["quiz_attempts"]} == before
    assert len(after) == 5 and not after & before  # only the newest 5 are still in the log
    assert {r["id"] for r in second.records["quiz_attempts"]} == after
    assert (
        _state_of(second, "quiz_attempts")["webhook_created_at"]
        > _state_of(first, "quiz_attempts")["webhook_created_at"]
    )


def test_given_account_without_webhook_subscription_when_read_then_zero_attempts_stream_complete_one_info_line(
    tmp_path: Path,
) -> None:
    options = SandboxOptions(seed=9, people=100, courses=4, events=50, requests_per_second=None)
    options.webhook_subscription = False
    with SandboxServer(options) as sandbox:
        run = run_cli(
            "read",
            tmp_path,
            {**FAST, "base_url": sandbox.base_url},
            catalog_for("quiz_attempts", "quiz_attempt_answers"),
        )
        stats = sandbox.stats()

    assert run.returncode == 0, run.stderr[-2000:]
    assert run.records == {}
    assert stats["by_path"] == {"/v2/webhooks": 1}
    assert run.streams_with_status("COMPLETE") == {"quiz_attempts", "quiz_attempt_answers"}
    said = [m for m in run.of_type("LOG") if "webhook subscription" in m["log"]["message"]]
    assert len(said) == 1 and said[0]["log"]["level"] == "INFO"


def test_given_repeated_deliveries_and_leaking_types_when_full_refresh_then_one_record_per_attempt(
    tmp_path: Path,
) -> None:
    options = SandboxOptions(seed=13, people=100, courses=4, events=10, quiz_attempts=40, webhook_urls=3)
    options.requests_per_second = None
    with SandboxServer(options) as sandbox:
        run = run_cli("read", tmp_path, {**FAST, "base_url": sandbox.base_url}, catalog_for("quiz_attempts"))
        log = sandbox.dataset.visible_webhooks()

    assert run.returncode == 0, run.stderr[-2000:]
    expected = sandbox.expected_records("quiz_attempts")
    assert keyed(run.records["quiz_attempts"], ("id",)) == keyed(expected, ("id",))
    types = {m["attributes"]["type"] for m in log}
    assert types > {"quiz_completed_events"}  # other types did come through filter[type][in]
    assert len(log) > 3 * len(expected)  # three deliveries per attempt
    assert all(r["webhook_type"] == "quiz_completed_events" for r in run.records["quiz_attempts"])

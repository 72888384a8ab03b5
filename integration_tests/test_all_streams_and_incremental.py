"""Every stream against the sandbox, and incremental syncs across a data change, in both filter modes."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import jsonschema
import pytest

from sandbox import SandboxOptions, SandboxServer
from sandbox.data import CHILD_STREAMS, PERSON_STREAMS, PRIMARY_KEYS, UPDATED_AT_STREAMS
from source_northpass_lms import SourceNorthpassLms

from .conftest import catalog_for, keyed, run_cli

INCREMENTAL = UPDATED_AT_STREAMS
KEYS = PRIMARY_KEYS
FAST = {"api_key": "sandbox-key", "requests_per_second": 500, "page_size": 50}


def test_given_sandbox_when_every_stream_read_then_each_record_exactly_once(tmp_path: Path) -> None:
    options = SandboxOptions(seed=7, people=600, courses=15, requests_per_second=None)
    with SandboxServer(options) as sandbox:
        run = run_cli("read", tmp_path, {**FAST, "base_url": sandbox.base_url}, catalog_for(*KEYS))
        by_path = sandbox.stats()["by_path"]

    assert run.returncode == 0, run.stderr[-2000:]
    # Each parent list is read once although it feeds itself and one or two child streams.
    assert (by_path["/v2/courses"], by_path["/v2/groups"], by_path["/v2/learning-paths"]) == (1, 1, 1)
    schemas = {
        s.name: s.json_schema
        for s in SourceNorthpassLms()
        .discover(logging.getLogger("test"), {**FAST, "base_url": "http://127.0.0.1:1"})
        .streams
    }
    for stream, key in KEYS.items():
        expected = keyed(sandbox.expected_records(stream), key)
        assert keyed(run.records.get(stream, []), key) == expected, stream
        assert expected, f"the sandbox should have {stream} records"
        validator = jsonschema.Draft7Validator(
            schemas[stream], format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER
        )
        for record in run.records[stream]:
            validator.validate(record)
            # Schemas allow additional properties, so validation alone would pass a column the schema forgot.
            assert set(record) <= set(schemas[stream]["properties"]), (
                stream,
                set(record) - set(schemas[stream]["properties"]),
            )
    people = {person["id"] for person in sandbox.expected_records("people")}
    for stream in PERSON_STREAMS:
        for record in run.records[stream]:
            assert record.get("person_id") in people, (stream, record)
            related = ((record.get("relationships") or {}).get("person") or {}).get("data")
            if related:
                assert record["person_id"] == related["id"], (stream, record)


PROGRESS = re.compile(r"Progress: .*", re.DOTALL)  # the connector's report, every 30 s of a long sync
# The lines of a sync that name no stream in the connector's form ("Stream <name>: ..."): the CDK's own, once per
# sync or once per stream, and the connector's progress report. Any other INFO or WARN line must name its stream.
SYNC_LEVEL_LINES = (
    re.compile(r"MemoryMonitor instantiated with .*"),  # the CDK, once per process
    re.compile(r"Starting syncing"),
    re.compile(r"Syncing stream: \w+"),
    re.compile(r"Marking stream \w+ as (STARTED|RUNNING|STOPPED)"),
    re.compile(r"Read \d+ records from \w+ stream"),
    re.compile(r"Finished syncing( \w+)?"),
    PROGRESS,
)
# Two accounts of one shape (5 courses, 2 learning paths: every child stream has an empty collection), one with
# three times the people: 66 and 837 people without a transcript, so 77 and 848 empty collections (404s) in all.
ACCOUNT_SIZES = {"500 people": 500, "1500 people": 1500}


def test_given_healthy_accounts_of_two_sizes_when_cli_reads_every_stream_then_each_line_names_its_stream_and_info_lines_do_not_grow(
    tmp_path: Path,
) -> None:
    """WARN and ERROR are for what a user must act on; a healthy account's empty collections are one INFO line per
    stream, however many there are (the CDK's line per ignored answer once made 26,000 lines of 30,000 people)."""
    info_lines = {}
    empty_collections = {}
    for size, people in ACCOUNT_SIZES.items():
        options = SandboxOptions(seed=7, people=people, courses=5, learning_paths=2, requests_per_second=None)
        with SandboxServer(options) as sandbox:
            run = run_cli("read", tmp_path, {**FAST, "base_url": sandbox.base_url}, catalog_for(*KEYS))
            empty_collections[size] = sandbox.stats()["by_status"].get("404", 0)

        assert run.returncode == 0, run.stderr[-2000:]
        logs = [m["log"] for m in run.of_type("LOG")]
        assert [log["message"] for log in logs if log["level"] not in ("INFO", "DEBUG", "TRACE")] == []
        assert not [m for m in run.of_type("TRACE") if m["trace"]["type"] == "ERROR"]
        assert "WARN" not in run.stderr and "ERROR" not in run.stderr, run.stderr[-2000:]
        unexplained = [
            log["message"]
            for log in logs
            if log["level"] in ("INFO", "WARN")
            and not any(log["message"].startswith(f"Stream {stream}: ") for stream in KEYS)
            and not any(line.fullmatch(log["message"]) for line in SYNC_LEVEL_LINES)
        ]
        assert unexplained == [], size
        for child, (parent, parent_key) in CHILD_STREAMS.items():
            parents = len(sandbox.expected_records(parent))
            empty = parents - len({record[parent_key] for record in sandbox.expected_records(child)})
            summaries = [log for log in logs if log["message"].startswith(f"Stream {child}: ")]
            assert empty, f"{size}: every {parent} has {child}; the account should have an empty one"
            assert [log["message"].split(":")[1] for log in summaries] == [
                f" {empty} of {parents} {parent} had no {child}"
            ], size
            assert summaries[0]["level"] == "INFO"
        # Progress lines come with time (every 30 s), not with what the account holds.
        info_lines[size] = sum(1 for log in logs if log["level"] == "INFO" and not PROGRESS.fullmatch(log["message"]))

    print(f"\nempty collections (404s): {empty_collections}; INFO lines: {info_lines}")
    small, large = ACCOUNT_SIZES
    assert empty_collections[large] > 10 * empty_collections[small] > 0
    assert info_lines[large] == info_lines[small]


def test_given_account_without_learning_paths_when_read_then_404_is_an_empty_stream(tmp_path: Path) -> None:
    options = SandboxOptions(seed=7, people=50, courses=3, learning_paths=0, requests_per_second=None)
    with SandboxServer(options) as sandbox:
        run = run_cli(
            "read",
            tmp_path,
            {**FAST, "base_url": sandbox.base_url},
            catalog_for("learning_paths", "learning_path_enrollments"),
        )
        stats = sandbox.stats()

    assert run.returncode == 0, run.stderr[-2000:]
    assert run.records == {}
    assert stats["by_status"] == {"404": 1}  # listed once for both streams
    assert run.streams_with_status("COMPLETE") == {
        "learning_paths",
        "learning_path_enrollments",
    }


@pytest.mark.parametrize("filter_mode", ["honour", "ignore"])
def test_given_data_changed_between_syncs_when_second_incremental_sync_then_every_change_delivered(
    filter_mode: str, tmp_path: Path
) -> None:
    options = SandboxOptions(seed=11, people=700, courses=12, requests_per_second=None, filter_mode=filter_mode)
    with SandboxServer(options) as sandbox:
        config = {**FAST, "base_url": sandbox.base_url}
        catalog = catalog_for(*INCREMENTAL, sync_mode="incremental")

        first = run_cli("read", tmp_path, config, catalog)
        state = [m["state"] for m in first.of_type("STATE")]
        for stream in INCREMENTAL:
            assert keyed(first.records[stream], KEYS[stream]) == keyed(sandbox.expected_records(stream), KEYS[stream])

        # Several records updated and added with one identical new updated_at, in every stream.
        changes = sandbox.mutate(update=6, add=4)
        sandbox.reset_stats()
        second = run_cli("read", tmp_path, config, catalog, state=state)
        requests_incremental = sandbox.stats()["requests"]

        sandbox.reset_stats()
        run_cli("read", tmp_path, config, catalog_for(*INCREMENTAL))
        requests_full = sandbox.stats()["requests"]

    assert first.returncode == 0 and second.returncode == 0, second.stderr[-2000:]
    delivered_total = expected_total = 0
    for stream in INCREMENTAL:
        changed = set(changes[stream]["updated"]) | set(changes[stream]["added"])
        expected = {r["id"]: r for r in sandbox.expected_records(stream) if r["id"] in changed}
        delivered = {r["id"]: r for r in second.records.get(stream, []) if r["id"] in changed}
        assert set(delivered) == set(expected), f"{stream}: missing {set(expected) - set(delivered)}"
        assert all(delivered[i]["updated_at"] == expected[i]["updated_at"] for i in expected)
        expected_total += len(expected)
        delivered_total += len(delivered)
    new_state = {
        m["state"]["stream"]["stream_descriptor"]["name"]: m["state"]["stream"]["stream_state"]
        for m in second.of_type("STATE")
    }
    new_cursor = sandbox.expected_records("people")
    assert new_state["people"]["updated_at"] == max(r["updated_at"] for r in new_cursor)
    print(
        f"\n[{filter_mode}] sync 2: changed records expected {expected_total}, delivered {delivered_total}; "
        f"records emitted {sum(len(v) for v in second.records.values())}; requests {requests_incremental} "
        f"(a full read: {requests_full})"
    )
    if filter_mode == "honour":
        assert requests_incremental < requests_full
        assert sum(len(v) for v in second.records.values()) < sum(len(sandbox.expected_records(s)) for s in INCREMENTAL)
    else:
        assert any("ignored filter[updated_at][gteq]" in m["log"]["message"] for m in second.of_type("LOG"))

"""Every stream against the sandbox, and incremental syncs across a data change, in both filter modes."""

from __future__ import annotations

import logging
from pathlib import Path

import jsonschema
import pytest

from integration_tests.sandbox import SandboxOptions, SandboxServer
from integration_tests.sandbox.data import PERSON_STREAMS, PRIMARY_KEYS, UPDATED_AT_STREAMS
from source_northpass_lms import SourceNorthpassLms

from .conftest import catalog_for, keyed, run_cli

INCREMENTAL = UPDATED_AT_STREAMS
KEYS = PRIMARY_KEYS
# Child stream: (its parent stream, the parent's id in each child record).
CHILDREN = {
    "course_enrollments": ("courses", "course_id"),
    "course_activities": ("courses", "course_id"),
    "group_memberships": ("groups", "group_id"),
    "learning_path_enrollments": ("learning_paths", "learning_path_id"),
}
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


def test_given_healthy_sandbox_when_cli_reads_every_stream_then_no_warning_or_error_and_one_summary_per_child(
    tmp_path: Path,
) -> None:
    """WARN and ERROR are for what a user must act on; a healthy account's empty collections are one INFO line."""
    options = SandboxOptions(seed=7, people=600, courses=15, requests_per_second=None)
    with SandboxServer(options) as sandbox:
        run = run_cli("read", tmp_path, {**FAST, "base_url": sandbox.base_url}, catalog_for(*KEYS))

    assert run.returncode == 0, run.stderr[-2000:]
    logs = [m["log"] for m in run.of_type("LOG")]
    assert [log["message"] for log in logs if log["level"] not in ("INFO", "DEBUG", "TRACE")] == []
    assert not [m for m in run.of_type("TRACE") if m["trace"]["type"] == "ERROR"]
    assert "WARN" not in run.stderr and "ERROR" not in run.stderr, run.stderr[-2000:]
    summarised = 0
    for child, (parent, parent_key) in CHILDREN.items():
        parents = len(sandbox.expected_records(parent))
        empty = parents - len({record[parent_key] for record in sandbox.expected_records(child)})
        summaries = [log for log in logs if log["message"].startswith(f"Stream {child}: ")]
        if empty:
            summarised += 1
            assert [log["message"].split(":")[1] for log in summaries] == [
                f" {empty} of {parents} {parent} had no {child}"
            ]
            assert summaries[0]["level"] == "INFO"
        else:
            assert summaries == []
    assert summarised, "the sandbox account should have parents with an empty collection"


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

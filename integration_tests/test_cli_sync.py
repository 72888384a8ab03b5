"""The installed connector's CLI against the sandbox, at the API's real rate limit: every record exactly once."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Iterator

import pytest

from sandbox import SandboxOptions, SandboxServer
from tools.harness import request_floor

from .conftest import HERE, catalog_for, keyed, run_cli

CORE_STREAMS = {"people": ("id",), "courses": ("id",), "course_enrollments": ("course_id", "id")}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(SandboxOptions(seed=42, people=2000, courses=40, requests_per_second=10)) as sb:
        yield sb


def test_given_sandbox_account_when_cli_reads_core_streams_then_every_record_exactly_once_with_no_429(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    sandbox.reset_stats()
    config = {"api_key": "sandbox-key", "base_url": sandbox.base_url}
    catalog = json.loads((HERE / "configured_catalog.json").read_text())

    run = run_cli("read", tmp_path, config, catalog)

    assert run.returncode == 0, run.stderr[-2000:]
    assert not run.of_type("TRACE") or all(m["trace"]["type"] != "ERROR" for m in run.of_type("TRACE"))
    for stream, key in CORE_STREAMS.items():
        got = keyed(run.records.get(stream, []), key)
        expected = keyed(sandbox.expected_records(stream), key)
        assert got == expected, f"{stream}: {len(got)} records, expected {len(expected)}"
    stats = sandbox.stats()
    floor = sum(request_floor(list(CORE_STREAMS), {s: sandbox.expected_records(s) for s in CORE_STREAMS}).values())
    counts = {stream: len(run.records.get(stream, [])) for stream in CORE_STREAMS}
    print(
        f"\nrecords {counts}; requests {stats['requests']} (floor {floor}); 429s {stats['by_status'].get('429', 0)}; {run.seconds:.1f} s"
    )
    assert stats["by_status"].get("429", 0) == 0
    assert stats["max_in_window"] <= 10
    assert stats["requests"] <= math.ceil(floor * 1.05)


def test_given_final_state_of_first_sync_when_cli_reads_again_then_everything_again(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    config = {"api_key": "sandbox-key", "base_url": sandbox.base_url, "requests_per_second": 200}
    catalog = catalog_for("courses", "course_enrollments")

    first = run_cli("read", tmp_path, config, catalog)
    state = [m["state"] for m in first.of_type("STATE")]
    second = run_cli("read", tmp_path, config, catalog, state=state)

    assert state
    for stream in ("courses", "course_enrollments"):
        expected = len(sandbox.expected_records(stream))
        assert len(first.records[stream]) == expected
        assert len(second.records[stream]) == expected


def test_given_spec_check_discover_when_run_then_protocol_messages(sandbox: SandboxServer, tmp_path: Path) -> None:
    config = {"api_key": "sandbox-key", "base_url": sandbox.base_url}

    spec = run_cli("spec", tmp_path, config)
    good = run_cli("check", tmp_path, config)
    bad = run_cli("check", tmp_path, {**config, "api_key": "wrong-key"})
    discover = run_cli("discover", tmp_path, config)

    assert spec.of_type("SPEC")[0]["spec"]["connectionSpecification"]["properties"]["api_key"]["airbyte_secret"] is True
    assert good.of_type("CONNECTION_STATUS")[0]["connectionStatus"]["status"] == "SUCCEEDED"
    status = bad.of_type("CONNECTION_STATUS")[0]["connectionStatus"]
    assert status["status"] == "FAILED" and "rejected the API key" in status["message"]
    assert "wrong-key" not in bad.stdout + bad.stderr
    streams = {s["name"]: s for s in discover.of_type("CATALOG")[0]["catalog"]["streams"]}
    assert {"people", "courses", "course_enrollments"} <= set(streams)
    assert streams["course_enrollments"]["source_defined_primary_key"] == [["course_id"], ["id"]]

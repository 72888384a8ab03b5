"""Every fault of the sandbox, against real sockets: the sync gets every record exactly once, or fails loudly.

Transient faults run the Source in-process (no 3 s interpreter start per case) with the CDK's wait between
retries shortened to a real 0.05 s nap: the waits themselves are asserted in unit_tests/test_reliability.py
and, for Retry-After, through the CLI below. Faults that must fail, and the key's safety, go through the
installed CLI with --debug, and every byte it prints is searched for the key.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence

import pytest
from airbyte_cdk.models import SyncMode
from airbyte_cdk.test.catalog_builder import CatalogBuilder
from airbyte_cdk.test.entrypoint_wrapper import EntrypointOutput, read

from sandbox import SandboxOptions, SandboxServer
from sandbox.server import FaultConfig
from source_northpass_lms import SourceNorthpassLms
from source_northpass_lms.errors import KEY_REJECTED

from .conftest import CliRun, catalog_for, keyed, run_cli

KEY = "np-sandbox-secret-4b8e21"
STREAMS = {"people": ("id",), "courses": ("id",), "course_enrollments": ("course_id", "id")}


@pytest.fixture(scope="module")
def sb() -> Iterator[SandboxServer]:
    with SandboxServer(SandboxOptions(seed=7, people=300, courses=6, requests_per_second=None, api_key=KEY)) as server:
        yield server


def config(sb: SandboxServer, **overrides: Any) -> Dict[str, Any]:
    return {
        "api_key": KEY,
        "base_url": sb.base_url,
        "page_size": 50,
        "requests_per_second": 1000,
        "backoff_base_seconds": 0.01,
        "retry_budget_seconds": 30,
        "request_timeout_seconds": 5,
        **overrides,
    }


def with_faults(sb: SandboxServer, faults: FaultConfig) -> SandboxServer:
    sb.set_faults(faults)
    sb.reset_stats()
    return sb


def read_source(cfg: Mapping[str, Any], streams: List[str]) -> EntrypointOutput:
    builder = CatalogBuilder()
    for name in streams:
        builder.with_stream(name, SyncMode.full_refresh)
    catalog = builder.build()
    return read(SourceNorthpassLms(catalog, cfg, None), cfg, catalog)


def records(output: EntrypointOutput, stream: str) -> List[Dict[str, Any]]:
    return [dict(m.record.data) for m in output.records if m.record.stream == stream]


def assert_every_record_once(
    sb: SandboxServer, got: Mapping[str, Sequence[Mapping[str, Any]]], streams: List[str]
) -> None:
    for stream in streams:
        expected = keyed(sb.expected_records(stream), STREAMS[stream])
        assert keyed(list(got.get(stream, [])), STREAMS[stream]) == expected, stream


def errors_of(output: EntrypointOutput) -> Dict[str, Any]:
    return {
        m.trace.error.stream_descriptor.name: m.trace.error for m in output.errors if m.trace.error.stream_descriptor
    }


def cli_errors(run: CliRun) -> Dict[Optional[str], Dict[str, Any]]:
    out: Dict[Optional[str], Dict[str, Any]] = {}
    for m in run.of_type("TRACE"):
        if m["trace"]["type"] == "ERROR":
            error = m["trace"]["error"]
            out.setdefault((error.get("stream_descriptor") or {}).get("name"), error)
    return out


def assert_key_never_printed(run: CliRun) -> None:
    everything = run.stdout + run.stderr
    assert KEY not in everything
    assert KEY[:12] not in everything  # nor a recognisable part of it


# ------------------------------------------------------------------ transient: every record exactly once

TRANSIENT = {
    "429 bursts without Retry-After": FaultConfig(burst_429_every=4, burst_429_length=3),
    "5xx and 408 with HTML or empty bodies": FaultConfig(error_rate=0.4),
    "connection resets": FaultConfig(reset_rate=0.3),
    "truncated 200 bodies": FaultConfig(truncate_rate=0.3),
}
FAULT_KIND = {
    "429 bursts without Retry-After": "burst_429",
    "5xx and 408 with HTML or empty bodies": "error",
    "connection resets": "reset",
    "truncated 200 bodies": "truncate",
}


@pytest.mark.parametrize("fault", list(TRANSIENT))
def test_given_transient_fault_when_source_reads_then_every_record_exactly_once(
    sb: SandboxServer, short_waits: List[float], fault: str
) -> None:
    with_faults(sb, TRANSIENT[fault])

    output = read_source(config(sb), list(STREAMS))

    assert not output.errors, [e.trace.error.message for e in output.errors]
    assert_every_record_once(sb, {s: records(output, s) for s in STREAMS}, list(STREAMS))
    injected = sb.stats()["faults_injected"].get(FAULT_KIND[fault], 0)
    assert injected > 0 and len(short_waits) >= injected


def test_given_5xx_faults_when_read_then_several_statuses_and_both_body_kinds_were_survived(
    sb: SandboxServer, short_waits: List[float]
) -> None:
    with_faults(sb, FaultConfig(error_rate=0.4))

    output = read_source(config(sb), list(STREAMS))

    log = sb.stats()["requests_log"]
    statuses = {entry["status"] for entry in log if entry["fault"] == "error"}
    assert len(statuses) >= 3, statuses
    assert not output.errors


def test_given_reads_stalling_past_the_timeout_when_read_then_abandoned_retried_and_every_record_once(
    sb: SandboxServer, short_waits: List[float]
) -> None:
    with_faults(sb, FaultConfig(slow_rate=0.3, slow_seconds=2))
    started = time.monotonic()

    output = read_source(config(sb, request_timeout_seconds=0.5), list(STREAMS))

    seconds = time.monotonic() - started
    time.sleep(2.5)  # a stalled answer is counted when it is finally sent, after its 2 s, long after it was abandoned
    stalls = sb.stats()["faults_injected"].get("slow", 0)
    assert stalls >= 2 and not output.errors
    assert_every_record_once(sb, {s: records(output, s) for s in STREAMS}, list(STREAMS))
    assert seconds < stalls * 2, f"{seconds:.1f} s for {stalls} stalls of 2 s: the stalls were waited out"


# ----------------------------------------------------------------------------- persistent and partial


def test_given_body_that_stays_truncated_when_read_then_that_stream_fails_clearly_and_others_complete(
    sb: SandboxServer, short_waits: List[float]
) -> None:
    with_faults(sb, FaultConfig(always_truncate_path="/v2/people"))

    output = read_source(config(sb, retry_budget_seconds=1), list(STREAMS))

    error = errors_of(output)["people"]
    assert error.failure_type.value == "transient_error"
    assert f"gave up on GET {sb.base_url}/v2/people after" in error.message
    assert "last answer: HTTP 200 with a body that is not complete JSON" in error.message
    assert records(output, "people") == []
    assert_every_record_once(sb, {s: records(output, s) for s in STREAMS}, ["courses", "course_enrollments"])


def test_given_course_deleted_mid_sync_when_read_then_zero_enrollments_for_it_counted_in_the_info_summary(
    sb: SandboxServer,
) -> None:
    deleted = sb.dataset.course_ids_by_index[2]
    with_faults(sb, FaultConfig(delete_course_index=2))

    output = read_source(config(sb), ["courses", "course_enrollments"])

    assert not output.errors
    expected = [r for r in sb.expected_records("course_enrollments") if r["course_id"] != deleted]
    assert len(expected) < len(sb.expected_records("course_enrollments"))
    assert keyed(records(output, "course_enrollments"), STREAMS["course_enrollments"]) == keyed(
        expected, STREAMS["course_enrollments"]
    )
    assert not [m.log.message for m in output.logs if m.log.level.value in ("WARN", "ERROR", "FATAL")]
    courses = len(sb.expected_records("courses"))
    empty = courses - len({r["course_id"] for r in expected})  # the deleted one, and those without enrollments
    summaries = [m.log.message for m in output.logs if "had no course_enrollments" in m.log.message]
    assert len(summaries) == 1 and f": {empty} of {courses} courses had no" in summaries[0], summaries


def test_given_endpoint_failing_past_the_retry_budget_when_read_then_error_names_endpoint_status_attempts(
    sb: SandboxServer, short_waits: List[float]
) -> None:
    with_faults(sb, FaultConfig(error_rate=1.0, max_consecutive=10_000))

    output = read_source(config(sb, retry_budget_seconds=1), ["courses"])

    message = errors_of(output)["courses"].message
    attempts = sb.stats()["by_path"]["/v2/courses"]
    assert f"gave up on GET {sb.base_url}/v2/courses after {attempts} attempts" in message
    assert any(f"last answer: HTTP {status}." in message for status in (500, 502, 503, 504, 408)), message


# -------------------------------------------------------------------------------------- through the CLI


def test_given_429_bursts_with_retry_after_when_cli_reads_then_each_retry_waits_the_header_and_nothing_lost(
    sb: SandboxServer, tmp_path: Path
) -> None:
    with_faults(sb, FaultConfig(burst_429_every=6, burst_429_length=1, retry_after=1))

    run = run_cli("read", tmp_path, config(sb), catalog_for("people", "courses"))

    assert run.returncode == 0, run.stderr[-2000:]
    assert_every_record_once(sb, run.records, ["people", "courses"])
    log = sb.stats()["requests_log"]
    rejected = [(i, e) for i, e in enumerate(log) if e["fault"] == "burst_429"]
    assert rejected
    for i, entry in rejected:
        retry = next(e for e in log[i + 1 :] if e["target"] == entry["target"])
        assert retry["t"] - entry["t"] >= 1.0, (entry, retry)


def test_given_plan_gated_endpoint_when_cli_reads_then_that_stream_fails_with_config_error_others_complete(
    sb: SandboxServer, tmp_path: Path
) -> None:
    with_faults(sb, FaultConfig(forbidden_paths=["/v2/people"]))

    run = run_cli("read", tmp_path, config(sb), catalog_for(*STREAMS))

    assert run.returncode != 0
    error = cli_errors(run)["people"]
    assert (
        error["failure_type"] == "config_error"
        and "Stream people: the Northpass API refused its list" in error["message"]
    )
    assert run.streams_with_status("INCOMPLETE") == {"people"}
    assert run.streams_with_status("COMPLETE") == {"courses", "course_enrollments"}
    assert "people" not in run.records
    assert_every_record_once(sb, run.records, ["courses", "course_enrollments"])


def test_given_key_revoked_mid_sync_when_cli_reads_with_debug_then_config_error_to_replace_the_key_never_echoed(
    sb: SandboxServer, tmp_path: Path
) -> None:
    with_faults(sb, FaultConfig(revoke_key_after=4))

    run = run_cli("read", tmp_path, config(sb), catalog_for(*STREAMS), extra=("--debug",))

    assert run.returncode != 0
    errors = cli_errors(run)
    failed = {name: e for name, e in errors.items() if name}
    assert failed and all(e["failure_type"] == "config_error" for e in failed.values())
    assert all(e["message"] == KEY_REJECTED for e in failed.values())
    assert "Generate a new key" in errors[None]["message"]  # the end-of-sync summary says it too
    assert_key_never_printed(run)


def test_given_next_link_loop_when_cli_reads_then_stream_fails_within_seconds_naming_the_endpoint(
    sb: SandboxServer, tmp_path: Path
) -> None:
    with_faults(sb, FaultConfig(loop_next_path="/v2/people"))

    run = run_cli("read", tmp_path, config(sb), catalog_for("people"), timeout=60)

    assert run.returncode != 0 and run.seconds < 20
    message = cli_errors(run)["people"]["message"]
    assert f"links.next on {sb.base_url}/v2/people points back to a page already read" in message
    assert sb.stats()["by_path"]["/v2/people"] == 2


def test_given_next_link_to_foreign_host_when_cli_reads_with_debug_then_refused_never_contacted_key_kept(
    sb: SandboxServer, tmp_path: Path
) -> None:
    with_faults(sb, FaultConfig(foreign_next_path="/v2/people"))

    run = run_cli("read", tmp_path, config(sb), catalog_for("people", "courses"), extra=("--debug",))

    assert run.returncode != 0
    message = cli_errors(run)["people"]["message"]
    assert "links.next points to 'evil.example.invalid'" in message and "Refused to follow it" in message
    assert sb.stats()["by_path"]["/v2/people"] == 1
    # --debug logs every request the connector sends, with its URL: none went anywhere but the sandbox.
    sent = [
        json.loads(line)["data"]["url"] for line in run.stdout.splitlines() if "Making outbound API request" in line
    ]
    assert sent and all(url.startswith(f"{sb.base_url}/v2/") for url in sent), sent
    assert_every_record_once(sb, run.records, ["courses"])
    assert_key_never_printed(run)


def test_given_5xx_until_the_budget_runs_out_when_cli_reads_with_debug_then_clear_error_and_key_never_printed(
    sb: SandboxServer, tmp_path: Path
) -> None:
    with_faults(sb, FaultConfig(error_rate=1.0, max_consecutive=10_000))

    run = run_cli("read", tmp_path, config(sb, retry_budget_seconds=1), catalog_for("courses"), extra=("--debug",))

    assert run.returncode != 0
    message = cli_errors(run)["courses"]["message"]
    assert f"gave up on GET {sb.base_url}/v2/courses after" in message and "last answer: HTTP" in message
    assert_key_never_printed(run)

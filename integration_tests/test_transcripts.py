"""Transcripts and course properties through the CLI against the sandbox: exact full reads at the request floor,
and chains of incremental syncs across changes that leave evidence and changes that leave none."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List, Set, Tuple
from urllib.parse import urlsplit

import pytest

from sandbox import SandboxOptions, SandboxServer
from source_northpass_lms.transcripts import Sweep

from .conftest import CliRun, catalog_for, keyed, run_cli

FAST = {"api_key": "sandbox-key", "requests_per_second": 1000}
TRANSCRIPT_KEY = ("person_id", "id")
PAGE = 100  # the connector's default page size
SYNCS_PER_SWEEP = 7  # the default of transcripts_reread_within_syncs


def _items(records: List[Dict[str, Any]]) -> Dict[Tuple[Any, ...], Dict[str, Any]]:
    return keyed(records, TRANSCRIPT_KEY)


def _state(run: CliRun, stream: str = "transcripts") -> Dict[str, Any]:
    states = [m["state"]["stream"] for m in run.of_type("STATE")]
    return [s["stream_state"] for s in states if s["stream_descriptor"]["name"] == stream][-1]


def _transcript_requests(sandbox: SandboxServer) -> int:
    return sandbox.stats()["by_path"].get("/v2/transcripts/{id}", 0)


def _people_read(run: CliRun) -> Set[str]:
    return {r["person_id"] for r in run.records.get("transcripts", [])}


def _floor(sandbox: SandboxServer) -> int:
    """One request per page per person, an empty transcript's 404 included, plus the pages of the people list."""
    per_person = Counter(r["person_id"] for r in sandbox.expected_records("transcripts"))
    people = sandbox.expected_records("people")
    return math.ceil(len(people) / PAGE) + sum(max(1, math.ceil(per_person[p["id"]] / PAGE)) for p in people)


@pytest.mark.parametrize("empty", ["404", "empty"])
def test_given_sandbox_when_full_read_then_transcripts_and_properties_exact_at_the_request_floor_without_429(
    empty: str, tmp_path: Path
) -> None:
    with SandboxServer(SandboxOptions(seed=3, people=400, requests_per_second=200, transcripts_empty=empty)) as sb:
        run = run_cli(
            "read",
            tmp_path,
            {**FAST, "base_url": sb.base_url, "requests_per_second": 200},
            catalog_for("transcripts", "course_properties"),
        )
        stats = sb.stats()

        assert run.returncode == 0, run.stderr[-2000:]
        assert _items(run.records["transcripts"]) == _items(sb.expected_records("transcripts"))
        assert keyed(run.records["course_properties"], ("id",)) == keyed(
            sb.expected_records("course_properties"), ("id",)
        )
        assert {r["read_at"] for r in run.records["transcripts"]} == {run.records["transcripts"][0]["read_at"]}
        properties_pages = math.ceil(len(sb.expected_records("course_properties")) / PAGE)
        assert stats["requests"] == _floor(sb) + properties_pages
        assert stats["by_status"].get("429", 0) == 0


def test_given_transcripts_forbidden_when_read_then_config_error_few_requests_exit_nonzero_and_properties_read(
    tmp_path: Path,
) -> None:
    with SandboxServer(SandboxOptions(seed=3, people=400, requests_per_second=None, transcripts_forbidden=True)) as sb:
        run = run_cli(
            "read", tmp_path, {**FAST, "base_url": sb.base_url}, catalog_for("transcripts", "course_properties")
        )

        errors = [m["trace"]["error"] for m in run.of_type("TRACE") if m["trace"]["type"] == "ERROR"]
        failed = [e for e in errors if (e.get("stream_descriptor") or {}).get("name") == "transcripts"]
        assert run.returncode != 0  # the sync failed; Airbyte keeps what the other streams delivered
        assert len(failed) == 1 and failed[0]["failure_type"] == "config_error"
        assert "refused" in failed[0]["message"] and "deselect the transcripts stream" in failed[0]["message"]
        assert run.streams_with_status("INCOMPLETE") == {"transcripts"}
        assert run.streams_with_status("COMPLETE") == {"course_properties"}
        assert "transcripts" not in run.records
        assert _transcript_requests(sb) <= 2 * 8  # the first answers in flight, not one request per person
        assert len(run.records["course_properties"]) == len(sb.expected_records("course_properties"))


def test_given_changes_with_and_without_evidence_when_incremental_syncs_chain_then_all_arrive_within_n_syncs_at_bounded_cost(
    tmp_path: Path,
) -> None:
    options = SandboxOptions(
        seed=11, people=1400, courses=20, events=600, quiz_attempts=40, requests_per_second=None, requests_log_size=5000
    )
    with SandboxServer(options) as sb:
        config = {**FAST, "base_url": sb.base_url}
        catalog = catalog_for("transcripts", sync_mode="incremental")
        full = run_cli("read", tmp_path, config, catalog_for("transcripts"))
        full_cost = sb.stats()["requests"]
        assert full_cost == _floor(sb)
        sb.reset_stats()

        first = run_cli("read", tmp_path, config, catalog)
        assert first.returncode == 0, first.stderr[-2000:]
        assert _items(first.records["transcripts"]) == _items(full.records["transcripts"])  # no state: everyone
        assert sb.stats()["requests"] == full_cost  # and nothing else: no evidence is read on a first sync
        destination = _items(first.records["transcripts"])  # an append + deduped destination
        state = [m["state"] for m in first.of_type("STATE")]

        people = [p["id"] for p in sb.expected_records("people")]
        changes = sb.change_transcripts(evidence=12, silent=12)
        with_evidence = {p for ids in changes["evidence"].values() for p in ids}
        silent = {p for ids in changes["silent"].values() for p in ids}
        assert len(with_evidence) == 12 and len(silent) == 12
        wanted = _items(sb.expected_records("transcripts"))
        changed = {key: value for key, value in wanted.items() if destination.get(key) != value}
        assert {person for person, _ in changed} == with_evidence | silent

        read_within_n: Set[str] = set()
        previous = first
        for sync in range(1, SYNCS_PER_SWEEP + 1):
            sb.advance_clock(3600)  # an hour between syncs
            sweep = Sweep(_state(previous)["sweep_start"], SYNCS_PER_SWEEP)
            sb.reset_stats()
            run = run_cli("read", tmp_path, config, catalog, state=state)
            assert run.returncode == 0, run.stderr[-2000:]
            got = _items(run.records.get("transcripts", []))  # keyed() fails on an item emitted twice in a sync
            arc = {p for p in people if sweep.covers(p)}
            evidence = with_evidence if sync == 1 else set()
            requested = _requested_people(sb)
            assert sorted(requested) == sorted(evidence | arc)  # each once: the evidence and this sync's arc
            if sync == 1:  # the next sync: every changed item of every person with evidence
                assert all(got[key] == value for key, value in changed.items() if key[0] in evidence)
            stats = sb.stats()
            by_path = stats["by_path"]
            assert stats["requests"] == sum(by_path.values())
            overhead = by_path["/v2/people"] + by_path.get("/v2/events", 0) + by_path.get("/v2/webhooks", 0)
            assert overhead <= math.ceil(len(people) / PAGE) + 4
            share = len(arc) / len(people) + len(evidence) / len(people) + 0.02
            print(f"sync {sync}: {stats['requests']} requests, {len(requested)} transcripts, full read {full_cost}")
            assert stats["requests"] <= share * full_cost
            destination.update(got)
            read_within_n |= set(requested)
            state = [m["state"] for m in run.of_type("STATE")]
            previous = run

        # Within N syncs: every changed item, with evidence or without, and every person's transcript.
        assert destination == wanted
        assert read_within_n == set(people)


def _requested_people(sandbox: SandboxServer) -> List[str]:
    """The people whose transcript's first page was asked for, in the order asked, repeats kept."""
    targets = [urlsplit(entry["target"]) for entry in sandbox.stats()["requests_log"]]
    first_pages = [t.path for t in targets if "page=" not in t.query or "page=1&" in t.query + "&"]
    return [path.split("/")[3] for path in first_pages if path.startswith("/v2/transcripts/")]


def test_given_incremental_transcripts_and_people_selected_when_read_then_people_listed_once_for_both(
    tmp_path: Path,
) -> None:
    with SandboxServer(SandboxOptions(seed=3, people=350, requests_per_second=None)) as sb:
        run = run_cli(
            "read",
            tmp_path,
            {**FAST, "base_url": sb.base_url},
            catalog_for("people", "transcripts", sync_mode="incremental"),
        )
        assert run.returncode == 0
        assert sb.stats()["by_path"]["/v2/people"] == math.ceil(350 / PAGE)
        assert keyed(run.records["people"], ("id",)) == keyed(sb.expected_records("people"), ("id",))

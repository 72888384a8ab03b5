"""Soak: the whole sandbox with every transient fault on at once, through the CLI; every record exactly once.

The figures (records expected and got, faults injected by kind, retries, wall time) are printed and written
to the pytest cache under `soak/figures`, so a CI run keeps them: `pytest -s -k soak` shows them too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Iterator

import pytest

from sandbox import SandboxOptions, SandboxServer
from sandbox.data import PRIMARY_KEYS
from sandbox.server import FaultConfig

from .conftest import catalog_for, keyed, run_cli

STREAMS = PRIMARY_KEYS  # every stream of the connector
SOAK_FAULTS = FaultConfig(**{**FaultConfig.soak(seed=11).to_dict(), "slow_rate": 0.02, "slow_seconds": 2.0})


@pytest.fixture(scope="module")
def sb() -> Iterator[SandboxServer]:
    options = SandboxOptions(seed=42, people=2000, courses=40, requests_per_second=None, faults=SOAK_FAULTS)
    with SandboxServer(options) as server:
        yield server


def test_given_every_transient_fault_at_once_when_cli_reads_whole_sandbox_then_every_record_exactly_once(
    sb: SandboxServer, tmp_path: Path, request: Any
) -> None:
    config = {
        "api_key": sb.options.api_key,
        "base_url": sb.base_url,
        "page_size": 50,  # ~280 requests, so a few percent of faults is a few dozen
        "num_workers": 8,
        "requests_per_second": 1000,
        "backoff_base_seconds": 0.01,
        "retry_budget_seconds": 60,
        "request_timeout_seconds": 0.5,
    }

    run = run_cli("read", tmp_path, config, catalog_for(*STREAMS), timeout=180)

    stats = sb.stats()
    retries = sum(1 for m in run.of_type("LOG") if "Retrying in" in m["log"]["message"])
    figures: Dict[str, Any] = {
        "records": {s: {"expected": len(sb.expected_records(s)), "got": len(run.records.get(s, []))} for s in STREAMS},
        "faults_injected": stats["faults_injected"],
        "requests": stats["requests"],
        "retries": retries,
        "wall_seconds": round(run.seconds, 1),
    }
    print(f"\nsoak figures: {json.dumps(figures)}")
    if getattr(request.config, "cache", None) is not None:  # absent under -p no:cacheprovider
        request.config.cache.set("soak/figures", figures)

    assert run.returncode == 0, run.stderr[-2000:]
    assert not [m for m in run.of_type("TRACE") if m["trace"]["type"] == "ERROR"]
    for stream, key in STREAMS.items():
        assert keyed(run.records.get(stream, []), key) == keyed(sb.expected_records(stream), key), stream
    injected = stats["faults_injected"]
    assert {"error", "reset", "truncate", "burst_429"} <= set(injected), injected
    assert retries >= sum(injected.values())

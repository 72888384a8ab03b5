"""Integration helpers: a sandbox on 127.0.0.1 and the installed connector's CLI run as a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Dict, List, Mapping, Optional, Sequence, Set, Tuple

import pytest
from airbyte_cdk.sources.streams.http import rate_limiting

HERE = Path(__file__).parent
CONNECTOR = Path(sys.executable).parent / "source-northpass-lms"


@dataclass
class CliRun:
    returncode: int
    messages: List[Dict[str, Any]]
    stdout: str
    stderr: str
    seconds: float = 0.0
    records: Dict[str, List[Dict[str, Any]]] = field(default_factory=dict)

    @classmethod
    def from_output(cls, done: subprocess.CompletedProcess[str], seconds: float) -> CliRun:
        """A finished command's protocol messages, with its records grouped by stream."""
        messages = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
        run = cls(done.returncode, messages, done.stdout, done.stderr, seconds)
        for message in run.of_type("RECORD"):
            run.records.setdefault(message["record"]["stream"], []).append(message["record"]["data"])
        return run

    def of_type(self, kind: str) -> List[Dict[str, Any]]:
        return [m for m in self.messages if m.get("type") == kind]

    def streams_with_status(self, status: str) -> Set[str]:
        """Names of the streams that reported this STREAM_STATUS (e.g. COMPLETE)."""
        return {
            m["trace"]["stream_status"]["stream_descriptor"]["name"]
            for m in self.of_type("TRACE")
            if m["trace"]["type"] == "STREAM_STATUS" and m["trace"]["stream_status"]["status"] == status
        }


def run_cli(
    command: str,
    tmp_path: Path,
    config: Mapping[str, Any],
    catalog: Optional[Mapping[str, Any]] = None,
    state: Optional[Any] = None,
    extra: Tuple[str, ...] = (),
    timeout: float = 600,
) -> CliRun:
    """Run `source-northpass-lms <command>` as Airbyte does: files in, JSON lines out."""
    args = [str(CONNECTOR), command]
    if command != "spec":
        (tmp_path / "config.json").write_text(json.dumps(config))
        args += ["--config", str(tmp_path / "config.json")]
    if catalog is not None:
        (tmp_path / "catalog.json").write_text(json.dumps(catalog))
        args += ["--catalog", str(tmp_path / "catalog.json")]
    if state is not None:
        (tmp_path / "state.json").write_text(json.dumps(state))
        args += ["--state", str(tmp_path / "state.json")]
    started = time.monotonic()
    done = subprocess.run(args + list(extra), capture_output=True, text=True, timeout=timeout)
    return CliRun.from_output(done, time.monotonic() - started)


def catalog_for(*streams: str, sync_mode: str = "full_refresh") -> Dict[str, Any]:
    return {
        "streams": [
            {
                "stream": {"name": name, "json_schema": {}, "supported_sync_modes": ["full_refresh", "incremental"]},
                "sync_mode": sync_mode,
                "destination_sync_mode": "append" if sync_mode == "incremental" else "overwrite",
            }
            for name in streams
        ]
    }


def without_nulls(record: Mapping[str, Any]) -> Dict[str, Any]:
    """Airbyte's message serializer omits null values; the comparison does the same on the expected side."""
    return {key: value for key, value in record.items() if value is not None}


# Columns the connector fills with when the sync read a record (transcripts' cursor): no expected record has them.
READ_TIME_COLUMNS = frozenset({"read_at"})


def keyed(records: Sequence[Mapping[str, Any]], key: Tuple[str, ...]) -> Dict[Tuple[Any, ...], Dict[str, Any]]:
    """Records by primary key (each once), as the sandbox can expect them: without nulls and read times."""
    out: Dict[Tuple[Any, ...], Dict[str, Any]] = {}
    for record in records:
        pk = tuple(record[k] for k in key)
        assert pk not in out, f"record {pk} delivered twice"
        out[pk] = {k: v for k, v in without_nulls(record).items() if k not in READ_TIME_COLUMNS}
    return out


@pytest.fixture
def short_waits(monkeypatch: pytest.MonkeyPatch) -> List[float]:
    """The CDK's waits between retries shortened to a real 0.05 s nap; the waits it asked for are returned."""
    asked: List[float] = []

    def nap(seconds: float) -> None:
        asked.append(seconds)
        time.sleep(0.05)

    monkeypatch.setattr(rate_limiting, "time", SimpleNamespace(sleep=nap))
    return asked

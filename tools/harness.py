"""Shared by the demo and the benchmark: a sandbox process, the connector's CLI, and what a sync got."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence

from sandbox.data import CHILD_STREAMS

ROOT = Path(__file__).resolve().parent.parent
CONNECTOR = Path(sys.executable).parent / "source-northpass-lms"
PAGE_SIZE = 100  # the connector's default page size, the largest the API serves
PARENT_SINGULAR = {
    "courses": "course",
    "groups": "group",
    "learning-paths": "learning_path",
    "quiz_attempts": "quiz_attempt",
}
LIST_STREAM = {"webhooks": "quiz_attempts"}  # endpoints read by a stream of another name
PATH_STREAM = {"/v2/transcripts/{id}": "transcripts", "/v2/properties/courses": "course_properties"}
# Lists served in smaller pages than PAGE_SIZE. The quiz_attempts floor counts distinct attempts, so it is
# a lower bound: the log also holds one message per subscribed URL and other types.
LIST_PAGE_SIZE = {"quiz_attempts": 50}
CONNECTOR_LOG_PREFIX = "Stream "  # how the connector's own log messages about a stream begin


class SandboxProcess:
    """`python -m sandbox serve ...` in its own process, on 127.0.0.1."""

    def __init__(self, args: Sequence[str]) -> None:
        self._args = list(args)
        self._proc: Optional[subprocess.Popen[str]] = None
        self.base_url = ""
        self.api_key = ""

    def __enter__(self) -> SandboxProcess:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "sandbox", "serve", *self._args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        hello = json.loads(self._proc.stdout.readline())
        self.base_url, self.api_key = hello["base_url"], hello["api_key"]
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            self._proc.wait(timeout=10)

    def admin(self, path: str, method: str = "GET", body: Optional[Dict[str, Any]] = None) -> Any:
        data = json.dumps(body or {}).encode() if method == "POST" else None
        request = urllib.request.Request(f"{self.base_url}/_sandbox/{path}", data=data, method=method)
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())


def stream_of_path(template: str) -> str:
    """/v2/courses/{id}/enrollments -> course_enrollments; /v2/learning-paths -> learning_paths."""
    if template in PATH_STREAM:
        return PATH_STREAM[template]
    parts = template.strip("/").split("/")[1:]
    if len(parts) == 1:
        return LIST_STREAM.get(parts[0], parts[0].replace("-", "_"))
    return f"{PARENT_SINGULAR.get(parts[0], parts[0])}_{parts[-1].replace('-', '_')}"


@dataclass
class SyncResult:
    returncode: int
    seconds: float
    peak_rss_mb: float
    cpu_seconds: float = 0.0  # user + system time of the connector process
    records: Dict[str, int] = field(default_factory=dict)
    stream_seconds: Dict[str, float] = field(default_factory=dict)
    errors: List[str] = field(default_factory=list)
    states: List[Any] = field(default_factory=list)
    logs: List[str] = field(default_factory=list)  # the connector's INFO and WARN messages, not the CDK's

    def stream_state(self, name: str) -> Optional[Dict[str, Any]]:
        """The last state the sync emitted for the stream."""
        per_stream = [s["stream"] for s in self.states if s.get("type") == "STREAM"]
        found = [s["stream_state"] for s in per_stream if s["stream_descriptor"]["name"] == name]
        return found[-1] if found else None


def run_sync(
    config: Dict[str, Any],
    streams: Sequence[str],
    workdir: Path,
    output_dir: Optional[Path] = None,
    state: Optional[Any] = None,
    incremental: Sequence[str] = (),
) -> SyncResult:
    """Run `source-northpass-lms read` and stream its output: records are counted (and written out), not held.

    The streams named in `incremental` are read in incremental mode (from `state`), the others in full refresh.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.json").write_text(json.dumps(config))
    catalog = {
        "streams": [
            {
                "stream": {"name": s, "json_schema": {}, "supported_sync_modes": ["full_refresh", "incremental"]},
                "sync_mode": "incremental" if s in incremental else "full_refresh",
                "destination_sync_mode": "append_dedup" if s in incremental else "overwrite",
            }
            for s in streams
        ]
    }
    (workdir / "catalog.json").write_text(json.dumps(catalog))
    args = [
        str(CONNECTOR),
        "read",
        "--config",
        str(workdir / "config.json"),
        "--catalog",
        str(workdir / "catalog.json"),
    ]
    if state is not None:
        (workdir / "state.json").write_text(json.dumps(state))
        args += ["--state", str(workdir / "state.json")]
    files: Dict[str, Any] = {}
    result = SyncResult(returncode=-1, seconds=0.0, peak_rss_mb=0.0)
    started_at: Dict[str, int] = {}
    start = time.monotonic()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, bufsize=1 << 16)
    assert proc.stdout is not None
    try:
        for message in _messages(proc.stdout):
            kind = message.get("type")
            if kind == "RECORD":
                name = message["record"]["stream"]
                result.records[name] = result.records.get(name, 0) + 1
                if output_dir is not None:
                    if name not in files:
                        output_dir.mkdir(parents=True, exist_ok=True)
                        files[name] = open(output_dir / f"{name}.jsonl", "w")
                    files[name].write(json.dumps(message["record"]["data"]) + "\n")
            elif kind == "STATE":
                result.states.append(message["state"])
            elif kind == "LOG" and message["log"]["message"].startswith(CONNECTOR_LOG_PREFIX):
                result.logs.append(message["log"]["message"])
            elif kind == "TRACE":
                trace = message["trace"]
                if trace["type"] == "ERROR":
                    result.errors.append(trace["error"]["message"])
                elif trace["type"] == "STREAM_STATUS":
                    name = trace["stream_status"]["stream_descriptor"]["name"]
                    status = trace["stream_status"]["status"]
                    if status == "STARTED":
                        started_at[name] = trace["emitted_at"]
                    elif status in ("COMPLETE", "INCOMPLETE") and name in started_at:
                        result.stream_seconds[name] = (trace["emitted_at"] - started_at[name]) / 1000
    finally:
        for handle in files.values():
            handle.close()
        _, status, usage = os.wait4(proc.pid, 0)
        result.returncode = os.waitstatus_to_exitcode(status)
        result.seconds = time.monotonic() - start
        result.peak_rss_mb = usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux
        result.cpu_seconds = usage.ru_utime + usage.ru_stime
    return result


def _messages(lines: Any) -> Iterator[Dict[str, Any]]:
    for line in lines:
        if line.startswith("{"):
            yield json.loads(line)


def requests_per_stream(stats: Dict[str, Any]) -> Dict[str, int]:
    counts: Dict[str, int] = {}
    for template, n in stats.get("by_path", {}).items():
        name = stream_of_path(template)
        counts[name] = counts.get(name, 0) + n
    return counts


def cli_message(kind: str, *args: str) -> Dict[str, Any]:
    """Run `source-northpass-lms <args>` and return its first message of type `kind` (SPEC, CATALOG, ...)."""
    done = subprocess.run([str(CONNECTOR), *args], capture_output=True, text=True, check=False)
    for message in _messages(done.stdout.splitlines()):
        if message.get("type") == kind:
            return message
    raise SystemExit(f"{args[0]} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")


def with_parents(streams: Sequence[str]) -> List[str]:
    """The streams plus the parent lists their children need, each once."""
    needed = list(streams)
    for name in streams:
        if name in CHILD_STREAMS and CHILD_STREAMS[name][0] not in needed:
            needed.append(CHILD_STREAMS[name][0])
    return needed


def request_floor(streams: Sequence[str], expected: Mapping[str, Sequence[Mapping[str, Any]]]) -> Dict[str, int]:
    """Fewest requests per stream (by API path) with full pages: top-level lists, then one collection per parent.

    `expected` holds the sandbox's records of every stream in `with_parents(streams)`.
    """
    floors: Dict[str, int] = {}
    for name in with_parents(streams):
        if name in CHILD_STREAMS:
            parent, parent_key = CHILD_STREAMS[name]
            per_parent = Counter(record[parent_key] for record in expected[name])
            floors[name] = sum(_pages(per_parent[p["id"]]) for p in expected[parent])
        else:
            # a parent list is read once, however many children use it
            floors[name] = _pages(len(expected[name]), LIST_PAGE_SIZE.get(name, PAGE_SIZE))
    return floors


def _pages(n: int, page_size: int = PAGE_SIZE) -> int:
    return max(1, math.ceil(n / page_size))  # an empty collection still costs the one request that says so (404)

"""End to end with PyAirbyte, a real client of connectors: two reads of the sandbox into DuckDB.

Run with the Python of a venv where PyAirbyte (`airbyte` on PyPI) is installed, NOT the connector's:

    .venv-pyairbyte/bin/python tools/pyairbyte_e2e.py \\
        --connector-executable /path/to/connector-venv/bin/source-northpass-lms

(`scripts/pyairbyte.sh` creates that venv and runs this.) The sandbox is started with the
connector venv's Python (`--sandbox-python`, by default the `python` beside the connector's executable),
on 127.0.0.1 only. PyAirbyte runs offline, with every file it writes in a temporary folder.

First a read that fails midway: the enrollments of one course stay broken past the retry budget while
the other streams complete and checkpoint, so the connector exits 1. PyAirbyte keeps nothing of a failed
read (no table, no state), and it gives every read the same sync_id (1): were a checkpoint of the failed
read passed on, the next read would skip what that read delivered and the tables would miss it.

Then two healthy reads. Checks, for each: every stream's table holds exactly the sandbox's expected records
(count, primary keys, a few values), `invite_token` is nowhere, and each stream was received whole from the
connector. The second gets the state PyAirbyte kept from the first, and must still receive every record:
a full-refresh stream that resumed from "sync complete" would read nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any, Dict, List, Mapping, Tuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the sandbox's data module is standard library only: PyAirbyte's venv can import it

from sandbox.data import ACTIVITY_STREAMS, PRIMARY_KEYS, UPDATED_AT_STREAMS  # noqa: E402

STREAMS = tuple(PRIMARY_KEYS)
# Streams with a cursor (updated_at, or the activity logs' creation time): PyAirbyte reads them incrementally, so a second read with the first
# read's state receives only what changed (here: the records at the cursor, emitted again) while its table
# stays complete. Every other stream is full refresh and must be received whole on every read.
# transcripts too: its second read re-reads the people with evidence of a change and its share of everyone.
INCREMENTAL = frozenset(UPDATED_AT_STREAMS) | frozenset(ACTIVITY_STREAMS) | {"transcripts"}
# Values compared record by record, beside the primary key.
CHECKED_FIELDS: Mapping[str, Tuple[str, ...]] = {
    "people": ("email", "full_name", "disabled"),
    "courses": ("name", "status", "enrollments_count"),
    "course_enrollments": ("person_id", "progress"),
    "course_activities": ("title",),
    "groups": ("name", "memberships_count"),
    "group_memberships": ("type", "person_id"),
    "learning_paths": ("name", "navigation_mode"),
    "learning_path_enrollments": ("person_id", "progress"),
    "categories": ("name",),
    "quizzes": ("name", "quiz_type"),
    # Plain strings and booleans: DuckDB gives date-times back as Timestamps, number-or-string unions as text.
    "events": ("type", "person_id", "activity_id"),
    "quiz_attempts": ("quiz_id", "person_id", "webhook_url"),
    "quiz_attempt_answers": ("question_id", "correct"),
    "transcripts": ("resource_type", "resource_id", "progress_status"),
    "course_properties": ("name",),
}
SANDBOX_START_TIMEOUT_SECONDS = 60


def main() -> int:
    args = _parse_args()
    with tempfile.TemporaryDirectory(prefix="pyairbyte-e2e-") as work:
        _offline_environment(Path(work))
        sandbox, base_url = _start_sandbox(args)
        try:
            return _run(args, base_url, Path(work))
        finally:
            sandbox.terminate()
            sandbox.wait(timeout=30)


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--connector-executable", required=True, type=Path, help="the source-northpass-lms console script"
    )
    parser.add_argument("--sandbox-python", type=Path, help="a Python that can import the connector repo's sandbox")
    parser.add_argument("--people", type=int, default=450)
    parser.add_argument("--courses", type=int, default=12)
    args = parser.parse_args()
    if not args.connector_executable.is_file():
        parser.error(f"--connector-executable {args.connector_executable} does not exist")
    args.sandbox_python = args.sandbox_python or args.connector_executable.parent / "python"
    return args


def _offline_environment(work: Path) -> None:
    """Set before `airbyte` is imported: it reads these at import time."""
    os.environ["AIRBYTE_OFFLINE_MODE"] = "1"  # no registry download, no telemetry
    os.environ["DO_NOT_TRACK"] = "1"
    for name in ("AIRBYTE_PROJECT_DIR", "AIRBYTE_CACHE_ROOT", "AIRBYTE_LOGGING_ROOT", "AIRBYTE_TEMP_DIR"):
        folder = work / name.lower()
        folder.mkdir()
        os.environ[name] = str(folder)


def _start_sandbox(args: argparse.Namespace) -> Tuple[subprocess.Popen[str], str]:
    command = [
        str(args.sandbox_python), "-m", "sandbox", "serve",
        "--people", str(args.people), "--courses", str(args.courses), "--rps", "0",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    sandbox = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    assert sandbox.stdout is not None
    line = sandbox.stdout.readline()
    if not line:
        sandbox.kill()
        raise SystemExit(f"the sandbox exited before printing its address: {' '.join(command)}")
    base_url = json.loads(line)["base_url"]
    if not base_url.startswith("http://127.0.0.1:"):  # ignore-https-check: the sandbox, plain HTTP on loopback
        sandbox.kill()
        raise SystemExit(f"the sandbox is not on 127.0.0.1: {base_url}")
    return sandbox, base_url


def _expected(base_url: str) -> Dict[str, List[Dict[str, Any]]]:
    with urllib.request.urlopen(f"{base_url}/_sandbox/expected", timeout=SANDBOX_START_TIMEOUT_SECONDS) as response:
        expected = json.load(response)
    return {stream: expected[stream] for stream in STREAMS}


def _set_faults(base_url: str, faults: Mapping[str, Any]) -> None:
    request = urllib.request.Request(f"{base_url}/_sandbox/faults", data=json.dumps(faults).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=SANDBOX_START_TIMEOUT_SECONDS):
        pass


def _run(args: argparse.Namespace, base_url: str, work: Path) -> int:
    import airbyte as ab
    from airbyte.caches import DuckDBCache
    from airbyte.exceptions import AirbyteConnectorFailedError

    expected = _expected(base_url)
    config = {
        "api_key": "sandbox-key",
        "base_url": base_url,
        "requests_per_second": 1000,
        "retry_budget_seconds": 1,  # the failing read gives up on the broken course within seconds
        "backoff_base_seconds": 0.01,
    }
    source = ab.get_source("source-northpass-lms", config=config, local_executable=args.connector_executable)
    source.check()
    source.select_all_streams()
    assert set(source.get_selected_streams()) == set(STREAMS), source.get_selected_streams()
    cache = DuckDBCache(db_path=work / "pyairbyte_e2e.duckdb", schema_name="northpass")

    problems: List[str] = []
    # The last course in the list that has enrollments: the other courses' are read and checkpointed first.
    broken = expected["course_enrollments"][-1]["course_id"]
    _set_faults(base_url, {"always_truncate_path": f"/v2/courses/{broken}/enrollments"})
    try:
        source.read(cache=cache)
        problems.append("failing read: the read succeeded although a course's enrollments could not be read")
    except AirbyteConnectorFailedError as exc:
        print(f"failing read: raised {type(exc).__name__}, as it must", flush=True)
    finally:
        _set_faults(base_url, {})
    for attempt in ("first", "second"):
        result = source.read(cache=cache)
        # PyAirbyte's own count of the records it received per stream (not public API).
        received = dict(result._progress_tracker.stream_read_counts)
        rows = {stream: len(result[stream]) for stream in STREAMS}
        print(f"{attempt} read: table rows {rows}; records received {received}", flush=True)
        for stream in STREAMS:
            problems += [f"{attempt} read, {stream}: {p}" for p in _check_stream(stream, result, expected[stream])]
            whole_stream_expected = attempt == "first" or stream not in INCREMENTAL
            if whole_stream_expected and received.get(stream, 0) != len(expected[stream]):
                problems.append(
                    f"{attempt} read, {stream}: received {received.get(stream, 0)} records, "
                    f"expected the whole stream ({len(expected[stream])})"
                )
    for problem in problems:
        print(f"FAIL: {problem}", flush=True)
    print("PyAirbyte end to end: " + ("FAILED" if problems else "OK"), flush=True)
    return 1 if problems else 0


def _check_stream(stream: str, result: Any, expected: List[Dict[str, Any]]) -> List[str]:
    frame = result[stream].to_pandas()
    key = PRIMARY_KEYS[stream]
    problems: List[str] = []
    if len(frame) != len(expected):
        problems.append(f"table has {len(frame)} rows, the sandbox has {len(expected)} records")
    if frame.duplicated(subset=list(key)).any():
        problems.append(f"duplicate primary keys {key}")
    if "invite_token" in frame.columns:
        problems.append("the table has an invite_token column")
    unknown = [field for field in CHECKED_FIELDS[stream] if not any(field in record for record in expected)]
    if unknown:
        problems.append(f"the sandbox's records have no {unknown}: nothing to compare")
    rows = {tuple(row[k] for k in key): row for row in frame.to_dict("records")}
    wanted = {tuple(record[k] for k in key): record for record in expected}
    missing = sorted(set(wanted) - set(rows))
    if missing:
        problems.append(f"{len(missing)} expected records missing, e.g. {missing[:3]}")
    for pk in sorted(set(wanted) & set(rows)):
        for field in CHECKED_FIELDS[stream]:
            if _normal(rows[pk].get(field)) != _normal(wanted[pk].get(field)):
                problems.append(f"{pk} {field}: table {rows[pk].get(field)!r}, sandbox {wanted[pk].get(field)!r}")
                break
    return problems[:20]


def _normal(value: Any) -> Any:
    """DuckDB gives numbers back as numpy scalars and nulls as None or NaN."""
    if value is None or value != value:  # NaN
        return None
    if hasattr(value, "item"):
        return value.item()
    return value


if __name__ == "__main__":
    sys.exit(main())

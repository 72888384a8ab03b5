"""The main job, end to end: start the sandbox, run spec, check, discover and read, show what the sync got."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Mapping, Sequence

from integration_tests.harness import ROOT, SandboxProcess, cli_message, requests_per_stream, run_sync


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--people", type=int, default=2000)
    parser.add_argument("--courses", type=int, default=40)
    parser.add_argument("--latency-ms", type=float, default=50, help="simulated network latency of the sandbox")
    parser.add_argument("--output", type=Path, default=ROOT / "demo-output", help="where the records are written")
    args = parser.parse_args()

    sandbox_args = ["--people", str(args.people), "--courses", str(args.courses), "--latency-ms", str(args.latency_ms)]
    with SandboxProcess(sandbox_args) as sandbox, tempfile.TemporaryDirectory() as tmp:
        print(f"Sandbox (fake Northpass API, 10 requests/s like the real one) at {sandbox.base_url}")
        config = {"api_key": sandbox.api_key, "base_url": sandbox.base_url}
        config_path = Path(tmp) / "config.json"
        config_path.write_text(json.dumps(config))

        spec = cli_message("SPEC", "spec")
        print(f"spec:     {len(spec['spec']['connectionSpecification']['properties'])} config fields")
        check = cli_message("CONNECTION_STATUS", "check", "--config", str(config_path))["connectionStatus"]
        print(f"check:    {check['status']}")
        catalog = cli_message("CATALOG", "discover", "--config", str(config_path))["catalog"]
        streams = [s["name"] for s in catalog["streams"]]
        print(f"discover: {len(streams)} streams: {', '.join(streams)}")

        sandbox.admin("reset-stats", "POST")
        result = run_sync(config, streams, Path(tmp) / "read", output_dir=args.output)
        stats = sandbox.admin("stats")

    requests = requests_per_stream(stats)
    print(f"read:     exit code {result.returncode}, {result.seconds:.1f} s, peak memory {result.peak_rss_mb:.0f} MB\n")
    print(table(streams, result.records, requests, stats["requests"]))
    print(f"\n429 answers: {stats['by_status'].get('429', 0)}; records written to {args.output}/<stream>.jsonl")
    for error in result.errors:
        print(f"ERROR: {error}")
    return 0 if result.returncode == 0 and not result.errors else 1


COLUMNS = (("stream", 28), ("records", 10), ("requests", 10), ("% of requests", 15), ("records/request", 17))
FOOTNOTE = """\
records          records the sync delivered.
requests         HTTP requests the sandbox answered for the stream, the 404s of empty collections included; a
                 parent list that feeds its child streams is read once and counted under the parent.
% of requests    the stream's share of all requests. The API allows 10 requests/s, so this is also roughly its
                 share of the sync's time: what a stream costs, when choosing what to sync.
records/request  at most the page size (100): child streams read one small collection per parent, so they cost
                 more requests per record than the top-level lists."""


def table(streams: Sequence[str], records: Mapping[str, int], requests: Mapping[str, int], all_requests: int) -> str:
    """One row per stream and a total, then what each column means."""

    def row(*cells: object) -> str:
        return "".join(
            f"{cell:<{width}}" if i == 0 else f"{cell:>{width}}"
            for i, ((_, width), cell) in enumerate(zip(COLUMNS, cells, strict=True))
        )

    def numbers(name: str, n_records: int, n_requests: int) -> str:
        share = f"{100 * n_requests / all_requests:.1f}%" if all_requests else "-"
        per_request = f"{n_records / n_requests:.1f}" if n_requests else "-"
        return row(name, n_records, n_requests, share, per_request)

    lines = [row(*(title for title, _ in COLUMNS))]
    lines += [numbers(name, records.get(name, 0), requests.get(name, 0)) for name in streams]
    lines.append(numbers("total", sum(records.values()), all_requests))
    return "\n".join(lines) + "\n\n" + FOOTNOTE


if __name__ == "__main__":
    raise SystemExit(main())

"""The main job, end to end: start the sandbox, run spec, check, discover and read, show what the sync got."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

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
    print(f"{'stream':<28}{'records':>10}{'requests':>10}{'seconds':>10}")
    for name in streams:
        print(
            f"{name:<28}{result.records.get(name, 0):>10}{requests.get(name, 0):>10}"
            f"{result.stream_seconds.get(name, 0.0):>10.1f}"
        )
    total = sum(result.records.values())
    print(f"{'total':<28}{total:>10}{stats['requests']:>10}{result.seconds:>10.1f}")
    print(f"\n429 answers: {stats['by_status'].get('429', 0)}; records written to {args.output}/<stream>.jsonl")
    for error in result.errors:
        print(f"ERROR: {error}")
    return 0 if result.returncode == 0 and not result.errors else 1


if __name__ == "__main__":
    raise SystemExit(main())

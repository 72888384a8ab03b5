"""The main job, end to end: start the sandbox, run spec, check, discover and read, show what the sync got.

Then a second, incremental sync of `transcripts` alone, an hour later by the sandbox's clock, after 1% of the
people changed their transcript with evidence and 1% without: it re-reads only the people with evidence plus
its 1/7 share of everyone, and shows what that costs next to the first sync.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import textwrap
from pathlib import Path
from typing import Any, List, Mapping, Sequence, Set

from tools.harness import ROOT, SandboxProcess, SyncResult, cli_message, requests_per_stream, run_sync

TRANSCRIPTS = "transcripts"
ACTIVE_SHARE = 0.01  # people whose transcript changes with evidence before the second sync; as many change without


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # 300 people, not thousands: transcripts cost one request per person on a first sync (see FOOTNOTE)
    parser.add_argument("--people", type=int, default=300)
    parser.add_argument("--courses", type=int, default=40)
    parser.add_argument("--latency-ms", type=float, default=50, help="simulated network latency of the sandbox")
    parser.add_argument(
        "--requests-per-second",
        type=float,
        default=10,
        help="the sandbox's rate limit and the connector's pace (default 10, the API's limit)",
    )
    parser.add_argument("--output", type=Path, default=ROOT / "demo-output", help="where the records are written")
    args = parser.parse_args()

    sandbox_args = ["--people", str(args.people), "--courses", str(args.courses), "--latency-ms", str(args.latency_ms)]
    sandbox_args += ["--rps", str(args.requests_per_second)]
    with SandboxProcess(sandbox_args) as sandbox, tempfile.TemporaryDirectory() as tmp:
        print(
            f"Sandbox (fake Northpass API, {args.requests_per_second:g} requests/s"
            f"{' like the real one' if args.requests_per_second == 10 else ''}) at {sandbox.base_url}"
        )
        config = {
            "api_key": sandbox.api_key,
            "base_url": sandbox.base_url,
            "requests_per_second": args.requests_per_second,
        }
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
        # transcripts incrementally, so that the second sync can go on from this one's state
        first = run_sync(config, streams, Path(tmp) / "read", output_dir=args.output, incremental=[TRANSCRIPTS])
        stats = sandbox.admin("stats")
        print(
            f"read:     exit code {first.returncode}, {first.seconds:.1f} s, peak memory {first.peak_rss_mb:.0f} MB\n"
        )
        print(table(streams, first.records, requests_per_stream(stats), stats["requests"]))
        print(f"\n429 answers: {stats['by_status'].get('429', 0)}; records written to {args.output}/<stream>.jsonl")
        ok = _report(first)

        n = max(1, round(ACTIVE_SHARE * args.people))
        changes = sandbox.admin("transcripts", "POST", {"evidence": n, "silent": n})
        sandbox.admin("clock", "POST", {"advance_seconds": 3600})
        sandbox.admin("reset-stats", "POST")
        output = args.output / "second-sync"
        second = run_sync(
            config, [TRANSCRIPTS], Path(tmp) / "second", output, state=first.states, incremental=[TRANSCRIPTS]
        )
        again = sandbox.admin("stats")
        ok = _report(second) and ok

    with_evidence = _people(changes["evidence"])
    silent = _people(changes["silent"])
    read = _people_in(output / f"{TRANSCRIPTS}.jsonl")
    first_cost = stats["by_path"].get("/v2/people", 0) + requests_per_stream(stats).get(TRANSCRIPTS, 0)
    print(
        _wrap(
            f"\nSecond sync: {TRANSCRIPTS} alone, incremental, an hour later by the sandbox's clock, after {n} "
            f"people's transcripts changed with evidence (updated, a learning event or a quiz attempt) and {n} "
            f"without (an admin enrolment, a certificate extended): exit code {second.returncode}, "
            f"{second.seconds:.1f} s."
        )
    )
    for line in second.logs:
        if line.startswith(f"Stream {TRANSCRIPTS}: reading"):
            print(_wrap(f"connector: {line}"))
    print()
    print(table([TRANSCRIPTS], second.records, requests_per_stream(again), again["requests"], evidence_rows=True))
    print(
        _wrap(
            f"\n{again['requests']} requests: {again['requests'] / first_cost:.0%} of the {first_cost} that "
            f"{TRANSCRIPTS} cost in the first sync (the people list and one request per person). 429 answers: "
            f"{again['by_status'].get('429', 0)}. People changed with evidence re-read: {len(with_evidence & read)} "
            f"of {len(with_evidence)}. People changed without evidence re-read: {len(silent & read)} of "
            f"{len(silent)}, those in this sync's share of the sweep; the others are re-read within 7 syncs. "
            f"Records written to {output}/{TRANSCRIPTS}.jsonl"
        )
    )
    return 0 if ok else 1


def _wrap(text: str) -> str:
    return "\n".join(
        textwrap.fill(paragraph, width=116, break_on_hyphens=False, break_long_words=False)
        for paragraph in text.split("\n")
    )


def _report(result: SyncResult) -> bool:
    for error in result.errors:
        print(f"ERROR: {error}")
    return result.returncode == 0 and not result.errors


def _people(by_kind: Mapping[str, List[Any]]) -> Set[Any]:
    return {person for people in by_kind.values() for person in people}


def _people_in(records: Path) -> Set[Any]:
    if not records.exists():
        return set()
    with open(records) as lines:
        return {json.loads(line)["person_id"] for line in lines}


COLUMNS = (("stream", 28), ("records", 10), ("requests", 10), ("% of requests", 15), ("records/request", 17))
FOOTNOTE = """\
records          records the sync delivered.
requests         HTTP requests the sandbox answered for the stream, the 404s of empty collections included; a
                 parent list that feeds its child streams is read once and counted under the parent.
% of requests    the stream's share of all requests. The API allows 10 requests/s, so this is also roughly its
                 share of the sync's time: what a stream costs, when choosing what to sync.
records/request  at most the page size (100): child streams read one small collection per parent, so they cost
                 more requests per record than the top-level lists.
transcripts      read incrementally. A first sync (no state) reads every person's transcript: one request per
                 person, a 404 for a person without one. That is why the demo's account has 300 people: at 2,000,
                 this sync would take nearly 4 minutes at 10 requests/s. The second sync below shows what every
                 later sync costs: the people with evidence of a change, plus 1/7 of everyone."""
EVIDENCE_NOTE = """\
*                not selected: read by transcripts for evidence of a change since the previous sync (people
                 created or updated, people named by new learning events or quiz attempts), at its incremental cost."""


def table(
    streams: Sequence[str],
    records: Mapping[str, int],
    requests: Mapping[str, int],
    all_requests: int,
    evidence_rows: bool = False,
) -> str:
    """One row per stream and a total, then what each column means; with `evidence_rows`, also a row for each
    stream read only for transcripts' evidence, and what that is."""

    def row(*cells: object) -> str:
        return "".join(
            f"{cell:<{width}}" if i == 0 else f"{cell:>{width}}"
            for i, ((_, width), cell) in enumerate(zip(COLUMNS, cells, strict=True))
        )

    def numbers(name: str, n_records: int, n_requests: int) -> str:
        share = f"{100 * n_requests / all_requests:.1f}%" if all_requests else "-"
        per_request = f"{n_records / n_requests:.1f}" if n_requests and n_records else "-"
        return row(name, n_records, n_requests, share, per_request)

    lines = [row(*(title for title, _ in COLUMNS))]
    lines += [numbers(name, records.get(name, 0), requests.get(name, 0)) for name in streams]
    if evidence_rows:
        lines += [numbers(f"{name}*", 0, n) for name, n in requests.items() if name not in streams]
    lines.append(numbers("total", sum(records.values()), all_requests))
    return "\n".join(lines) + "\n\n" + (EVIDENCE_NOTE if evidence_rows else FOOTNOTE)


if __name__ == "__main__":
    raise SystemExit(main())

"""CLI: ``python -m sandbox serve|dump [options]``.

``serve`` prints one JSON line ``{"base_url": ..., "api_key": ...}`` to stdout,
then serves on 127.0.0.1 until SIGTERM/SIGINT. ``dump`` prints the expected
records of every stream of the connector (ALL_STREAMS) as ``{stream: [records]}``.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from types import FrameType
from typing import Any

from .data import ALL_STREAMS, generate_dataset
from .server import FaultConfig, SandboxOptions, SandboxServer


def _data_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--people", type=int, default=2000)
    parser.add_argument("--courses", type=int, default=40)
    parser.add_argument("--groups", type=int, default=8)
    parser.add_argument("--learning-paths", type=int, default=5)
    parser.add_argument("--categories", type=int, default=6)
    parser.add_argument("--quizzes", type=int, default=12)
    parser.add_argument("--events", type=int, default=1200)
    parser.add_argument("--quiz-attempts", type=int, default=40)
    parser.add_argument("--webhook-urls", type=int, default=2, help="subscribed URLs: deliveries per attempt")
    parser.add_argument("--largest-course", type=int, default=350, help="enrollments of the largest course")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sandbox")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the fake Northpass API on 127.0.0.1")
    _data_args(serve)
    serve.add_argument("--port", type=int, default=0)
    serve.add_argument("--api-key", default="sandbox-key")
    serve.add_argument("--rps", type=float, default=10, help="0 = unlimited")
    serve.add_argument("--latency-ms", type=float, default=0)
    serve.add_argument("--filter-mode", choices=["honour", "ignore"], default="honour")
    serve.add_argument("--faults", choices=["none", "soak"], default="none")
    serve.add_argument("--activity-sort", choices=["honour", "ignore"], default="honour")
    serve.add_argument("--created-filter", choices=["honour", "ignore"], default="honour")
    serve.add_argument("--webhook-limit", choices=["cap", "reject"], default="cap")
    serve.add_argument("--no-webhook-subscription", action="store_true")
    serve.add_argument(
        "--transcripts-empty",
        choices=["404", "empty"],
        default="404",
        help="/v2/transcripts/{id} of a known person without items: 404, or 200 with empty data",
    )
    serve.add_argument("--transcripts-forbidden", action="store_true", help="403 on every /v2/transcripts/*")
    serve.add_argument("--properties-forbidden", action="store_true", help="403 on /v2/properties/courses")
    serve.add_argument(
        "--clock",
        help="the sandbox's now at start (ISO 8601, e.g. 2024-08-01T00:00:00Z), sent as every Date header and "
        "advancing in real time; default: a day after the newest generated timestamp",
    )
    serve.add_argument("--verbose", action="store_true", help="log requests to stderr")
    dump = sub.add_parser("dump", help="print the expected records of every stream")
    _data_args(dump)
    return parser


def _data_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The dataset options shared by `serve` and `dump`."""
    names = (
        "seed", "people", "courses", "groups", "learning_paths", "categories", "quizzes",
        "events", "quiz_attempts", "webhook_urls", "largest_course",
    )  # fmt: skip
    return {name: getattr(args, name) for name in names}


def serve(args: argparse.Namespace) -> int:
    options = SandboxOptions(
        **_data_kwargs(args),
        api_key=args.api_key,
        requests_per_second=args.rps if args.rps > 0 else None,
        latency_ms=args.latency_ms,
        filter_mode=args.filter_mode,
        activity_sort=args.activity_sort,
        created_filter=args.created_filter,
        webhook_limit=args.webhook_limit,
        webhook_subscription=not args.no_webhook_subscription,
        transcripts_empty=args.transcripts_empty,
        transcripts_forbidden=args.transcripts_forbidden,
        properties_forbidden=args.properties_forbidden,
        clock=args.clock,
        faults=FaultConfig.soak() if args.faults == "soak" else FaultConfig(),
        port=args.port,
        verbose=args.verbose,
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with SandboxServer(options) as sb:
        line = json.dumps({"base_url": sb.base_url, "api_key": options.api_key})
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
        while not stop.wait(0.5):
            pass
    return 0


def dump(args: argparse.Namespace) -> int:
    dataset = generate_dataset(**_data_kwargs(args))
    out = {s: dataset.expected_records(s) for s in ALL_STREAMS}
    json.dump(out, sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")
    sys.stdout.flush()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return serve(args)
    return dump(args)


if __name__ == "__main__":
    sys.exit(main())

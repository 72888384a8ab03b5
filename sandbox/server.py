"""A local fake of the Northpass LMS v2 REST API (127.0.0.1 only).

Request pipeline for every ``/v2`` request, in this order:

1. counted in ``stats()["requests"]`` and ``by_path`` (templated path);
2. **auth**: a missing or wrong ``X-Api-Key`` (or a key revoked by the
   ``revoke_key_after`` fault) gets 401. Unauthenticated requests are not
   rate limited and do not count in the rate-limit window;
3. **burst 429 fault** (``burst_429_every``): simulated rate-limit rejections,
   not counted in the window;
4. **rate limit**: at most ``requests_per_second`` accepted requests per key
   in any sliding 1.0 s window (monotonic clock); beyond it 429 without a
   ``Retry-After`` header. Rejected requests do not count in the window;
5. accepted: ``latency_ms`` sleep, then the response is computed (403 for
   ``forbidden_paths``, 404 / 405 / 422 / 200 ...);
6. **transient faults** decided per URL from a hash of
   (seed, kind, method + path + query, n-th accepted request of that URL),
   at most ``max_consecutive`` in a row per URL: reset, 5xx/408 error,
   truncated 200 body, slow response. ``always_truncate_path`` truncates
   every 200 of that path.

Quirks copied from the real API (see shared/northpass-api.md): an empty
collection, a page past the end, an unknown parent and a filter matching
nothing all answer 404; ``links.next``/``prev`` are absolute, drop ``limit``
and keep every other query parameter; ``limit`` defaults to 10 and is clamped
to 100; ``page=0`` is served as page 1 (as clients paging by offset observed),
negative or non-integer ``page``/``limit`` and ``limit < 1`` give 422.

Learning activity (observed in a production client, not documented): ``/v2/events``
(no ids), ``/v2/webhooks`` (at most 50 a page, ~90 days kept, one message per
subscribed URL) and ``/v2/quiz_attempts/{uuid}/answers`` (404 when none). What
the real API is not known to do is a switch in :class:`SandboxOptions`:
``activity_sort`` and ``created_filter`` (honour or silently ignore
``sort=[-]created_at`` and ``filter[created_at][...]``; ignored, events come
oldest first and webhooks by message id), ``webhook_limit`` (cap at 50 or 400),
``leak_types`` (``filter[type][in]`` lets other types through),
``webhook_subscription`` (False: 404).

Transcripts and custom properties (observed in a production client, not documented; paged like every
list): ``/v2/transcripts/{person_id}`` (a person's items; an unknown person answers 404) and
``/v2/properties/courses`` (one item per course; 404 without courses, but a page past the end answers 200
with no data, as its one known client stops on an empty page); the older guess
``/v2/people/{id}/transcript`` answers 404. Switches: ``transcripts_empty`` (a known person without
items: "404", or "empty": 200 with no data), ``transcripts_forbidden`` and ``properties_forbidden``
(403, as a plan-gated endpoint).

Every response, API and admin, carries one ``Date`` header: the sandbox clock (``SandboxServer.clock()``),
which starts a day after the newest generated timestamp (or at ``SandboxOptions.clock``) and advances in
real time; ``POST /_sandbox/clock`` sets or advances it.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import socket
import struct
import sys
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from .data import (
    ALL_STREAMS,
    UPDATED_AT_STREAMS,
    Dataset,
    fmt_ts,
    generate_dataset,
    parse_ts,
)

HOST = "127.0.0.1"
JSONAPI_CONTENT_TYPE = "application/vnd.api+json; charset=utf-8"
DEFAULT_LIMIT = 10
MAX_LIMIT = 100
FOREIGN_BASE = "https://evil.example.invalid"
ERROR_STATUSES: tuple[int, ...] = (500, 502, 503, 504, 408)
UNAUTHORIZED_BODY: dict[str, Any] = {
    "errors": [
        {
            "status": "401",
            "title": "Unauthorized",
            "detail": "You don't have the necessary credentials",
            "source": {},
        }
    ]
}
REASONS: dict[int, str] = {
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
FILTER_RE = re.compile(r"^filter\[updated_at\]\[(gteq|gt|lteq|lt|eq|not_eq)\]$")
SORTABLE = ("id", "updated_at", "created_at")
PLAN_GATED = "You don't have permission to access this resource: it is not included in your plan."


@dataclass(frozen=True)
class Route:
    pattern: re.Pattern[str]
    stream: str
    template: str


ROUTES: tuple[Route, ...] = (
    Route(re.compile(r"^/v2/people$"), "people", "/v2/people"),
    Route(re.compile(r"^/v2/courses$"), "courses", "/v2/courses"),
    Route(
        re.compile(r"^/v2/courses/([^/]+)/enrollments$"),
        "course_enrollments",
        "/v2/courses/{id}/enrollments",
    ),
    Route(
        re.compile(r"^/v2/courses/([^/]+)/activities$"),
        "course_activities",
        "/v2/courses/{id}/activities",
    ),
    Route(re.compile(r"^/v2/learning-paths$"), "learning_paths", "/v2/learning-paths"),
    Route(
        re.compile(r"^/v2/learning-paths/([^/]+)/enrollments$"),
        "learning_path_enrollments",
        "/v2/learning-paths/{id}/enrollments",
    ),
    Route(re.compile(r"^/v2/groups$"), "groups", "/v2/groups"),
    Route(
        re.compile(r"^/v2/groups/([^/]+)/memberships$"),
        "group_memberships",
        "/v2/groups/{id}/memberships",
    ),
    Route(re.compile(r"^/v2/categories$"), "categories", "/v2/categories"),
    Route(re.compile(r"^/v2/quizzes$"), "quizzes", "/v2/quizzes"),
    Route(re.compile(r"^/v2/events$"), "events", "/v2/events"),
    Route(re.compile(r"^/v2/webhooks$"), "webhooks", "/v2/webhooks"),
    Route(
        re.compile(r"^/v2/quiz_attempts/([^/]+)/answers$"),
        "quiz_attempt_answers",
        "/v2/quiz_attempts/{id}/answers",
    ),
    Route(re.compile(r"^/v2/transcripts/([^/]+)$"), "transcripts", "/v2/transcripts/{id}"),
    Route(re.compile(r"^/v2/properties/courses$"), "course_properties", "/v2/properties/courses"),
)
ACTIVITY_LOGS = ("events", "webhooks")  # sorted and filtered on created_at, by the activity switches
WEBHOOK_MAX_LIMIT = 50
CREATED_FILTER_RE = re.compile(r"^filter\[created_at\]\[(gteq|gt|lteq|lt)\]$")


def match_route(path: str) -> tuple[Route | None, str | None]:
    """(route, parent id) for a request path, or (None, None)."""
    for route in ROUTES:
        m = route.pattern.match(path)
        if m:
            return route, (m.group(1) if m.groups() else None)
    return None, None


def error_body(status: int, detail: str, source: dict[str, Any] | None = None) -> dict[str, Any]:
    """A JSON:API error document."""
    return {
        "errors": [
            {
                "status": str(status),
                "title": REASONS.get(status, "Error"),
                "detail": detail,
                "source": source or {},
            }
        ]
    }


def dump_json(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# ------------------------------------------------------------------ config
@dataclass
class FaultConfig:
    """Fault injection settings; everything off by default.

    ``seed`` None means: use the sandbox seed. Rates are fractions in [0, 1].
    Transient faults (reset, error, truncate, slow; checked in that order, at
    most one per request) are decided from a hash of (seed, kind,
    "METHOD path?query", n-th accepted request of that URL), and never more
    than ``max_consecutive`` in a row for one URL. Error statuses are picked
    from 500/502/503/504/408 by that hash, with an HTML or an empty body.
    ``burst_429_every``: every N-th authenticated request starts a burst of
    ``burst_429_length`` 429s (itself included), with ``Retry-After`` rounded
    up when ``retry_after`` is set. ``revoke_key_after``: after that many
    accepted requests (counted since the config was set) the key gets 401.
    ``always_truncate_path`` is persistent and exempt from max_consecutive.
    ``failing_paths``: answers that fail for as long as the config is set, outlasting any retry budget: each
    entry is a path (``/v2/courses``: every page of that list; ``/v2/courses/<id>/enrollments``: one child
    collection), or a path with ``?page=N`` (that one page of the list). They answer HTTP 500 with an HTML body.
    """

    seed: int | None = None
    error_rate: float = 0.0
    reset_rate: float = 0.0
    truncate_rate: float = 0.0
    slow_rate: float = 0.0
    slow_seconds: float = 5.0
    max_consecutive: int = 3
    burst_429_every: int = 0
    burst_429_length: int = 3
    retry_after: float | None = None
    forbidden_paths: list[str] = field(default_factory=list)
    deleted_course_ids: list[str] = field(default_factory=list)
    delete_course_index: int | None = None
    loop_next_path: str | None = None
    foreign_next_path: str | None = None
    revoke_key_after: int | None = None
    always_truncate_path: str | None = None
    failing_paths: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for name in ("error_rate", "reset_rate", "truncate_rate", "slow_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {value!r}")
        if self.max_consecutive < 1:
            raise ValueError("max_consecutive must be >= 1")
        if self.slow_seconds < 0 or self.burst_429_length < 0:
            raise ValueError("slow_seconds and burst_429_length must be >= 0")

    @classmethod
    def soak(cls, seed: int | None = None) -> FaultConfig:
        """Preset for soak tests: a mix of transient faults and 429 bursts."""
        return cls(
            seed=seed,
            error_rate=0.05,
            reset_rate=0.03,
            truncate_rate=0.03,
            burst_429_every=40,
            burst_429_length=3,
            retry_after=None,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaultConfig:
        """Build from a JSON object; unknown keys raise ValueError."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def fails(self, path: str, target: str) -> bool:
        """Whether ``failing_paths`` makes this request (its path, and the raw target with its query) fail."""
        if not self.failing_paths:
            return False
        raw = dict(parse_qsl(urlsplit(target).query)).get("page", "1")
        page = int(raw) if raw.isdigit() else 1
        for entry in self.failing_paths:
            where, _, query = entry.partition("?")
            wanted = dict(parse_qsl(query)).get("page")
            if where == path and (wanted is None or int(wanted) == page):
                return True
        return False

    def any_transient(self) -> bool:
        return self.error_rate > 0 or self.reset_rate > 0 or self.truncate_rate > 0 or self.slow_rate > 0


@dataclass
class SandboxOptions:
    """Options of one sandbox (dataset size, key, pacing, faults)."""

    seed: int = 42
    people: int = 2000
    courses: int = 40
    groups: int = 8
    learning_paths: int = 5
    categories: int = 6
    quizzes: int = 12
    largest_course: int = 350
    api_key: str = "sandbox-key"
    requests_per_second: float | None = 10
    latency_ms: float = 0
    filter_mode: str = "honour"
    # Learning activity: its size, and the switches for what the real API is not known to do.
    events: int = 1200
    quiz_attempts: int = 40
    webhook_urls: int = 2  # each quiz completion is in the webhook log once per subscribed URL
    activity_sort: str = "honour"  # sort=[-]created_at on /v2/events and /v2/webhooks: honour or ignore
    created_filter: str = "honour"  # filter[created_at][...] on the same: honour or ignore
    webhook_limit: str = "cap"  # limit > 50 on /v2/webhooks: "cap" serves 50 silently, "reject" answers 400
    leak_types: bool = True  # filter[type][in] on /v2/webhooks lets other types through
    webhook_subscription: bool = True  # False: /v2/webhooks answers 404 (an account without a subscription)
    # Transcripts and course properties: what the real API is not known to do.
    transcripts_empty: str = "404"  # a known person without items: "404" or "empty" (200, no data)
    transcripts_forbidden: bool = False  # every /v2/transcripts/* answers 403 (a plan-gated endpoint)
    properties_forbidden: bool = False  # /v2/properties/courses answers 403
    clock: str | None = None  # the clock's start (ISO 8601); None: a day after the newest generated timestamp
    faults: FaultConfig = field(default_factory=FaultConfig)
    port: int = 0
    verbose: bool = False
    requests_log_size: int = 1000

    def __post_init__(self) -> None:
        for name in ("filter_mode", "activity_sort", "created_filter"):
            if getattr(self, name) not in ("honour", "ignore"):
                raise ValueError(f"{name} must be 'honour' or 'ignore'")
        if self.webhook_limit not in ("cap", "reject"):
            raise ValueError("webhook_limit must be 'cap' or 'reject'")
        if self.transcripts_empty not in ("404", "empty"):
            raise ValueError("transcripts_empty must be '404' or 'empty'")
        if self.clock is not None:
            parse_ts(self.clock)
        if self.requests_per_second is not None and self.requests_per_second <= 0:
            self.requests_per_second = None


# ------------------------------------------------------------------- state
class Stats:
    """Thread-safe request counters."""

    def __init__(self, log_size: int) -> None:
        self._lock = threading.Lock()
        self._log_size = log_size
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.requests = 0
            self.accepted = 0
            self.by_status: dict[str, int] = {}
            self.by_path: dict[str, int] = {}
            self.faults_injected: dict[str, int] = {}
            self.max_in_window = 0
            self.log: deque[dict[str, Any]] = deque(maxlen=self._log_size)

    def received(self, template: str) -> None:
        with self._lock:
            self.requests += 1
            self.by_path[template] = self.by_path.get(template, 0) + 1

    def accept(self, in_window: int) -> None:
        with self._lock:
            self.accepted += 1
            self.max_in_window = max(self.max_in_window, in_window)

    def answered(self, method: str, target: str, status: str, fault: str | None) -> None:
        with self._lock:
            self.by_status[status] = self.by_status.get(status, 0) + 1
            if fault:
                self.faults_injected[fault] = self.faults_injected.get(fault, 0) + 1
            self.log.append(
                {
                    "t": round(time.time(), 4),
                    "method": method,
                    "target": target,
                    "status": status,
                    "fault": fault,
                }
            )

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": self.requests,
                "accepted": self.accepted,
                "by_status": dict(self.by_status),
                "by_path": dict(self.by_path),
                "max_in_window": self.max_in_window,
                "faults_injected": dict(self.faults_injected),
                "requests_log": list(self.log),
            }


class RateLimiter:
    """Sliding 1-second window per API key (monotonic clock).

    ``limit`` None never rejects but still measures the window occupancy.
    """

    def __init__(self, limit: float | None) -> None:
        self.limit = None if limit is None else max(1, math.floor(limit))
        self._lock = threading.Lock()
        self._windows: dict[str, deque[float]] = {}

    def try_accept(self, key: str) -> tuple[bool, int]:
        """(accepted?, accepted requests in the window including this one)."""
        now = time.monotonic()
        with self._lock:
            window = self._windows.setdefault(key, deque())
            while window and window[0] <= now - 1.0:
                window.popleft()
            if self.limit is not None and len(window) >= self.limit:
                return False, len(window)
            window.append(now)
            return True, len(window)


@dataclass
class FaultDecision:
    kind: str | None
    value: int = 0


class FaultState:
    """Runtime state of the fault injector (reset by ``set_faults``)."""

    def __init__(self, config: FaultConfig, seed: int, deleted: set[str]) -> None:
        self.config = config
        self.seed = config.seed if config.seed is not None else seed
        self.deleted_course_ids = deleted
        self._lock = threading.Lock()
        self._url_counts: dict[str, int] = {}
        self._consecutive: dict[str, int] = {}
        self._burst_counter = 0
        self._burst_remaining = 0
        self.accepted = 0

    def _unit(self, kind: str, url: str, n: int) -> tuple[float, int]:
        digest = hashlib.sha256(f"{self.seed}|{kind}|{url}|{n}".encode()).digest()
        value = int.from_bytes(digest[:8], "big")
        return value / 2**64, value

    def key_revoked(self) -> bool:
        limit = self.config.revoke_key_after
        with self._lock:
            return limit is not None and self.accepted >= limit

    def note_accepted(self) -> None:
        with self._lock:
            self.accepted += 1

    def burst(self) -> bool:
        """True if this authenticated request falls in a simulated 429 burst."""
        every = self.config.burst_429_every
        length = self.config.burst_429_length
        if not every or every <= 0 or length <= 0:
            return False
        with self._lock:
            if self._burst_remaining > 0:
                self._burst_remaining -= 1
                return True
            self._burst_counter += 1
            if self._burst_counter % every == 0:
                self._burst_remaining = length - 1
                return True
            return False

    def decide(self, url: str, ok: bool) -> FaultDecision:
        """Transient fault for the n-th accepted request of ``url``.

        ``ok``: the normal answer is a 200 (only those can be truncated).
        """
        cfg = self.config
        if not cfg.any_transient():
            return FaultDecision(None)
        with self._lock:
            n = self._url_counts.get(url, 0) + 1
            self._url_counts[url] = n
            if self._consecutive.get(url, 0) >= max(cfg.max_consecutive, 0):
                self._consecutive[url] = 0
                return FaultDecision(None)
            decision = FaultDecision(None)
            for kind, rate in (
                ("reset", cfg.reset_rate),
                ("error", cfg.error_rate),
                ("truncate", cfg.truncate_rate if ok else 0.0),
                ("slow", cfg.slow_rate),
            ):
                u, value = self._unit(kind, url, n)
                if rate > 0 and u < rate:
                    decision = FaultDecision(kind, value)
                    break
            if decision.kind is None:
                self._consecutive[url] = 0
            else:
                self._consecutive[url] = self._consecutive.get(url, 0) + 1
            return decision


# ------------------------------------------------------------------ server
class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() must not wait for keep-alive clients
    allow_reuse_address = True
    sandbox: SandboxServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "NorthpassSandbox/1.0"
    sys_version = ""
    timeout = 60
    # Headers and body go out in two writes: with Nagle on, a small body waits for the client's delayed ACK
    # (~40 ms on loopback), which capped one keep-alive connection at ~22 small responses a second.
    disable_nagle_algorithm = True
    server: _HTTPServer

    # ------------------------------------------------------------ plumbing
    def date_time_string(self, timestamp: float | None = None) -> str:
        """The ``Date`` header send_response adds: the sandbox clock's, not the machine's."""
        return self.server.sandbox.dataset.clock.http_date()

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.sandbox.options.verbose:
            sys.stderr.write(f"{self.address_string()} - {format % args}\n")

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str | None = JSONAPI_CONTENT_TYPE,
        headers: dict[str, str] | None = None,
    ) -> None:
        try:
            self.send_response(status, REASONS.get(status))
            if content_type:
                self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            if body:
                self.wfile.write(body)
        except (TimeoutError, BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _reset(self) -> None:
        """Drop the connection without any HTTP response (RST if possible)."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        try:
            self.connection.close()  # really closed when rfile closes in finish()
        except OSError:
            pass

    def _dispatch(self, method: str) -> None:
        path = urlsplit(self.path).path
        if path.startswith("/_sandbox/"):
            self._admin(method, path)
        elif path == "/v2" or path.startswith("/v2/"):
            self._api(method, path)
        else:
            self._read_body()
            self._send(404, dump_json(error_body(404, "Not found")))

    # --------------------------------------------------------------- admin
    def _admin(self, method: str, path: str) -> None:
        sb = self.server.sandbox
        raw = self._read_body()
        try:
            payload: Any = json.loads(raw) if raw.strip() else {}
            if method == "GET" and path == "/_sandbox/stats":
                result: Any = sb.stats()
            elif method == "POST" and path == "/_sandbox/reset-stats":
                sb.reset_stats()
                result = {"ok": True}
            elif method == "GET" and path == "/_sandbox/dataset":
                result = sb.dataset.to_json()
            elif method == "GET" and path == "/_sandbox/expected":
                query = dict(parse_qsl(urlsplit(self.path).query))
                streams = [query["stream"]] if "stream" in query else list(ALL_STREAMS)
                result = {s: sb.expected_records(s) for s in streams}
            elif method == "POST" and path == "/_sandbox/activity":
                if not isinstance(payload, dict):
                    raise ValueError("body must be a JSON object")
                result = sb.add_activity(**payload)
            elif method == "POST" and path == "/_sandbox/mutate":
                if not isinstance(payload, dict):
                    raise ValueError("body must be a JSON object")
                result = sb.mutate(**payload)
            elif method == "POST" and path == "/_sandbox/transcripts":
                if not isinstance(payload, dict):
                    raise ValueError("body must be a JSON object")
                result = sb.change_transcripts(**payload)
            elif method == "GET" and path == "/_sandbox/clock":
                result = {"now": fmt_ts(sb.clock())}
            elif method == "POST" and path == "/_sandbox/clock":
                if not isinstance(payload, dict) or set(payload) - {"at", "advance_seconds"}:
                    raise ValueError('body must be {"at": ISO 8601} or {"advance_seconds": number}')
                if "at" in payload:
                    sb.set_clock(str(payload["at"]))
                if "advance_seconds" in payload:
                    sb.advance_clock(float(payload["advance_seconds"]))
                result = {"now": fmt_ts(sb.clock())}
            elif method == "GET" and path == "/_sandbox/faults":
                result = sb.faults.to_dict()
            elif method == "POST" and path == "/_sandbox/faults":
                if not isinstance(payload, dict):
                    raise ValueError("body must be a JSON object")
                sb.set_faults(FaultConfig.from_dict(payload))
                result = sb.faults.to_dict()
            else:
                self._send(
                    404,
                    dump_json({"error": f"no admin endpoint {method} {path}"}),
                    "application/json",
                )
                return
        except (ValueError, TypeError, KeyError) as exc:
            self._send(400, dump_json({"error": str(exc)}), "application/json")
            return
        self._send(200, dump_json(result), "application/json; charset=utf-8")

    # ----------------------------------------------------------------- api
    def _api(self, method: str, path: str) -> None:
        sb = self.server.sandbox
        self._read_body()
        route, parent_id = match_route(path)
        template = route.template if route else "unmatched"
        sb._stats.received(template)
        target = self.path

        def answer(
            status: int,
            body: bytes,
            fault: str | None = None,
            headers: dict[str, str] | None = None,
            content_type: str | None = JSONAPI_CONTENT_TYPE,
        ) -> None:
            sb._stats.answered(method, target, str(status), fault)
            self._send(status, body, content_type, headers)

        faults = sb._fault_state
        key = self.headers.get("X-Api-Key")
        if key != sb.options.api_key or faults.key_revoked():
            answer(401, dump_json(UNAUTHORIZED_BODY))
            return
        if faults.burst():
            headers: dict[str, str] = {}
            if faults.config.retry_after is not None:
                headers["Retry-After"] = str(math.ceil(faults.config.retry_after))
            answer(
                429,
                dump_json(error_body(429, "Rate limit exceeded. Slow down.")),
                "burst_429",
                headers,
            )
            return
        accepted, in_window = sb._limiter.try_accept(key)
        if not accepted:
            answer(429, dump_json(error_body(429, "Rate limit exceeded. Slow down.")))
            return
        sb._stats.accept(in_window)
        faults.note_accepted()
        if sb.options.latency_ms > 0:
            time.sleep(sb.options.latency_ms / 1000.0)

        if faults.config.fails(path, self.path):
            html = b"<html><head><title>500 Internal Server Error</title></head><body>500</body></html>"
            answer(500, html, "persistent_500", content_type="text/html; charset=utf-8")
            return
        status, doc = sb._respond(method, path, route, parent_id, self.path, faults)
        body = dump_json(doc)
        decision = faults.decide(f"{method} {self.path}", status == 200)
        if decision.kind == "reset":
            sb._stats.answered(method, target, "reset", "reset")
            self._reset()
            return
        if decision.kind == "error":
            err = ERROR_STATUSES[decision.value % len(ERROR_STATUSES)]
            if (decision.value // len(ERROR_STATUSES)) % 2 == 0:
                html = (
                    f"<html><head><title>{err} {REASONS[err]}</title></head>"
                    f"<body><h1>{err} {REASONS[err]}</h1></body></html>"
                ).encode()
                answer(err, html, "error", content_type="text/html; charset=utf-8")
            else:
                answer(err, b"", "error", content_type=None)
            return
        if decision.kind == "slow":
            time.sleep(max(faults.config.slow_seconds, 0.0))
        fault = decision.kind if decision.kind == "slow" else None
        if status == 200 and (decision.kind == "truncate" or path == faults.config.always_truncate_path):
            body = body[: len(body) // 2]
            fault = "truncate" if decision.kind == "truncate" else "always_truncate"
        answer(status, body, fault)


class SandboxServer:
    """The sandbox: dataset + HTTP server on 127.0.0.1 in a background thread.

    Use as a context manager or call :meth:`start` / :meth:`stop`.
    """

    def __init__(self, options: SandboxOptions | None = None) -> None:
        self.options = options or SandboxOptions()
        o = self.options
        self.dataset: Dataset = generate_dataset(
            seed=o.seed,
            people=o.people,
            courses=o.courses,
            groups=o.groups,
            learning_paths=o.learning_paths,
            categories=o.categories,
            quizzes=o.quizzes,
            events=o.events,
            quiz_attempts=o.quiz_attempts,
            webhook_urls=o.webhook_urls,
            largest_course=o.largest_course,
        )
        if o.clock is not None:
            self.set_clock(o.clock)
        self._stats = Stats(o.requests_log_size)
        self._limiter = RateLimiter(o.requests_per_second)
        self._fault_state = self._make_fault_state(o.faults)
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------- lifecycle
    def start(self) -> SandboxServer:
        if self._httpd is not None:
            return self
        httpd = _HTTPServer((HOST, self.options.port), _Handler)
        httpd.sandbox = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="northpass-sandbox",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> SandboxServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("sandbox not started")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        # Plain HTTP on the loopback interface only; Airbyte's QA check exempts only test folders, hence the marker.
        return f"http://{HOST}:{self.port}"  # ignore-https-check

    # ------------------------------------------------------------- public
    def expected_records(self, stream: str) -> list[dict[str, Any]]:
        return self.dataset.expected_records(stream)

    def stats(self) -> dict[str, Any]:
        return self._stats.snapshot()

    def reset_stats(self) -> None:
        self._stats.reset()

    def mutate(
        self,
        updated_at: str | None = None,
        update: int = 5,
        add: int = 3,
        streams: list[str] | None = None,
    ) -> dict[str, dict[str, list[str]]]:
        return self.dataset.mutate(updated_at=updated_at, update=update, add=add, streams=streams)

    def add_activity(self, **kwargs: Any) -> dict[str, Any]:
        """New events and quiz attempts (see :meth:`Dataset.add_activity`)."""
        return self.dataset.add_activity(**kwargs)

    def change_transcripts(
        self,
        evidence: int = 0,
        silent: int = 0,
        at: str | None = None,
        kinds: list[str] | None = None,
    ) -> dict[str, Any]:
        """Transcript changes with and without evidence (see :meth:`Dataset.change_transcripts`)."""
        return self.dataset.change_transcripts(evidence=evidence, silent=silent, at=at, kinds=kinds)

    def clock(self) -> datetime:
        """The sandbox's now (UTC), which every response's ``Date`` header carries."""
        return self.dataset.clock.now()

    def set_clock(self, at: str) -> None:
        """Set the clock to ``at`` (ISO 8601); it advances in real time from there."""
        self.dataset.clock.set(parse_ts(at))

    def advance_clock(self, seconds: float) -> None:
        self.dataset.clock.advance(seconds)

    @property
    def faults(self) -> FaultConfig:
        return self._fault_state.config

    def set_faults(self, faults: FaultConfig) -> None:
        """Replace the fault config; fault counters restart from zero."""
        self._fault_state = self._make_fault_state(faults)

    def _make_fault_state(self, faults: FaultConfig) -> FaultState:
        deleted = set(faults.deleted_course_ids)
        idx = faults.delete_course_index
        if idx is not None:
            deleted.add(self.dataset.course_ids_by_index[idx])
        return FaultState(faults, self.options.seed, deleted)

    # ----------------------------------------------------------- routing
    def _respond(
        self,
        method: str,
        path: str,
        route: Route | None,
        parent_id: str | None,
        raw_target: str,
        faults: FaultState,
    ) -> tuple[int, dict[str, Any]]:
        for prefix in faults.config.forbidden_paths:
            if path.startswith(prefix):
                return 403, error_body(403, PLAN_GATED)
        if self.options.transcripts_forbidden and (path + "/").startswith("/v2/transcripts/"):
            return 403, error_body(403, PLAN_GATED)
        if self.options.properties_forbidden and (path + "/").startswith("/v2/properties/courses/"):
            return 403, error_body(403, PLAN_GATED)
        if route is None:
            return 404, error_body(404, "The requested resource could not be found")
        if method != "GET":
            return 405, error_body(405, f"{method} is not supported by the sandbox")
        if route.stream in ("course_enrollments", "course_activities") and parent_id in faults.deleted_course_ids:
            return 404, error_body(404, "Course not found")
        if route.stream == "webhooks" and not self.options.webhook_subscription:
            return 404, error_body(404, "No webhook subscription")
        items = self.dataset.collection(route.stream, parent_id)
        if items is None:
            return 404, error_body(404, "Parent resource not found")
        query = parse_qsl(urlsplit(raw_target).query, keep_blank_values=True)
        params = dict(query)

        # paging parameters
        page_raw = params.get("page", "1")
        limit_raw = params.get("limit", str(DEFAULT_LIMIT))
        if not re.fullmatch(r"\d+", page_raw.strip()):
            return 422, error_body(422, "page must be a positive integer", {"parameter": "page"})
        if not re.fullmatch(r"-?\d+", limit_raw.strip()) or int(limit_raw) < 1:
            return 422, error_body(422, "limit must be an integer >= 1", {"parameter": "limit"})
        page = max(int(page_raw), 1)
        limit = min(int(limit_raw), MAX_LIMIT)
        if route.stream == "webhooks":
            if limit > WEBHOOK_MAX_LIMIT and self.options.webhook_limit == "reject":
                return 400, error_body(400, "limit must be at most 50", {"parameter": "limit"})
            limit = min(limit, WEBHOOK_MAX_LIMIT)
        if route.stream in ACTIVITY_LOGS:
            try:
                items = self._activity_answer(items, query, params)
            except ValueError as exc:
                return 422, error_body(422, str(exc))

        # filtering
        if route.stream in UPDATED_AT_STREAMS and self.options.filter_mode == "honour":
            for name, value in query:
                m = FILTER_RE.match(name)
                if not m:
                    continue
                try:
                    bound = parse_ts(value)
                except ValueError:
                    return 422, error_body(422, f"invalid timestamp {value!r}", {"parameter": name})
                items = [r for r in items if _compare(r, m.group(1), bound)]

        # sorting (unknown sort values are ignored)
        sort = params.get("sort", "").strip()
        attr = sort.lstrip("-")
        if attr in SORTABLE and sort and route.stream not in ACTIVITY_LOGS:
            if attr == "id":
                items.sort(key=lambda r: r["id"], reverse=sort.startswith("-"))
            elif items and attr in items[0].get("attributes", {}):
                items.sort(key=lambda r: r["id"])
                items.sort(
                    key=lambda r: r["attributes"].get(attr) or "",
                    reverse=sort.startswith("-"),
                )

        if not items:
            if route.stream == "transcripts" and self.options.transcripts_empty == "empty":
                return 200, {"data": [], "links": {"self": self.base_url + raw_target}}
            return 404, error_body(404, "No records found")
        pages = math.ceil(len(items) / limit)
        if page > pages:
            if route.stream == "course_properties":  # its one known client stops on an empty page
                return 200, {"data": [], "links": {"self": self.base_url + raw_target}}
            return 404, error_body(404, f"Page {page} not found")
        data = items[(page - 1) * limit : page * limit]

        links: dict[str, str] = {"self": self.base_url + raw_target}
        if page > 1:
            links["prev"] = self.base_url + _page_target(path, query, page - 1)
        if page < pages:
            links["next"] = self.base_url + _page_target(path, query, page + 1)
        if faults.config.loop_next_path == path and page == 2:
            links["next"] = self.base_url + _page_target(path, query, 1)
        if faults.config.foreign_next_path == path and page == 1:
            links["next"] = FOREIGN_BASE + _page_target(path, query, 2)
        return 200, {"data": data, "links": links, "included": []}

    def _activity_answer(
        self, items: list[dict[str, Any]], query: list[tuple[str, str]], params: dict[str, str]
    ) -> list[dict[str, Any]]:
        """An activity log filtered and sorted on created_at as the switches say, compared as instants."""
        o = self.options
        if o.created_filter == "honour":
            for name, value in query:
                m = CREATED_FILTER_RE.match(name)
                if m:
                    bound = parse_ts(value)
                    items = [r for r in items if _compare(r, m.group(1), bound, "created_at")]
        types = params.get("filter[type][in]")
        if types and not o.leak_types:
            wanted = set(types.split(","))
            items = [r for r in items if r["attributes"].get("type") in wanted]
        sort = params.get("sort", "").strip()
        if o.activity_sort == "honour" and sort.lstrip("-") == "created_at":
            # stable: equal instants keep the log's own order
            items.sort(key=lambda r: parse_ts(r["attributes"]["created_at"]), reverse=sort.startswith("-"))
        return items


def _compare(res: dict[str, Any], op: str, bound: Any, attribute: str = "updated_at") -> bool:
    raw = res.get("attributes", {}).get(attribute)
    if raw is None:
        return False
    value = parse_ts(raw)
    if op == "gteq":
        return value >= bound
    if op == "gt":
        return value > bound
    if op == "lteq":
        return value <= bound
    if op == "lt":
        return value < bound
    if op == "eq":
        return value == bound
    return value != bound  # not_eq


def _page_target(path: str, query: list[tuple[str, str]], page: int) -> str:
    """Path + query for another page: ``limit`` dropped, ``page`` replaced,
    every other parameter kept in its original order."""
    pairs: list[tuple[str, str]] = []
    placed = False
    for name, value in query:
        if name == "limit":
            continue
        if name == "page":
            if not placed:
                pairs.append(("page", str(page)))
                placed = True
            continue
        pairs.append((name, value))
    if not placed:
        pairs.append(("page", str(page)))
    return path + "?" + urlencode(pairs, quote_via=quote, safe="[]:")

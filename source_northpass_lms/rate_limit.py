"""One client-side rate limiter shared by every stream and thread of a sync."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from typing import Any, Callable, Deque, Optional

from airbyte_cdk.sources.streams.call_rate import AbstractCallRatePolicy, APIBudget

# The API counts requests as they arrive; ours are stamped just before they are sent. A slightly longer
# window absorbs the jitter between the two so a full-speed sync never trips the server's window.
WINDOW_MARGIN_SECONDS = 0.05


class SlidingWindowBudget(APIBudget):
    """At most `calls` requests in any sliding window of `window` seconds, across all threads.

    Each stream owns its own HTTP session, so one instance of this budget is handed to all of them.
    A caller that finds the window full sleeps until the oldest call in it leaves the window.
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
        self._stamps: Deque[float] = deque()
        self._lock = threading.Lock()
        self._clock = clock
        self._sleep = sleep
        self.acquired = 0

    def acquire_call(self, request: Any, block: bool = True, timeout: Optional[float] = None) -> None:
        while True:
            with self._lock:
                now = self._clock()
                while self._stamps and self._stamps[0] <= now - self.window:
                    self._stamps.popleft()
                if len(self._stamps) < self.calls:
                    self._stamps.append(now)
                    self.acquired += 1
                    return
                wait = self._stamps[0] + self.window - now
            self._sleep(max(wait, 0.0))

    def get_matching_policy(self, request: Any) -> Optional[AbstractCallRatePolicy]:
        return None

    def update_from_response(self, request: Any, response: Any) -> None:
        """The API sends no rate-limit headers to learn from; 429s are handled by the error handler."""

"""How one list is read: its pages in order, following `links.next`, with later pages requested ahead by number.

A list of P pages read one page at a time takes P x latency however many workers wait: at 500 ms, the 300 pages
of a 30,000-person account take 150 s against a rate-limit floor of 30 s. The API pages by number (`page`,
`limit`) and its `links.next` shows it, so once a list proves long, the pages after the next one are requested
before it answers, as many as the rate limit can serve during one page's latency. The shared rate limiter stays
the only gate: pages in flight wait for their call like every other request.

Requests past the last page are waste, and the API gives no page count, so read-ahead is cautious:
- it starts only on a list whose pages are full and whose `links.next` is exactly "the same list, the next page
  number" (any other link, and the list is followed link by link to its end);
- it widens one page per full page read (slow start), most child collections being one or two pages;
- it is at most ceil(rate x observed latency x headroom) pages deep, so no more pages are on the wire than the
  rate limit can serve before the page before them answers;
- pages are still consumed strictly in order: a list ends at the first page without `links.next` (or empty, or
  404) and the answers beyond it are dropped unread, while the pages still waiting for the limiter are abandoned
  before they are sent.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Optional, Set, Tuple

import requests
from airbyte_cdk.models import FailureType

from .errors import failure
from .jsonapi import PageIdentity, endpoint, page_identity, with_page
from .rate_limit import ahead_in_line, unless_abandoned

# Pages of one list in flight at once: bounds memory (100 records a page) and threads. At 10 requests/s it
# covers a latency of 0.8 s; a slower API is still read at 8 pages per latency.
MAX_PAGES_IN_FLIGHT = 8
# In flight = rate x latency would leave no slack: a page answering slower than average would idle the limiter.
LATENCY_HEADROOM = 1.2
# An answer faster than this is not what a list waits for: parsing and emitting a page of 100 records takes
# 3-5 ms of CPU, and pages in flight would only add threads competing with the reader for the interpreter
# (measured without a rate limit: 25,000 instead of 35,000 records per CPU-second).
MIN_LATENCY_TO_READ_AHEAD = 0.05
LATENCY_SMOOTHING = 0.3  # weight of the latest page in the latency estimate (an exponential moving average)

Token = Mapping[str, Any]  # {"next_url": ...}: the page's absolute URL, `limit` included
Fetched = Tuple[requests.PreparedRequest, requests.Response]
Fetch = Callable[[Optional[Token]], Fetched]


@dataclass(frozen=True)
class Page:
    token: Optional[Token]  # None for the first page, requested from the stream's path and parameters
    request: requests.PreparedRequest
    response: requests.Response


@dataclass
class PageBudget:
    """At most `pages` pages for a read that is only worth so much (transcripts' evidence): `exhausted` once it
    stopped with more to read. `read` counts the pages read."""

    pages: int
    read: int = 0
    exhausted: bool = False

    def take(self) -> bool:
        """Whether one more page may be read (counted if so)."""
        if self.read >= self.pages:
            self.exhausted = True
            return False
        self.read += 1
        return True


class PageChain:
    """The pages of one list (one slice of a stream), in page order, each exactly once.

    `fetch` requests one page (retries included) and raises when it finally fails; `next_token` is the stream's
    reading of `links.next` (None at the end); `is_full` says whether an answer carried a whole page of records.
    Close the iterator early (break out of the loop that reads it) and no further page is sent.
    """

    def __init__(
        self,
        name: str,
        fetch: Fetch,
        next_token: Callable[[requests.Response], Optional[Token]],
        is_full: Callable[[requests.Response], bool],
        requests_per_second: float,
        critical_path: bool,
    ) -> None:
        self._name = name
        self._fetch = fetch
        self._next_token = next_token
        self._is_full = is_full
        self._rate = requests_per_second
        self._critical_path = critical_path
        self._latency: Optional[float] = None
        self._closed = threading.Event()
        self._executor: Optional[ThreadPoolExecutor] = None
        self._in_flight: OrderedDict[int, Future[Fetched]] = OrderedDict()

    def __iter__(self) -> Iterator[Page]:
        try:
            yield from self._pages()
        finally:
            self._close()

    def _pages(self) -> Iterator[Page]:
        seen: Set[PageIdentity] = set()
        token: Optional[Token] = None
        request, response = self._fetch_here(token)
        number: Optional[int] = 1  # the page number of the current page, None once the links stop matching numbers
        full_pages = 0
        while True:
            seen.add(page_identity(request.url or ""))
            self._observe(response)
            yield Page(token, request, response)
            full = self._is_full(response)
            token = self._next_token(response)
            if token is None:
                return
            next_url = str(token["next_url"])
            if page_identity(next_url) in seen:
                raise failure(
                    (
                        f"Stream {self._name}: the API's links.next on {endpoint(request.url)} points back to a page "
                        "already read; stopping instead of reading forever."
                    ),
                    FailureType.system_error,
                )
            if number is not None and page_identity(next_url) != page_identity(
                with_page(request.url or "", number + 1)
            ):
                number = None  # the API pages some other way: follow its links, one page at a time
                self._drop_in_flight()
            if number is None:
                request, response = self._fetch_here(token)
                continue
            number += 1
            if full:
                full_pages += 1
            # Slow start: the first full page only shows the next one exists; each further full page is evidence
            # of a long list and opens the read-ahead by one more page, up to what the latency calls for.
            depth = min(full_pages - 1, self._depth_for_latency() - 1) if full else 0
            future = self._in_flight.pop(number, None)
            if future is None and (depth or self._in_flight):
                future = self._start(token)  # before the pages after it, so it is first in line for the limiter
            for ahead in range(number + 1, number + 1 + depth):
                if ahead not in self._in_flight:
                    self._in_flight[ahead] = self._start({"next_url": with_page(next_url, ahead)})
            if future is None:
                request, response = self._fetch_here(token)
            else:
                request, response = future.result()

    def _depth_for_latency(self) -> int:
        """Pages in flight that keep the rate limit busy while each waits one latency for its answer."""
        if self._latency is None or self._latency < MIN_LATENCY_TO_READ_AHEAD:
            return 1
        wanted = math.ceil(self._rate * self._latency * LATENCY_HEADROOM)
        return max(1, min(MAX_PAGES_IN_FLIGHT, wanted))

    def _observe(self, response: requests.Response) -> None:
        latency = response.elapsed.total_seconds()
        if self._latency is None:
            self._latency = latency
        else:
            self._latency += LATENCY_SMOOTHING * (latency - self._latency)

    def _fetch_here(self, token: Optional[Token]) -> Fetched:
        """A page fetched by the reading thread itself: no read-ahead open, nothing to wait for but this page."""
        with ahead_in_line(self._critical_path):
            return self._fetch(token)

    def _start(self, token: Token) -> Future[Fetched]:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(MAX_PAGES_IN_FLIGHT, thread_name_prefix=f"{self._name}-pages")
        return self._executor.submit(self._fetch_ahead, token)

    def _fetch_ahead(self, token: Token) -> Fetched:
        # Lanes are per thread: a page of a list on the critical path keeps its priority on the fetching thread.
        with ahead_in_line(self._critical_path), unless_abandoned(self._closed):
            return self._fetch(token)

    def _drop_in_flight(self) -> None:
        for future in self._in_flight.values():
            future.cancel()  # not started yet: never sent; started: its answer is dropped unread
        self._in_flight.clear()

    def _close(self) -> None:
        """End of the list, a failure, or the reader stopped early: nothing more is sent."""
        self._closed.set()  # pages waiting for the limiter leave the line unsent
        self._drop_in_flight()
        if self._executor is not None:
            # Not waiting: a page already on the wire ends on its own thread, its answer unread.
            self._executor.shutdown(wait=False, cancel_futures=True)

"""One sync's wiring: what every stream shares, and how each stream reads, decided before any stream is built.

`SyncContext` is what a sync shares (the config, the API key, the request budget, the sync's clock, the progress
log). `SyncClock` is when the sync started, by the API's clock as much as ours: the value every transcript of the
sync carries, and where the next incremental sync looks for evidence from. `ReadPlan` is one stream's part of the sync: its cursor, its lower bound, its resume checkpoint, which
parents it reads, and (for a parent list) how its shared listing is read. Both are frozen and handed to the
stream's constructor; the source builds them in one place (`source.py`, `SourceNorthpassLms.streams`), the same way
for `check`, `discover` and `read`: a stream's mode depends only on the catalog and the state it was given.

`SlicesAhead` bounds how far child streams slice ahead of their reading, one bound for the sync's concurrent read.
`StreamRun` is the little a stream and its cursor learn together while the stream reads (whether a 403 refused
it, how many slices it made): made with the plan, so that neither has to reach into the other.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Callable, Optional

import requests
from airbyte_cdk.sources.streams.concurrent.cursor import Cursor

from .auth import ApiKeyAuthenticator
from .config import NorthpassConfig
from .progress import SyncProgress
from .rate_limit import SlidingWindowBudget

if TYPE_CHECKING:
    from .checkpoint import StreamCheckpoint
    from .parents import ParentChoice


class SyncClock:
    """When this sync started: the earlier of our clock at the start and the API's own (the `Date` header of the
    first answer), so that a clock of ours running ahead never puts a cutoff after a change the API dated.

    Fixed by its first reading, so every record of a sync carries the same value; a retried attempt of a sync
    takes the first attempt's start (`resume`).
    """

    def __init__(self, now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self._ours = now()
        self._api: Optional[datetime] = None
        self._started: Optional[datetime] = None
        self._lock = threading.Lock()

    def saw(self, response: requests.Response) -> None:
        if self._api is not None:
            return
        try:
            stamp = parsedate_to_datetime(response.headers.get("Date", ""))
        except (TypeError, ValueError, IndexError):
            return  # no Date header, or not a date: our own clock stands
        with self._lock:
            if self._api is None and stamp.tzinfo is not None:
                self._api = stamp.astimezone(timezone.utc)

    def resume(self, started: datetime) -> None:
        with self._lock:
            self._started = started

    def started(self) -> datetime:
        with self._lock:
            if self._started is None:
                self._started = min(self._ours, self._api) if self._api else self._ours
            return self._started


class SlicesAhead:
    """How far the slicing of child streams runs ahead of their reading: at most `limit` slices made and not yet
    read to their end, all child streams together (None: no bound).

    A child's slices cost nothing to make, so its partition generator would otherwise make them all at once: the
    CDK bounds the partitions it has handed to its workers (10,000), not those waiting in its queue, and 40,000
    people were up to 18,600 partitions alive at once, about 2 KB each with their futures. The wait ends when a
    slice is read, or when the read is over (`stop`): a generator never waits for slices no one will read.
    """

    def __init__(self, limit: Optional[int]) -> None:
        self._limit = limit
        self._ahead = 0
        self._reading = True
        self._changed = threading.Condition()

    def start(self) -> None:
        """A read begins: no slice is ahead."""
        with self._changed:
            self._ahead, self._reading = 0, True

    def stop(self) -> None:
        """The read is over, whatever became of it: nothing waits any more."""
        with self._changed:
            self._reading = False
            self._changed.notify_all()

    def made(self) -> None:
        """Called before a slice is handed to the CDK: waits while `limit` slices are ahead."""
        with self._changed:
            while self._reading and self._limit is not None and self._ahead >= self._limit:
                self._changed.wait()
            self._ahead += 1

    def read(self) -> None:
        """A slice was read to its end (or given up): one more may be made."""
        with self._changed:
            self._ahead = max(0, self._ahead - 1)  # a slice read without being made (a test reading a parent)
            self._changed.notify_all()


@dataclass(frozen=True)
class SyncContext:
    """What every stream of one sync shares. Built once per `streams()` call, before the streams."""

    config: NorthpassConfig
    authenticator: ApiKeyAuthenticator
    budget: SlidingWindowBudget
    clock: SyncClock
    progress: Optional[SyncProgress] = None
    # The slices child streams may make ahead of their reading, all together (no bound outside a concurrent read).
    slices_ahead: SlicesAhead = field(default_factory=lambda: SlicesAhead(None))


class StreamRun:
    """What a stream and its cursor share while it reads: set by the stream, read by its cursor and checkpoint."""

    def __init__(self) -> None:
        self._refused = threading.Event()
        self._lock = threading.Lock()
        # How many slices this read made, once it has made them all (None until then): an incremental child's
        # cursor commits only when that many have been read to their end.
        self.slices_total: Optional[int] = None

    @property
    def refused(self) -> bool:
        """Whether the API answered 403 to this stream in this sync: it failed, once, with `errors.Refused`."""
        return self._refused.is_set()

    def refuse(self) -> bool:
        """Marks the stream refused; True for the first caller only (the one whose 403 fails the stream)."""
        with self._lock:
            first = not self._refused.is_set()
            self._refused.set()
        return first


@dataclass(frozen=True)
class ListingPlan:
    """How a parent list shared with child streams is read in this sync (listing.py)."""

    # The parent stream is selected and a child reads the list too: the parent's records come from the one read.
    emits_records: bool = False
    # Every reader is incremental: the list is read from the earliest of their cursors instead of whole.
    since: Optional[datetime] = None


@dataclass(frozen=True)
class ReadPlan:
    """How one stream reads in this sync. The default, a full read with nothing to resume, is what a stream not in
    the catalog (or in a `discover`) gets."""

    cursor: Optional[Cursor] = None  # what the CDK's concurrent read reports the stream's records and partitions to
    lower_bound: Optional[datetime] = None  # incremental: records updated (or created) before it are not wanted
    checkpoint: Optional[StreamCheckpoint] = None  # a retried attempt of the same sync may skip what it says is done
    parents: Optional[ParentChoice] = None  # a child stream: which parents of its listing this sync reads
    listing: ListingPlan = field(default_factory=ListingPlan)  # a parent list: how its shared read goes
    run: StreamRun = field(default_factory=StreamRun)

    @property
    def done_before(self) -> bool:
        """Read to its end by an earlier attempt of this sync: not read again."""
        return bool(self.checkpoint and self.checkpoint.stream_done)

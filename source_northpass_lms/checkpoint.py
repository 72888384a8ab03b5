"""Resuming: what a full-refresh stream's state means, and when a retried attempt may skip work.

The rule: a checkpoint is honoured only when the configured stream carries a `sync_id` and the
checkpoint was written under that same `sync_id`, i.e. by an earlier attempt of the same sync, whose
records the Airbyte platform keeps. Anything else (no `sync_id`, another one, a state this connector
did not write) means "read the whole stream". When a whole read ends without any stream failing, every
checkpointed stream gets a last state meaning "start over", so the next sync reads everything even in
a client that reuses one `sync_id` for every read (PyAirbyte fills in 1). See docs/integrations/sources/northpass-lms.md,
"Resuming a failed sync".

State of a full-refresh stream, in the order an attempt writes them:
- `{"sync_id": 7, "parents": {"prefix": n, "prefix_digest": <sha256>, "last": <id>, "done": [<ids>]}}`
  (child streams, during the read): the first n parents of the listing, whose ids hash to
  `prefix_digest` and end with `last`, plus the ids in `done`, had their collections emitted whole.
- `{"sync_id": 7, "complete": true}`: the stream was read to its end in sync 7.
- `{"__ab_no_cursor_state_message": true}`: the whole read succeeded: start over (the CDK's own marker).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, MutableMapping, Optional, Set

from airbyte_cdk.models import AirbyteMessage
from airbyte_cdk.sources.connector_state_manager import ConnectorStateManager
from airbyte_cdk.sources.message import MessageRepository
from airbyte_cdk.sources.streams import NO_CURSOR_STATE_KEY
from airbyte_cdk.sources.streams.concurrent.cursor import Cursor
from airbyte_cdk.sources.streams.concurrent.partitions.partition import Partition
from airbyte_cdk.sources.types import Record

SYNC_ID = "sync_id"
COMPLETE = "complete"
PARENTS = "parents"
START_OVER: Mapping[str, Any] = {NO_CURSOR_STATE_KEY: True}
# A checkpoint costs the platform a state commit; one every 2 s is negligible beside the records, and a
# crash then re-reads at most the parents finished in the last 2 s (about 20 requests at 10 requests/s).
CHECKPOINT_INTERVAL_SECONDS = 2.0
# The bound for one state message, whatever the account's size (10,000 parents included).
MAX_STATE_BYTES = 10_000
# Room for the ids done ahead of the frontier: what is left of MAX_STATE_BYTES after the other fields
# (a 64-character digest, the `last` id, the stream descriptor and the CDK's envelope) with a wide margin.
# Ids beyond it are left out: those parents are read again after a crash (duplicates, never a loss).
DONE_IDS_BUDGET_BYTES = 7_000


def checkpoint_for(
    stream_name: str,
    sync_id: Optional[int],
    stream_state: Mapping[str, Any],
    logger: logging.Logger,
) -> Optional[Mapping[str, Any]]:
    """The incoming checkpoint if this attempt may honour it, else None (read the whole stream).

    A state that is not a checkpoint (none, "start over", an incremental cursor) is read-everything
    without a word; a checkpoint that cannot be honoured is said so at INFO: nothing for the user to do.
    """
    if not stream_state or SYNC_ID not in stream_state:
        return None
    written_by = stream_state[SYNC_ID]
    if sync_id is None:
        logger.info(
            f"Stream {stream_name}: the incoming state is a checkpoint of sync {written_by!r}, but the catalog "
            "gives no sync_id, so it cannot tell a retried attempt of that sync: reading the whole stream."
        )
        return None
    if isinstance(written_by, bool) or written_by != sync_id:
        logger.info(
            f"Stream {stream_name}: the incoming state is a checkpoint of sync {written_by!r}, not of this "
            f"sync ({sync_id}); a checkpoint is only honoured by a retried attempt of its own sync: reading "
            "the whole stream."
        )
        return None
    return stream_state


class StreamCheckpoint(Cursor):
    """A full-refresh stream's cursor when the catalog gives a sync_id: `complete` once read to its end.

    A stream that completed in an earlier attempt of the same sync is not read again (`stream_done`).
    """

    def __init__(
        self,
        stream_name: str,
        stream_namespace: Optional[str],
        sync_id: int,
        checkpoint: Optional[Mapping[str, Any]],
        message_repository: MessageRepository,
        state_manager: ConnectorStateManager,
        logger: logging.Logger,
    ) -> None:
        self._stream_name = stream_name
        self._stream_namespace = stream_namespace
        self._sync_id = sync_id
        self._message_repository = message_repository
        self._state_manager = state_manager
        self._logger = logger
        self._lock = threading.Lock()
        self.stream_done = bool(checkpoint and checkpoint.get(COMPLETE) is True)
        self._complete = self.stream_done
        if self.stream_done:
            logger.info(
                f"Stream {stream_name}: read to its end by an earlier attempt of this sync ({sync_id}), "
                "whose records are kept: not read again."
            )

    @property
    def state(self) -> MutableMapping[str, Any]:
        return {SYNC_ID: self._sync_id, COMPLETE: self._complete}

    def observe(self, record: Record) -> None:
        pass

    def close_partition(self, partition: Partition) -> None:
        self._complete = True  # a top-level stream is one partition: closed means read to its last page

    def ensure_at_least_one_state_emitted(self) -> None:
        with self._lock:
            state = self.state
        self._emit(state)  # called by the main thread once the stream has no partition left

    def should_be_synced(self, record: Record) -> bool:
        return True

    def _emit(self, state: Mapping[str, Any]) -> None:
        self._state_manager.update_state_for_stream(self._stream_name, self._stream_namespace, state)
        self._message_repository.emit_message(
            self._state_manager.create_state_message(self._stream_name, self._stream_namespace)
        )


class ParentCheckpoint(StreamCheckpoint):
    """A child stream's cursor: which parents' collections were emitted whole, as a frontier in listing order.

    A parent is done when its partition closes: the CDK calls close_partition after the partition's last
    record is on the queue, and the checkpoint goes on the queue behind it (messages.py).
    A parent interrupted half-way is not done, and is read again from its first page. Nor is a parent whose
    partition closed after the stream was refused (`refused`): it was not asked at all.
    """

    def __init__(
        self,
        stream_name: str,
        stream_namespace: Optional[str],
        sync_id: int,
        checkpoint: Optional[Mapping[str, Any]],
        message_repository: MessageRepository,
        state_manager: ConnectorStateManager,
        logger: logging.Logger,
        parent_key: str,
        clock: Callable[[], float] = time.monotonic,
        interval: float = CHECKPOINT_INTERVAL_SECONDS,
        refused: Callable[[], bool] = lambda: False,
    ) -> None:
        super().__init__(stream_name, stream_namespace, sync_id, checkpoint, message_repository, state_manager, logger)
        self._parent_key = parent_key
        self._refused = refused
        self._clock = clock
        self._interval = interval
        self._incoming = dict(checkpoint) if checkpoint else None
        self._resume = None if self.stream_done or not checkpoint else _Frontier.parse(checkpoint, stream_name, logger)
        self._ids: List[Any] = []
        self._done: List[bool] = []
        # Parent id -> its listing position, until done. The listing gives each id once (listing.py); an id given
        # twice would keep only its later position, so the earlier stays not done: read again, never skipped.
        self._positions: Dict[Any, int] = {}
        self._prefix = 0
        self._prefix_hash = hashlib.sha256()
        self._ahead: Set[int] = set()  # positions done beyond the prefix
        self._listing_started = False
        self._listing_complete = False
        self._emit_lock = threading.Lock()
        self._last_emit = clock()

    def parents_to_read(self, listing: Iterable[Any]) -> Iterator[Any]:
        """The ids of `listing` whose collections still have to be read, in listing order."""
        self._listing_started = True
        resume = self._resume
        if resume is None:
            for parent_id in listing:
                yield from self._take(parent_id, skip=False)
            self._end_listing()
            return
        skipped = 0
        held: List[Any] = []  # the listing up to the end of the done run, until the run is found
        run_found = resume.prefix == 0
        for parent_id in listing:
            if run_found:
                skip = resume.was_done(parent_id)
                skipped += skip
                yield from self._take(parent_id, skip)
                continue
            held.append(parent_id)
            if resume.ends_run(held):
                run_found = True
                run_start = len(held) - resume.prefix
                for position, held_id in enumerate(held):
                    skip = position >= run_start or resume.was_done(held_id)
                    skipped += skip
                    yield from self._take(held_id, skip)
                held = []
        if held:
            self._logger.info(
                f"Stream {self._stream_name}: the parent list changed since the checkpoint (the {resume.prefix} "
                f"parents read whole in a row are no longer listed as they were), so only the {len(resume.done)} "
                "parents recorded one by one are skipped."
            )
            for held_id in held:
                skip = resume.was_done(held_id)
                skipped += skip
                yield from self._take(held_id, skip)
        self._end_listing()
        self._logger.info(
            f"Stream {self._stream_name}: resuming an earlier attempt of this sync ({self._sync_id}): "
            f"{skipped} of {len(self._ids)} parents were read whole then and are skipped."
        )

    def _end_listing(self) -> None:
        with self._lock:
            self._listing_complete = True

    def _take(self, parent_id: Any, skip: bool) -> Iterator[Any]:
        with self._lock:
            position = len(self._ids)
            self._ids.append(parent_id)
            self._done.append(False)
            if skip:
                self._mark_done(position)
            else:
                self._positions[parent_id] = position
        if not skip:
            yield parent_id

    def close_partition(self, partition: Partition) -> None:
        if self._refused():
            return  # the stream failed on a 403: what closes now was skipped, not read
        parent_id = (partition.to_slice() or {}).get(self._parent_key)
        with self._lock:
            position = self._positions.pop(parent_id, None)
            if position is not None:
                self._mark_done(position)
            due = self._clock() - self._last_emit >= self._interval
        # One checkpoint at a time, from whichever worker gets there; a worker that finds another
        # emitting moves on, and its parent is in the next checkpoint.
        if due and self._emit_lock.acquire(blocking=False):
            try:
                with self._lock:
                    state = self.state
                    self._last_emit = self._clock()
                self._emit(state)
            finally:
                self._emit_lock.release()

    def ensure_at_least_one_state_emitted(self) -> None:
        with self._emit_lock:
            with self._lock:
                state = self.state
            self._emit(state)

    @property
    def state(self) -> MutableMapping[str, Any]:
        if self.stream_done or self.every_parent_done():
            return {SYNC_ID: self._sync_id, COMPLETE: True}
        if not self._listing_started and self._incoming is not None:
            return dict(self._incoming)  # the parent list failed before this attempt learnt anything new
        return {SYNC_ID: self._sync_id, PARENTS: self._frontier()}

    def every_parent_done(self) -> bool:
        """Whether this attempt has listed its parents to the end and read every one of them whole."""
        return self._listing_complete and self._prefix == len(self._ids)

    def _mark_done(self, position: int) -> None:
        self._done[position] = True
        self._ahead.add(position)
        while self._prefix < len(self._ids) and self._done[self._prefix]:
            self._ahead.discard(self._prefix)
            self._prefix_hash.update(_id_bytes(self._ids[self._prefix]))
            self._prefix += 1

    def _frontier(self) -> Dict[str, Any]:
        done: List[Any] = []
        room = DONE_IDS_BUDGET_BYTES
        for position in sorted(self._ahead):
            room -= len(_id_bytes(self._ids[position]))
            if room < 0:
                break
            done.append(self._ids[position])
        return {
            "prefix": self._prefix,
            "prefix_digest": self._prefix_hash.hexdigest(),
            "last": self._ids[self._prefix - 1] if self._prefix else None,
            "done": done,
        }


class _Frontier:
    """An incoming child checkpoint: the done run of `prefix` parents ending with `last`, and `done` ids."""

    def __init__(self, prefix: int, digest: str, last: Any, done: List[Any]) -> None:
        self.prefix = prefix
        self.digest = digest
        self.last = last
        self.done = done
        self._done_set = set(done)

    @classmethod
    def parse(cls, checkpoint: Mapping[str, Any], stream_name: str, logger: logging.Logger) -> Optional[_Frontier]:
        parents = checkpoint.get(PARENTS)
        if isinstance(parents, Mapping):
            prefix, digest, last, done = (parents.get(k) for k in ("prefix", "prefix_digest", "last", "done"))
            if (
                isinstance(prefix, int)
                and not isinstance(prefix, bool)
                and prefix >= 0
                and isinstance(digest, str)
                and isinstance(done, list)
                and all(_is_id(i) for i in done)
                and (_is_id(last) if prefix else last is None)
            ):
                return cls(prefix, digest, last, done)
        logger.info(
            f"Stream {stream_name}: the incoming checkpoint {_short(checkpoint)} was not written by this connector "
            "version (or was edited): reading the whole stream."
        )
        return None

    def ends_run(self, held: List[Any]) -> bool:
        """True if `held` ends with the checkpointed run: the same `prefix` ids, hashing to `digest`.

        The run may have moved down the list (parents added before it); it is recognised all the same.
        """
        if len(held) < self.prefix or held[-1] != self.last:
            return False
        run = hashlib.sha256()
        for parent_id in held[len(held) - self.prefix :]:
            run.update(_id_bytes(parent_id))
        return run.hexdigest() == self.digest

    def was_done(self, parent_id: Any) -> bool:
        return _is_id(parent_id) and parent_id in self._done_set


def _is_id(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def _id_bytes(parent_id: Any) -> bytes:
    return json.dumps(parent_id).encode() + b"\n"  # JSON tells 7 from "7"; the newline separates ids


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 200 else text[:200] + "..."


def start_over_message(stream_name: str, stream_namespace: Optional[str] = None) -> AirbyteMessage:
    """The state that ends a whole read of a checkpointed stream, in which no stream failed: the next sync reads
    everything, in a client that passes the same sync_id again too."""
    state_manager = ConnectorStateManager()
    state_manager.update_state_for_stream(stream_name, stream_namespace, dict(START_OVER))
    return state_manager.create_state_message(stream_name, stream_namespace)

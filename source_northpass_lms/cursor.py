"""Incremental sync on a timestamp (`updated_at`, or `created_at` for append-only logs).

Two halves of one concern: `TimestampCursor` is what the state means and when it moves; `records_since`
is which records a read emits for a cursor, and when a newest-first read may stop early.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Any, Callable, Iterable, Iterator, Mapping, MutableMapping, Optional

import pendulum
from airbyte_cdk.sources.connector_state_manager import ConnectorStateManager
from airbyte_cdk.sources.message import MessageRepository
from airbyte_cdk.sources.streams.concurrent.cursor import Cursor
from airbyte_cdk.sources.streams.concurrent.partitions.partition import Partition
from airbyte_cdk.sources.types import Record

UPDATED_AT = "updated_at"
CREATED_AT = "created_at"


def parse_timestamp(value: Any) -> Optional[datetime]:
    """An API timestamp as an aware UTC datetime, or None if it is missing or not a timestamp.

    Cursor values are compared as instants, never as strings: "2024-01-01T00:00:00Z" and
    "2024-01-01T01:00:00+01:00" are the same moment.
    """
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = pendulum.parse(value)
    except (ValueError, pendulum.parsing.exceptions.ParserError):
        return None
    if not isinstance(parsed, datetime):
        return None
    return parsed.in_timezone("UTC")


def format_timestamp(value: datetime) -> str:
    return pendulum.instance(value).in_timezone("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


class TimestampCursor(Cursor):
    """State `{<cursor field>: <largest value of the last complete read>}` for one stream.

    The cursor field is `updated_at` for the entity lists (state `{"updated_at": ...}`) and a creation time
    for the append-only activity logs. The API does not return records in cursor order unless asked (and
    may ignore the asking), so no value seen mid-read is safe to checkpoint: the state moves only when
    every partition of the stream has closed, i.e. after its last page. A sync that fails midway keeps,
    and emits, the state it started with.
    """

    def __init__(
        self,
        cursor_field: str,
        stream_name: str,
        stream_namespace: Optional[str],
        stream_state: Mapping[str, Any],
        start_date: Optional[datetime],
        message_repository: MessageRepository,
        state_manager: ConnectorStateManager,
        logger: logging.Logger,
        partitions_total: Optional[Callable[[], Optional[int]]] = None,
    ) -> None:
        self._cursor_field = cursor_field
        self._stream_name = stream_name
        self._stream_namespace = stream_namespace
        self._message_repository = message_repository
        self._state_manager = state_manager
        self._lock = threading.Lock()
        self._committed = self._read_state(stream_state, logger)
        self._max_seen: Optional[datetime] = None
        self._emitted = False
        # A stream read in one partition is complete when that partition closes. A child stream (one
        # partition per parent) says how many partitions it made once it has made them all (None until then):
        # the state moves only when that many have closed, so a failed parent never advances it.
        self._partitions_total = partitions_total
        self._partitions_closed = 0
        candidates = [value for value in (self._committed, start_date) if value is not None]
        self.lower_bound: Optional[datetime] = max(candidates) if candidates else None

    def _read_state(self, stream_state: Mapping[str, Any], logger: logging.Logger) -> Optional[datetime]:
        if not stream_state or self._cursor_field not in stream_state:
            if stream_state and any(not key.startswith("__ab_") for key in stream_state):
                logger.warning(
                    f"Stream {self._stream_name}: the incoming state {dict(stream_state)!r} has no '{self._cursor_field}'; "
                    "reading the whole stream."
                )
            return None
        value = parse_timestamp(stream_state[self._cursor_field])
        if value is None:
            logger.warning(
                f"Stream {self._stream_name}: the incoming state's '{self._cursor_field}' "
                f"{stream_state[self._cursor_field]!r} is not a timestamp; reading the whole stream."
            )
        return value

    @property
    def state(self) -> MutableMapping[str, Any]:
        return {self._cursor_field: format_timestamp(self._committed)} if self._committed else {}

    def observe(self, record: Record) -> None:
        value = parse_timestamp(record.data.get(self._cursor_field))
        if value is None:
            return
        with self._lock:
            if self._max_seen is None or value > self._max_seen:
                self._max_seen = value

    def close_partition(self, partition: Partition) -> None:
        # A child's slice carries its parent's cursor value: a parent read to its end counts even when it had
        # no records (an attempt without answers), so the next sync does not visit it again.
        read_through = parse_timestamp((partition.to_slice() or {}).get(self._cursor_field))
        with self._lock:
            self._partitions_closed += 1
            if read_through is not None and (self._max_seen is None or read_through > self._max_seen):
                self._max_seen = read_through
            if self._partitions_total is not None:
                return  # committed when the stream is done, if every partition closed
            self._commit()
        self._emit_state()

    def ensure_at_least_one_state_emitted(self) -> None:
        if self._partitions_total is not None:
            with self._lock:
                if self._partitions_total() == self._partitions_closed:
                    self._commit()
            self._emit_state()
        elif not self._emitted:  # the stream failed or had no partition: the state it started with
            self._emit_state()

    def _commit(self) -> None:
        if self._max_seen is not None and (self._committed is None or self._max_seen > self._committed):
            self._committed = self._max_seen

    def should_be_synced(self, record: Record) -> bool:
        return True  # the stream filters on lower_bound itself, before records reach the cursor

    def _emit_state(self) -> None:
        self._emitted = True
        self._state_manager.update_state_for_stream(self._stream_name, self._stream_namespace, self.state)
        self._message_repository.emit_message(
            self._state_manager.create_state_message(self._stream_name, self._stream_namespace)
        )


def records_since(
    records: Iterable[Mapping[str, Any]],
    since: str,
    cursor_field: str,
    server_filter: Optional[str],
    newest_first_window: Optional[int],
    logger: logging.Logger,
    stream_name: str,
) -> Iterator[Mapping[str, Any]]:
    """The records whose cursor is at or after `since`: equal timestamps are emitted again, never dropped.

    A record without a readable cursor value is kept: losing a change is worse than a duplicate.
    `server_filter` names the filter parameter that was sent (None when the records come from an unfiltered
    listing); the log says whether the API honoured it.

    `newest_first_window` is set when the read asked for newest-first order: it is the page size. The read
    then stops (closing `records`, so no further page is requested) once the order is proven and a full
    page's worth of records older than `since` has been read. Proven means: every record read so far is
    at or before the one read before it, across page boundaries, with at least one strict decrease, over
    more than one page's worth of records. An unsorted answer fails that within a page or two (a log in
    its natural oldest-first order fails at its first increase; random order almost at once), and then
    everything is read and filtered here. A run of equal timestamps (a cluster of events in one second)
    proves nothing and never stops the read by itself.
    """
    bound = parse_timestamp(since)
    assert bound is not None
    read = older = 0
    previous: Optional[datetime] = None
    ordered, decreased = newest_first_window is not None, False
    for record in records:
        read += 1
        value = parse_timestamp(record.get(cursor_field))
        if ordered and value is not None:
            if previous is not None and value > previous:
                ordered = False
                logger.info(
                    f"Stream {stream_name}: the Northpass API did not return newest first (sort ignored); "
                    f"reading the whole list and keeping the records at or after {since}."
                )
            elif previous is not None and value < previous:
                decreased = True
            previous = value
        if value is not None and value < bound:
            if older == 0 and server_filter:
                logger.info(
                    f"Stream {stream_name}: the Northpass API ignored {server_filter}={since} "
                    "(it returned older records); filtering on the client instead."
                )
            older += 1
            if (
                ordered
                and decreased
                and newest_first_window is not None
                and older >= newest_first_window
                and read > newest_first_window
            ):
                logger.info(
                    f"Stream {stream_name}: the Northpass API returned newest first; stopped after {read} records, "
                    f"a page's worth of them older than {since}."
                )
                close = getattr(records, "close", None)
                if close is not None:
                    close()  # no further page is requested
                return
            continue
        yield record
    if server_filter and older == 0:
        logger.info(f"Stream {stream_name}: the Northpass API honoured {server_filter}={since}.")
    elif older:
        logger.info(f"Stream {stream_name}: skipped {older} records older than {since} (cursor {cursor_field}).")

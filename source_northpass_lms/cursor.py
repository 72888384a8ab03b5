"""Incremental sync on `updated_at`: a cursor that advances only when a stream has been read to its end."""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Any, Mapping, MutableMapping, Optional

import pendulum
from airbyte_cdk.sources.connector_state_manager import ConnectorStateManager
from airbyte_cdk.sources.message import MessageRepository
from airbyte_cdk.sources.streams.concurrent.cursor import Cursor
from airbyte_cdk.sources.streams.concurrent.partitions.partition import Partition
from airbyte_cdk.sources.types import Record

CURSOR_FIELD = "updated_at"


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


class UpdatedAtCursor(Cursor):
    """State `{"updated_at": <largest updated_at of the last complete read>}` for one top-level stream.

    The API does not return records in `updated_at` order, so no value seen mid-read is safe to
    checkpoint: the state moves only when the stream's single partition closes, i.e. after its last
    page. A sync that fails midway keeps, and emits, the state it started with.
    """

    def __init__(
        self,
        stream_name: str,
        stream_namespace: Optional[str],
        stream_state: Mapping[str, Any],
        start_date: Optional[datetime],
        message_repository: MessageRepository,
        state_manager: ConnectorStateManager,
        logger: logging.Logger,
    ) -> None:
        self._stream_name = stream_name
        self._stream_namespace = stream_namespace
        self._message_repository = message_repository
        self._state_manager = state_manager
        self._lock = threading.Lock()
        self._committed = self._read_state(stream_state, logger)
        self._max_seen: Optional[datetime] = None
        self._emitted = False
        candidates = [value for value in (self._committed, start_date) if value is not None]
        self.lower_bound: Optional[datetime] = max(candidates) if candidates else None

    def _read_state(self, stream_state: Mapping[str, Any], logger: logging.Logger) -> Optional[datetime]:
        if not stream_state or CURSOR_FIELD not in stream_state:
            if stream_state and any(not key.startswith("__ab_") for key in stream_state):
                logger.warning(
                    f"Stream {self._stream_name}: the incoming state {dict(stream_state)!r} has no '{CURSOR_FIELD}'; "
                    "reading the whole stream."
                )
            return None
        value = parse_timestamp(stream_state[CURSOR_FIELD])
        if value is None:
            logger.warning(
                f"Stream {self._stream_name}: the incoming state's '{CURSOR_FIELD}' "
                f"{stream_state[CURSOR_FIELD]!r} is not a timestamp; reading the whole stream."
            )
        return value

    @property
    def state(self) -> MutableMapping[str, Any]:
        return {CURSOR_FIELD: format_timestamp(self._committed)} if self._committed else {}

    def observe(self, record: Record) -> None:
        value = parse_timestamp(record.data.get(CURSOR_FIELD))
        if value is None:
            return
        with self._lock:
            if self._max_seen is None or value > self._max_seen:
                self._max_seen = value

    def close_partition(self, partition: Partition) -> None:
        with self._lock:
            if self._max_seen is not None and (self._committed is None or self._max_seen > self._committed):
                self._committed = self._max_seen
        self._emit_state()

    def ensure_at_least_one_state_emitted(self) -> None:
        if not self._emitted:  # the stream failed or had no partition: the state it started with
            self._emit_state()

    def should_be_synced(self, record: Record) -> bool:
        return True  # the stream filters on lower_bound itself, before records reach the cursor

    def _emit_state(self) -> None:
        self._emitted = True
        self._state_manager.update_state_for_stream(self._stream_name, self._stream_namespace, self.state)
        self._message_repository.emit_message(
            self._state_manager.create_state_message(self._stream_name, self._stream_namespace)
        )

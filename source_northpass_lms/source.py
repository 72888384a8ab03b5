"""The Northpass LMS source: spec (spec.yaml), check, and the streams, read concurrently."""

from __future__ import annotations

import logging
import threading
from queue import Queue
from typing import Any, Callable, Dict, Iterator, List, Mapping, MutableMapping, Optional, Tuple

import requests
from airbyte_cdk.models import (
    AirbyteConnectionStatus,
    AirbyteMessage,
    AirbyteStateMessage,
    ConfiguredAirbyteCatalog,
    ConfiguredAirbyteStream,
    Status,
    SyncMode,
)
from airbyte_cdk.sources.concurrent_source.concurrent_source import ConcurrentSource
from airbyte_cdk.sources.concurrent_source.concurrent_source_adapter import ConcurrentSourceAdapter
from airbyte_cdk.sources.connector_state_manager import ConnectorStateManager
from airbyte_cdk.sources.message.repository import InMemoryMessageRepository
from airbyte_cdk.sources.streams import Stream
from airbyte_cdk.sources.streams.concurrent.adapters import StreamFacade
from airbyte_cdk.sources.streams.concurrent.cursor import Cursor, FinalStateCursor
from airbyte_cdk.sources.streams.concurrent.partitions.types import QueueItem
from airbyte_cdk.sources.utils.slice_logger import DebugSliceLogger
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from .auth import ApiKeyAuthenticator
from .checkpoint import OrderedMessageRepository, ParentCheckpoint, StreamCheckpoint, checkpoint_for
from .config import DEFAULT_BASE_URL, DEFAULT_NUM_WORKERS, MAX_NUM_WORKERS, NorthpassConfig
from .cursor import SyncClock, TimestampCursor
from .errors import KEY_REJECTED, is_jsonapi_error, jsonapi_list
from .listing import ParentListing, ParentsSince
from .progress import SyncProgress
from .rate_limit import SlidingWindowBudget
from .streams import (
    ACCEPT_JSON,
    CONNECT_TIMEOUT_SECONDS,
    Categories,
    CourseActivities,
    CourseEnrollments,
    CourseProperties,
    Courses,
    Events,
    GroupMemberships,
    Groups,
    LearningPathEnrollments,
    LearningPaths,
    NorthpassStream,
    NorthpassSubStream,
    People,
    QuizAttemptAnswers,
    QuizAttempts,
    Quizzes,
    Transcripts,
)
from .transcripts import PeopleWithEvidence, TranscriptCursor, people_named_since

logger = logging.getLogger("airbyte")
RECORD_QUEUE_SIZE = 10_000  # the CDK's own bound on records waiting for the main thread


class SourceNorthpassLms(ConcurrentSourceAdapter):
    def __init__(
        self,
        catalog: Optional[ConfiguredAirbyteCatalog] = None,
        config: Optional[Mapping[str, Any]] = None,
        state: Optional[List[AirbyteStateMessage]] = None,
    ) -> None:
        # One per source, not per class: a message queued by one sync must never surface in another's output.
        self._message_repository = InMemoryMessageRepository()
        workers = _num_workers(config)
        # Partition generators (people, courses, the parent listing of child streams) each hold a worker
        # while they page; at least one worker is always left for reading child collections.
        generators = max(1, workers // 2) if workers > 1 else 1
        queue: Queue[QueueItem] = Queue(maxsize=RECORD_QUEUE_SIZE)
        # States go through the record queue, behind the records they account for (see checkpoint.py).
        self._ordered_repository = OrderedMessageRepository(queue, self._message_repository)
        concurrent_source = ConcurrentSource.create(
            workers, generators, logger, DebugSliceLogger(), self.message_repository, queue=queue
        )
        super().__init__(concurrent_source)
        self.catalog = catalog
        self._state = state
        self._checkpoints: List[StreamCheckpoint] = []

    @property
    def raise_exception_on_missing_stream(self) -> bool:
        # The CDK's default silently marks a stream this source does not have INCOMPLETE and exits 0.
        return True

    @property
    def message_repository(self) -> InMemoryMessageRepository:
        return self._message_repository

    def read(
        self,
        logger: logging.Logger,
        config: Mapping[str, Any],
        catalog: ConfiguredAirbyteCatalog,
        state: Optional[List[AirbyteStateMessage]] = None,
    ) -> Iterator[AirbyteMessage]:
        self._ordered_repository.consumer_thread = threading.get_ident()
        yield from super().read(logger, config, catalog, state)
        # Reached only when no stream failed (the CDK raises after a failed stream): the sync is whole, so
        # its checkpoints must not make the next sync skip anything, in a client that reuses the sync_id too.
        for checkpoint in self._checkpoints:
            yield checkpoint.start_over_message()

    def check(self, logger: logging.Logger, config: Mapping[str, Any]) -> AirbyteConnectionStatus:
        # The CDK's check() reports repr(message), quotes included; ours are sentences meant to be read.
        succeeded, message = self.check_connection(logger, config)
        if succeeded:
            return AirbyteConnectionStatus(status=Status.SUCCEEDED)
        return AirbyteConnectionStatus(status=Status.FAILED, message=str(message))

    def check_connection(self, logger: logging.Logger, config: Mapping[str, Any]) -> Tuple[bool, Optional[Any]]:
        try:
            cfg = NorthpassConfig.parse(config)
        except AirbyteTracedException as exc:
            return False, exc.message
        url = f"{cfg.api_root}people"
        try:
            response = requests.get(
                url,
                params={"limit": 1},
                auth=ApiKeyAuthenticator(cfg.api_key, cfg.base_url),
                headers=ACCEPT_JSON,
                timeout=(CONNECT_TIMEOUT_SECONDS, cfg.request_timeout_seconds),
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            return (
                False,
                f"Could not reach the Northpass API at {cfg.base_url}: {type(exc).__name__}. Check base_url and the network.",
            )
        # The same rule as a read: a 200 must be a JSON:API list, a 404 (an account with no people yet) a JSON:API
        # error. Anything else comes from another server, and a check that passes would only defer the failure.
        if (response.status_code == 200 and jsonapi_list(response) is not None) or (
            response.status_code == 404 and is_jsonapi_error(response)
        ):
            return True, None
        if response.status_code in (200, 404):
            return False, (
                f"{url} answered HTTP {response.status_code} with a body that is not a JSON:API document, so "
                f"base_url does not point at the Northpass API. Check base_url (normally {DEFAULT_BASE_URL})."
            )
        if response.status_code == 401:
            return False, KEY_REJECTED
        if response.status_code == 403:
            return False, (
                "The Northpass API refused the API key access to people (HTTP 403): the key's user lacks the "
                "permission, or the account's plan does not include API access. Use a key of an admin user."
            )
        if response.status_code == 429:
            return (
                False,
                "The Northpass API is rate limiting this key (HTTP 429): another client may be using it. Try again in a minute.",
            )
        return (
            False,
            f"The Northpass API at {cfg.base_url} answered HTTP {response.status_code} to {url}. Try again later.",
        )

    def streams(self, config: Mapping[str, Any]) -> List[Stream]:
        cfg = NorthpassConfig.parse(config)
        budget = SlidingWindowBudget(cfg.requests_per_second)
        deps = (cfg, ApiKeyAuthenticator(cfg.api_key, cfg.base_url), budget)
        people, courses, groups, learning_paths = People(*deps), Courses(*deps), Groups(*deps), LearningPaths(*deps)
        quiz_attempts = QuizAttempts(*deps)
        # Each parent list is read once per sync, however many of its children read it.
        listings: Dict[str, ParentListing[NorthpassStream]] = {}
        for parent in (people, courses, groups, learning_paths, quiz_attempts):
            parent.listing = listings[parent.name] = ParentListing(parent)
        streams: List[NorthpassStream] = [
            people,
            courses,
            CourseEnrollments(listings["courses"], *deps),
            CourseActivities(listings["courses"], *deps),
            groups,
            GroupMemberships(listings["groups"], *deps),
            learning_paths,
            LearningPathEnrollments(listings["learning_paths"], *deps),
            Categories(*deps),
            Quizzes(*deps),
            Events(*deps),
            quiz_attempts,
            QuizAttemptAnswers(listings["quiz_attempts"], *deps),
            transcripts := Transcripts(listings["people"], *deps),
            CourseProperties(*deps),
        ]
        # Evidence for incremental transcripts, read by streams of its own: the selected events and quiz_attempts
        # streams have their own cursors.
        evidence = (Events(*deps, evidence_for=transcripts.name), QuizAttempts(*deps, evidence_for=transcripts.name))
        self._people_named_since = people_named_since(transcripts.name, *evidence)
        clock = SyncClock()
        configured = {s.stream.name: s for s in self.catalog.streams} if self.catalog else {}
        state_manager = ConnectorStateManager(state=self._state)
        cursors: Dict[str, Cursor] = {}
        self._checkpoints = []
        for stream in streams:
            stream.clock = clock
            cursors[stream.name] = self._cursor(stream, configured, cfg, state_manager)
        for listing in listings.values():
            children = [s for s in streams if isinstance(s, NorthpassSubStream) and s.parent_listing is listing]
            readers = [s for s in [listing.stream, *children] if _reads(s, configured)]
            # The parent's records come from the listing only when a child reads it too: listed once for all.
            listing.emits_records = _reads(listing.stream, configured) and len(readers) > 1
            bounds = [s.lower_bound for s in readers]
            if readers and all(bound is not None for bound in bounds):
                listing.since = min(b for b in bounds if b is not None)
        progress = SyncProgress(self.message_repository, lambda: budget.acquired)
        for stream in streams:
            stream.progress = progress
        return [
            StreamFacade.create_from_stream(
                stream,
                self,
                logger,
                _incremental_state(cursors[stream.name], state_manager, stream),
                cursors[stream.name],
            )
            for stream in streams
        ]

    def _cursor(
        self,
        stream: NorthpassStream,
        configured: Mapping[str, ConfiguredAirbyteStream],
        cfg: NorthpassConfig,
        state_manager: ConnectorStateManager,
    ) -> Cursor:
        configured_stream = configured.get(stream.name)
        state = state_manager.get_stream_state(stream.name, stream.namespace)
        incremental = configured_stream is not None and configured_stream.sync_mode == SyncMode.incremental
        if isinstance(stream, Transcripts) and incremental:
            return self._transcript_cursor(stream, configured_stream, cfg, state, state_manager)
        if stream.cursor_field and incremental:
            cursor = TimestampCursor(
                str(stream.cursor_field),
                stream.name,
                stream.namespace,
                state,
                cfg.start_date,
                self._ordered_repository,
                state_manager,
                logger,
                partitions_total=_slices_total(stream) if isinstance(stream, NorthpassSubStream) else None,
            )
            stream.lower_bound = cursor.lower_bound
            if isinstance(stream, NorthpassSubStream):
                stream.parents = ParentsSince(str(stream.cursor_field), cursor.lower_bound)
            return cursor
        sync_id = configured_stream.sync_id if configured_stream else None
        checkpoint = checkpoint_for(stream.name, sync_id, state, logger) if configured_stream else None
        if sync_id is None:
            return FinalStateCursor(stream.name, stream.namespace, self.message_repository)
        args = (stream.name, stream.namespace, sync_id, checkpoint, self._ordered_repository, state_manager, logger)
        if isinstance(stream, NorthpassSubStream):
            stream.checkpoint = ParentCheckpoint(*args, parent_key=stream.parent_key, refused=lambda: stream.forbidden)
        else:
            stream.checkpoint = StreamCheckpoint(*args)
        self._checkpoints.append(stream.checkpoint)
        return stream.checkpoint

    def _transcript_cursor(
        self,
        stream: Transcripts,
        configured_stream: Optional[ConfiguredAirbyteStream],
        cfg: NorthpassConfig,
        state: Mapping[str, Any],
        state_manager: ConnectorStateManager,
    ) -> Cursor:
        assert stream.clock is not None
        cursor = TranscriptCursor(
            stream.name,
            stream.namespace,
            configured_stream.sync_id if configured_stream else None,
            state,
            cfg.transcripts_reread_within_syncs,
            stream.clock,
            lambda: stream.forbidden,
            self._ordered_repository,
            state_manager,
            logger,
            parent_key=stream.parent_key,
        )
        stream.checkpoint = cursor
        stream.parents = PeopleWithEvidence(cursor.since, cursor.sweep, self._people_named_since, logger, stream.name)
        return cursor


def _incremental_state(
    cursor: Cursor, state_manager: ConnectorStateManager, stream: NorthpassStream
) -> MutableMapping[str, Any]:
    """The state the stream's reads are given: an incremental stream's own; nothing for full refresh."""
    incremental = isinstance(cursor, (TimestampCursor, TranscriptCursor))
    return state_manager.get_stream_state(stream.name, stream.namespace) if incremental else {}


def _reads(stream: NorthpassStream, configured: Mapping[str, ConfiguredAirbyteStream]) -> bool:
    """Whether this attempt reads the stream: selected, and not read to its end by an earlier attempt."""
    return stream.name in configured and not (stream.checkpoint and stream.checkpoint.stream_done)


def _num_workers(config: Optional[Mapping[str, Any]]) -> int:
    """Workers before the config is validated: an invalid value falls back here and is reported by check/read."""
    value = (config or {}).get("num_workers", DEFAULT_NUM_WORKERS)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_NUM_WORKERS:
        return DEFAULT_NUM_WORKERS
    return value


def _slices_total(stream: NorthpassSubStream) -> Callable[[], Optional[int]]:
    return lambda: stream.slices_total

"""The Northpass LMS source: spec (spec.yaml), check, and the streams of a sync, read concurrently.

Which stream reads what is `CATALOG`, at the end of this module: every leaf (streams.py) and the parent list a
child reads. In which mode is `_plan`: from the configured catalog and the state, an incremental cursor (cursor.py,
transcripts.py), a resume checkpoint (checkpoint.py) or neither, and for a child which of its parents it reads
(parents.py). `streams()` builds what the sync shares and every plan first (sync.py), then the streams from them,
the same way for `check`, `discover` and `read`.
"""

from __future__ import annotations

import logging
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime
from queue import Queue
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple, Type

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
from airbyte_cdk.sources.concurrent_source.thread_pool_manager import ThreadPoolManager
from airbyte_cdk.sources.connector_state_manager import ConnectorStateManager
from airbyte_cdk.sources.message.repository import InMemoryMessageRepository
from airbyte_cdk.sources.streams import Stream
from airbyte_cdk.sources.streams.concurrent.adapters import StreamFacade
from airbyte_cdk.sources.streams.concurrent.cursor import FinalStateCursor
from airbyte_cdk.sources.streams.concurrent.partitions.types import QueueItem
from airbyte_cdk.sources.utils import casing
from airbyte_cdk.sources.utils.slice_logger import DebugSliceLogger
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from . import jsonapi
from .auth import ApiKeyAuthenticator
from .base_stream import ACCEPT_JSON, CONNECT_TIMEOUT_SECONDS, NorthpassStream, NorthpassSubStream
from .checkpoint import ParentCheckpoint, StreamCheckpoint, checkpoint_for, start_over_message
from .config import DEFAULT_BASE_URL, DEFAULT_NUM_WORKERS, MAX_NUM_WORKERS, NorthpassConfig
from .cursor import TimestampCursor
from .errors import KEY_REJECTED
from .messages import OrderedMessageRepository
from .parents import ParentsSince
from .progress import SyncProgress
from .rate_limit import SlidingWindowBudget
from .streams import (
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
    People,
    QuizAttemptAnswers,
    QuizAttempts,
    Quizzes,
    Transcripts,
)
from .sync import ListingPlan, ReadPlan, SlicesAhead, StreamRun, SyncClock, SyncContext
from .transcripts import Evidence, people_named_since, transcripts_plan

logger = logging.getLogger("airbyte")
RECORD_QUEUE_SIZE = 10_000  # the CDK's own bound on records waiting for the main thread
# Child slices made ahead of their reading, per worker: a worker that ends a slice finds the next ones waiting,
# and the generator, woken by each slice read, makes another in microseconds. See sync.SlicesAhead.
SLICES_AHEAD_PER_WORKER = 4
# The CDK drops the futures of partitions read only once its list holds this many (its default, 10,000, kept a
# future and its lock, 1.6 KB, for each of the last 10,000 parents read). Those not done are at most the slices
# ahead and one per stream, far fewer: generation never waits on this bound.
FUTURES_KEPT = 1_000


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
        # States go through the record queue, behind the records they account for (messages.py).
        self._ordered_repository = OrderedMessageRepository(queue, self._message_repository)
        # With one worker the CDK makes every partition before reading any (the generator holds the worker), so no
        # bound may make generation wait for partitions to be read: it would wait forever. The CDK's own 10,000 did
        # (at random, past 10,000 parents), as would SlicesAhead.
        single = workers == 1
        threadpool = ThreadPoolManager(
            ThreadPoolExecutor(max_workers=workers, thread_name_prefix="workerpool"),
            logger,
            max_concurrent_tasks=sys.maxsize if single else FUTURES_KEPT,
        )
        concurrent_source = ConcurrentSource(
            threadpool,
            logger,
            DebugSliceLogger(),
            queue=queue,
            message_repository=self.message_repository,
            initial_number_partitions_to_generate=generators,
        )
        super().__init__(concurrent_source)
        self._slices_ahead = SlicesAhead(None if single else workers * SLICES_AHEAD_PER_WORKER)
        self.catalog = catalog
        self._state = state

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
        self._slices_ahead.start()
        try:
            yield from super().read(logger, config, catalog, state)
        finally:
            self._slices_ahead.stop()  # a generator still waiting to make slices would keep the process alive
        # Reached only when no stream failed (the CDK raises after a failed stream): the sync is whole, so
        # its checkpoints must not make the next sync skip anything, in a client that reuses the sync_id too.
        configured = _configured(self.catalog)
        for leaf, name, _ in CATALOG:
            if _resumable(leaf, configured.get(name)):
                yield start_over_message(name)

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
        if (response.status_code == 200 and jsonapi.resources(response) is not None) or (
            response.status_code == 404 and jsonapi.is_error(response)
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
        """The streams of one sync, the same for `check`, `discover` and `read`: first what they share (`SyncContext`)
        and how each reads (`ReadPlan`, from the catalog and the state), then the streams, built from both."""
        cfg = NorthpassConfig.parse(config)
        budget = SlidingWindowBudget(cfg.requests_per_second)
        progress = SyncProgress(self.message_repository, lambda: budget.acquired)
        context = SyncContext(
            cfg, ApiKeyAuthenticator(cfg.api_key, cfg.base_url), budget, SyncClock(), progress, self._slices_ahead
        )
        configured = _configured(self.catalog)
        state_manager = ConnectorStateManager(state=self._state)
        # Evidence for incremental transcripts, read by streams of its own: the selected events and quiz_attempts
        # streams have their own cursors (transcripts.py).
        evidence = people_named_since(
            TRANSCRIPTS, Events(context, evidence_for=TRANSCRIPTS), QuizAttempts(context, evidence_for=TRANSCRIPTS)
        )
        plans = {
            name: self._plan(leaf, name, configured.get(name), context, state_manager, evidence)
            for leaf, name, _ in CATALOG
        }
        for parent in {list_read for _, _, list_read in CATALOG if list_read}:
            children = [name for _, name, list_read in CATALOG if list_read == parent]
            readers = [name for name in [parent, *children] if name in configured and not plans[name].done_before]
            bounds = [plans[name].lower_bound for name in readers]
            listing = ListingPlan(
                # The parent's records come from the listing only when a child reads it too: listed once for all.
                emits_records=parent in readers and len(readers) > 1,
                since=min(b for b in bounds if b is not None) if readers and None not in bounds else None,
            )
            plans[parent] = replace(plans[parent], listing=listing)
        built: Dict[str, NorthpassStream] = {}
        for leaf, name, list_read in CATALOG:
            if list_read is None:
                built[name] = leaf(context, plans[name])
            else:
                shared = built[list_read].listing
                assert shared is not None and issubclass(leaf, NorthpassSubStream)
                built[name] = leaf(shared, context, plans[name])
        facades: List[Stream] = []
        for leaf, name, _ in CATALOG:
            stream, cursor = built[name], plans[name].cursor
            assert cursor is not None  # every plan made here has one
            # An incremental stream's reads are given its state; a full-refresh read starts from nothing.
            incremental = _incremental(leaf, configured.get(name))
            state = state_manager.get_stream_state(name, stream.namespace) if incremental else {}
            facades.append(StreamFacade.create_from_stream(stream, self, logger, state, cursor))
        return facades

    def _plan(
        self,
        leaf: Type[NorthpassStream],
        name: str,
        configured_stream: Optional[ConfiguredAirbyteStream],
        context: SyncContext,
        state_manager: ConnectorStateManager,
        evidence: Callable[[datetime, int], Evidence],
    ) -> ReadPlan:
        """How the stream reads in this sync: its cursor, and what the cursor decides for the stream."""
        state = state_manager.get_stream_state(name, None)
        sync_id = configured_stream.sync_id if configured_stream else None
        child = issubclass(leaf, NorthpassSubStream)
        cursor_field = _cursor_field(leaf)
        incremental = _incremental(leaf, configured_stream)
        if incremental and leaf is Transcripts:
            return transcripts_plan(
                name,
                Transcripts.parent_key,
                sync_id,
                state,
                context,
                evidence,
                self._ordered_repository,
                state_manager,
                logger,
            )
        run = StreamRun()
        if incremental and cursor_field:
            cursor = TimestampCursor(
                cursor_field,
                name,
                None,
                state,
                context.config.start_date,
                self._ordered_repository,
                state_manager,
                logger,
                partitions_total=(lambda: run.slices_total) if child else None,
            )
            parents = ParentsSince(cursor_field, cursor.lower_bound) if child else None
            return ReadPlan(cursor=cursor, lower_bound=cursor.lower_bound, parents=parents, run=run)
        # Said when a checkpoint cannot be honoured (no sync_id, another one): this read reads the whole stream.
        incoming = checkpoint_for(name, sync_id, state, logger) if configured_stream else None
        if sync_id is None or not _resumable(leaf, configured_stream):
            return ReadPlan(cursor=FinalStateCursor(name, None, self.message_repository), run=run)
        args = (name, None, sync_id, incoming, self._ordered_repository, state_manager, logger)
        checkpoint = (
            ParentCheckpoint(*args, parent_key=leaf.parent_key, refused=lambda: run.refused)  # type: ignore[attr-defined]
            if child
            else StreamCheckpoint(*args)
        )
        return ReadPlan(cursor=checkpoint, checkpoint=checkpoint, run=run)


def _configured(catalog: Optional[ConfiguredAirbyteCatalog]) -> Dict[str, ConfiguredAirbyteStream]:
    return {s.stream.name: s for s in catalog.streams} if catalog else {}


def _incremental(leaf: Type[NorthpassStream], configured_stream: Optional[ConfiguredAirbyteStream]) -> bool:
    """Read incrementally: selected so, and the stream has a cursor (one that has none is read whole)."""
    selected = configured_stream is not None and configured_stream.sync_mode == SyncMode.incremental
    return selected and _cursor_field(leaf) is not None


def _resumable(leaf: Type[NorthpassStream], configured_stream: Optional[ConfiguredAirbyteStream]) -> bool:
    """Read whole under a resume checkpoint: a stream read without a cursor in a sync that has a sync_id. A whole
    read of the sync ends each such stream's state with "start over" (`checkpoint.start_over_message`)."""
    has_sync_id = configured_stream is not None and configured_stream.sync_id is not None
    return has_sync_id and not _incremental(leaf, configured_stream)


def _num_workers(config: Optional[Mapping[str, Any]]) -> int:
    """Workers before the config is validated: an invalid value falls back here and is reported by check/read."""
    value = (config or {}).get("num_workers", DEFAULT_NUM_WORKERS)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_NUM_WORKERS:
        return DEFAULT_NUM_WORKERS
    return value


def _cursor_field(leaf: Type[NorthpassStream]) -> Optional[str]:
    """A leaf's declared cursor column (a class attribute), or None where it declares none."""
    value = getattr(leaf, "cursor_field", None)
    return value if isinstance(value, str) and value else None


def _name(leaf: Type[NorthpassStream]) -> str:
    return casing.camel_to_snake(leaf.__name__)  # what HttpStream.name is for an instance of the leaf


TRANSCRIPTS = _name(Transcripts)
# Every stream of the connector, and the parent list a child reads (by its stream's name): which stream reads what.
# The mode of each (full refresh, incremental, resumed) is its ReadPlan, from the catalog and the state.
_LEAVES: List[Tuple[Type[NorthpassStream], Optional[str]]] = [
    (People, None),
    (Courses, None),
    (CourseEnrollments, "courses"),
    (CourseActivities, "courses"),
    (Groups, None),
    (GroupMemberships, "groups"),
    (LearningPaths, None),
    (LearningPathEnrollments, "learning_paths"),
    (Categories, None),
    (Quizzes, None),
    (Events, None),
    (QuizAttempts, None),
    (QuizAttemptAnswers, "quiz_attempts"),
    (Transcripts, "people"),
    (CourseProperties, None),
]
CATALOG: List[Tuple[Type[NorthpassStream], str, Optional[str]]] = [
    (leaf, _name(leaf), parent) for leaf, parent in _LEAVES
]

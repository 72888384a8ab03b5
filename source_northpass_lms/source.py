"""The Northpass LMS source: spec (spec.yaml), check, and the streams, read concurrently."""

from __future__ import annotations

import logging
from typing import Any, List, Mapping, Optional, Tuple

import requests
from airbyte_cdk.models import AirbyteConnectionStatus, AirbyteStateMessage, ConfiguredAirbyteCatalog, Status, SyncMode
from airbyte_cdk.sources.concurrent_source.concurrent_source import ConcurrentSource
from airbyte_cdk.sources.concurrent_source.concurrent_source_adapter import ConcurrentSourceAdapter
from airbyte_cdk.sources.connector_state_manager import ConnectorStateManager
from airbyte_cdk.sources.message.repository import InMemoryMessageRepository
from airbyte_cdk.sources.streams import Stream
from airbyte_cdk.sources.streams.concurrent.adapters import StreamFacade
from airbyte_cdk.sources.streams.concurrent.cursor import FinalStateCursor
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from .auth import ApiKeyAuthenticator
from .config import DEFAULT_BASE_URL, DEFAULT_NUM_WORKERS, MAX_NUM_WORKERS, NorthpassConfig
from .cursor import UpdatedAtCursor
from .errors import KEY_REJECTED, is_jsonapi_error, jsonapi_list
from .progress import SyncProgress
from .rate_limit import SlidingWindowBudget
from .streams import (
    ACCEPT_JSON,
    CONNECT_TIMEOUT_SECONDS,
    Categories,
    CourseActivities,
    CourseEnrollments,
    Courses,
    GroupMemberships,
    Groups,
    LearningPathEnrollments,
    LearningPaths,
    NorthpassStream,
    NorthpassSubStream,
    People,
    Quizzes,
)

logger = logging.getLogger("airbyte")


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
        concurrent_source = ConcurrentSource.create(
            workers, generators, logger, self._slice_logger, self.message_repository
        )
        super().__init__(concurrent_source)
        self.catalog = catalog
        self._state = state

    @property
    def raise_exception_on_missing_stream(self) -> bool:
        # The CDK's default silently marks a stream this source does not have INCOMPLETE and exits 0.
        return True

    @property
    def message_repository(self) -> InMemoryMessageRepository:
        return self._message_repository

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
        streams: List[NorthpassStream] = [
            people,
            courses,
            CourseEnrollments(courses, *deps),
            CourseActivities(courses, *deps),
            groups,
            GroupMemberships(groups, *deps),
            learning_paths,
            LearningPathEnrollments(learning_paths, *deps),
            Categories(*deps),
            Quizzes(*deps),
        ]
        sync_modes = {s.stream.name: s.sync_mode for s in self.catalog.streams} if self.catalog else {}
        for stream in streams:
            if (
                isinstance(stream, NorthpassSubStream)
                and stream.name in sync_modes
                and stream.parent.name in sync_modes
            ):
                stream.parent.share_listing = True  # listed once, for itself and all its children
        progress = SyncProgress(self.message_repository, lambda: budget.acquired)
        for stream in streams:
            stream.progress = progress
        state_manager = ConnectorStateManager(state=self._state)
        return [self._concurrent(stream, sync_modes.get(stream.name), cfg, state_manager) for stream in streams]

    def _concurrent(
        self,
        stream: NorthpassStream,
        sync_mode: Optional[SyncMode],
        cfg: NorthpassConfig,
        state_manager: ConnectorStateManager,
    ) -> Stream:
        if stream.cursor_field and sync_mode == SyncMode.incremental:
            state = state_manager.get_stream_state(stream.name, stream.namespace)
            cursor = UpdatedAtCursor(
                stream.name, stream.namespace, state, cfg.start_date, self.message_repository, state_manager, logger
            )
            stream.lower_bound = cursor.lower_bound
            return StreamFacade.create_from_stream(stream, self, logger, state, cursor)
        final_cursor = FinalStateCursor(stream.name, stream.namespace, self.message_repository)
        return StreamFacade.create_from_stream(stream, self, logger, {}, final_cursor)


def _num_workers(config: Optional[Mapping[str, Any]]) -> int:
    """Workers before the config is validated: an invalid value falls back here and is reported by check/read."""
    value = (config or {}).get("num_workers", DEFAULT_NUM_WORKERS)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_NUM_WORKERS:
        return DEFAULT_NUM_WORKERS
    return value

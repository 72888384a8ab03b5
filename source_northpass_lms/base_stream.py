"""The base of every stream: one list endpoint read page by page, and a collection under each parent of a list.

`NorthpassStream` owns what every stream does the same way: the URL and its parameters, the pages (paging.py),
what an answer means (errors.py for the status, jsonapi.py for the document: a 403 refuses the stream, a 404 is an
empty collection, a 200 that is not a JSON:API list fails it), the record (records.py, as the leaf's `shape` says),
an incremental read's filter (cursor.py) and the checks that keep the API key on its host (auth.py).
`NorthpassSubStream` adds the parents: which of them it reads (parents.py, transcripts.py) from the list shared
with its parent stream (listing.py), and what a retried attempt may skip (checkpoint.py).

Both are built from the sync's context and the stream's plan (sync.py), and nothing is set on them afterwards. The
leaves, one per stream, are declarations in streams.py; neither class here branches on a stream's name.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC
from datetime import datetime
from typing import Any, Iterable, Iterator, List, Mapping, MutableMapping, Optional, Sized, Tuple
from urllib.parse import urljoin, urlsplit

import requests
from airbyte_cdk.models import FailureType, SyncMode
from airbyte_cdk.sources.streams.http import HttpClient, HttpStream, HttpSubStream
from airbyte_cdk.sources.streams.http.error_handlers import BackoffStrategy, ErrorHandler
from airbyte_cdk.sources.streams.http.exceptions import BaseBackoffException
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from . import jsonapi
from .auth import origin
from .cdk_internals import wrapped_exception
from .checkpoint import ParentCheckpoint, StreamCheckpoint
from .cursor import format_timestamp, records_since
from .errors import NorthpassBackoff, NorthpassErrorHandler, Refused, describe_last_answer, failure
from .listing import ParentListing
from .paging import MAX_PAGES_IN_FLIGHT, PageBudget, PageChain
from .parents import ChosenParent, EveryParent, ParentChoice, ParentsSince
from .progress import SyncProgress
from .rate_limit import PacedSession
from .records import PLAIN, RecordShape
from .sync import ReadPlan, SyncClock, SyncContext

ACCEPT_JSON = {"Accept": "application/json"}  # as the API's documentation asks
CONNECT_TIMEOUT_SECONDS = 10.0  # a host that does not accept a connection in 10 s is down, not slow
# Slice key of an incremental read: the cursor value from which records are wanted.
SINCE = "since"
MAX_PAGE_SIZE = 100  # the largest page the API is known to serve (used in production by other clients)
_NONE_LEFT = object()  # the end of the parents still to read
# Lines of evidence reads ("Stream events: the Northpass API honoured ..."): at DEBUG, below the platform's INFO, so a
# sync where those streams are not selected never shows them. Warnings and errors still reach the log.


class _InfoAsDebug(logging.Logger):
    def info(self, msg: object, *args: Any, **kwargs: Any) -> None:
        self.debug(msg, *args, **kwargs)


EVIDENCE_LOGGER = _InfoAsDebug("airbyte.evidence")
EVIDENCE_LOGGER.parent = logging.getLogger("airbyte")  # the platform's handler and level; shown with --debug


class NorthpassStream(HttpStream, ABC):
    """A Northpass v2 list endpoint, read page by page through its `links.next` cursor.

    Every page is requested with `limit=page_size`; the API's `next` links drop `limit`, so it is put back.
    A 404 on a list is an empty collection: it ends the list. A 403 fails the stream with a config_error
    (`errors.Refused`): a list the key may not read is never delivered as empty. A page that is not a JSON:API
    list fails the stream: it is never read as "no records".
    """

    primary_key: Optional[str | List[str]] = "id"
    endpoint: str  # path below /v2/, with `{parent_id}` for child collections
    max_page_size = MAX_PAGE_SIZE  # `limit` is the smaller of this and the configured page_size
    # The API attribute an incremental read filters and sorts on, when the record's cursor column has another name.
    cursor_attribute: Optional[str] = None
    # Append-only logs: an incremental read asks for newest first, and stops once it reaches older records.
    newest_first = False
    first_page_params: Mapping[str, str] = {}  # sent on the first page; links.next carries them on
    shape: RecordShape = PLAIN  # what a record looks like beyond the flattened resource (records.py)
    # A top-level list is one chain of pages, each waiting for the one before: the critical path of a sync,
    # so its requests take the rate limiter's next free call before those of child collections.
    critical_path = True

    # A parent list of child streams (courses, groups, people, ...): read once per sync for all (listing.py).
    lists_for_children = False

    def __init__(
        self,
        context: SyncContext,
        plan: Optional[ReadPlan] = None,
        evidence_for: Optional[str] = None,
    ):
        """`context` is what the sync shares, `plan` how this stream reads in it (sync.py): nothing of a stream is
        set from outside once it is built. Without a plan, a full read with nothing to resume."""
        plan = plan or ReadPlan()
        config = self._config = context.config
        # Set for a read made only as evidence for another stream (transcripts.py): its own lines go to DEBUG, and the
        # reader says what it read in its one line; it never speaks as if it were a selected stream.
        self.evidence_for = evidence_for
        # The one read of this list that its child streams share (listing.py), when it has children.
        self.listing: Optional[ParentListing[NorthpassStream]] = (
            ParentListing(self, plan.listing) if self.lists_for_children else None
        )
        # An incremental read: records updated (or created) before it are not wanted.
        self.lower_bound: Optional[datetime] = plan.lower_bound
        # This attempt may resume an earlier one of the same sync (checkpoint.py).
        self.checkpoint: Optional[StreamCheckpoint] = plan.checkpoint
        self.progress: Optional[SyncProgress] = context.progress
        # Every answer's Date header tells it when the sync started by the API's clock.
        self.clock: Optional[SyncClock] = context.clock
        # Shared with the stream's cursor: the first 403 marks it refused, which fails it (nothing more is requested).
        self._run = plan.run
        authenticator, api_budget = context.authenticator, context.budget
        super().__init__(authenticator=authenticator)
        # The CDK's session would take the limiter's call before the connection is open; PacedSession takes it on
        # the open connection, just before the request is written. Every page in flight keeps its connection.
        # HttpStream builds a client of its own on a session it keeps private: this stream never sends through it.
        self.session = PacedSession(api_budget, pool_maxsize=config.num_workers * MAX_PAGES_IN_FLIGHT)
        self.http_client = HttpClient(
            name=self.name,
            logger=self.logger,
            error_handler=self.get_error_handler(),
            session=self.session,
            authenticator=authenticator,
            backoff_strategy=self.get_backoff_strategy(),
        )

    @property
    def forbidden(self) -> bool:
        """Whether the API answered 403 to this stream in this sync: it failed, once, with `errors.Refused`."""
        return self._run.refused

    @property
    def logger(self) -> logging.Logger:
        if self.evidence_for:
            return EVIDENCE_LOGGER
        return super().logger

    @property
    def url_base(self) -> str:
        return self._config.api_root

    def get_error_handler(self) -> ErrorHandler:
        return NorthpassErrorHandler(self.logger, self._config.retry_budget_seconds)

    def get_backoff_strategy(self) -> BackoffStrategy:
        return NorthpassBackoff(self._config.backoff_base_seconds, max_wait_seconds=self._config.retry_budget_seconds)

    @property
    def page_limit(self) -> int:
        return min(self._config.page_size, self.max_page_size)

    @property
    def server_cursor(self) -> str:
        return self.cursor_attribute or str(self.cursor_field)

    def path(
        self,
        *,
        stream_state: Optional[Mapping[str, Any]] = None,
        stream_slice: Optional[Mapping[str, Any]] = None,
        next_page_token: Optional[Mapping[str, Any]] = None,
    ) -> str:
        if next_page_token:
            return str(next_page_token["next_url"])
        return self.endpoint_path(stream_slice)

    def endpoint_path(self, stream_slice: Optional[Mapping[str, Any]]) -> str:
        return self.endpoint

    def request_params(
        self,
        stream_state: Optional[Mapping[str, Any]],
        stream_slice: Optional[Mapping[str, Any]] = None,
        next_page_token: Optional[Mapping[str, Any]] = None,
    ) -> MutableMapping[str, Any]:
        if next_page_token:
            return {}  # the next URL already carries every parameter, `limit` restored
        params: MutableMapping[str, Any] = {"limit": self.page_limit, **self.first_page_params}
        if stream_slice and SINCE in stream_slice:
            # Undocumented: the API may ignore both silently, so read_records checks and filters on the client.
            params[f"filter[{self.server_cursor}][gteq]"] = stream_slice[SINCE]
            params["sort"] = f"-{self.server_cursor}" if self.newest_first else self.server_cursor
        return params

    def request_headers(
        self,
        stream_state: Optional[Mapping[str, Any]],
        stream_slice: Optional[Mapping[str, Any]] = None,
        next_page_token: Optional[Mapping[str, Any]] = None,
    ) -> Mapping[str, Any]:
        return ACCEPT_JSON

    def request_kwargs(
        self,
        stream_state: Optional[Mapping[str, Any]],
        stream_slice: Optional[Mapping[str, Any]] = None,
        next_page_token: Optional[Mapping[str, Any]] = None,
    ) -> Mapping[str, Any]:
        # Redirects are not followed: requests copies every header but Authorization, X-Api-Key included,
        # to the redirect's host. The error handler reports a 3xx instead.
        return {"timeout": (CONNECT_TIMEOUT_SECONDS, self._config.request_timeout_seconds), "allow_redirects": False}

    def next_page_token(self, response: requests.Response) -> Optional[Mapping[str, Any]]:
        if response.status_code != 200:
            return None
        next_url = jsonapi.next_link(response)
        if next_url is None:
            return None
        return {"next_url": jsonapi.with_limit(self._same_origin(next_url), self.page_limit)}

    def parse_response(
        self,
        response: requests.Response,
        *,
        stream_state: Mapping[str, Any],
        stream_slice: Optional[Mapping[str, Any]] = None,
        next_page_token: Optional[Mapping[str, Any]] = None,
    ) -> Iterable[Mapping[str, Any]]:
        if response.status_code in (403, 404):
            self._log_empty_answer(response, stream_slice)
            return
        data = jsonapi.resources(response)
        if data is None:
            raise failure(
                f"Stream {self.name}: {jsonapi.endpoint(response.url)} answered 200 without a JSON:API list of resources.",
                FailureType.system_error,
            )
        for resource in data:
            yield self.to_record(resource, stream_slice)

    def to_record(
        self, resource: Mapping[str, Any], stream_slice: Optional[Mapping[str, Any]]
    ) -> MutableMapping[str, Any]:
        return self.shape.record(resource)

    def stream_slices(
        self,
        sync_mode: SyncMode,
        cursor_field: Optional[List[str]] = None,
        stream_state: Optional[Mapping[str, Any]] = None,
    ) -> Iterable[Optional[Mapping[str, Any]]]:
        if self.checkpoint and self.checkpoint.stream_done:
            return
        yield {SINCE: format_timestamp(self.lower_bound)} if self.lower_bound else None

    def read_records(
        self,
        sync_mode: SyncMode,
        cursor_field: Optional[List[str]] = None,
        stream_slice: Optional[Mapping[str, Any]] = None,
        stream_state: Optional[Mapping[str, Any]] = None,
    ) -> Iterable[Mapping[str, Any]]:
        if self.listing is None or not self.listing.emits_records:
            yield from self._read(stream_slice, stream_state or {})
        elif stream_slice and SINCE in stream_slice:  # one listing shared with child streams: filtered here
            since = stream_slice[SINCE]
            yield from records_since(
                self.listing.take(), since, str(self.cursor_field), None, None, self.logger, self.name
            )
        else:
            yield from self.listing.take()

    def _read(
        self,
        stream_slice: Optional[Mapping[str, Any]],
        stream_state: Mapping[str, Any],
        budget: Optional[PageBudget] = None,
    ) -> Iterator[Any]:
        """The records of one read: at or after the slice's cursor value if it has one, as the leaf keeps them."""
        records: Iterable[Mapping[str, Any]] = self.read_pages(stream_slice, stream_state, budget)
        since = (stream_slice or {}).get(SINCE)
        if since:
            records = records_since(
                records,
                since,
                str(self.cursor_field),
                f"filter[{self.server_cursor}][gteq]",
                self.page_limit if self.newest_first else None,
                self.logger,
                self.name,
            )
        return iter(self.shape.kept(records, since, self.logger, self.name))

    def read_list(self, since: Optional[datetime], budget: Optional[PageBudget] = None) -> Iterator[Mapping[str, Any]]:
        """One whole read of this list, from `since` if given: what a shared listing holds (listing.py). With a
        `budget`, at most that many pages (the budget says whether it stopped short)."""
        return self._read({SINCE: format_timestamp(since)} if since else None, {}, budget)

    def read_pages(
        self,
        stream_slice: Optional[Mapping[str, Any]],
        stream_state: Mapping[str, Any],
        budget: Optional[PageBudget] = None,
    ) -> Iterator[Mapping[str, Any]]:
        """The records of one list (one slice), in page order. How the pages are requested is `paging.PageChain`'s."""
        if budget is not None and budget.read >= budget.pages:
            budget.exhausted = True
            return  # nothing left to spend: not even the first page
        chain = PageChain(
            self.name,
            fetch=lambda token: self._fetch_page(stream_slice, stream_state, token),
            next_token=self.next_page_token,
            is_full=self._is_full_page,
            requests_per_second=self._config.requests_per_second,
            critical_path=self.critical_path,
        )
        for page in chain:
            if budget is not None and not budget.take():
                return  # leaving the loop closes the chain: no further page is requested
            records = 0
            for record in self.parse_response(
                page.response, stream_state=stream_state, stream_slice=stream_slice, next_page_token=page.token
            ):
                records += 1
                yield record
            if self.progress:
                self.progress.page_read(self.name, records, len(page.response.content))

    def _is_full_page(self, response: requests.Response) -> bool:
        data = jsonapi.resources(response) if response.status_code == 200 else None
        return data is not None and len(data) >= self.page_limit

    def _fetch_page(
        self,
        stream_slice: Optional[Mapping[str, Any]],
        stream_state: Mapping[str, Any],
        next_page_token: Optional[Mapping[str, Any]],
    ) -> Tuple[requests.PreparedRequest, requests.Response]:
        started = time.monotonic()
        try:
            request, response = self.http_client.send_request(
                http_method=self.http_method,
                url=urljoin(
                    self.url_base,
                    self.path(stream_state=stream_state, stream_slice=stream_slice, next_page_token=next_page_token),
                ),
                request_kwargs=self.request_kwargs(stream_state, stream_slice, next_page_token),
                headers=self.request_headers(stream_state, stream_slice, next_page_token),
                params=self.request_params(stream_state, stream_slice, next_page_token),
                dedupe_query_params=True,
                exit_on_rate_limit=self.exit_on_rate_limit,
            )
        except AirbyteTracedException as exc:
            cause = wrapped_exception(exc)
            if not isinstance(cause, BaseBackoffException):
                # The CDK puts its dump of the request and response in internal_message, which the
                # end-of-sync summary shows; the user should read the sentence meant for them there too.
                raise failure(exc.message or str(exc), exc.failure_type or FailureType.system_error) from exc
            attempts = self.session.attempts(cause.request) or "several"
            last = describe_last_answer(cause)
            message = (
                f"Stream {self.name}: gave up on GET {jsonapi.endpoint(cause.request.url)} after {attempts} attempts "
                f"in {time.monotonic() - started:.0f} s (retry budget {self._config.retry_budget_seconds:.0f} s); "
                f"last answer: {last}. The Northpass API is unavailable or overloaded: try the sync again later."
            )
            raise failure(message, FailureType.transient_error) from exc
        if self.clock:
            self.clock.saw(response)
        return request, response

    def _same_origin(self, url: str) -> str:
        if origin(url) != origin(self._config.base_url):
            raise failure(
                (
                    f"Stream {self.name}: the API's links.next points to {urlsplit(url).netloc or url!r}, not to "
                    f"{urlsplit(self._config.base_url).netloc}. Refused to follow it: the API key is only sent to base_url."
                ),
                FailureType.system_error,
            )
        return url

    def _log_empty_answer(self, response: requests.Response, stream_slice: Optional[Mapping[str, Any]]) -> None:
        if not jsonapi.is_error(response):
            raise failure(
                (
                    f"Stream {self.name}: {jsonapi.endpoint(response.url)} answered HTTP {response.status_code} without a "
                    "JSON:API error body, so it is not the Northpass API. Check the connector's base_url."
                ),
                FailureType.config_error,
            )
        if response.status_code == 403:
            first = self._run.refuse()
            if first or not isinstance(self, NorthpassSubStream):
                raise self._refusal(jsonapi.endpoint(response.url), stream_slice)
            # Another parent's 403 answered while the first was failing the stream: the stream has failed once.

    def _refusal(self, endpoint: str, stream_slice: Optional[Mapping[str, Any]]) -> Refused:
        readers = f"the {self.name} stream" + (" and the streams read from its list" if self.listing else "")
        return Refused(self.name, endpoint, "its list", readers)


class EmptyCollections:
    """How many parents of a child stream had an empty collection (a 404), for one summary when the last is read.

    An account has many courses without enrollments, groups without members: one log line per parent would
    bury the lines a user must act on, so the stream counts them and says so once, at INFO.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._parents = 0
        self._read = 0
        self._empty = 0

    def start(self, parents: int) -> None:
        with self._lock:
            self._parents, self._read, self._empty = parents, 0, 0

    def empty(self) -> None:
        with self._lock:
            self._empty += 1

    def parent_read(self) -> Optional[Tuple[int, int]]:
        """(empty, parents) once the last parent's collection is read and at least one was empty, else None."""
        with self._lock:
            self._read += 1
            if self._read != self._parents or not self._empty:
                return None
            return self._empty, self._parents


class NorthpassSubStream(HttpSubStream, NorthpassStream, ABC):
    """A collection under each record of a parent list, e.g. the enrollments of every course.

    Slices carry only the parent's id, and the parent list is fetched once per sync however many
    children read it. Every record gets the parent's id at top level: the API may omit it.

    A child with a `cursor_field` takes it from its parent (each record carries its parent's cursor value):
    an incremental read visits only the parents at or after the child's own cursor.
    """

    parent_key: str
    parent: NorthpassStream
    # An incremental child's records carry their parent's cursor value as their own (its slices carry it).
    cursor_from_parent = True
    checkpoint: Optional[ParentCheckpoint]  # type: ignore[assignment]  # a child's checkpoint tracks its parents
    critical_path = False  # one short chain per parent, read by many workers at once around the long lists

    def __init__(
        self, listing: ParentListing[NorthpassStream], context: SyncContext, plan: Optional[ReadPlan] = None
    ) -> None:
        plan = plan or ReadPlan()
        self._empty_collections = EmptyCollections()
        self.parent_listing = listing
        # Which parents this sync reads (parents.py): the plan's (an incremental read narrows them), else every one,
        # each slice carrying the parent's cursor value when the child's records carry it.
        self.parents: ParentChoice = plan.parents or (
            ParentsSince(str(self.cursor_field), None)
            if self.cursor_field and self.cursor_from_parent
            else EveryParent()
        )
        super().__init__(parent=listing.stream, context=context, plan=plan)
        # One bound for every child stream of the sync on the slices made and not yet read (sync.py).
        self._slices_ahead = context.slices_ahead

    @property
    def slices_total(self) -> Optional[int]:
        """How many slices this read made, once it has made them all (its cursor reads it from the plan's run)."""
        return self._run.slices_total

    @property
    def primary_key(self) -> List[str]:  # type: ignore[override]
        return [self.parent_key, "id"]  # child ids are unique only within their parent

    def stream_slices(
        self,
        sync_mode: SyncMode,
        cursor_field: Optional[List[str]] = None,
        stream_state: Optional[Mapping[str, Any]] = None,
    ) -> Iterable[Optional[Mapping[str, Any]]]:
        """One slice per parent whose collection this attempt reads (see `parent_slices`), made as the CDK asks."""
        if self.checkpoint and self.checkpoint.stream_done:
            return
        self._run.slices_total = None
        total, parent_slices = self.parent_slices()  # counted first, for the 404 summary and the progress
        self._empty_collections.start(total)
        if self.progress:
            self.progress.parents_to_read(self.name, self.parent.name, total)
        for parent_slice in parent_slices:
            self._slices_ahead.made()
            if self.forbidden:
                self._slices_ahead.read()
                return  # refused for one parent: the stream has failed, its other parents are not asked
            yield parent_slice
        self._run.slices_total = total

    def parent_slices(self) -> Tuple[int, Iterator[Mapping[str, Any]]]:
        """How many parents of the listing this sync reads (`parents`), less those an earlier attempt of the same
        sync read whole (`checkpoint`), and their slices in listing order, each made when it is asked for: what
        is held per parent is its id and cursor value in the listing (and its id in the checkpoint)."""
        chosen = self.parents.choose(self.parent_listing.ids(self.name))
        counted = chosen if isinstance(chosen, Sized) else list(chosen)
        if not self.checkpoint:
            return len(counted), ({self.parent_key: parent_id, **carries} for parent_id, carries in counted)
        to_read = list(self.checkpoint.parents_to_read(parent_id for parent_id, _ in counted))
        return len(to_read), self._slices_of(counted, to_read)

    def _slices_of(self, chosen: Iterable[ChosenParent], to_read: List[Any]) -> Iterator[Mapping[str, Any]]:
        """The slices of the parents in `to_read`, a subsequence of `chosen` in the same order."""
        wanted = iter(to_read)
        next_id = next(wanted, _NONE_LEFT)
        for parent_id, carries in chosen:
            if next_id is _NONE_LEFT:
                return
            if parent_id == next_id:
                yield {self.parent_key: parent_id, **carries}
                next_id = next(wanted, _NONE_LEFT)

    def read_records(
        self,
        sync_mode: SyncMode,
        cursor_field: Optional[List[str]] = None,
        stream_slice: Optional[Mapping[str, Any]] = None,
        stream_state: Optional[Mapping[str, Any]] = None,
    ) -> Iterable[Mapping[str, Any]]:
        try:
            if self.forbidden:
                # Refused for another parent: the stream has failed. No request, and its checkpoint does not count
                # this parent as read (ParentCheckpoint's `refused`), so a retried attempt asks for it again.
                return
            yield from super().read_records(sync_mode, cursor_field, stream_slice, stream_state)
        finally:
            self._slices_ahead.read()
        if self.progress:
            self.progress.parent_read(self.name)
        summary = self._empty_collections.parent_read()
        if summary:
            empty, parents = summary
            self.logger.info(
                f"Stream {self.name}: {empty} of {parents} {self.parent.name} had no {self.name}: the API answers 404 "
                f"for an empty collection (or for a {self.parent_key} deleted after it was listed)."
            )

    def endpoint_path(self, stream_slice: Optional[Mapping[str, Any]]) -> str:
        return self.endpoint.format(parent_id=(stream_slice or {})[self.parent_key])

    def to_record(
        self, resource: Mapping[str, Any], stream_slice: Optional[Mapping[str, Any]]
    ) -> MutableMapping[str, Any]:
        record = super().to_record(resource, stream_slice)
        record[self.parent_key] = (stream_slice or {})[self.parent_key]
        if self.cursor_field and self.cursor_from_parent:
            record[str(self.cursor_field)] = (stream_slice or {}).get(str(self.cursor_field))
        return record

    def _refusal(self, endpoint: str, stream_slice: Optional[Mapping[str, Any]]) -> Refused:
        parent_id = (stream_slice or {}).get(self.parent_key)
        return Refused(
            self.name, endpoint, f"the collection of {self.parent_key} {parent_id},", f"the {self.name} stream"
        )

    def _log_empty_answer(self, response: requests.Response, stream_slice: Optional[Mapping[str, Any]]) -> None:
        super()._log_empty_answer(response, stream_slice)
        page = jsonapi.page_number(response.url or "")
        if response.status_code == 404 and page == 1:
            self._empty_collections.empty()
        elif response.status_code == 404:
            # Not a warning: an API that links an exactly full last page to the next one would answer so too.
            self.logger.info(
                f"Stream {self.name}: {jsonapi.endpoint(response.url)} answered 404 on page {page}, so no records after "
                f"page {page - 1} for {self.parent_key}={(stream_slice or {}).get(self.parent_key)}: its parent was "
                "deleted, or the collection shrank, while it was read."
            )

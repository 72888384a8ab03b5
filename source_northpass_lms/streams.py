"""Streams: one base owns the URL, paging, JSON:API flattening and error handling; leaves are declarations."""

from __future__ import annotations

import threading
import time
from abc import ABC
from datetime import datetime
from typing import Any, Iterable, Iterator, List, Mapping, MutableMapping, Optional, Tuple
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests
from airbyte_cdk.models import FailureType, SyncMode
from airbyte_cdk.sources.streams.call_rate import APIBudget
from airbyte_cdk.sources.streams.http import HttpStream, HttpSubStream
from airbyte_cdk.sources.streams.http.error_handlers import BackoffStrategy, ErrorHandler
from airbyte_cdk.sources.streams.http.exceptions import BaseBackoffException
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from .auth import ApiKeyAuthenticator, origin
from .checkpoint import ParentCheckpoint, StreamCheckpoint
from .config import NorthpassConfig
from .cursor import CURSOR_FIELD, format_timestamp, parse_timestamp
from .errors import (
    NorthpassBackoff,
    NorthpassErrorHandler,
    describe_last_answer,
    failure,
    is_jsonapi_error,
    json_body,
    jsonapi_list,
)
from .progress import SyncProgress
from .rate_limit import ahead_in_line

ACCEPT_JSON = {"Accept": "application/json"}  # as the API's documentation asks
CONNECT_TIMEOUT_SECONDS = 10.0  # a host that does not accept a connection in 10 s is down, not slow
# Attributes never copied into records: `invite_token` lets whoever holds it activate that person's account.
DROPPED_ATTRIBUTES = frozenset({"invite_token"})
# Slice key of an incremental read: the `updated_at` from which records are wanted.
UPDATED_SINCE = "updated_since"


class NorthpassStream(HttpStream, ABC):
    """A Northpass v2 list endpoint, read page by page through its `links.next` cursor.

    Every page is requested with `limit=page_size`; the API's `next` links drop `limit`, so it is put back.
    A 404 on a list is an empty collection and a 403 a plan-gated endpoint: both end the list with a
    message. A page that is not a JSON:API list fails the stream: it is never read as "no records".
    """

    primary_key: Optional[str | List[str]] = "id"
    endpoint: str  # path below /v2/, with `{parent_id}` for child collections
    # A top-level list is one chain of pages, each waiting for the one before: the critical path of a sync,
    # so its requests take the rate limiter's next free call before those of child collections.
    critical_path = True

    def __init__(self, config: NorthpassConfig, authenticator: ApiKeyAuthenticator, api_budget: APIBudget):
        self._config = config
        self._listing: Optional[List[Mapping[str, Any]]] = None
        self._listing_ids: Optional[List[Any]] = None
        self._listing_lock = threading.Lock()
        self.share_listing = False
        # Set by the source for an incremental read: records updated before it are not wanted.
        self.lower_bound: Optional[datetime] = None
        # Set by the source when this attempt may resume an earlier one of the same sync (checkpoint.py).
        self.checkpoint: Optional[StreamCheckpoint] = None
        self.progress: Optional[SyncProgress] = None
        # A child stream the plan does not include answers 403 for every parent: the user is told once.
        self._forbidden_reported = threading.Event()
        super().__init__(authenticator=authenticator, api_budget=api_budget)

    @property
    def url_base(self) -> str:
        return self._config.api_root

    def get_error_handler(self) -> ErrorHandler:
        return NorthpassErrorHandler(self.logger, self._config.retry_budget_seconds)

    def get_backoff_strategy(self) -> BackoffStrategy:
        return NorthpassBackoff(self._config.backoff_base_seconds, max_wait_seconds=self._config.retry_budget_seconds)

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
        params: MutableMapping[str, Any] = {"limit": self._config.page_size}
        if stream_slice and UPDATED_SINCE in stream_slice:
            # Undocumented: the API may ignore both silently, so read_records filters again on the client.
            params[f"filter[{CURSOR_FIELD}][gteq]"] = stream_slice[UPDATED_SINCE]
            params["sort"] = CURSOR_FIELD
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
        body = json_body(response)
        next_url = (body.get("links") or {}).get("next")
        if not body.get("data") or not next_url:
            return None
        return {"next_url": self._with_page_size(self._same_origin(str(next_url)))}

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
        data = jsonapi_list(response)
        if data is None:
            raise failure(
                f"Stream {self.name}: {_endpoint(response.url)} answered 200 without a JSON:API list of resources.",
                FailureType.system_error,
            )
        for resource in data:
            yield self.to_record(resource, stream_slice)

    def to_record(
        self, resource: Mapping[str, Any], stream_slice: Optional[Mapping[str, Any]]
    ) -> MutableMapping[str, Any]:
        """A JSON:API resource as a flat record: id, type, every attribute, relationships and links."""
        record: MutableMapping[str, Any] = {
            key: value for key, value in (resource.get("attributes") or {}).items() if key not in DROPPED_ATTRIBUTES
        }
        record["id"] = resource.get("id")
        record["type"] = resource.get("type")
        for key in ("relationships", "links"):
            if key in resource:
                record[key] = resource[key]
        return record

    def stream_slices(
        self,
        sync_mode: SyncMode,
        cursor_field: Optional[List[str]] = None,
        stream_state: Optional[Mapping[str, Any]] = None,
    ) -> Iterable[Optional[Mapping[str, Any]]]:
        if self.checkpoint and self.checkpoint.stream_done:
            return
        yield {UPDATED_SINCE: format_timestamp(self.lower_bound)} if self.lower_bound else None

    def read_records(
        self,
        sync_mode: SyncMode,
        cursor_field: Optional[List[str]] = None,
        stream_slice: Optional[Mapping[str, Any]] = None,
        stream_state: Optional[Mapping[str, Any]] = None,
    ) -> Iterable[Mapping[str, Any]]:
        if self.share_listing:
            records: Iterable[Mapping[str, Any]] = self._take_listing()
        else:
            records = self.read_pages(stream_slice, stream_state or {})
        if not (stream_slice and UPDATED_SINCE in stream_slice):
            yield from records
            return
        yield from self._updated_since(records, stream_slice[UPDATED_SINCE], server_filtered=not self.share_listing)

    def _updated_since(
        self, records: Iterable[Mapping[str, Any]], since: str, server_filtered: bool
    ) -> Iterator[Mapping[str, Any]]:
        """Records updated at or after `since`: equal timestamps are emitted again, never dropped.

        A record without a readable `updated_at` is kept: losing a change is worse than a duplicate.
        """
        bound = parse_timestamp(since)
        assert bound is not None
        older = 0
        for record in records:
            updated_at = parse_timestamp(record.get(CURSOR_FIELD))
            if updated_at is not None and updated_at < bound:
                if older == 0 and server_filtered:
                    self.logger.info(
                        f"Stream {self.name}: the Northpass API ignored filter[{CURSOR_FIELD}][gteq]={since} "
                        "(it returned older records); filtering on the client instead."
                    )
                older += 1
                continue
            yield record
        if server_filtered and older == 0:
            self.logger.info(f"Stream {self.name}: the Northpass API honoured filter[{CURSOR_FIELD}][gteq]={since}.")
        elif older:
            self.logger.info(f"Stream {self.name}: skipped {older} records updated before {since}.")

    def listed_ids(self) -> List[Any]:
        """Ids of the whole list, fetched once per sync for every child stream that slices by it.

        Only the ids are held for the sync. The records themselves (a course's description can be 60 KB) are
        kept only when this stream is selected too (`share_listing`), and only until it has emitted them.
        """
        with self._listing_lock:
            if self._listing_ids is None:
                records = self._list_all()
                self._listing = records if self.share_listing else None
            return self._listing_ids  # type: ignore[return-value]  # set by _list_all

    def _take_listing(self) -> List[Mapping[str, Any]]:
        """This stream's records from the one fetch it shares with its children; handed over once."""
        with self._listing_lock:
            if self._listing_ids is None:
                return self._list_all()
            kept, self._listing = self._listing, None
        # Read a second time (the records were already handed over): fetch again rather than emit nothing.
        return kept if kept is not None else list(self.read_pages(None, {}))

    def _list_all(self) -> List[Mapping[str, Any]]:
        """The whole list, unfiltered; its ids are kept for the child streams. Called under the listing lock."""
        records = list(self.read_pages(None, {}))
        self._listing_ids = [record["id"] for record in records]
        return records

    def read_pages(
        self, stream_slice: Optional[Mapping[str, Any]], stream_state: Mapping[str, Any]
    ) -> Iterator[Mapping[str, Any]]:
        seen: set[Tuple[str, Tuple[Tuple[str, str], ...]]] = set()
        next_page_token: Optional[Mapping[str, Any]] = None
        while True:
            with ahead_in_line(self.critical_path):
                request, response = self._fetch_page(stream_slice, stream_state, next_page_token)
            seen.add(_page_identity(request.url or ""))
            records = 0
            for record in self.parse_response(
                response, stream_state=stream_state, stream_slice=stream_slice, next_page_token=next_page_token
            ):
                records += 1
                yield record
            if self.progress:
                self.progress.page_read(self.name, records)
            next_page_token = self.next_page_token(response)
            if next_page_token is None:
                return
            if _page_identity(next_page_token["next_url"]) in seen:
                raise failure(
                    (
                        f"Stream {self.name}: the API's links.next on {_endpoint(request.url)} points back to a page "
                        "already read; stopping instead of reading forever."
                    ),
                    FailureType.system_error,
                )

    def _fetch_page(
        self,
        stream_slice: Optional[Mapping[str, Any]],
        stream_state: Mapping[str, Any],
        next_page_token: Optional[Mapping[str, Any]],
    ) -> Tuple[requests.PreparedRequest, requests.Response]:
        started = time.monotonic()
        try:
            return self._fetch_next_page(stream_slice, stream_state, next_page_token)
        except AirbyteTracedException as exc:
            cause = exc._exception
            if not isinstance(cause, BaseBackoffException):
                # The CDK puts its dump of the request and response in internal_message, which the
                # end-of-sync summary shows; the user should read the sentence meant for them there too.
                raise failure(exc.message or str(exc), exc.failure_type or FailureType.system_error) from exc
            attempts = self._http_client._request_attempt_count.pop(cause.request, None) or "several"  # type: ignore[arg-type]
            last = describe_last_answer(cause)
            message = (
                f"Stream {self.name}: gave up on GET {_endpoint(cause.request.url)} after {attempts} attempts "
                f"in {time.monotonic() - started:.0f} s (retry budget {self._config.retry_budget_seconds:.0f} s); "
                f"last answer: {last}. The Northpass API is unavailable or overloaded: try the sync again later."
            )
            raise failure(message, FailureType.transient_error) from exc

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

    def _with_page_size(self, url: str) -> str:
        parts = urlsplit(url)
        query = [(key, value) for key, value in parse_qsl(parts.query, keep_blank_values=True) if key != "limit"]
        query.append(("limit", str(self._config.page_size)))
        return urlunsplit(parts._replace(query=urlencode(query)))

    def _log_empty_answer(self, response: requests.Response, stream_slice: Optional[Mapping[str, Any]]) -> None:
        if not is_jsonapi_error(response):
            raise failure(
                (
                    f"Stream {self.name}: {_endpoint(response.url)} answered HTTP {response.status_code} without a "
                    "JSON:API error body, so it is not the Northpass API. Check the connector's base_url."
                ),
                FailureType.config_error,
            )
        if response.status_code == 403 and not self._forbidden_reported.is_set():
            self._forbidden_reported.set()
            self.logger.warning(
                f"Stream {self.name}: skipped {_endpoint(response.url)}: the API answered 403 Forbidden. The account's "
                "Northpass plan or the API key's user permissions do not include this endpoint; other streams are unaffected."
            )


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
    """

    parent_key: str
    parent: NorthpassStream
    checkpoint: Optional[ParentCheckpoint]  # type: ignore[assignment]  # a child's checkpoint tracks its parents
    critical_path = False  # one short chain per parent, read by many workers at once around the long lists

    def __init__(
        self,
        parent: NorthpassStream,
        config: NorthpassConfig,
        authenticator: ApiKeyAuthenticator,
        api_budget: APIBudget,
    ) -> None:
        self._empty_collections = EmptyCollections()
        super().__init__(parent=parent, config=config, authenticator=authenticator, api_budget=api_budget)

    @property
    def primary_key(self) -> List[str]:  # type: ignore[override]
        return [self.parent_key, "id"]  # child ids are unique only within their parent

    def stream_slices(
        self,
        sync_mode: SyncMode,
        cursor_field: Optional[List[str]] = None,
        stream_state: Optional[Mapping[str, Any]] = None,
    ) -> Iterable[Optional[Mapping[str, Any]]]:
        """One slice per parent whose collection this attempt reads: every parent, less those a checkpoint skips."""
        if self.checkpoint and self.checkpoint.stream_done:
            return
        parent_ids = self.parent.listed_ids()
        if self.checkpoint:
            parent_ids = list(self.checkpoint.parents_to_read(parent_ids))
        self._empty_collections.start(len(parent_ids))
        for parent_id in parent_ids:
            yield {self.parent_key: parent_id}

    def read_records(
        self,
        sync_mode: SyncMode,
        cursor_field: Optional[List[str]] = None,
        stream_slice: Optional[Mapping[str, Any]] = None,
        stream_state: Optional[Mapping[str, Any]] = None,
    ) -> Iterable[Mapping[str, Any]]:
        yield from super().read_records(sync_mode, cursor_field, stream_slice, stream_state)
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
        return record

    def _log_empty_answer(self, response: requests.Response, stream_slice: Optional[Mapping[str, Any]]) -> None:
        super()._log_empty_answer(response, stream_slice)
        if response.status_code == 404:
            self._empty_collections.empty()


def _endpoint(url: Optional[str]) -> str:
    """A URL without its query, for messages."""
    parts = urlsplit(url or "")
    return urlunsplit(parts._replace(query="", fragment=""))


def _page_identity(url: str) -> Tuple[str, Tuple[Tuple[str, str], ...]]:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.setdefault("page", "1")
    return parts.path.rstrip("/"), tuple(sorted(query.items()))


class People(NorthpassStream):
    """People (learners and admins) of the account. https://developers.northpass.com/reference/list-people"""

    endpoint = "people"
    cursor_field = CURSOR_FIELD


class Courses(NorthpassStream):
    """Courses of the account. https://developers.northpass.com/reference/list-courses"""

    endpoint = "courses"
    cursor_field = CURSOR_FIELD


class Groups(NorthpassStream):
    """Groups of people. https://developers.northpass.com/reference/list-groups"""

    endpoint = "groups"
    cursor_field = CURSOR_FIELD


class LearningPaths(NorthpassStream):
    """Learning paths (ordered sets of courses). https://developers.northpass.com/reference/list-learning-paths"""

    endpoint = "learning-paths"
    cursor_field = CURSOR_FIELD


class Categories(NorthpassStream):
    """Course categories. https://developers.northpass.com/reference/list-categories"""

    endpoint = "categories"
    cursor_field = CURSOR_FIELD


class Quizzes(NorthpassStream):
    """Quizzes. No `updated_at`, so full refresh only. https://developers.northpass.com/reference/list-quizzes"""

    endpoint = "quizzes"


class CourseEnrollments(NorthpassSubStream):
    """Enrollments of each course. https://developers.northpass.com/reference/list-course-enrollments"""

    endpoint = "courses/{parent_id}/enrollments"
    parent_key = "course_id"


class CourseActivities(NorthpassSubStream):
    """Activities (lessons) of each course. https://developers.northpass.com/reference/list-course-activities"""

    endpoint = "courses/{parent_id}/activities"
    parent_key = "course_id"


class GroupMemberships(NorthpassSubStream):
    """Memberships of each group. https://developers.northpass.com/reference/list-group-memberships"""

    endpoint = "groups/{parent_id}/memberships"
    parent_key = "group_id"


class LearningPathEnrollments(NorthpassSubStream):
    """Enrollments of each learning path. https://developers.northpass.com/reference/list-learning-path-enrollments"""

    endpoint = "learning-paths/{parent_id}/enrollments"
    parent_key = "learning_path_id"

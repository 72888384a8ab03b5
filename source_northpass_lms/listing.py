"""A parent list shared by its stream and its child streams, and the rules for which parents a child reads."""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any, Generic, Iterable, List, Mapping, Optional, Protocol, Set, Tuple, TypeVar

from airbyte_cdk.models import FailureType
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from .cursor import parse_timestamp
from .errors import failure
from .sync import ListingPlan

ListedId = Tuple[Any, Any]  # (parent id, the parent's cursor value or None)
ChosenParent = Tuple[Any, Mapping[str, Any]]  # (parent id, what its slice carries beside the id)


class ListedStream(Protocol):
    """What a listing needs of the parent stream: its name, its cursor column and one whole read of its list."""

    @property
    def name(self) -> str: ...

    @property
    def cursor_field(self) -> str | List[str]: ...

    def read_list(self, since: Optional[datetime]) -> Iterable[Mapping[str, Any]]: ...


Listed = TypeVar("Listed", bound=ListedStream)


class ParentListing(Generic[Listed]):
    """One parent list (courses, groups, people, ...), read once per sync for its stream and all its children.

    Owned by the source and handed to the parent stream and to each child. Only (id, cursor value) pairs are
    held for the sync: the cursor value lets an incremental child pick its parents. The records themselves (a
    course's description can be 60 KB) are kept only when the parent stream is selected too (`emits_records`),
    and only until it has emitted them.

    A read that fails is never handed on in part: every later call, by the parent stream or by any child, in
    whatever order their threads come, raises the same failure (`ParentListFailed` for a child), so no reader
    can end COMPLETE on a truncated list. A retried attempt of the sync reads the list again.
    """

    def __init__(self, stream: Listed, plan: ListingPlan) -> None:
        self.stream = stream
        self.emits_records = plan.emits_records  # the parent stream is selected: it emits this read's records
        # Set when every reader of the listing is incremental: the list is read from the earliest of their
        # cursors instead of whole. A reader that needs every parent leaves it None.
        self.since: Optional[datetime] = plan.since
        self._records: Optional[List[Mapping[str, Any]]] = None
        self._ids: Optional[List[ListedId]] = None
        self._failure: Optional[AirbyteTracedException] = None  # why the one read of this sync failed
        self._lock = threading.Lock()

    def ids(self, reader: str) -> List[ListedId]:
        """(id, cursor value) of every listed parent, in listing order; the list is read on the first call.
        Raises `ParentListFailed`, naming the child stream `reader`, when the read did not reach its end."""
        try:
            with self._lock:
                if self._ids is None:
                    self._records = self._read(keep_records=self.emits_records)
                assert self._ids is not None  # set by a _read that returned
                return self._ids
        except AirbyteTracedException as exc:
            raise ParentListFailed(reader, self.stream.name, exc) from exc

    def take(self) -> List[Mapping[str, Any]]:
        """The parent stream's records from the read shared with its children; handed over once."""
        with self._lock:
            if self._ids is None:
                return self._read(keep_records=True) or []
            kept, self._records = self._records, None
        # Read a second time (the records were already handed over): fetch again rather than emit nothing.
        return kept if kept is not None else list(self.stream.read_list(self.since))

    def _read(self, keep_records: bool) -> Optional[List[Mapping[str, Any]]]:
        """The list (from `since`, else whole): its ids are kept for the children, its records only when asked
        (30,000 people are about 100 MB as records, 6 MB as ids). Under the lock.

        The ids are published only once the read has reached the list's end; a failure is kept, and raised
        again to every later caller, as the same message and failure type."""
        if self._failure is not None:
            raise failure(self._failure.message or str(self._failure), _failure_type(self._failure))
        records: Optional[List[Mapping[str, Any]]] = [] if keep_records else None
        cursor = str(self.stream.cursor_field) if self.stream.cursor_field else None
        # A parent listed twice (a list that shifted between two of its pages) is read once by each child.
        seen: Set[Any] = set()
        ids: List[ListedId] = []
        try:
            for record in self.stream.read_list(self.since):
                if records is not None:
                    records.append(record)
                if record["id"] not in seen:
                    seen.add(record["id"])
                    ids.append((record["id"], record.get(cursor) if cursor else None))
        except AirbyteTracedException as exc:
            self._failure = exc
            raise
        except Exception as exc:  # anything else stops the read as surely: never hand on what was read so far
            self._failure = failure(
                f"Stream {self.stream.name}: reading its list failed: {type(exc).__name__}: {exc}",
                FailureType.system_error,
            )
            raise self._failure from exc
        self._ids = ids
        return records


class ParentListFailed(AirbyteTracedException):
    """A child stream's parents could not be listed whole: the child is not read at all in this attempt."""

    def __init__(self, reader: str, parent: str, cause: AirbyteTracedException) -> None:
        message = (
            f"Stream {reader}: not read, because the list of its parents ({parent}) could not be read whole: "
            f"{cause.message or cause}"
        )
        super().__init__(message=message, internal_message=message, failure_type=_failure_type(cause))


def _failure_type(exc: AirbyteTracedException) -> FailureType:
    return exc.failure_type or FailureType.system_error


class ParentChoice(Protocol):
    """Which parents of the listing a child stream reads in this sync, and what each slice carries."""

    def choose(self, listing: List[ListedId]) -> Iterable[ChosenParent]: ...


class EveryParent:
    """Full refresh: every listed parent."""

    def choose(self, listing: List[ListedId]) -> Iterable[ChosenParent]:
        return ((parent_id, {}) for parent_id, _ in listing)


class ParentsSince:
    """An incremental child whose records carry their parent's cursor: the parents at or after the child's
    cursor (every parent on a first sync; a parent without a readable cursor value is kept), each slice
    carrying that value, which becomes the child's cursor once the parent is read to its end."""

    def __init__(self, cursor_field: str, lower_bound: Optional[datetime]) -> None:
        self.cursor_field = cursor_field
        self.lower_bound = lower_bound

    def choose(self, listing: List[ListedId]) -> Iterable[ChosenParent]:
        for parent_id, cursor_value in listing:
            value = parse_timestamp(cursor_value)
            if self.lower_bound and value is not None and value < self.lower_bound:
                continue
            yield parent_id, {self.cursor_field: cursor_value}

"""A parent list shared by its stream and its child streams, and the rules for which parents a child reads."""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any, Generic, Iterable, List, Mapping, Optional, Protocol, Set, Tuple, TypeVar

from .cursor import parse_timestamp

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
    """

    def __init__(self, stream: Listed) -> None:
        self.stream = stream
        self.emits_records = False  # the parent stream is selected: it emits this read's records
        # Set when every reader of the listing is incremental: the list is read from the earliest of their
        # cursors instead of whole. A reader that needs every parent leaves it None.
        self.since: Optional[datetime] = None
        self._records: Optional[List[Mapping[str, Any]]] = None
        self._ids: Optional[List[ListedId]] = None
        self._lock = threading.Lock()

    def ids(self) -> List[ListedId]:
        """(id, cursor value) of every listed parent, in listing order; the list is read on the first call."""
        with self._lock:
            if self._ids is None:
                self._records = self._read(keep_records=self.emits_records)
            return self._ids  # type: ignore[return-value]  # set by _read

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
        (30,000 people are about 100 MB as records, 6 MB as ids). Under the lock."""
        records: Optional[List[Mapping[str, Any]]] = [] if keep_records else None
        cursor = str(self.stream.cursor_field) if self.stream.cursor_field else None
        # A parent listed twice (a list that shifted between two of its pages) is read once by each child.
        seen: Set[Any] = set()
        self._ids = []
        for record in self.stream.read_list(self.since):
            if records is not None:
                records.append(record)
            if record["id"] not in seen:
                seen.add(record["id"])
                self._ids.append((record["id"], record.get(cursor) if cursor else None))
        return records


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

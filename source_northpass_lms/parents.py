"""Which parents of a shared list a child stream reads in this sync, and what each parent's slice carries.

A child stream's records are read one parent at a time, from the (id, cursor value) pairs of the list it shares
with its parent stream (listing.py). Its `ReadPlan` (sync.py) names one rule:
- `EveryParent`: full refresh, every listed parent;
- `ParentsSince`: an incremental child whose records carry their parent's cursor (the enrollments of a course
  updated since the last sync, the answers of a quiz attempt delivered since), the parents at or after its cursor;
- `transcripts.PeopleWithEvidence`: incremental transcripts, the people with evidence of a change and the sweep's
  share of everyone (transcripts.py, with the state that rule needs).
A resumed attempt then leaves out the parents an earlier attempt of the same sync read whole (checkpoint.py).
"""

from __future__ import annotations

from datetime import datetime
from types import MappingProxyType
from typing import Any, Callable, Iterable, Iterator, List, Mapping, Optional, Protocol, Tuple

from .cursor import parse_timestamp
from .listing import ListedId

ChosenParent = Tuple[Any, Mapping[str, Any]]  # (parent id, what its slice carries beside the id)


class ParentChoice(Protocol):
    """Which parents of the listing a child stream reads in this sync, and what each slice carries.

    A choice that is `Sized` (a list, `ChosenParents`) is iterated twice, to count and then to slice; any other
    iterable is held as a list to be counted."""

    def choose(self, listing: List[ListedId]) -> Iterable[ChosenParent]: ...


class ChosenParents:
    """The parents a choice takes from the listing, worked out again on each pass instead of held: the slices of
    a child are made one at a time, however many parents it reads. `carries` gives what a parent's slice carries
    beside its id, or None for a parent not read."""

    def __init__(self, listing: List[ListedId], carries: Callable[[ListedId], Optional[Mapping[str, Any]]]) -> None:
        self._listing = listing
        self._carries = carries

    def __iter__(self) -> Iterator[ChosenParent]:
        for listed in self._listing:
            carried = self._carries(listed)
            if carried is not None:
                yield listed[0], carried

    def __len__(self) -> int:
        return sum(1 for _ in self)


NOTHING_CARRIED: Mapping[str, Any] = MappingProxyType({})


class EveryParent:
    """Full refresh: every listed parent."""

    def choose(self, listing: List[ListedId]) -> Iterable[ChosenParent]:
        return ChosenParents(listing, lambda listed: NOTHING_CARRIED)


class ParentsSince:
    """An incremental child whose records carry their parent's cursor: the parents at or after the child's
    cursor (every parent on a first sync; a parent without a readable cursor value is kept), each slice
    carrying that value, which becomes the child's cursor once the parent is read to its end."""

    def __init__(self, cursor_field: str, lower_bound: Optional[datetime]) -> None:
        self.cursor_field = cursor_field
        self.lower_bound = lower_bound

    def choose(self, listing: List[ListedId]) -> Iterable[ChosenParent]:
        return ChosenParents(listing, self._carries)

    def _carries(self, listed: ListedId) -> Optional[Mapping[str, Any]]:
        cursor_value = listed[1]
        value = parse_timestamp(cursor_value)
        if self.lower_bound and value is not None and value < self.lower_bound:
            return None
        return {self.cursor_field: cursor_value}

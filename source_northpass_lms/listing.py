"""A parent list shared by its stream and its child streams: read once per sync, whole or not at all.

What is kept of it is each parent's id and cursor value (`ListedId`), for the children to choose from
(parents.py, transcripts.py); the parent stream's records pass through, never held. A read that fails fails every
reader of the list, in whatever order their threads come (`ParentListing`).
"""

from __future__ import annotations

import threading
from collections import deque
from datetime import datetime
from typing import (
    Any,
    Deque,
    Generic,
    Iterable,
    Iterator,
    List,
    Mapping,
    NoReturn,
    Optional,
    Protocol,
    Set,
    Tuple,
    TypeVar,
)

from airbyte_cdk.models import FailureType
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from .errors import failure
from .sync import ListingPlan

ListedId = Tuple[Any, Any]  # (parent id, the parent's cursor value or None)
# Records a child's read of the list keeps for the parent stream while it has not come for them: ten pages of 100.
# A list this short (courses, groups, learning paths) is listed once for all however the threads come; a longer one
# (people) waits only for a parent stream that is taking it, or is read again by the parent stream.
HANDOFF_RECORDS = 1_000


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
    course's description can be 60 KB, 40,000 people are 120 MB as records) are never held: when the parent
    stream is selected too (`emits_records`), it gets them as they are read, whoever reads the list first.
    - The parent stream first: its partition reads the list, emitting each record as it comes, while the
      children wait for the whole list of ids.
    - A child first: it reads the list and hands each record on to the parent stream (`take`), at most
      `HANDOFF_RECORDS` waiting at a time. A list that fits (courses, groups) waits whole for a parent stream that
      has not started yet; a longer one is only handed on while the parent stream is taking it, else the parent
      stream reads its list again on its own: more requests, never more memory.

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
        self._ids: Optional[List[ListedId]] = None  # published once the read has reached the list's end
        self._failure: Optional[AirbyteTracedException] = None  # why the one read of this sync failed
        self._reading = False  # a thread is reading the list: the others wait for its end
        # Records a child's read hands on to the parent stream, until it takes them; None once there is no
        # parent stream to hand them to (taken, given up, or the read failed).
        self._handoff: Optional[Deque[Mapping[str, Any]]] = None
        self._taking = False  # the parent stream is taking the handed-on records as they come
        self._changed = threading.Condition()

    def ids(self, reader: str) -> List[ListedId]:
        """(id, cursor value) of every listed parent, in listing order; the list is read on the first call.
        Raises `ParentListFailed`, naming the child stream `reader`, when the read did not reach its end."""
        try:
            with self._changed:
                while self._reading:
                    self._changed.wait()
                if self._ids is not None:
                    return self._ids
                self._raise_if_failed()
                self._reading = True
                self._handoff = deque() if self.emits_records else None
            return self._read_for_children()
        except AirbyteTracedException as exc:
            raise ParentListFailed(reader, self.stream.name, exc) from exc

    def take(self) -> Iterator[Mapping[str, Any]]:
        """The parent stream's records, from the read shared with its children (class docstring). A read that
        already failed raises at once; a second take, once the records were handed over, reads the list again."""
        with self._changed:
            self._raise_if_failed()
        return self._take()

    def _take(self) -> Iterator[Mapping[str, Any]]:
        with self._changed:
            self._raise_if_failed()
            through = not self._reading and self._ids is None  # nobody has read the list yet
            handed_on = not through and self._handoff is not None and not self._taking
            self._reading = self._reading or through
            self._taking = self._taking or handed_on
        if through:
            yield from self._read_through()
        elif handed_on:
            yield from self._take_handed_on()
        else:  # this read's records went elsewhere (handed over, or not kept): the list is read again
            yield from self.stream.read_list(self.since)

    def _read_through(self) -> Iterator[Mapping[str, Any]]:
        """The parent stream reads the list, emitting its records as they come, and publishes the ids at its end.
        Stopped before the end (its partition failed), the read counts for nothing: a waiting child reads again."""
        ids = _IdsOfList(self.stream.cursor_field)
        try:
            for record in self.stream.read_list(self.since):
                ids.add(record)
                yield record
        except GeneratorExit:
            with self._changed:
                self._reading = False
                self._changed.notify_all()
            raise
        except Exception as exc:
            self._raise_failed(exc)
        self._publish(ids.listed)

    def _take_handed_on(self) -> Iterator[Mapping[str, Any]]:
        """The records a child's read hands on, in listing order, until its end (or its failure, raised here)."""
        done = False
        try:
            while not done:
                with self._changed:
                    while self._reading and not self._handoff and self._failure is None:
                        self._changed.wait()
                    self._raise_if_failed()
                    batch, done = self._handoff or deque(), not self._reading
                    self._handoff = None if done else deque()
                    self._changed.notify_all()  # room for the reader
                yield from batch
        finally:
            with self._changed:
                self._taking = False
                if not done:  # stopped early: the reader keeps nothing more for it
                    self._handoff = None
                self._changed.notify_all()

    def _read_for_children(self) -> List[ListedId]:
        """A child's read of the list: its ids, each record handed on to the parent stream if it is selected."""
        ids = _IdsOfList(self.stream.cursor_field)
        try:
            for record in self.stream.read_list(self.since):
                ids.add(record)
                if self._handoff is not None:
                    self._hand_on(record)
        except Exception as exc:  # anything stops the read as surely: never hand on what was read so far
            self._raise_failed(exc)
        except BaseException as exc:
            self._failed(exc)
            raise
        return self._publish(ids.listed)

    def _hand_on(self, record: Mapping[str, Any]) -> None:
        with self._changed:
            while self._taking and self._handoff is not None and len(self._handoff) >= HANDOFF_RECORDS:
                self._changed.wait()  # the parent stream is emitting them: it makes room
            if self._handoff is None:
                return
            if len(self._handoff) >= HANDOFF_RECORDS:  # a long list, and the parent stream has not come for it
                self._handoff = None
                return
            self._handoff.append(record)
            self._changed.notify_all()

    def _publish(self, ids: List[ListedId]) -> List[ListedId]:
        with self._changed:
            self._ids = ids
            self._reading = False
            self._changed.notify_all()
        return ids

    def _failed(self, exc: BaseException) -> AirbyteTracedException:
        """Keeps the read's failure for every later reader, and returns it for this one to raise."""
        if isinstance(exc, AirbyteTracedException):
            kept = exc
        else:
            kept = failure(
                f"Stream {self.stream.name}: reading its list failed: {type(exc).__name__}: {exc}",
                FailureType.system_error,
            )
        with self._changed:
            self._failure = kept
            self._reading = False
            self._handoff = None
            self._changed.notify_all()
        return kept

    def _raise_failed(self, exc: Exception) -> NoReturn:
        """Keeps the read's failure and raises it: the API's own error as it came (not chained to itself, which
        would loop its traceback), anything else as a failure naming the list, caused by it."""
        kept = self._failed(exc)
        if kept is exc:
            raise kept
        raise kept from exc

    def _raise_if_failed(self) -> None:
        """Under the lock: a kept failure, raised again as the same message and failure type."""
        if self._failure is not None:
            raise failure(self._failure.message or str(self._failure), _failure_type(self._failure))


class _IdsOfList:
    """(id, cursor value) of each parent, in listing order. A parent listed twice (a list that shifted between two
    of its pages) is kept once, so each child reads it once."""

    def __init__(self, cursor_field: str | List[str]) -> None:
        self._cursor = str(cursor_field) if cursor_field else None
        self._seen: Set[Any] = set()
        self.listed: List[ListedId] = []

    def add(self, record: Mapping[str, Any]) -> None:
        if record["id"] not in self._seen:
            self._seen.add(record["id"])
            self.listed.append((record["id"], record.get(self._cursor) if self._cursor else None))


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

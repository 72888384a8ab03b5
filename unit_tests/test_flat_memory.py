"""Memory flat in the account's size: a parent list's records are never held, and slicing never runs far ahead.

What a sync keeps per parent is its id and cursor value; records, slices and partitions live only while they
are read. Records here are weak-referenceable, so a test can count how many are still alive at any point.
"""

from __future__ import annotations

import multiprocessing
import re
import threading
import time
import weakref
from typing import Any, Callable, Iterator, List, Mapping

import requests_mock as rm
from airbyte_cdk.models import SyncMode

import source_northpass_lms.source as source_module
from source_northpass_lms.auth import ApiKeyAuthenticator
from source_northpass_lms.config import NorthpassConfig
from source_northpass_lms.listing import HANDOFF_RECORDS, ParentListing
from source_northpass_lms.rate_limit import SlidingWindowBudget
from source_northpass_lms.streams import CourseEnrollments, Courses
from source_northpass_lms.sync import ListingPlan, SlicesAhead, SyncClock, SyncContext

from .conftest import API, course, enrollment, jsonapi_page, make_config, records_of, run_read

COURSES_ONE_WORKER = 1_000  # far more than FUTURES_KEPT below, so the CDK's queue cannot hide a deadlock
PEOPLE = 3 * HANDOFF_RECORDS  # a list too long to be kept whole for a parent stream that has not come


class Person(dict):  # type: ignore[type-arg]  # a dict that can be weakly referenced
    pass


class PeopleList:
    """A parent stream's list of `PEOPLE` records, made as they are read; it remembers them only weakly."""

    name = "people"
    cursor_field = "updated_at"

    def __init__(self, after_first: Callable[[], object] = lambda: None) -> None:
        self.reads = 0
        self.made: List[weakref.ref[Person]] = []
        self._after_first = after_first

    def read_list(self, since: Any) -> Iterator[Mapping[str, Any]]:
        self.reads += 1
        for index in range(PEOPLE):
            record = Person(id=f"person-{index}", updated_at=f"2024-01-01T00:00:{index % 60:02d}Z")
            self.made.append(weakref.ref(record))
            yield record
            if index == 0:
                self._after_first()

    def alive(self) -> int:
        return sum(1 for ref in self.made if ref() is not None)


def ids_of(listing: ParentListing[Any]) -> List[Any]:
    return [parent_id for parent_id, _ in listing.ids("transcripts")]


def test_given_parent_stream_first_when_it_reads_the_list_then_records_pass_through_and_children_get_its_ids() -> None:
    people = PeopleList()
    listing: ParentListing[Any] = ParentListing(people, ListingPlan(emits_records=True))

    alive_halfway = None
    emitted = 0
    for _ in listing.take():
        emitted += 1
        if emitted == PEOPLE // 2:
            alive_halfway = people.alive()

    assert emitted == PEOPLE
    assert alive_halfway is not None and alive_halfway <= 2  # the one being emitted, not the list read so far
    assert ids_of(listing) == [f"person-{index}" for index in range(PEOPLE)]
    assert people.reads == 1  # the children's ids come from the parent stream's read


def test_given_child_first_and_parent_stream_taking_when_list_read_then_handed_on_never_more_than_the_bound() -> None:
    parent_attached = threading.Event()
    people = PeopleList(after_first=lambda: parent_attached.wait(10))
    listing: ParentListing[Any] = ParentListing(people, ListingPlan(emits_records=True))
    child = threading.Thread(target=listing.ids, args=("transcripts",))
    child.start()  # reads the list, and waits after its first record for the parent stream to come

    records = listing.take()
    first = next(records)  # the parent stream is taking the records as the child's read hands them on
    parent_attached.set()
    most_alive, emitted = 0, 1
    del first
    for _ in records:
        emitted += 1
        most_alive = max(most_alive, people.alive())
    child.join(10)

    assert emitted == PEOPLE
    assert most_alive <= 2 * HANDOFF_RECORDS + 1  # a batch being emitted and the next one filling
    assert people.reads == 1
    assert ids_of(listing) == [f"person-{index}" for index in range(PEOPLE)]


def test_given_child_read_a_long_list_alone_when_parent_stream_comes_then_nothing_was_kept_and_it_reads_again() -> None:
    people = PeopleList()
    listing: ParentListing[Any] = ParentListing(people, ListingPlan(emits_records=True))

    ids = ids_of(listing)
    alive_after_child = people.alive()
    emitted = [record["id"] for record in listing.take()]

    assert len(ids) == PEOPLE
    assert alive_after_child == 0
    assert emitted == ids  # every record, in listing order, from a read of its own
    assert people.reads == 2


def enrollments_of(http: rm.Mocker, courses: int, slices_ahead: SlicesAhead) -> CourseEnrollments:
    http.get(f"{API}/courses", json=jsonapi_page([course(index) for index in range(courses)]))
    config = NorthpassConfig.parse(make_config())
    authenticator = ApiKeyAuthenticator(config.api_key, config.base_url)
    context = SyncContext(config, authenticator, SlidingWindowBudget(1000), SyncClock(), slices_ahead=slices_ahead)
    listing = Courses(context).listing
    assert listing is not None
    return CourseEnrollments(listing, context)


def wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)


def test_given_slices_ahead_bound_when_child_slices_then_it_waits_for_slices_read_and_stops_waiting_when_read_ends(
    http: rm.Mocker,
) -> None:
    bound = SlicesAhead(3)
    enrollments = enrollments_of(http, 50, bound)
    bound.start()
    made: List[Any] = []
    slicing = threading.Thread(target=lambda: made.extend(enrollments.stream_slices(SyncMode.full_refresh)))
    slicing.start()

    wait_for(lambda: len(made) == 3)
    time.sleep(0.2)
    ahead = len(made)
    bound.read()  # one slice read to its end: one more is made
    wait_for(lambda: len(made) == 4)
    after_one_read = len(made)
    bound.stop()  # the read is over: the generator no longer waits
    slicing.join(10)

    assert ahead == 3
    assert after_one_read == 4
    assert not slicing.is_alive() and len(made) == 50
    assert enrollments.slices_total == 50


def test_given_one_worker_and_more_parents_than_futures_kept_when_read_then_every_parent_read(
    http: rm.Mocker, monkeypatch: Any
) -> None:
    # With one worker the partition generator holds the only thread: a bound on the futures not yet read would
    # wait for reads that cannot start. The read runs in a forked process (the mocks go with it), which a deadlock
    # cannot keep alive: the CDK's worker threads are joined at exit.
    monkeypatch.setattr(source_module, "FUTURES_KEPT", 3)
    http.get(f"{API}/courses", json=jsonapi_page([course(index) for index in range(COURSES_ONE_WORKER)]))
    http.get(re.compile(rf"{API}/courses/course-\d+/enrollments"), json=jsonapi_page([enrollment(1)]))
    context = multiprocessing.get_context("fork")
    results = context.SimpleQueue()

    def read_enrollments() -> None:
        output = run_read(make_config(num_workers=1), ["course_enrollments"])
        results.put(len(records_of(output, "course_enrollments")))

    reading = context.Process(target=read_enrollments)
    reading.start()
    reading.join(60)
    if reading.is_alive():
        reading.kill()

    assert reading.exitcode == 0, "the read did not end"
    assert results.get() == COURSES_ONE_WORKER

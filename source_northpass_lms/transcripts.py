"""Incremental transcripts: whose transcript a sync re-reads, and the state that remembers it.

Transcript items carry no `updated_at`, so no cursor tells a changed item from an unchanged one, and a full read
costs a request per person. An incremental sync re-reads the transcript of:
- everyone, on the first incremental sync (no state);
- after that, each person with **evidence** of a change since the previous sync started (less
  `EVIDENCE_OVERLAP`): created or updated (people's `updated_at`), or named by a learning event or a completed
  quiz attempt (their `person_id`);
- plus the **sweep**: the people whose point on a circle (a hash of their id) lies in this sync's arc. Each sync
  takes the next arc, 1/N of the circle, so every transcript is re-read at least once in any N consecutive
  incremental syncs, whatever the change and whether or not it left evidence.
No person is read twice in one sync. The state is two values, whatever the account's size:
`{"evidence_since": <start of the previous sync less the overlap>, "sweep_start": <where this sync's arc starts>}`;
during a sync with a `sync_id` it also carries the resume checkpoint of `checkpoint.py` and the sync's start.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, List, Mapping, MutableMapping, Optional, Set

from airbyte_cdk.models import FailureType
from airbyte_cdk.sources.connector_state_manager import ConnectorStateManager
from airbyte_cdk.sources.message import MessageRepository
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from .checkpoint import CHECKPOINT_INTERVAL_SECONDS, ParentCheckpoint, checkpoint_for
from .cursor import format_timestamp, parse_timestamp
from .errors import Refused, failure
from .listing import ListedId
from .paging import PageBudget
from .parents import ChosenParent
from .sync import ReadPlan, StreamRun, SyncClock, SyncContext

if TYPE_CHECKING:
    from .base_stream import NorthpassStream

EVIDENCE_SINCE = "evidence_since"
SWEEP_START = "sweep_start"
SYNC_STARTED = "sync_started"
# Evidence is looked for from this long before the previous sync started: it absorbs a difference between the
# API's clocks and ours, and evidence that becomes visible a little after the time it carries.
EVIDENCE_OVERLAP = timedelta(minutes=15)
SWEEP_CIRCLE = 2**32  # points on the circle: a person's point is the first 4 bytes of a SHA-256 of their id


def sweep_point(person_id: Any) -> int:
    """A person's fixed place on the sweep's circle: the same on every sync, machine and Python version."""
    return int.from_bytes(hashlib.sha256(str(person_id).encode()).digest()[:4], "big")


@dataclass(frozen=True)
class Sweep:
    """This sync's arc of the circle: `syncs` arcs of equal width cover it, so N syncs re-read everyone."""

    start: int
    syncs: int

    @property
    def width(self) -> int:
        return math.ceil(SWEEP_CIRCLE / self.syncs)

    def covers(self, person_id: Any) -> bool:
        return (sweep_point(person_id) - self.start) % SWEEP_CIRCLE < self.width

    def next_start(self) -> int:
        return (self.start + self.width) % SWEEP_CIRCLE


@dataclass
class Evidence:
    """What the evidence reads found: the people named (None when a log was refused), and what each read cost."""

    people: Optional[Set[Any]]
    pages: Dict[str, int] = field(default_factory=dict)  # log -> pages read
    cut_short: List[str] = field(default_factory=list)  # logs whose read stopped at the budget

    def describe(self, since: datetime) -> str:
        read = ", ".join(f"{n} page{'s' if n != 1 else ''} of {log}" for log, n in self.pages.items())
        return f"evidence: {read or 'nothing read'} since {format_timestamp(since)}"


class PeopleWithEvidence:
    """Incremental transcripts' choice of people: the rule of this module's docstring, in listing order.

    `named_since(since, max_pages)` reads the activity logs from `since` and returns the people they name. A log the
    API refuses (403) gives `people=None`: without that evidence no person can be left out, so every transcript is
    read, as on a first sync, and the user is told once. Any other failure of an evidence read fails the stream
    (nothing is chosen from evidence read in part), and its state stays where it was.

    The evidence is worth at most the transcripts it spares: the people not already chosen for their `updated_at`
    or by the sweep. Its reads stop at that many pages (an API that honours neither the logs' sort nor their filter
    would otherwise page through the account's whole history on every sync); the user is told once, and the people
    those logs would have named are left to the sweep, which re-reads everyone within N syncs.
    """

    def __init__(
        self,
        since: Optional[datetime],
        sweep: Sweep,
        named_since: Callable[[datetime, int], Evidence],
        logger: logging.Logger,
        stream_name: str,
    ) -> None:
        self.since = since
        self.sweep = sweep
        self._named_since = named_since
        self._logger = logger
        self._stream_name = stream_name

    def choose(self, listing: List[ListedId]) -> Iterable[ChosenParent]:
        if self.since is None:
            self._logger.info(
                f"Stream {self._stream_name}: first incremental sync (no state): reading all {len(listing)} transcripts."
            )
            return [(person_id, {}) for person_id, _ in listing]
        since = self.since
        # Who is read whatever the evidence says: created or updated since (no readable updated_at is a change),
        # or in this sync's arc of the sweep.
        updated: Set[Any] = set()
        swept: Set[Any] = set()
        for person_id, updated_at in listing:
            changed_at = parse_timestamp(updated_at)
            if changed_at is None or changed_at >= since:
                updated.add(person_id)
            elif self.sweep.covers(person_id):
                swept.add(person_id)
        spared = len(listing) - len(updated) - len(swept)  # the transcripts evidence can spare, at most
        evidence = self._named_since(since, spared) if spared > 0 else Evidence(set())
        if evidence.people is None:
            self._logger.warning(
                f"Stream {self._stream_name}: the API key may not read the learning events or the quiz log (HTTP "
                f"403), the evidence of who changed since {format_timestamp(since)}, so all {len(listing)} "
                "transcripts are read, as on a first sync. Use the API key of an admin to read only the changed ones."
            )
            return [(person_id, {}) for person_id, _ in listing]
        if evidence.cut_short:
            self._logger.warning(
                f"Stream {self._stream_name}: reading {' and '.join(evidence.cut_short)} since "
                f"{format_timestamp(since)} as evidence would cost more requests than the {spared} transcripts it "
                "could spare (the API seems to honour neither their sort nor their filter), so it stopped there: a "
                "change shown only there arrives with the sweep, within "
                f"{self.sweep.syncs} syncs, as a change without evidence does."
            )
        named = evidence.people
        chosen: List[ChosenParent] = []
        active = 0
        for person_id, _ in listing:
            if person_id in updated or person_id in swept:
                chosen.append((person_id, {}))
            elif person_id in named:
                active += 1
                chosen.append((person_id, {}))
        self._logger.info(
            f"Stream {self._stream_name}: reading {len(chosen)} of {len(listing)} transcripts: {len(updated)} of people "
            f"created or updated since {format_timestamp(since)}, {active} more of people named by learning events "
            f"or quiz attempts since then ({len(named)} named in all; {evidence.describe(since)}), and {len(swept)} "
            f"more in this sync's share of the sweep (1/{self.sweep.syncs} of everyone)."
        )
        return chosen


class TranscriptCursor(ParentCheckpoint):
    """Incremental transcripts' state: `evidence_since` and `sweep_start`, moved only when every chosen person's
    transcript was read whole. A sync that fails keeps them, so its successor looks for the same evidence and
    sweeps the same arc. Between, with a `sync_id`, the state is also a resume checkpoint (checkpoint.py): a
    retried attempt of the same sync skips the people read whole and keeps the first attempt's start.
    """

    def __init__(
        self,
        stream_name: str,
        stream_namespace: Optional[str],
        sync_id: Optional[int],
        stream_state: Mapping[str, Any],
        syncs_per_sweep: int,
        clock: SyncClock,
        skipped: Callable[[], bool],
        message_repository: MessageRepository,
        state_manager: ConnectorStateManager,
        logger: logging.Logger,
        parent_key: str,
    ) -> None:
        resumed = checkpoint_for(stream_name, sync_id, stream_state, logger) if stream_state else None
        super().__init__(
            stream_name,
            stream_namespace,
            sync_id if sync_id is not None else 0,
            resumed,
            message_repository,
            state_manager,
            logger,
            parent_key=parent_key,
            # Without a sync_id no attempt can resume another: only the state at the end is worth emitting.
            interval=CHECKPOINT_INTERVAL_SECONDS if sync_id is not None else math.inf,
            refused=skipped,
        )
        self._resumable = sync_id is not None
        self._sync_clock = clock
        self._skipped = skipped
        self.since = _timestamp(stream_state, EVIDENCE_SINCE, stream_name, logger)
        start = stream_state.get(SWEEP_START) if stream_state else None
        valid_start = isinstance(start, int) and not isinstance(start, bool) and 0 <= start < SWEEP_CIRCLE
        self.sweep = Sweep(start if valid_start else 0, syncs_per_sweep)  # type: ignore[arg-type]
        started = parse_timestamp(resumed.get(SYNC_STARTED)) if resumed else None
        if started is not None:
            clock.resume(started)

    @property
    def state(self) -> MutableMapping[str, Any]:
        if self._read_whole():
            return {
                EVIDENCE_SINCE: format_timestamp(self._sync_clock.started() - EVIDENCE_OVERLAP),
                SWEEP_START: self.sweep.next_start() if self.since else self.sweep.start,
            }
        state: MutableMapping[str, Any] = {SWEEP_START: self.sweep.start}
        if self.since:
            state[EVIDENCE_SINCE] = format_timestamp(self.since)
        if self._resumable and (self._listing_started or self._incoming is not None):
            state.update(super().state)  # the checkpoint this attempt has, or the one it was given
            state[SYNC_STARTED] = format_timestamp(self._sync_clock.started())
        return state

    def _read_whole(self) -> bool:
        return self.every_parent_done() and not self._skipped()


def _timestamp(
    stream_state: Mapping[str, Any], key: str, stream_name: str, logger: logging.Logger
) -> Optional[datetime]:
    if not stream_state or stream_state.get(key) is None:
        return None
    value = parse_timestamp(stream_state[key])
    if value is None:
        logger.warning(
            f"Stream {stream_name}: the incoming state's '{key}' {stream_state[key]!r} is not a timestamp; "
            "reading every transcript."
        )
    return value


EVIDENCE_LOGS = {"events": "learning events", "quiz_attempts": "the quiz log"}  # how the transcripts line names them


def people_named_since(stream_name: str, *logs: NorthpassStream) -> Callable[[datetime, int], Evidence]:
    """Evidence from the activity logs: the `person_id` of every record each log has from `since` on, read at the
    log's incremental cost whether or not the log's own stream is selected, and at most `max_pages` pages in all.
    `people` is None when a log is refused (403). A log that cannot be read to its end fails `stream_name` with a
    message naming it as evidence."""

    def named(since: datetime, max_pages: int) -> Evidence:
        evidence = Evidence(set())
        people: Set[Any] = set()
        for log in logs:
            label = EVIDENCE_LOGS.get(log.name, log.name)
            budget = PageBudget(max_pages - sum(evidence.pages.values()))
            try:
                people.update(record.get("person_id") for record in log.read_list(since, budget))
            except Refused:
                return Evidence(None)
            except AirbyteTracedException as exc:
                message = (
                    f"Stream {stream_name}: could not read its evidence, the {log.name} log since "
                    f"{format_timestamp(since)}, so no transcript was chosen and its state is kept: "
                    f"{exc.message or exc}"
                )
                raise failure(message, exc.failure_type or FailureType.system_error) from exc
            evidence.pages[label] = budget.read
            if budget.exhausted:
                evidence.cut_short.append(label)
        people.discard(None)
        evidence.people = people
        return evidence

    return named


def transcripts_plan(
    stream_name: str,
    parent_key: str,
    sync_id: Optional[int],
    stream_state: Mapping[str, Any],
    context: SyncContext,
    evidence: Callable[[datetime, int], Evidence],
    message_repository: MessageRepository,
    state_manager: ConnectorStateManager,
    logger: logging.Logger,
) -> ReadPlan:
    """How incremental transcripts read in this sync: the people this module's rule chooses, under the state that
    remembers the rule's place (`TranscriptCursor`, also the resume checkpoint of a retried attempt)."""
    run = StreamRun()
    cursor = TranscriptCursor(
        stream_name,
        None,
        sync_id,
        stream_state,
        context.config.transcripts_reread_within_syncs,
        context.clock,
        lambda: run.refused,
        message_repository,
        state_manager,
        logger,
        parent_key=parent_key,
    )
    people = PeopleWithEvidence(cursor.since, cursor.sweep, evidence, logger, stream_name)
    return ReadPlan(cursor=cursor, checkpoint=cursor, parents=people, run=run)

"""Deterministic fake Northpass dataset.

Everything here is derived from a seed with :class:`random.Random` and
:mod:`hashlib`, so two datasets built with the same options are identical
(ids, names, timestamps, enrollments...).

Resources are stored in their raw JSON:API shape
(``{"id", "type", "attributes", "relationships"?, "links"?}``), exactly as the
sandbox serves them. :meth:`Dataset.expected_records` turns them into the
record shape the connector is expected to emit.

Resource ``links`` point to ``https://api.northpass.com`` (like the real API
would); they are plain data and never followed. Paging links are built by the
server from its own base URL.
"""

from __future__ import annotations

import copy
import hashlib
import random
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from .clock import SandboxClock

Resource = dict[str, Any]

RESOURCE_LINK_BASE = "https://api.northpass.com/v2"

# Streams (connector names) whose resources carry ``updated_at``.
UPDATED_AT_STREAMS: tuple[str, ...] = (
    "people",
    "courses",
    "groups",
    "learning_paths",
    "categories",
)
TOP_LEVEL_STREAMS: tuple[str, ...] = (
    "people",
    "courses",
    "groups",
    "learning_paths",
    "categories",
    "quizzes",
)
# child stream -> (parent stream, parent id field in connector records)
CHILD_STREAMS: dict[str, tuple[str, str]] = {
    "course_enrollments": ("courses", "course_id"),
    "course_activities": ("courses", "course_id"),
    "group_memberships": ("groups", "group_id"),
    "learning_path_enrollments": ("learning_paths", "learning_path_id"),
    "quiz_attempt_answers": ("quiz_attempts", "quiz_attempt_id"),
    "transcripts": ("people", "person_id"),
}
# Streams whose records belong to a person, each with its `person_id` column: from the parent (transcripts), the
# `person` relationship (memberships, events, quiz attempts), or the enrollment's own `person_id` attribute, the
# relationship standing in when the attribute is missing.
PERSON_STREAMS: tuple[str, ...] = (
    "course_enrollments",
    "group_memberships",
    "learning_path_enrollments",
    "events",
    "quiz_attempts",
    "transcripts",
)
# Learning activity (append-only logs): stream -> the record column the connector's cursor is on.
ACTIVITY_STREAMS: dict[str, str] = {
    "events": "created_at",
    "quiz_attempts": "webhook_created_at",
    "quiz_attempt_answers": "webhook_created_at",
}
ALL_STREAMS: tuple[str, ...] = (
    "people",
    "courses",
    "course_enrollments",
    "course_activities",
    "groups",
    "group_memberships",
    "learning_paths",
    "learning_path_enrollments",
    "categories",
    "quizzes",
    "events",
    "quiz_attempts",
    "quiz_attempt_answers",
    "transcripts",
    "course_properties",
)
# Transcripts and course properties (issue 16), among ALL_STREAMS.
TRANSCRIPT_STREAMS: tuple[str, ...] = ("transcripts", "course_properties")
TRANSCRIPT_PRIMARY_KEYS: dict[str, tuple[str, ...]] = {"transcripts": ("person_id", "id"), "course_properties": ("id",)}
# Transcript changes between syncs: those the connector can see evidence of elsewhere, and those it cannot.
EVIDENCE_KINDS: tuple[str, ...] = ("person_updated", "event", "quiz_attempt")
SILENT_KINDS: tuple[str, ...] = ("admin_enroll", "certificate_extended")
# Transcript sizes of the people with generation index 1 and 2: two pages at limit 100, the second one exactly full.
HEAVY_TRANSCRIPTS: tuple[int, ...] = (150, 200)
DROPPED_ATTRIBUTES: frozenset[str] = frozenset({"invite_token"})
# The connector's primary key of each stream: a child id is unique only within its parent.
PRIMARY_KEYS: dict[str, tuple[str, ...]] = {
    stream: (CHILD_STREAMS[stream][1], "id") if stream in CHILD_STREAMS else ("id",) for stream in ALL_STREAMS
}

FIRST_NAMES: tuple[str, ...] = (
    "Alice",
    "Bob",
    "Zoë 🚀",
    "José",
    "François",
    "Łukasz",
    "Søren",
    "山田",
    "李",
    "Мария",
    "محمد",
    "שרה",
    "Renée",
    "Dženana",
    "ณัฐ",
    "👩‍💻",
    "Anne-Marie",
    'Jean "JJ"',
    "Back\\slash",
    "  Padded  ",
    "null",
    "Ngọc",
    "Ἀλέξανδρος",
)
LAST_NAMES: tuple[str, ...] = (
    "Åström",
    "Smith",
    "O'Brien",
    "Müller",
    "García",
    "Nguyễn",
    "太郎",
    "Ivanova",
    "الفارسي",
    "כהן",
    "van der Berg",
    "Ørsted",
    "D'Angelo",
    "<script>alert(1)</script>",
    "Żółć",
    "🍕",
    "Lee",
    "Wolfeschlegelsteinhausenbergerdorff" * 3,
)
COURSE_WORDS: tuple[str, ...] = (
    "Onboarding",
    "Sécurité",
    "営業",
    "Compliance 🚀",
    "Data & Privacy",
    "Leadership",
    "Kundenservice",
    "Продажи",
    "أساسيات",
    "Product 101",
    "<Advanced>",
    'Quality "QA"',
)
CATEGORY_NAMES: tuple[str, ...] = (
    "Sales",
    "Sécurité",
    "営業トレーニング",
    "Onboarding 🚀",
    "HR & People",
    "Compliance",
    "Engineering",
    "דרכי עבודה",
)


def fmt_ts(value: datetime) -> str:
    """Format a datetime as UTC ISO-8601 with second precision (``...Z``)."""
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_ts(value: str) -> datetime:
    """Parse an ISO-8601 timestamp; naive values are taken as UTC.

    Raises ValueError on garbage.
    """
    text = value.strip()
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"  # Python 3.10's fromisoformat does not read "Z"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def _derived_uuid(*parts: object) -> str:
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def _rand_uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _rand_time(rng: random.Random, start: datetime, end: datetime) -> datetime:
    span = int((end - start).total_seconds())
    return start + timedelta(seconds=rng.randint(0, max(span, 0)))


def _pool(rng: random.Random, size: int, start: datetime, end: datetime) -> list[str]:
    """A small set of timestamps, so that many records share ``updated_at``."""
    return sorted({fmt_ts(_rand_time(rng, start, end)) for _ in range(size)})


def _hex(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(n))


CREATED_START = datetime(2020, 1, 1, tzinfo=timezone.utc)
CREATED_END = datetime(2022, 6, 30, tzinfo=timezone.utc)
UPDATED_START = datetime(2023, 1, 1, tzinfo=timezone.utc)
UPDATED_END = datetime(2024, 6, 30, tzinfo=timezone.utc)
ACTIVITY_START = datetime(2024, 1, 1, tzinfo=timezone.utc)
ACTIVITY_END = datetime(2024, 6, 30, tzinfo=timezone.utc)
WEBHOOK_RETENTION = timedelta(days=90)  # the webhook log keeps about three months
QUIZ_COMPLETED = "quiz_completed_events"
# The connector's id of an event (the API sends none): a UUIDv5 of these fields. Same namespace as the connector.
EVENT_ID_NAMESPACE = uuid.UUID("7d0b6f5e-4a52-5c1e-9a57-3e1f3c1b9e44")
EVENT_ID_FIELDS = ("type", "person_id", "activity_id", "course_id", "created_at")
TIE_CLUSTER = 160  # events sharing one created_at: more than a page of 100, so the cluster spans a page boundary


@dataclass
class Dataset:
    """All resources of one fake Northpass account (raw JSON:API resources).

    Lists are kept sorted by id (the API's default order). Readers should take
    :meth:`snapshot` / use :meth:`collection`; :meth:`mutate` replaces resource
    dicts instead of editing them in place, under :attr:`lock`.
    """

    seed: int
    people: list[Resource] = field(default_factory=list)
    courses: list[Resource] = field(default_factory=list)
    course_enrollments: dict[str, list[Resource]] = field(default_factory=dict)
    course_activities: dict[str, list[Resource]] = field(default_factory=dict)
    groups: list[Resource] = field(default_factory=list)
    group_memberships: dict[str, list[Resource]] = field(default_factory=dict)
    learning_paths: list[Resource] = field(default_factory=list)
    learning_path_enrollments: dict[str, list[Resource]] = field(default_factory=dict)
    categories: list[Resource] = field(default_factory=list)
    quizzes: list[Resource] = field(default_factory=list)
    # Learning activity. Events have no id and are kept in the order they happened (the log's natural order);
    # webhook messages are kept by message id; answers by attempt uuid (an attempt with none answers 404).
    events: list[Resource] = field(default_factory=list)
    webhooks: list[Resource] = field(default_factory=list)
    quiz_attempt_answers: dict[str, list[Resource]] = field(default_factory=dict)
    # Every person's transcript items, in the order served ([] for a person without any); one item per course.
    transcripts: dict[str, list[Resource]] = field(default_factory=dict)
    course_properties: list[Resource] = field(default_factory=list)
    # "Now" for the webhook log's retention: messages created more than 90 days before it are gone.
    activity_now: datetime = ACTIVITY_END + timedelta(days=1)
    activity_mutations: int = 0
    webhook_urls: int = 2  # subscribed URLs: each quiz completion is in the log once per URL
    # Course ids in generation order (index 0 = no enrollments, 1 = 100, ...).
    course_ids_by_index: list[str] = field(default_factory=list)
    group_ids_by_index: list[str] = field(default_factory=list)
    learning_path_ids_by_index: list[str] = field(default_factory=list)
    person_ids_by_index: list[str] = field(default_factory=list)
    heavy_transcript_people: list[str] = field(default_factory=list)  # see HEAVY_TRANSCRIPTS
    mutations: int = 0
    transcript_changes: int = 0
    # The account's "now"; generate_dataset starts it a day after the newest generated timestamp.
    clock: SandboxClock = field(
        default_factory=lambda: SandboxClock(ACTIVITY_END + timedelta(days=1)), repr=False, compare=False
    )
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)

    # ----------------------------------------------------------------- access
    def collection(self, stream: str, parent_id: str | None = None) -> list[Resource] | None:
        """Resources of a stream (a copy of the list), or None if the parent
        is unknown. Child streams need ``parent_id``."""
        with self.lock:
            if stream == "quiz_attempt_answers":
                if parent_id not in self.quiz_attempt_answers:
                    return None
                return list(self.quiz_attempt_answers[parent_id])
            if stream == "webhooks":
                return self.visible_webhooks()
            if stream == "transcripts":
                if parent_id not in self.transcripts:
                    return None
                return list(self.transcripts[parent_id])
            if stream in CHILD_STREAMS:
                parents: list[Resource] = getattr(self, CHILD_STREAMS[stream][0])
                if parent_id is None or not any(p["id"] == parent_id for p in parents):
                    return None
                children: dict[str, list[Resource]] = getattr(self, stream)
                return list(children.get(parent_id, []))
            return list(getattr(self, stream))

    def to_json(self) -> dict[str, Any]:
        """The whole dataset as raw JSON:API resources (deep copy)."""
        with self.lock:
            return copy.deepcopy(
                {
                    "people": self.people,
                    "courses": self.courses,
                    "course_enrollments": self.course_enrollments,
                    "course_activities": self.course_activities,
                    "groups": self.groups,
                    "group_memberships": self.group_memberships,
                    "learning_paths": self.learning_paths,
                    "learning_path_enrollments": self.learning_path_enrollments,
                    "categories": self.categories,
                    "quizzes": self.quizzes,
                    "events": self.events,
                    "webhooks": self.webhooks,
                    "quiz_attempt_answers": self.quiz_attempt_answers,
                    "transcripts": self.transcripts,
                    "course_properties": self.course_properties,
                }
            )

    def counts(self) -> dict[str, int]:
        """Number of expected records per stream."""
        return {s: len(self.expected_records(s)) for s in ALL_STREAMS}

    def expected_records(self, stream: str) -> list[dict[str, Any]]:
        """Records the connector should emit for ``stream``.

        Shape: ``{"id", "type", **attributes (minus invite_token),
        "relationships"?, "links"?}``; child streams also get their parent id
        (``course_id``, ``group_id``, ``learning_path_id``) from the parent,
        even where the API omitted it, and the records of ``PERSON_STREAMS`` a ``person_id``. Top-level streams are ordered by id;
        child streams by parent id, then id. ``transcripts``: per person (by id), their items in the order
        served, each with ``person_id`` (the connector's ``read_at`` is not known here); ``course_properties``:
        id, type, name and the ``properties`` object, by course id.
        """
        if stream not in ALL_STREAMS + TRANSCRIPT_STREAMS:
            raise ValueError(f"unknown stream {stream!r}; known: {ALL_STREAMS + TRANSCRIPT_STREAMS}")
        with self.lock:
            if stream == "transcripts":
                items: list[dict[str, Any]] = []
                for person in self.people:
                    for res in self.transcripts.get(person["id"], []):
                        record = to_record(res)
                        record["person_id"] = person["id"]
                        items.append(record)
                return items
            if stream == "course_properties":
                return [to_record(r) for r in self.course_properties]
            if stream == "events":
                return [event_record(e) for e in self.events]
            if stream == "quiz_attempts":
                return self.expected_quiz_attempts()
            if stream == "quiz_attempt_answers":
                answers: list[dict[str, Any]] = []
                for attempt in self.expected_quiz_attempts():
                    for res in self.quiz_attempt_answers.get(attempt["id"], []):
                        record = to_record(res)
                        record["question_id"] = _related_id(res, "question")
                        record["quiz_attempt_id"] = attempt["id"]
                        record["webhook_created_at"] = attempt["webhook_created_at"]
                        answers.append(record)
                return answers
            if stream in CHILD_STREAMS:
                parent_stream, parent_field = CHILD_STREAMS[stream]
                children: dict[str, list[Resource]] = getattr(self, stream)
                out: list[dict[str, Any]] = []
                for parent in getattr(self, parent_stream):
                    for res in children.get(parent["id"], []):
                        record = to_record(res)
                        record[parent_field] = parent["id"]
                        if stream in PERSON_STREAMS and record.get("person_id") is None:
                            record["person_id"] = _related_id(res, "person")
                        out.append(record)
                return out
            return [to_record(r) for r in getattr(self, stream)]

    def visible_webhooks(self) -> list[Resource]:
        """The webhook log as the API serves it: the last 90 days before ``activity_now``, by message id."""
        with self.lock:
            oldest = self.activity_now - WEBHOOK_RETENTION
            return [m for m in self.webhooks if parse_ts(m["attributes"]["created_at"]) >= oldest]

    def expected_quiz_attempts(self) -> list[dict[str, Any]]:
        """One record per distinct attempt of the visible log: quiz_completed_events messages that carry a
        quiz_attempt_uuid; of repeated deliveries the first in the API's order (message id) wins."""
        out: dict[str, dict[str, Any]] = {}
        for message in self.visible_webhooks():
            attrs = message["attributes"]
            event = attrs["payload"]["data"]
            uid = event.get("attributes", {}).get("quiz_attempt_uuid")
            if attrs["type"] != QUIZ_COMPLETED or not uid or uid in out:
                continue
            record = to_record(event)
            record["event_id"] = event.get("id")
            record["id"] = uid
            for source, column in (
                ("type", "webhook_type"),
                ("created_at", "webhook_created_at"),
                ("received_at", "webhook_received_at"),
                ("url", "webhook_url"),
                ("attempt_left", "webhook_attempt_left"),
            ):
                record[column] = attrs.get(source)
            record["webhook_id"] = message["id"]
            for rel, column in (
                ("quiz", "quiz_id"),
                ("course", "course_id"),
                ("person", "person_id"),
                ("activity", "activity_id"),
            ):
                record[column] = _related_id(event, rel)
            out[uid] = record
        return list(out.values())

    def add_activity(
        self,
        events: int = 300,
        tie: int = TIE_CLUSTER,
        quiz_attempts: int = 10,
        now: str | None = None,
        after: str | None = None,
    ) -> dict[str, Any]:
        """Learning activity after the latest so far (deterministic from seed + call count).

        ``tie`` of the new events share the created_at of the newest event already in the log (so an
        incremental sync must emit them although they are not after its cursor); the others, and the new
        quiz attempts, happen over the day after it (or after ``after``). ``now`` moves the webhook log's
        retention window (default: a day after the newest activity).
        """
        with self.lock:
            self.activity_mutations += 1
            rng = random.Random(f"{self.seed}:activity:{self.activity_mutations}")
            latest = max(
                [parse_ts(e["attributes"]["created_at"]) for e in self.events]
                + [parse_ts(m["attributes"]["created_at"]) for m in self.webhooks]
                + [ACTIVITY_START]
            )
            if after is not None:
                latest = parse_ts(after)
            newest_event = max((e["attributes"]["created_at"] for e in self.events), key=parse_ts, default=None)
            added = _events(rng, self, events, latest, latest + timedelta(days=1), tie, newest_event)
            self.events.extend(added)
            self.events.sort(key=lambda e: parse_ts(e["attributes"]["created_at"]))
            attempts = _quiz_attempts(rng, self, quiz_attempts, latest, latest + timedelta(days=1))
            self.activity_now = parse_ts(now) if now else latest + timedelta(days=2)
            return {"events": len(added), "quiz_attempts": attempts, "now": fmt_ts(self.activity_now)}

    def max_updated_at(self) -> datetime:
        with self.lock:
            stamps = [parse_ts(r["attributes"]["updated_at"]) for s in UPDATED_AT_STREAMS for r in getattr(self, s)]
        return max(stamps) if stamps else UPDATED_END

    # --------------------------------------------------------------- mutation
    def mutate(
        self,
        updated_at: str | None = None,
        update: int = 5,
        add: int = 3,
        streams: list[str] | None = None,
    ) -> dict[str, dict[str, list[str]]]:
        """Change data between two syncs (deterministic from seed + call count).

        For each stream (default: all streams with ``updated_at``) update
        ``update`` existing records (new name, ``updated_at`` set) and add
        ``add`` new records, all with the SAME ``updated_at`` (default: one day
        after the latest existing ``updated_at`` of any stream). New parents
        have no children (their child endpoints answer 404); new people have an empty transcript, new
        courses empty custom properties, and a renamed course's properties carry its new name.
        """
        chosen = list(streams) if streams is not None else list(UPDATED_AT_STREAMS)
        for s in chosen:
            if s not in UPDATED_AT_STREAMS:
                raise ValueError(f"stream {s!r} cannot be mutated; choose from {UPDATED_AT_STREAMS}")
        if update < 0 or add < 0:
            raise ValueError("update and add must be >= 0")
        with self.lock:
            self.mutations += 1
            n = self.mutations
            if updated_at is None:
                stamp = fmt_ts(self.max_updated_at() + timedelta(days=1))
            else:
                stamp = fmt_ts(parse_ts(updated_at))
            rng = random.Random(f"{self.seed}:mutate:{n}")
            result: dict[str, dict[str, list[str]]] = {}
            for s in chosen:
                items: list[Resource] = getattr(self, s)
                k = min(update, len(items))
                picked = sorted(rng.sample(range(len(items)), k))
                updated_ids: list[str] = []
                for i in picked:
                    res = copy.deepcopy(items[i])
                    attrs = res["attributes"]
                    attrs["updated_at"] = stamp
                    if s == "people":
                        attrs["last_name"] = f"{attrs['last_name']} (v{n})"
                        attrs["full_name"] = f"{attrs['first_name']} {attrs['last_name']}"
                        attrs["name"] = attrs["full_name"]
                    else:
                        attrs["name"] = f"{attrs['name']} (v{n})"
                    items[i] = res
                    updated_ids.append(res["id"])
                added_ids: list[str] = []
                for j in range(add):
                    res = _new_resource(s, rng, stamp, f"m{n}-{j}")
                    items.append(res)
                    added_ids.append(res["id"])
                    if s == "people":
                        self.transcripts[res["id"]] = []
                items.sort(key=lambda r: r["id"])
                result[s] = {"updated": updated_ids, "added": added_ids}
            if "courses" in chosen:
                self._follow_courses()
            return result

    def _follow_courses(self) -> None:
        """Course properties after courses were renamed or added: one item per course, by course id."""
        known = {item["id"]: item for item in self.course_properties}
        following: list[Resource] = []
        for course in self.courses:
            name = course["attributes"]["name"]
            item = known.get(course["id"])
            if item is None:
                item = {"id": course["id"], "type": "course_properties", "attributes": {"name": name, "properties": {}}}
            elif item["attributes"]["name"] != name:
                item = copy.deepcopy(item)
                item["attributes"]["name"] = name
            following.append(item)
        self.course_properties = following

    def newest_timestamp(self) -> datetime:
        """The latest instant recorded anywhere in the data, certificate expiry excluded (it lies ahead)."""
        with self.lock:
            resources: list[Resource] = [*self.people, *self.courses, *self.groups, *self.learning_paths]
            resources += [*self.categories, *self.quizzes, *self.events, *self.webhooks]
            for children in (
                self.course_enrollments,
                self.course_activities,
                self.group_memberships,
                self.learning_path_enrollments,
                self.quiz_attempt_answers,
                self.transcripts,
            ):
                for listed in children.values():
                    resources += listed
            stamps = [
                value
                for res in resources
                for key, value in res.get("attributes", {}).items()
                if isinstance(value, str) and key.endswith(("_at", "_on")) and key != "expires_at"
            ]
            if not stamps:
                return ACTIVITY_START
            # Every stamp is YYYY-MM-DDTHH:MM:SS then an optional fraction: the seconds order as text, so only
            # the stamps of the newest second need parsing.
            second = max(stamp[:19] for stamp in stamps)
            return max(parse_ts(stamp) for stamp in stamps if stamp.startswith(second))

    # ------------------------------------------------------------ transcripts
    def change_transcripts(
        self,
        evidence: int = 0,
        silent: int = 0,
        at: str | None = None,
        kinds: list[str] | None = None,
    ) -> dict[str, Any]:
        """Change transcripts between two syncs (people picked deterministically from seed + call count).

        ``evidence`` changes cycle through EVIDENCE_KINDS, each leaving a trace the connector can read:
        ``person_updated`` (the person's updated_at := at; an unfinished item of theirs completes at ``at``
        with a score, or a completed one is retaken), ``event`` (a learner_viewed_activity_events event of
        the person at ``at``; an item of theirs moves one step: enrolled -> in_progress started at ``at``,
        in_progress -> completed), ``quiz_attempt`` (a quiz_completed_events webhook message per subscribed
        URL, created at ``at``, without answers; the score of one of their items becomes the attempt's).
        ``silent`` changes cycle through SILENT_KINDS and change nothing but the transcript:
        ``admin_enroll`` (a new "event" item enrolled at ``at``, for anyone) and ``certificate_extended``
        (a completed item's expires_at a year later). ``kinds`` restricts the cycles to the kinds named.
        Each change picks a different person with items. ``at`` defaults to the clock's now, in whole
        seconds. Returns ``{"evidence": {kind: [person ids]}, "silent": {kind: [person ids]}, "at": at,
        "items": {person id: [changed or added item ids]}}``.
        """
        chosen = tuple(kinds) if kinds is not None else EVIDENCE_KINDS + SILENT_KINDS
        unknown = set(chosen) - set(EVIDENCE_KINDS + SILENT_KINDS)
        if unknown:
            raise ValueError(f"unknown change kinds {sorted(unknown)}; known: {EVIDENCE_KINDS + SILENT_KINDS}")
        if evidence < 0 or silent < 0:
            raise ValueError("evidence and silent must be >= 0")
        evidence_kinds = [k for k in EVIDENCE_KINDS if k in chosen]
        silent_kinds = [k for k in SILENT_KINDS if k in chosen]
        if (evidence and not evidence_kinds) or (silent and not silent_kinds):
            raise ValueError(f"kinds {list(chosen)} leave no kind for the changes asked for")
        plan = [evidence_kinds[i % len(evidence_kinds)] for i in range(evidence)]
        plan += [silent_kinds[i % len(silent_kinds)] for i in range(silent)]
        with self.lock:
            self.transcript_changes += 1
            stamp = fmt_ts(parse_ts(at) if at is not None else self.clock.now())
            change = _TranscriptChange(self, random.Random(f"{self.seed}:transcripts:{self.transcript_changes}"), stamp)
            result: dict[str, Any] = {
                "evidence": {k: [] for k in EVIDENCE_KINDS},
                "silent": {k: [] for k in SILENT_KINDS},
                "at": stamp,
                "items": {},
            }
            for kind in plan:
                person_id, item_ids = change.apply(kind)
                result["evidence" if kind in EVIDENCE_KINDS else "silent"][kind].append(person_id)
                result["items"][person_id] = item_ids
            change.finish()
            return result


def _related_id(res: Resource, name: str) -> Any:
    data = (res.get("relationships", {}).get(name) or {}).get("data")
    return data.get("id") if isinstance(data, dict) else None


def event_record(res: Resource) -> dict[str, Any]:
    """An event in the connector's record shape: relationship ids hoisted, and the id it derives."""
    record = to_record(res)
    for rel in ("person", "activity", "course"):
        record[f"{rel}_id"] = _related_id(res, rel)
    parts = []
    for name in EVENT_ID_FIELDS:
        value = record.get(name)
        if name == "created_at":
            parts.append(parse_ts(str(value)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
        else:
            parts.append("" if value is None else str(value))
    record["id"] = str(uuid.uuid5(EVENT_ID_NAMESPACE, "\x1f".join(parts)))
    return record


def to_record(res: Resource) -> dict[str, Any]:
    """A raw JSON:API resource in the connector's record shape."""
    record: dict[str, Any] = {"id": res.get("id"), "type": res["type"]}
    for key, value in res.get("attributes", {}).items():
        if key not in DROPPED_ATTRIBUTES:
            record[key] = copy.deepcopy(value)
    if "relationships" in res:
        record["relationships"] = copy.deepcopy(res["relationships"])
    if "links" in res:
        record["links"] = copy.deepcopy(res["links"])
    return record


# --------------------------------------------------------------- generators
def _person(rng: random.Random, index: int, school_id: str, pool: list[str]) -> Resource:
    pid = _rand_uuid(rng)
    if index == 0:
        first, last = "Zoë 🚀", "Åström"
    else:
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    created = _rand_time(rng, CREATED_START, CREATED_END)
    status = rng.choices(["registered", "invited", "pending"], [80, 15, 5])[0]
    tag = f"+{_hex(rng, 4)}" if rng.random() < 0.1 else ""
    return {
        "id": pid,
        "type": "people",
        "attributes": {
            "name": f"{first} {last}",
            "email": f"learner{index}{tag}@example.com",
            "first_name": first,
            "last_name": last,
            "full_name": f"{first} {last}",
            "sso_uid": None if rng.random() < 0.5 else f"sso-{_hex(rng, 12)}",
            "created_at": fmt_ts(created),
            "updated_at": rng.choice(pool),
            "activated_at": (
                fmt_ts(created + timedelta(hours=rng.randint(0, 240)))
                if status == "registered" and rng.random() < 0.9
                else None
            ),
            "disabled": rng.random() < 0.05,
            "unsubscribed": rng.random() < 0.1,
            "registration_status": status,
            "custom_avatar_url": (
                f"https://cdn.example.com/avatars/{_hex(rng, 16)}.png" if rng.random() < 0.3 else None
            ),
            "invite_token": None if status == "registered" else _hex(rng, 32),
        },
        "relationships": {
            "school": {"data": {"type": "schools", "id": school_id}},
            "groups": {"data": []},
            "partnerships": {"data": []},
        },
        "links": {
            "self": f"{RESOURCE_LINK_BASE}/people/{pid}",
            "teaching": f"{RESOURCE_LINK_BASE}/people/{pid}/teaching",
        },
    }


def _html(rng: random.Random, target_bytes: int) -> str:
    paragraphs = [
        "<p>Welcome to the course — bienvenue, ようこそ, أهلا 🚀.</p>",
        ("<p>Learn about <strong>data &amp; privacy</strong> and <em>&lt;safe&gt;</em> practices.</p>"),
        "<ul><li>Module one</li><li>Módulo dos</li><li>第三章</li></ul>",
        '<p><a href="https://example.com/x?a=1&amp;b=2">A link</a> with "quotes".</p>',
        "<h2>Résumé</h2><p>Lorem ipsum dolor sit amet, consectetur adipiscing.</p>",
    ]
    parts: list[str] = []
    size = 0
    while size < target_bytes:
        chunk = rng.choice(paragraphs)
        parts.append(chunk)
        size += len(chunk.encode())
    return "<div>" + "\n".join(parts) + "</div>"


def _course(
    rng: random.Random,
    index: int,
    pool: list[str],
    category_ids: list[str],
) -> Resource:
    cid = _rand_uuid(rng)
    name = f"{rng.choice(COURSE_WORDS)} {index}"
    large = index % 10 == 5
    k = rng.randint(0, min(3, len(category_ids)))
    cats = rng.sample(category_ids, k)
    return {
        "id": cid,
        "type": "courses",
        "attributes": {
            "name": name,
            "status": rng.choices(["live", "draft", "archived"], [70, 20, 10])[0],
            "permalink": f"course-{index}-{cid[:8]}",
            "created_at": fmt_ts(_rand_time(rng, CREATED_START, CREATED_END)),
            "updated_at": rng.choice(pool),
            "list_image_url": (None if rng.random() < 0.3 else f"https://cdn.example.com/courses/{_hex(rng, 12)}.jpg"),
            "full_description": _html(rng, rng.randint(20_000, 60_000) if large else rng.randint(50, 600)),
            "short_description": (None if rng.random() < 0.3 else f"Short — {name} ✨"),
            "enrollments_count": 0,
            "unpublished_changes": rng.random() < 0.3,
            "credential_achievement_count": 0,
        },
        "relationships": {
            "categories": {"data": [{"type": "categories", "id": c} for c in cats]},
            "instructor_partnerships": {"data": []},
        },
        "links": {"self": f"{RESOURCE_LINK_BASE}/courses/{cid}"},
    }


def _enrollment(
    rng: random.Random,
    seed: int,
    kind: str,
    person_id: str,
    course_id: str | None,
) -> Resource:
    enrolled = _rand_time(rng, CREATED_END, UPDATED_END)
    attrs: dict[str, Any] = {"person_id": person_id}
    if course_id is not None:
        attrs["course_id"] = course_id
    attrs["progress"] = rng.choice([0, 0, 100, rng.randint(0, 100)])
    attrs["enrolled_at"] = fmt_ts(enrolled)
    attrs["last_active_on"] = None if rng.random() < 0.3 else fmt_ts(enrolled + timedelta(hours=rng.randint(0, 2000)))
    res: Resource = {
        # Derived from the person only: unique within one course, repeated
        # across courses (like the real API's ids).
        "id": _derived_uuid(seed, kind, person_id),
        "type": "enrollments",
        "attributes": attrs,
    }
    if kind == "course-enrollment":
        res["relationships"] = {"person": {"data": {"type": "people", "id": person_id}}}
    return res


def _new_resource(stream: str, rng: random.Random, stamp: str, tag: str) -> Resource:
    """A record added by :meth:`Dataset.mutate`."""
    rid = _rand_uuid(rng)
    if stream == "people":
        first, last = rng.choice(FIRST_NAMES), f"Newcomer {tag}"
        return {
            "id": rid,
            "type": "people",
            "attributes": {
                "name": f"{first} {last}",
                "email": f"new-{tag}@example.com",
                "first_name": first,
                "last_name": last,
                "full_name": f"{first} {last}",
                "sso_uid": None,
                "created_at": stamp,
                "updated_at": stamp,
                "activated_at": None,
                "disabled": False,
                "unsubscribed": False,
                "registration_status": "invited",
                "custom_avatar_url": None,
                "invite_token": _hex(rng, 32),
            },
            "relationships": {
                "school": {"data": {"type": "schools", "id": _derived_uuid("school")}},
                "groups": {"data": []},
                "partnerships": {"data": []},
            },
            "links": {
                "self": f"{RESOURCE_LINK_BASE}/people/{rid}",
                "teaching": f"{RESOURCE_LINK_BASE}/people/{rid}/teaching",
            },
        }
    if stream == "courses":
        return {
            "id": rid,
            "type": "courses",
            "attributes": {
                "name": f"New course {tag}",
                "status": "draft",
                "permalink": f"new-course-{tag}",
                "created_at": stamp,
                "updated_at": stamp,
                "list_image_url": None,
                "full_description": "<p>New ✨</p>",
                "short_description": None,
                "enrollments_count": 0,
                "unpublished_changes": True,
                "credential_achievement_count": 0,
            },
            "relationships": {
                "categories": {"data": []},
                "instructor_partnerships": {"data": []},
            },
            "links": {"self": f"{RESOURCE_LINK_BASE}/courses/{rid}"},
        }
    if stream == "groups":
        return {
            "id": rid,
            "type": "groups",
            "attributes": {
                "name": f"New group {tag}",
                "memberships_count": 0,
                "group_enrollment_link": None,
                "created_at": stamp,
                "updated_at": stamp,
            },
        }
    if stream == "learning_paths":
        return {
            "id": rid,
            "type": "learning_paths",
            "attributes": {
                "name": f"New path {tag}",
                "description": None,
                "navigation_mode": "free",
                "picture_url": None,
                "created_at": stamp,
                "updated_at": stamp,
            },
        }
    if stream == "categories":
        return {
            "id": rid,
            "type": "categories",
            "attributes": {
                "name": f"New category {tag}",
                "created_at": stamp,
                "updated_at": stamp,
            },
        }
    raise ValueError(f"cannot add records to {stream!r}")


EVENT_KINDS: tuple[tuple[str, str], ...] = (
    ("learner_viewed_activity_events", "activity"),
    ("learner_viewed_activity_events", "activity"),
    ("learner_completed_activity_events", "activity"),
    ("learner_completed_course_events", "course"),
)


def _activity_time(rng: random.Random, start: datetime, end: datetime) -> str:
    """A timestamp of the activity logs: whole seconds, or with milliseconds one time in four."""
    moment = _rand_time(rng, start, end)
    if rng.random() < 0.25:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{rng.randint(0, 999):03d}Z"
    return fmt_ts(moment)


def _events(
    rng: random.Random,
    ds: Dataset,
    count: int,
    start: datetime,
    end: datetime,
    tie: int,
    tie_at: str | None,
) -> list[Resource]:
    """``count`` events (no ids, like the API's), ``tie`` of them at ``tie_at``; no two are identical."""
    people = [p["id"] for p in ds.people]
    lessons = [(cid, a["id"]) for cid, acts in ds.course_activities.items() for a in acts]
    if not people or not lessons:
        return []
    seen = {event_record(e)["id"] for e in ds.events}
    # Events at one instant are distinct only by kind, person and target: a small dataset cannot hold a large
    # tie cluster, and asking for more than it holds would loop forever.
    targets = {"activity": len({a for _, a in lessons}), "course": len({c for c, _ in lessons})}
    capacity = sum(len(people) * targets[target] for _, target in set(EVENT_KINDS))
    taken = sum(1 for e in ds.events if e["attributes"]["created_at"] == tie_at)
    tie = min(tie, capacity - taken)
    out: list[Resource] = []
    while len(out) < count:
        kind, target = rng.choice(EVENT_KINDS)
        course_id, activity_id = rng.choice(lessons)
        at = tie_at if len(out) < tie and tie_at else _activity_time(rng, start, end)
        relationships = {"person": {"data": {"type": "people", "id": rng.choice(people)}}}
        if target == "activity":
            relationships["activity"] = {"data": {"type": "activities", "id": activity_id}}
        else:
            relationships["course"] = {"data": {"type": "courses", "id": course_id}}
        event: Resource = {"type": kind, "attributes": {"created_at": at}, "relationships": relationships}
        key = event_record(event)["id"]
        if key not in seen:  # two identical events would share the connector's id
            seen.add(key)
            out.append(event)
    return out


def _quiz_attempts(rng: random.Random, ds: Dataset, count: int, start: datetime, end: datetime) -> list[str]:
    """``count`` completed attempts in the webhook log, each delivered once per subscribed URL, with answers
    (none for one attempt in five); plus messages of other types, and a quiz_completed_events message without
    a quiz_attempt_uuid now and then. Returns the new attempt uuids."""
    people = [p["id"] for p in ds.people]
    lessons = [(cid, a["id"]) for cid, acts in ds.course_activities.items() for a in acts]
    quizzes = [q["id"] for q in ds.quizzes]
    if not people or not lessons or not quizzes:
        return []
    uuids: list[str] = []
    for i in range(count):
        completed = _rand_time(rng, start, end)
        created = fmt_ts(completed + timedelta(seconds=rng.randint(0, 3)))
        course_id, activity_id = rng.choice(lessons)
        uid = _rand_uuid(rng)
        person_id = rng.choice(people)
        event: Resource = {
            "id": _rand_uuid(rng),
            "type": QUIZ_COMPLETED,
            "attributes": {
                "quiz_attempt_uuid": uid,
                "value": rng.choice([0, 35.5, 50, 80, 100, rng.randint(0, 100)]),
                "minimum_passing_score": 70,
                "attempts_remaining": rng.choice([None, 0, 1, 2]),
                "created_at": fmt_ts(completed),
            },
            "relationships": {
                "quiz": {"data": {"type": "quizzes", "id": rng.choice(quizzes)}},
                "course": {"data": {"type": "courses", "id": course_id}},
                "person": {"data": {"type": "people", "id": person_id}},
                "activity": {"data": {"type": "activities", "id": activity_id}},
            },
        }
        for url_index in range(ds.webhook_urls):
            ds.webhooks.append(_message(rng, QUIZ_COMPLETED, created, url_index, event))
        uuids.append(uid)
        answers: list[Resource] = []
        if i % 5 != 0:
            for _ in range(rng.randint(2, 6)):
                answers.append(
                    {
                        "id": _rand_uuid(rng),
                        "type": "learner_answers",
                        "attributes": {
                            "value": rng.choice(["A", "B", "Paris", "42", "Ça va ✅"]),
                            "correct": rng.random() < 0.6,
                            "created_at": fmt_ts(completed - timedelta(seconds=rng.randint(5, 600))),
                        },
                        "relationships": {
                            "question": {"data": {"type": "questions/choose", "id": _rand_uuid(rng)}},
                            "quiz_attempt": {"data": {"type": "quiz_attempts", "id": uid}},
                        },
                    }
                )
        ds.quiz_attempt_answers[uid] = sorted(answers, key=lambda r: r["id"])
        if i % 4 == 1:  # another type, which filter[type][in] may let through
            other = {"id": _rand_uuid(rng), "type": "course_completed_events", "attributes": {"created_at": created}}
            other["relationships"] = {"person": {"data": {"type": "people", "id": person_id}}}
            ds.webhooks.append(_message(rng, "course_completed_events", created, 0, other))
        if i % 15 == 7:  # a payload without quiz_attempt_uuid: unusable
            broken = copy.deepcopy(event)
            del broken["attributes"]["quiz_attempt_uuid"]
            broken["id"] = _rand_uuid(rng)
            ds.webhooks.append(_message(rng, QUIZ_COMPLETED, created, 0, broken))
    ds.webhooks.sort(key=lambda m: m["id"])
    return uuids


def _message(rng: random.Random, kind: str, created: str, url_index: int, event: Resource) -> Resource:
    received = parse_ts(created) + timedelta(milliseconds=rng.randint(20, 4000) + 1000 * url_index)
    return {
        "id": _rand_uuid(rng),
        "type": "webhook",
        "attributes": {
            "type": kind,
            "created_at": created,
            "received_at": received.strftime("%Y-%m-%dT%H:%M:%S.") + f"{received.microsecond // 1000:03d}Z",
            "url": f"https://hooks.example.com/northpass/{url_index}",
            "attempt_left": rng.choice([3, 3, 2]),
            "payload": {"data": copy.deepcopy(event)},
        },
    }


# ------------------------------------------------------------ transcripts
TRANSCRIPT_ITEM = "transcript_items"
DEPARTMENTS: tuple[str, ...] = ("Sales", "Sécurité", "営業", "HR & People", "Engineering 🚀")
PROPERTY_TAGS: tuple[str, ...] = ("onboarding", "annual", "compliance", "🚀", "required")
CERTIFICATE_EXTENSION = timedelta(days=365)


def _progress_status(progress: int) -> str:
    if progress <= 0:
        return "enrolled"
    return "completed" if progress >= 100 else "in_progress"


def _transcript_item(
    rng: random.Random,
    seed: int,
    person_id: str,
    resource: tuple[str, str, str],
    progress: int,
    enrolled_at: str,
) -> Resource:
    """The transcript item of one enrollment; ``resource`` is (resource_type, resource_id, name)."""
    resource_type, resource_id, name = resource
    status = _progress_status(progress)
    enrolled = parse_ts(enrolled_at)
    started: datetime | None = None
    completed: datetime | None = None
    expires: datetime | None = None
    score: float | None = None
    # a completion imported from elsewhere carries no start
    if status != "enrolled" and not (status == "completed" and rng.random() < 0.1):
        started = enrolled + timedelta(minutes=rng.randint(0, 72 * 60))
    if status == "completed":
        completed = (started or enrolled) + timedelta(minutes=rng.randint(10, 1000 * 60))
        if rng.random() < 0.4:
            expires = completed + timedelta(days=rng.choice((365, 730)))
        if rng.random() < 0.6:
            score = rng.choice((100, rng.randint(0, 100), round(rng.uniform(40, 100), 1)))
    elif status == "in_progress" and rng.random() < 0.2:
        score = rng.randint(0, 100)
    return {
        "id": _derived_uuid(seed, "transcript-item", person_id, resource_type, resource_id),
        "type": TRANSCRIPT_ITEM,
        "attributes": {
            "resource_type": resource_type,
            "resource_id": resource_id,
            "name": name,
            "progress_status": status,
            "enrolled_at": enrolled_at,
            "started_at": fmt_ts(started) if started else None,
            "completed_at": fmt_ts(completed) if completed else None,
            "expires_at": fmt_ts(expires) if expires else None,
            "score": score,
        },
    }


def _session_item(rng: random.Random, seed: int, person_id: str, k: int) -> Resource:
    """A transcript item of a live session (resource_type "event"): no list endpoint shows these."""
    resource = (
        "event",
        _derived_uuid(seed, "live-session", person_id, k),
        f"Live session {k}: {rng.choice(COURSE_WORDS)}",
    )
    progress = rng.choice((0, 100, rng.randint(0, 100)))
    return _transcript_item(rng, seed, person_id, resource, progress, fmt_ts(_rand_time(rng, CREATED_END, UPDATED_END)))


def _transcripts(rng: random.Random, ds: Dataset) -> None:
    """One item per course and learning-path enrollment (courses, then paths, in generation order); the
    people of generation index 1 and 2 get live-session items up to HEAVY_TRANSCRIPTS."""
    items: dict[str, list[Resource]] = {p["id"]: [] for p in ds.people}
    for parents, ids, children in (
        (ds.courses, ds.course_ids_by_index, ds.course_enrollments),
        (ds.learning_paths, ds.learning_path_ids_by_index, ds.learning_path_enrollments),
    ):
        names = {p["id"]: p["attributes"]["name"] for p in parents}
        resource_type = "course" if parents is ds.courses else "learning_path"
        for parent_id in ids:
            for enrollment in children.get(parent_id, []):
                attrs = enrollment["attributes"]
                person_id = attrs["person_id"]
                resource = (resource_type, parent_id, names[parent_id])
                item = _transcript_item(rng, ds.seed, person_id, resource, attrs["progress"], attrs["enrolled_at"])
                items[person_id].append(item)
    for index, size in enumerate(HEAVY_TRANSCRIPTS, start=1):
        if index < len(ds.person_ids_by_index):
            person_id = ds.person_ids_by_index[index]
            listed = items[person_id]
            for k in range(size - len(listed)):
                listed.append(_session_item(rng, ds.seed, person_id, k))
            ds.heavy_transcript_people.append(person_id)
    ds.transcripts = items


def _course_properties(rng: random.Random, ds: Dataset) -> None:
    """Custom properties of mixed JSON types per course (by course id); one course in five has none."""
    for course in ds.courses:
        properties: dict[str, Any] = {}
        if rng.random() >= 0.2:
            candidates: dict[str, Any] = {
                "department": rng.choice(DEPARTMENTS),
                "credits": rng.choice((1, 2, 2.5, 10)),
                "mandatory": rng.random() < 0.5,
                "tags": rng.sample(PROPERTY_TAGS, rng.randint(0, 3)),
                "review_due": None if rng.random() < 0.5 else "2025-03-31",
                "owner_email": None,
            }
            properties = {name: value for name, value in candidates.items() if rng.random() < 0.8}
        ds.course_properties.append(
            {
                "id": course["id"],
                "type": "course_properties",
                "attributes": {"name": course["attributes"]["name"], "properties": properties},
            }
        )


def _unfinished(item: Resource) -> bool:
    return bool(item["attributes"]["progress_status"] != "completed")


def _extendable(item: Resource) -> bool:
    return bool(item["attributes"]["progress_status"] == "completed" and item["attributes"]["expires_at"])


class _TranscriptChange:
    """One call of :meth:`Dataset.change_transcripts`: each change takes a person no earlier change took."""

    def __init__(self, ds: Dataset, rng: random.Random, stamp: str) -> None:
        self.ds = ds
        self.rng = rng
        self.stamp = stamp
        self.taken: set[str] = set()
        self._queues: dict[str, list[str]] = {}
        self._seen_events: set[str] | None = None

    def apply(self, kind: str) -> tuple[str, list[str]]:
        """Make one change of ``kind``: (person id, ids of the items changed or added)."""
        ds, rng = self.ds, self.rng
        person_id = self._person(kind)
        items = ds.transcripts.setdefault(person_id, [])
        if kind == "admin_enroll":
            n = ds.transcript_changes
            resource = ("event", _derived_uuid(ds.seed, "admin-enroll", n, person_id), f"Live session (added {n})")
            items.append(_transcript_item(rng, ds.seed, person_id, resource, 0, self.stamp))
            return person_id, [items[-1]["id"]]
        if kind == "certificate_extended":
            index = rng.choice([i for i, item in enumerate(items) if _extendable(item)])
            item = copy.deepcopy(items[index])
            item["attributes"]["expires_at"] = fmt_ts(
                parse_ts(item["attributes"]["expires_at"]) + CERTIFICATE_EXTENSION
            )
        elif kind == "quiz_attempt":
            courses = [i for i, item in enumerate(items) if item["attributes"]["resource_type"] == "course"]
            index = rng.choice(courses or list(range(len(items))))
            item = copy.deepcopy(items[index])
            item["attributes"]["score"] = self._new_score(item["attributes"]["score"])
            self._quiz_attempt(person_id, item)
        else:
            unfinished = [i for i, item in enumerate(items) if _unfinished(item)]
            index = rng.choice(unfinished or list(range(len(items))))
            item = copy.deepcopy(items[index])
            attrs = item["attributes"]
            if kind == "event" and attrs["progress_status"] == "enrolled":
                attrs["progress_status"] = "in_progress"
                attrs["started_at"] = self.stamp
            else:  # completes, or a completed item is retaken
                attrs["progress_status"] = "completed"
                attrs["started_at"] = attrs["started_at"] or self.stamp
                attrs["completed_at"] = self.stamp
                attrs["score"] = self._new_score(attrs["score"])
            if kind == "event":
                self._viewed(person_id, item)
            else:
                self._touch(person_id)
        items[index] = item
        return person_id, [item["id"]]

    def finish(self) -> None:
        self.ds.events.sort(key=lambda e: parse_ts(e["attributes"]["created_at"]))
        self.ds.webhooks.sort(key=lambda m: m["id"])

    def _person(self, kind: str) -> str:
        pool = {"admin_enroll": "anyone", "certificate_extended": "with_certificates"}.get(kind, "with_items")
        if pool not in self._queues:
            wanted = {
                "anyone": lambda items: True,
                "with_items": bool,
                "with_certificates": lambda items: any(_extendable(item) for item in items),
            }[pool]
            queue = [p["id"] for p in self.ds.people if wanted(self.ds.transcripts.get(p["id"], []))]
            self.rng.shuffle(queue)
            self._queues[pool] = queue
        queue = self._queues[pool]
        while queue:
            person_id = queue.pop()
            if person_id not in self.taken:
                self.taken.add(person_id)
                return person_id
        raise ValueError(f"no person left for another {kind!r} change")

    def _new_score(self, old: Any) -> int:
        score = self.rng.randint(0, 100)
        while score == old:
            score = self.rng.randint(0, 100)
        return score

    def _touch(self, person_id: str) -> None:
        people = self.ds.people
        index = next(i for i, p in enumerate(people) if p["id"] == person_id)
        person = copy.deepcopy(people[index])
        person["attributes"]["updated_at"] = self.stamp
        people[index] = person

    def _lessons(self, item: Resource) -> list[tuple[str, str]]:
        """(course id, activity id) pairs: the item's course's lessons if it has any, else every lesson."""
        attrs = item["attributes"]
        own = self.ds.course_activities.get(attrs["resource_id"], []) if attrs["resource_type"] == "course" else []
        if own:
            return [(attrs["resource_id"], a["id"]) for a in own]
        lessons = [(cid, a["id"]) for cid, acts in self.ds.course_activities.items() for a in acts]
        if not lessons:
            raise ValueError("event and quiz_attempt changes need a course with activities")
        return lessons

    def _viewed(self, person_id: str, item: Resource) -> None:
        if self._seen_events is None:
            instant = parse_ts(self.stamp)
            self._seen_events = {
                event_record(e)["id"] for e in self.ds.events if parse_ts(e["attributes"]["created_at"]) == instant
            }
        lessons = self._lessons(item)
        self.rng.shuffle(lessons)
        for _, activity_id in lessons:
            event: Resource = {
                "type": "learner_viewed_activity_events",
                "attributes": {"created_at": self.stamp},
                "relationships": {
                    "person": {"data": {"type": "people", "id": person_id}},
                    "activity": {"data": {"type": "activities", "id": activity_id}},
                },
            }
            key = event_record(event)["id"]
            if key not in self._seen_events:  # two identical events would share the connector's id
                self._seen_events.add(key)
                self.ds.events.append(event)
                return
        raise ValueError(f"person {person_id} viewed every lesson at {self.stamp} already")

    def _quiz_attempt(self, person_id: str, item: Resource) -> None:
        ds, rng = self.ds, self.rng
        if not ds.quizzes:
            raise ValueError("quiz_attempt changes need a quiz")
        course_id, activity_id = rng.choice(self._lessons(item))
        event: Resource = {
            "id": _rand_uuid(rng),
            "type": QUIZ_COMPLETED,
            "attributes": {
                "quiz_attempt_uuid": _rand_uuid(rng),
                "value": item["attributes"]["score"],
                "minimum_passing_score": 70,
                "attempts_remaining": rng.choice([None, 0, 1, 2]),
                "created_at": self.stamp,
            },
            "relationships": {
                "quiz": {"data": {"type": "quizzes", "id": rng.choice(ds.quizzes)["id"]}},
                "course": {"data": {"type": "courses", "id": course_id}},
                "person": {"data": {"type": "people", "id": person_id}},
                "activity": {"data": {"type": "activities", "id": activity_id}},
            },
        }
        for url_index in range(ds.webhook_urls):
            ds.webhooks.append(_message(rng, QUIZ_COMPLETED, self.stamp, url_index, event))


def _course_enrollment_target(index: int, rng: random.Random, people: int, largest: int) -> int:
    fixed = {0: 0, 1: 100, 2: 200, 3: largest}
    target = fixed[index] if index in fixed else rng.randint(1, 100)
    return min(target, people)


def generate_dataset(
    seed: int = 42,
    people: int = 2000,
    courses: int = 40,
    groups: int = 8,
    learning_paths: int = 5,
    categories: int = 6,
    quizzes: int = 12,
    events: int = 1200,
    quiz_attempts: int = 40,
    webhook_urls: int = 2,
    largest_course: int = 350,
    transcripts: bool = True,
) -> Dataset:
    """Build the dataset for ``seed`` (same arguments -> identical dataset).

    Shape guarantees (by generation index, see ``course_ids_by_index``):
    course 0 has no enrollments, course 1 exactly 100, course 2 exactly 200,
    course 3 has ``largest_course`` (350 by default; each capped at ``people``), the others 1..100;
    courses with index % 6 == 4 have no activities; odd-index courses'
    enrollments omit the ``course_id`` attribute; courses with index % 10 == 5
    have a 20-60 KB ``full_description``; group 0 has no memberships;
    learning path 0 has no enrollments when there are at least two paths.

    Learning activity comes from its own random stream, so the other streams are the same whatever its
    size: ``events`` events (no ids), of which 160 share one created_at about 60 events before the newest
    (a cluster across page boundaries, newest first), one in four with milliseconds; ``quiz_attempts``
    attempts over the 120 days before ``activity_now`` (so about a quarter are past the log's 90 days),
    each delivered to ``webhook_urls`` URLs, with messages of other types and a few without
    quiz_attempt_uuid; one attempt in five has no answers.

    Transcripts and course properties come last, each from its own random stream, so they leave every
    other stream as it is (``transcripts=False`` leaves them out, to show it): one transcript item per
    course and learning-path enrollment, and live-session ("event") items that bring the people of
    generation index 1 and 2 (``heavy_transcript_people``) to 150 and 200 items; one course_properties
    item per course. The clock starts a day after the newest timestamp generated.
    """
    for name, value in (
        ("people", people),
        ("courses", courses),
        ("groups", groups),
        ("learning_paths", learning_paths),
        ("categories", categories),
        ("quizzes", quizzes),
        ("events", events),
        ("quiz_attempts", quiz_attempts),
        ("webhook_urls", webhook_urls),
    ):
        if value < 0:
            raise ValueError(f"{name} must be >= 0")
    rng = random.Random(seed)
    ds = Dataset(seed=seed)
    school_id = _derived_uuid("school")

    people_pool = _pool(rng, 30, UPDATED_START, UPDATED_END)
    small_pool = _pool(rng, 6, UPDATED_START, UPDATED_END)

    # categories
    for i in range(categories):
        ds.categories.append(
            {
                "id": _rand_uuid(rng),
                "type": "categories",
                "attributes": {
                    "name": CATEGORY_NAMES[i % len(CATEGORY_NAMES)] + ("" if i < len(CATEGORY_NAMES) else f" {i}"),
                    "created_at": fmt_ts(_rand_time(rng, CREATED_START, CREATED_END)),
                    "updated_at": rng.choice(small_pool),
                },
            }
        )
    category_ids = [c["id"] for c in ds.categories]

    # people
    person_list = [_person(rng, i, school_id, people_pool) for i in range(people)]
    person_ids = [p["id"] for p in person_list]
    person_by_id = {p["id"]: p for p in person_list}

    # groups + memberships
    for i in range(groups):
        gid = _rand_uuid(rng)
        size = 0 if i == 0 else rng.randint(min(5, people), min(people, 250))
        members = rng.sample(person_ids, size)
        memberships: list[Resource] = []
        for pid in members:
            memberships.append(
                {
                    "id": _derived_uuid(seed, "membership", pid),
                    "type": "memberships",
                    "attributes": {"created_at": fmt_ts(_rand_time(rng, CREATED_END, UPDATED_END))},
                    "relationships": {"person": {"data": {"type": "people", "id": pid}}},
                }
            )
            person_by_id[pid]["relationships"]["groups"]["data"].append({"type": "groups", "id": gid})
        if memberships:
            ds.group_memberships[gid] = sorted(memberships, key=lambda r: r["id"])
        ds.groups.append(
            {
                "id": gid,
                "type": "groups",
                "attributes": {
                    "name": f"{rng.choice(COURSE_WORDS)} team {i}",
                    "memberships_count": size,
                    "group_enrollment_link": (
                        None if rng.random() < 0.4 else f"https://app.northpass.com/groups/join/{_hex(rng, 20)}"
                    ),
                    "created_at": fmt_ts(_rand_time(rng, CREATED_START, CREATED_END)),
                    "updated_at": rng.choice(small_pool),
                },
            }
        )
        ds.group_ids_by_index.append(gid)

    # courses + enrollments + activities
    course_pool = _pool(rng, 10, UPDATED_START, UPDATED_END)
    for i in range(courses):
        course = _course(rng, i, course_pool, category_ids)
        cid = course["id"]
        count = _course_enrollment_target(i, rng, people, largest_course)
        enrolled = rng.sample(person_ids, count)
        enrollments = [
            _enrollment(rng, seed, "course-enrollment", pid, cid if i % 2 == 0 else None) for pid in enrolled
        ]
        if enrollments:
            ds.course_enrollments[cid] = sorted(enrollments, key=lambda r: r["id"])
        course["attributes"]["enrollments_count"] = count
        course["attributes"]["credential_achievement_count"] = rng.randint(0, count)
        if i % 6 != 4:
            acts = [
                {
                    "id": _rand_uuid(rng),
                    "type": "activities",
                    "attributes": {"title": f"Lesson {j + 1}: {rng.choice(COURSE_WORDS)}"},
                }
                for j in range(rng.randint(1, 15))
            ]
            ds.course_activities[cid] = sorted(acts, key=lambda r: r["id"])
        ds.courses.append(course)
        ds.course_ids_by_index.append(cid)

    # learning paths + enrollments
    for i in range(learning_paths):
        lid = _rand_uuid(rng)
        size = 0 if (i == 0 and learning_paths >= 2) else rng.randint(min(1, people), min(people, 150))
        lp_enrollments = [_enrollment(rng, seed, "lp-enrollment", pid, None) for pid in rng.sample(person_ids, size)]
        if lp_enrollments:
            ds.learning_path_enrollments[lid] = sorted(lp_enrollments, key=lambda r: r["id"])
        ds.learning_paths.append(
            {
                "id": lid,
                "type": "learning_paths",
                "attributes": {
                    "name": f"Path {i}: {rng.choice(COURSE_WORDS)}",
                    "description": (None if rng.random() < 0.3 else "A path — 学习路径 🚀"),
                    "navigation_mode": rng.choice(["free", "sequential"]),
                    "picture_url": (
                        None if rng.random() < 0.5 else f"https://cdn.example.com/paths/{_hex(rng, 10)}.png"
                    ),
                    "created_at": fmt_ts(_rand_time(rng, CREATED_START, CREATED_END)),
                    "updated_at": rng.choice(small_pool),
                },
            }
        )
        ds.learning_path_ids_by_index.append(lid)

    # quizzes
    for i in range(quizzes):
        ds.quizzes.append(
            {
                "id": _rand_uuid(rng),
                "type": "quizzes",
                "attributes": {
                    "name": f"Quiz {i} — {rng.choice(COURSE_WORDS)}",
                    "quiz_type": rng.choice(["graded", "survey", "knowledge_check"]),
                    "legacy_id": None if rng.random() < 0.3 else rng.randint(1000, 99999),
                    "created_at": fmt_ts(_rand_time(rng, CREATED_START, UPDATED_END)),
                },
            }
        )

    ds.people = sorted(person_list, key=lambda r: r["id"])
    for name in ("courses", "groups", "learning_paths", "categories", "quizzes"):
        getattr(ds, name).sort(key=lambda r: r["id"])

    activity_rng = random.Random(f"{seed}:activity")
    ds.webhook_urls = webhook_urls
    span = ACTIVITY_END - ACTIVITY_START
    tie = min(TIE_CLUSTER, events // 2)
    tie_at = fmt_ts(ACTIVITY_END - span * (60 / events)) if events else None
    ds.events = _events(activity_rng, ds, events, ACTIVITY_START, ACTIVITY_END, tie, tie_at)
    ds.events.sort(key=lambda e: parse_ts(e["attributes"]["created_at"]))
    log_start = ds.activity_now - timedelta(days=120)
    _quiz_attempts(activity_rng, ds, quiz_attempts, log_start, ds.activity_now - timedelta(days=1))

    ds.person_ids_by_index = person_ids
    if transcripts:
        _transcripts(random.Random(f"{seed}:transcripts"), ds)
        _course_properties(random.Random(f"{seed}:course_properties"), ds)
    ds.clock = SandboxClock(ds.newest_timestamp() + timedelta(days=1))
    return ds

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
)
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
    parsed = datetime.fromisoformat(value.strip().replace("z", "Z"))
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
    # Course ids in generation order (index 0 = no enrollments, 1 = 100, ...).
    course_ids_by_index: list[str] = field(default_factory=list)
    group_ids_by_index: list[str] = field(default_factory=list)
    learning_path_ids_by_index: list[str] = field(default_factory=list)
    mutations: int = 0
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)

    # ----------------------------------------------------------------- access
    def collection(self, stream: str, parent_id: str | None = None) -> list[Resource] | None:
        """Resources of a stream (a copy of the list), or None if the parent
        is unknown. Child streams need ``parent_id``."""
        with self.lock:
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
        even where the API omitted it. Top-level streams are ordered by id;
        child streams by parent id, then id.
        """
        if stream not in ALL_STREAMS:
            raise ValueError(f"unknown stream {stream!r}; known: {ALL_STREAMS}")
        with self.lock:
            if stream in CHILD_STREAMS:
                parent_stream, parent_field = CHILD_STREAMS[stream]
                children: dict[str, list[Resource]] = getattr(self, stream)
                out: list[dict[str, Any]] = []
                for parent in getattr(self, parent_stream):
                    for res in children.get(parent["id"], []):
                        record = to_record(res)
                        record[parent_field] = parent["id"]
                        out.append(record)
                return out
            return [to_record(r) for r in getattr(self, stream)]

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
        have no children (their child endpoints answer 404).
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
                items.sort(key=lambda r: r["id"])
                result[s] = {"updated": updated_ids, "added": added_ids}
            return result


def to_record(res: Resource) -> dict[str, Any]:
    """A raw JSON:API resource in the connector's record shape."""
    record: dict[str, Any] = {"id": res["id"], "type": res["type"]}
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


def _course_enrollment_target(index: int, rng: random.Random, people: int) -> int:
    fixed = {0: 0, 1: 100, 2: 200, 3: 350}
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
) -> Dataset:
    """Build the dataset for ``seed`` (same arguments -> identical dataset).

    Shape guarantees (by generation index, see ``course_ids_by_index``):
    course 0 has no enrollments, course 1 exactly 100, course 2 exactly 200,
    course 3 has 350 (each capped at ``people``), the others 1..100;
    courses with index % 6 == 4 have no activities; odd-index courses'
    enrollments omit the ``course_id`` attribute; courses with index % 10 == 5
    have a 20-60 KB ``full_description``; group 0 has no memberships;
    learning path 0 has no enrollments when there are at least two paths.
    """
    for name, value in (
        ("people", people),
        ("courses", courses),
        ("groups", groups),
        ("learning_paths", learning_paths),
        ("categories", categories),
        ("quizzes", quizzes),
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
        count = _course_enrollment_target(i, rng, people)
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
    return ds

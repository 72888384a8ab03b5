"""Tests of the Northpass sandbox itself (talks to 127.0.0.1 only)."""

from __future__ import annotations

import http.client
import json
import os
import re
import selectors
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Dict
from urllib.parse import parse_qs, urlsplit

import pytest

from sandbox import (
    FaultConfig,
    SandboxOptions,
    SandboxServer,
    generate_dataset,
)
from sandbox.data import (
    ALL_STREAMS,
    EVIDENCE_KINDS,
    SILENT_KINDS,
    TRANSCRIPT_STREAMS,
    Dataset,
    fmt_ts,
    parse_ts,
)

KEY = "sandbox-key"
REPO_ROOT = Path(__file__).resolve().parent.parent
UNAUTHORIZED = {
    "errors": [
        {
            "status": "401",
            "title": "Unauthorized",
            "detail": "You don't have the necessary credentials",
            "source": {},
        }
    ]
}


@dataclass
class Resp:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def request(
    base_url: str,
    target: str,
    key: str | None = KEY,
    timeout: float = 5.0,
    method: str = "GET",
    payload: Any = None,
) -> Resp:
    """One request on a fresh connection (127.0.0.1 only)."""
    parts = urlsplit(base_url)
    assert parts.hostname == "127.0.0.1"
    conn = http.client.HTTPConnection("127.0.0.1", parts.port, timeout=timeout)
    try:
        headers = {"Accept": "application/json"}
        if key is not None:
            headers["X-Api-Key"] = key
        body = None
        if payload is not None:
            body = json.dumps(payload).encode()
            headers["Content-Type"] = "application/json"
        conn.request(method, target, body=body, headers=headers)
        res = conn.getresponse()
        return Resp(res.status, {k.lower(): v for k, v in res.getheaders()}, res.read())
    finally:
        conn.close()


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + ("?" + parts.query if parts.query else "")


@pytest.fixture(scope="module")
def sb() -> Iterator[SandboxServer]:
    with SandboxServer(SandboxOptions(requests_per_second=None)) as server:
        yield server


@pytest.fixture
def small() -> Iterator[SandboxServer]:
    opts = SandboxOptions(people=150, courses=5, groups=3, requests_per_second=None)
    with SandboxServer(opts) as server:
        yield server


# ----------------------------------------------------------------- auth
def test_401_without_and_with_wrong_key(sb: SandboxServer) -> None:
    for key in (None, "wrong"):
        r = request(sb.base_url, "/v2/people", key=key)
        assert r.status == 401
        assert r.json() == UNAUTHORIZED
        assert "json" in r.headers["content-type"]


# --------------------------------------------------------------- paging
def test_default_page_size_and_limit_clamp(sb: SandboxServer) -> None:
    assert len(request(sb.base_url, "/v2/people").json()["data"]) == 10
    assert len(request(sb.base_url, "/v2/people?limit=500").json()["data"]) == 100
    for bad in ("limit=0", "limit=-5", "limit=abc", "page=abc", "page=1.5"):
        r = request(sb.base_url, f"/v2/people?{bad}")
        assert r.status == 422, bad
        assert r.json()["errors"][0]["status"] == "422"


def test_next_link_drops_limit_keeps_filter_and_sort(sb: SandboxServer) -> None:
    target = "/v2/people?limit=50&sort=-updated_at&filter[updated_at][gteq]=2020-01-01T00:00:00Z&page=2"
    doc = request(sb.base_url, target).json()
    links = doc["links"]
    assert links["self"].startswith(sb.base_url + "/v2/people?")
    for name in ("next", "prev"):
        assert links[name].startswith(sb.base_url + "/v2/people?")
        query = parse_qs(urlsplit(links[name]).query)
        assert "limit" not in query
        assert query["sort"] == ["-updated_at"]
        assert query["filter[updated_at][gteq]"] == ["2020-01-01T00:00:00Z"]
    assert parse_qs(urlsplit(links["next"]).query)["page"] == ["3"]
    assert parse_qs(urlsplit(links["prev"]).query)["page"] == ["1"]
    first = request(sb.base_url, "/v2/people?limit=50").json()["links"]
    assert "prev" not in first


def test_last_page_has_no_next_and_past_end_is_404(sb: SandboxServer) -> None:
    total = len(sb.expected_records("people"))
    last = -(-total // 100)
    doc = request(sb.base_url, f"/v2/people?limit=100&page={last}").json()
    assert "next" not in doc["links"]
    assert len(doc["data"]) == total - (last - 1) * 100
    r = request(sb.base_url, f"/v2/people?limit=100&page={last + 1}")
    assert r.status == 404
    assert r.json()["errors"][0]["status"] == "404"


def test_following_next_links_yields_every_record_once(sb: SandboxServer) -> None:
    expected = [r["id"] for r in sb.expected_records("people")]
    seen: list[str] = []
    target: str | None = "/v2/people?limit=100"
    for _ in range(100):  # bounded
        if target is None:
            break
        doc = request(sb.base_url, target).json()
        seen += [d["id"] for d in doc["data"]]
        nxt = doc["links"].get("next")
        target = path_of(nxt) + "&limit=100" if nxt else None
    assert target is None
    assert seen == expected


def test_sort_by_updated_at_is_stable_with_ties(sb: SandboxServer) -> None:
    data = request(sb.base_url, "/v2/people?limit=100&sort=updated_at").json()["data"]
    keys = [(d["attributes"]["updated_at"], d["id"]) for d in data]
    assert keys == sorted(keys)
    assert len({k[0] for k in keys}) < len(keys)  # ties exist
    desc = request(sb.base_url, "/v2/people?limit=100&sort=-updated_at").json()["data"]
    stamps = [d["attributes"]["updated_at"] for d in desc]
    assert stamps == sorted(stamps, reverse=True)
    # unknown sort is ignored: default order by id
    plain = request(sb.base_url, "/v2/people?limit=100&sort=bogus").json()["data"]
    assert [d["id"] for d in plain] == sorted(d["id"] for d in plain)


def test_empty_collections_and_unknown_paths_are_404(sb: SandboxServer) -> None:
    ds = sb.dataset
    empty_group = ds.group_ids_by_index[0]
    empty_path = ds.learning_path_ids_by_index[0]
    for target in (
        f"/v2/groups/{empty_group}/memberships",
        f"/v2/learning-paths/{empty_path}/enrollments",
        "/v2/courses/00000000-0000-4000-8000-000000000000/enrollments",
        "/v2/nope",
        "/v2/people/extra/segments",
    ):
        r = request(sb.base_url, target)
        assert r.status == 404, target
        assert r.json()["errors"][0]["title"] == "Not Found"
    with SandboxServer(SandboxOptions(people=20, courses=2, learning_paths=0, requests_per_second=None)) as empty:
        assert request(empty.base_url, "/v2/learning-paths").status == 404
        assert empty.expected_records("learning_paths") == []


def test_course_enrollment_shapes(sb: SandboxServer) -> None:
    ids = sb.dataset.course_ids_by_index
    assert request(sb.base_url, f"/v2/courses/{ids[0]}/enrollments").status == 404
    doc = request(sb.base_url, f"/v2/courses/{ids[1]}/enrollments?limit=100").json()
    assert len(doc["data"]) == 100 and "next" not in doc["links"]
    assert len(sb.dataset.course_enrollments[ids[2]]) == 200
    assert max(len(v) for v in sb.dataset.course_enrollments.values()) > 300
    # course 1's enrollments omit course_id, course 2's have it
    assert all("course_id" not in d["attributes"] for d in doc["data"])
    doc2 = request(sb.base_url, f"/v2/courses/{ids[2]}/enrollments?limit=5").json()
    assert all(d["attributes"]["course_id"] == ids[2] for d in doc2["data"])
    n_people = len(sb.dataset.people)
    for enrollments in sb.dataset.course_enrollments.values():
        people = [e["attributes"]["person_id"] for e in enrollments]
        assert len(people) == len(set(people)) <= n_people
        assert len({e["id"] for e in enrollments}) == len(enrollments)


def test_enrollment_ids_repeat_across_courses(sb: SandboxServer) -> None:
    records = sb.expected_records("course_enrollments")
    ids = [r["id"] for r in records]
    assert len(set(ids)) < len(ids)
    assert len({(r["course_id"], r["id"]) for r in records}) == len(records)


def test_some_courses_have_no_activities(sb: SandboxServer) -> None:
    ids = sb.dataset.course_ids_by_index
    assert request(sb.base_url, f"/v2/courses/{ids[4]}/activities").status == 404
    assert request(sb.base_url, f"/v2/courses/{ids[0]}/activities").status == 200


def test_large_descriptions_and_awkward_values(sb: SandboxServer) -> None:
    courses = sb.dataset.courses
    sizes = [len(c["attributes"]["full_description"].encode()) for c in courses]
    assert max(sizes) >= 20_000
    names = {p["attributes"]["name"] for p in sb.dataset.people}
    assert "Zoë 🚀 Åström" in names
    assert any(p["attributes"]["sso_uid"] is None for p in sb.dataset.people)
    r = request(sb.base_url, "/v2/people?limit=100")
    assert any(b > 127 for b in r.body)  # served as raw UTF-8, not \\u escapes


# ------------------------------------------------------------ rate limit
def test_rate_limit_rejects_beyond_rps() -> None:
    with SandboxServer(SandboxOptions(people=20, courses=2, requests_per_second=10)) as s:
        statuses = []
        for _ in range(15):
            r = request(s.base_url, "/v2/people")
            statuses.append(r.status)
            if r.status == 429:
                assert "retry-after" not in r.headers
                assert r.json()["errors"][0]["status"] == "429"
        stats = s.stats()
    assert 429 in statuses
    assert stats["max_in_window"] <= 10
    assert stats["accepted"] == statuses.count(200)
    assert stats["by_status"]["429"] == statuses.count(429)


def test_latency_does_not_serialise_parallel_clients() -> None:
    opts = SandboxOptions(people=20, courses=2, requests_per_second=None, latency_ms=300)
    with SandboxServer(opts) as s:
        results: list[int] = []

        def worker() -> None:
            results.append(request(s.base_url, "/v2/people").status)

        threads = [threading.Thread(target=worker) for _ in range(5)]
        start = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=5)
        elapsed = time.monotonic() - start
    assert results == [200] * 5
    assert 0.3 <= elapsed < 1.2


# ------------------------------------------------------------- filtering
def _filtered(s: SandboxServer, stamp: str) -> Resp:
    return request(s.base_url, f"/v2/people?limit=100&filter[updated_at][gteq]={stamp}")


def test_filter_honour_vs_ignore() -> None:
    base: Dict[str, Any] = {"people": 300, "courses": 3, "requests_per_second": None}
    with (
        SandboxServer(SandboxOptions(**base)) as honour,
        SandboxServer(SandboxOptions(**base, filter_mode="ignore")) as ignore,
    ):
        stamps = sorted(p["attributes"]["updated_at"] for p in honour.dataset.people)
        top = stamps[-1]
        r = _filtered(honour, top)
        assert r.status == 200
        assert {d["attributes"]["updated_at"] for d in r.json()["data"]} == {top}
        assert len(r.json()["data"]) == stamps.count(top)
        assert _filtered(honour, "2099-01-01T00:00:00Z").status == 404
        bad = request(honour.base_url, "/v2/people?filter[updated_at][gteq]=yesterday")
        assert bad.status == 422
        ignored = _filtered(ignore, top).json()
        assert len(ignored["data"]) == 100 and "next" in ignored["links"]
        assert _filtered(ignore, "2099-01-01T00:00:00Z").status == 200


# ------------------------------------------------------------ incremental
def test_mutate_shares_one_updated_at(small: SandboxServer) -> None:
    before = {p["id"] for p in small.dataset.people}
    result = small.mutate(update=4, add=2)
    assert set(result) == {
        "people",
        "courses",
        "groups",
        "learning_paths",
        "categories",
    }
    stamps = set()
    for stream, change in result.items():
        assert len(change["updated"]) == 4 or stream in ("groups", "learning_paths")
        assert len(change["added"]) == 2
        records = {r["id"]: r for r in small.expected_records(stream)}
        for rid in change["updated"] + change["added"]:
            stamps.add(records[rid]["updated_at"])
    assert len(stamps) == 1
    stamp = stamps.pop()
    everything = [r["updated_at"] for s in result for r in small.expected_records(s)]
    assert max(everything) == stamp
    assert set(result["people"]["added"]).isdisjoint(before)
    doc = _filtered(small, stamp).json()
    got = {d["id"] for d in doc["data"]}
    assert got == set(result["people"]["updated"] + result["people"]["added"])
    # over HTTP, with an explicit timestamp and stream list
    r = request(
        small.base_url,
        "/_sandbox/mutate",
        method="POST",
        payload={
            "updated_at": "2030-01-01T00:00:00Z",
            "update": 1,
            "add": 1,
            "streams": ["categories"],
        },
    )
    assert r.status == 200
    assert list(r.json()) == ["categories"]


# ------------------------------------------------------- expected records
def test_expected_records_shape(sb: SandboxServer) -> None:
    people = sb.expected_records("people")
    assert all("invite_token" not in p for p in people)
    assert any(p["id"] for p in people)
    assert set(people[0]) >= {"id", "type", "email", "relationships", "links"}
    enrollments = sb.expected_records("course_enrollments")
    assert all("course_id" in e for e in enrollments)
    assert len(enrollments) == sum(len(v) for v in sb.dataset.course_enrollments.values())
    memberships = sb.expected_records("group_memberships")
    assert memberships and all("group_id" in m for m in memberships)
    assert all(m["person_id"] == m["relationships"]["person"]["data"]["id"] for m in memberships)
    lpe = sb.expected_records("learning_path_enrollments")
    assert lpe and all("learning_path_id" in e for e in lpe)
    assert all("course_id" in a for a in sb.expected_records("course_activities"))


def test_dataset_is_deterministic() -> None:
    a = generate_dataset(seed=7, people=200, courses=6)
    b = generate_dataset(seed=7, people=200, courses=6)
    c = generate_dataset(seed=8, people=200, courses=6)
    assert a.to_json() == b.to_json()
    assert a.to_json() != c.to_json()


# ----------------------------------------------------------------- faults
def _outcome(s: SandboxServer, target: str, timeout: float = 5.0) -> str:
    try:
        r = request(s.base_url, target, timeout=timeout)
    except TimeoutError:
        return "timeout"
    except (ConnectionError, http.client.HTTPException, OSError):
        return "reset"
    try:
        json.loads(r.body)
        ok = "json"
    except ValueError:
        ok = "broken"
    return f"{r.status}:{ok}:{len(r.body)}"


def test_error_faults_are_transient_and_deterministic(small: SandboxServer) -> None:
    small.set_faults(FaultConfig(error_rate=1.0))
    outcomes = [_outcome(small, "/v2/people") for _ in range(8)]
    statuses = [int(o.split(":")[0]) for o in outcomes]
    assert all(s in (500, 502, 503, 504, 408) for s in statuses[:3])
    assert statuses[3] == 200  # never more than max_consecutive in a row
    assert small.stats()["faults_injected"]["error"] == 6
    small.set_faults(FaultConfig(error_rate=1.0))
    assert [_outcome(small, "/v2/people") for _ in range(8)] == outcomes


def test_mixed_faults_same_seed_same_outcomes() -> None:
    cfg = FaultConfig(seed=7, error_rate=0.3, reset_rate=0.2, truncate_rate=0.2)
    targets = [f"/v2/people?page={i % 4 + 1}" for i in range(24)]
    runs = []
    for _ in range(2):
        opts = SandboxOptions(people=60, courses=2, requests_per_second=None, faults=cfg)
        with SandboxServer(opts) as s:
            runs.append([_outcome(s, t) for t in targets])
    assert runs[0] == runs[1]
    assert any(o == "reset" for o in runs[0])
    assert any(":broken:" in o for o in runs[0])
    assert any(o.startswith("200:json") for o in runs[0])


def test_reset_fault_closes_without_response(small: SandboxServer) -> None:
    small.set_faults(FaultConfig(reset_rate=1.0))
    assert [_outcome(small, "/v2/courses") for _ in range(3)] == ["reset"] * 3
    assert _outcome(small, "/v2/courses").startswith("200:json")
    assert small.stats()["faults_injected"]["reset"] == 3


def test_truncate_fault_keeps_http_valid(small: SandboxServer) -> None:
    small.set_faults(FaultConfig(truncate_rate=1.0, max_consecutive=1))
    r = request(small.base_url, "/v2/people?limit=20")
    assert r.status == 200
    assert int(r.headers["content-length"]) == len(r.body)
    with pytest.raises(ValueError):
        json.loads(r.body)
    assert request(small.base_url, "/v2/people?limit=20").json()["data"]


def test_slow_fault_triggers_client_timeout(small: SandboxServer) -> None:
    small.set_faults(FaultConfig(slow_rate=1.0, slow_seconds=0.6, max_consecutive=1))
    assert _outcome(small, "/v2/groups", timeout=0.2) == "timeout"
    assert _outcome(small, "/v2/groups", timeout=2).startswith("200:json")


def test_burst_429_with_and_without_retry_after(small: SandboxServer) -> None:
    small.set_faults(FaultConfig(burst_429_every=4, burst_429_length=2, retry_after=1.2))
    rs = [request(small.base_url, "/v2/people") for _ in range(8)]
    assert [r.status for r in rs] == [200, 200, 200, 429, 429, 200, 200, 200]
    assert rs[3].headers["retry-after"] == "2"
    small.set_faults(FaultConfig(burst_429_every=2, burst_429_length=1))
    rs = [request(small.base_url, "/v2/people") for _ in range(2)]
    assert rs[1].status == 429 and "retry-after" not in rs[1].headers


def test_forbidden_paths(small: SandboxServer) -> None:
    small.set_faults(FaultConfig(forbidden_paths=["/v2/quizzes"]))
    r = request(small.base_url, "/v2/quizzes")
    assert r.status == 403 and "permission" in r.json()["errors"][0]["detail"]
    assert request(small.base_url, "/v2/people").status == 200


def test_deleted_course_children_404(small: SandboxServer) -> None:
    cid = small.dataset.course_ids_by_index[1]
    assert request(small.base_url, f"/v2/courses/{cid}/enrollments").status == 200
    small.set_faults(FaultConfig(delete_course_index=1))
    listed = request(small.base_url, "/v2/courses?limit=100").json()["data"]
    assert cid in {c["id"] for c in listed}
    assert request(small.base_url, f"/v2/courses/{cid}/enrollments").status == 404
    assert request(small.base_url, f"/v2/courses/{cid}/activities").status == 404
    small.set_faults(FaultConfig(deleted_course_ids=[cid]))
    assert request(small.base_url, f"/v2/courses/{cid}/enrollments").status == 404


def test_loop_and_foreign_next_links(small: SandboxServer) -> None:
    small.set_faults(FaultConfig(loop_next_path="/v2/people", foreign_next_path="/v2/courses"))
    nxt = request(small.base_url, "/v2/people?page=2").json()["links"]["next"]
    assert nxt.startswith(small.base_url) and parse_qs(urlsplit(nxt).query)["page"] == ["1"]
    foreign = request(small.base_url, "/v2/courses?limit=2").json()["links"]["next"]
    assert foreign.startswith("https://evil.example.invalid/v2/courses?")


def test_revoke_key_after(small: SandboxServer) -> None:
    small.set_faults(FaultConfig(revoke_key_after=3))
    statuses = [request(small.base_url, "/v2/categories").status for _ in range(5)]
    assert statuses == [200, 200, 200, 401, 401]


def test_always_truncate_path(small: SandboxServer) -> None:
    small.set_faults(FaultConfig(always_truncate_path="/v2/courses"))
    outcomes = [_outcome(small, "/v2/courses") for _ in range(5)]
    assert all(o.startswith("200:broken") for o in outcomes)
    assert _outcome(small, "/v2/people").startswith("200:json")


def test_soak_preset_and_admin_faults(small: SandboxServer) -> None:
    soak = FaultConfig.soak()
    assert (soak.error_rate, soak.reset_rate, soak.truncate_rate) == (0.05, 0.03, 0.03)
    assert (soak.burst_429_every, soak.burst_429_length, soak.retry_after) == (
        40,
        3,
        None,
    )
    r = request(small.base_url, "/_sandbox/faults", method="POST", payload={"error_rate": 1.0})
    assert r.status == 200 and small.faults.error_rate == 1.0
    assert request(small.base_url, "/v2/people").status >= 408
    bad = request(small.base_url, "/_sandbox/faults", method="POST", payload={"x": 1})
    assert bad.status == 400


# ------------------------------------------------------------------ stats
def test_stats_and_admin_endpoints(small: SandboxServer) -> None:
    small.reset_stats()
    cid = small.dataset.course_ids_by_index[1]
    request(small.base_url, f"/v2/courses/{cid}/enrollments")
    request(small.base_url, "/v2/people", key=None)
    stats = request(small.base_url, "/_sandbox/stats", key=None).json()
    assert stats["requests"] == 2 and stats["accepted"] == 1
    assert stats["by_path"] == {"/v2/courses/{id}/enrollments": 1, "/v2/people": 1}
    assert stats["by_status"] == {"200": 1, "401": 1}
    dump = request(small.base_url, "/_sandbox/dataset", key=None).json()
    assert set(dump) >= {"people", "course_enrollments", "quizzes"}
    assert len(dump["people"]) == 150
    assert request(small.base_url, "/_sandbox/reset-stats", method="POST").status == 200
    assert small.stats()["requests"] == 0


# -------------------------------------------------------------------- cli
@contextmanager
def _sandbox_cli(*args: str) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, Any]]]:
    """`python -m sandbox serve ARGS`: the process and the JSON line it prints first; ended after."""
    cmd = [sys.executable, "-m", "sandbox", "serve", *args]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        assert proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        assert sel.select(timeout=10), "no output from sandbox CLI"
        yield proc, json.loads(proc.stdout.readline())
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_cli_serve_prints_json_line_and_serves() -> None:
    with _sandbox_cli("--people", "30", "--courses", "3", "--rps", "0") as (proc, info):
        assert info["api_key"] == KEY
        assert info["base_url"].startswith("http://127.0.0.1:")
        r = request(info["base_url"], "/v2/people", key=info["api_key"])
        assert r.status == 200 and len(r.json()["data"]) == 10
    assert proc.returncode == 0
    assert proc.stdout is not None and proc.stdout.read() == b""


def test_cli_dump() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "sandbox",
            "dump",
            "--people",
            "25",
            "--courses",
            "3",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        timeout=30,
        check=True,
    )
    records = json.loads(out.stdout)
    assert len(records["people"]) == 25
    assert set(records) == set(ALL_STREAMS)


def test_fault_config_validation() -> None:
    with pytest.raises(ValueError):
        FaultConfig(error_rate=1.5)
    with pytest.raises(ValueError):
        FaultConfig.from_dict({"max_consecutive": 0})
    assert FaultConfig.from_dict(FaultConfig.soak().to_dict()) == FaultConfig.soak()


def test_parallel_clients_never_exceed_rps() -> None:
    with SandboxServer(SandboxOptions(people=30, courses=2, requests_per_second=5)) as s:
        statuses: list[int] = []
        lock = threading.Lock()

        def worker() -> None:
            for _ in range(6):
                status = request(s.base_url, "/v2/people").status
                with lock:
                    statuses.append(status)

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=10)
        stats = s.stats()
    assert len(statuses) == 24 and set(statuses) <= {200, 429}
    assert stats["max_in_window"] <= 5
    assert statuses.count(429) > 0


def test_mutate_while_reading(small: SandboxServer) -> None:
    errors: list[str] = []

    def reader() -> None:
        for page in range(1, 9):
            r = request(small.base_url, f"/v2/people?limit=20&page={page}")
            if r.status not in (200, 404):
                errors.append(f"{r.status}")

    t = threading.Thread(target=reader)
    t.start()
    for _ in range(5):
        small.mutate(update=3, add=1)
    t.join(timeout=10)
    assert not errors
    assert len(small.expected_records("people")) == 150 + 5


# ------------------------------------------------------ learning activity
def test_activity_switches_webhook_cap_reject_and_no_subscription() -> None:
    opts = SandboxOptions(people=60, courses=3, events=300, quiz_attempts=60, requests_per_second=None)
    with SandboxServer(opts) as s:
        capped = request(s.base_url, "/v2/webhooks?limit=100").json()["data"]
        s.options.webhook_limit = "reject"
        rejected = request(s.base_url, "/v2/webhooks?limit=51")
        fifty = request(s.base_url, "/v2/webhooks?limit=50")
        s.options.webhook_subscription = False
        missing = request(s.base_url, "/v2/webhooks?limit=50")
    assert len(capped) == 50
    assert rejected.status == 400 and fifty.status == 200
    assert missing.status == 404 and missing.json()["errors"][0]["status"] == "404"


def test_activity_sort_and_created_filter_honoured_or_ignored() -> None:
    opts = SandboxOptions(people=60, courses=3, events=300, quiz_attempts=5, requests_per_second=None)
    with SandboxServer(opts) as s:
        target = "/v2/events?limit=100&sort=-created_at&filter[created_at][gteq]=2024-06-01T00:00:00Z"
        honoured = request(s.base_url, target).json()["data"]
        s.options.activity_sort, s.options.created_filter = "ignore", "ignore"
        ignored = request(s.base_url, target).json()["data"]
    stamps = [parse_ts(e["attributes"]["created_at"]) for e in honoured]
    assert stamps == sorted(stamps, reverse=True) and min(stamps) >= parse_ts("2024-06-01T00:00:00Z")
    assert all("id" not in e for e in honoured)  # events come without ids, as the API's do
    natural = [parse_ts(e["attributes"]["created_at"]) for e in ignored]
    assert natural == sorted(natural) and min(natural) < parse_ts("2024-06-01T00:00:00Z")  # oldest first, unfiltered
    tie = max(Counter(e["attributes"]["created_at"] for e in s.dataset.events).values())
    assert tie >= 150


def test_webhook_log_keeps_three_months_and_repeats_each_attempt_per_url() -> None:
    ds = generate_dataset(people=60, courses=3, events=10, quiz_attempts=40, webhook_urls=2)
    visible = ds.visible_webhooks()
    assert len(visible) < len(ds.webhooks)  # some messages are older than 90 days before activity_now
    attempts = Counter(
        m["attributes"]["payload"]["data"]["attributes"].get("quiz_attempt_uuid")
        for m in visible
        if m["attributes"]["type"] == "quiz_completed_events"
        and m["attributes"]["payload"]["data"]["attributes"].get("quiz_attempt_uuid")
    )
    assert max(attempts.values()) == 2
    ds.add_activity(events=0, tie=0, quiz_attempts=3, after="2025-01-01T00:00:00Z")
    assert len(ds.expected_records("quiz_attempts")) == 3  # everything else fell out of the window


def test_given_a_tiny_account_when_generated_then_the_tie_cluster_shrinks_to_what_it_can_hold() -> None:
    # One person and one course cannot hold 150 distinct events at one instant; generation used to loop forever.
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from sandbox.data import generate_dataset; "
            "ds = generate_dataset(people=1, courses=1); print(len(ds.events))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parent.parent,
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) > 0


# ------------------------------------------------- transcripts and properties
TX_DATA: Dict[str, Any] = {
    "people": 300,
    "courses": 6,
    "learning_paths": 3,
    "events": 200,
    "quiz_attempts": 10,
    "largest_course": 120,  # the default 350 would enroll all 300 people: some must have no transcript
}
TX_OPTIONS: Dict[str, Any] = {**TX_DATA, "requests_per_second": None}
TIMESTAMP_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
TRANSCRIPT_ATTRIBUTES = [
    "resource_type",
    "resource_id",
    "name",
    "progress_status",
    "enrolled_at",
    "started_at",
    "completed_at",
    "expires_at",
    "score",
]


@pytest.fixture(scope="module")
def tx() -> Iterator[SandboxServer]:
    """A sandbox the transcript tests only read."""
    with SandboxServer(SandboxOptions(**TX_OPTIONS)) as server:
        yield server


def _tx_dataset() -> Dataset:
    return generate_dataset(**TX_DATA)


def _read_all(base_url: str, path: str, limit: int = 100) -> tuple[list[Dict[str, Any]], list[Dict[str, Any]]]:
    """Every page of a list by its next links: (items, the documents)."""
    docs: list[Dict[str, Any]] = []
    target: str | None = f"{path}?limit={limit}"
    while target is not None and len(docs) < 50:
        r = request(base_url, target)
        assert r.status == 200, (target, r.status)
        docs.append(r.json())
        nxt = docs[-1]["links"].get("next")
        target = f"{path_of(nxt)}&limit={limit}" if nxt else None
    return [item for doc in docs for item in doc["data"]], docs


def _person_without_items(ds: Dataset) -> str:
    return next(pid for pid, items in ds.transcripts.items() if not items)


def test_transcripts_and_properties_leave_every_other_stream_as_it_was() -> None:
    with_them = generate_dataset(seed=5, people=300, courses=6).to_json()
    without = generate_dataset(seed=5, people=300, courses=6, transcripts=False).to_json()
    assert sum(len(items) for items in with_them["transcripts"].values()) > 300
    assert len(with_them["course_properties"]) == 6
    assert without["transcripts"] == {} and without["course_properties"] == []
    for name in TRANSCRIPT_STREAMS:
        del with_them[name], without[name]
    assert with_them == without


def test_a_transcript_item_per_course_and_path_enrollment() -> None:
    ds = _tx_dataset()
    by_person = {pid: {(i["attributes"]["resource_type"], i["attributes"]["resource_id"]): i for i in items}
                 for pid, items in ds.transcripts.items()}  # fmt: skip
    names = {r["id"]: r["attributes"]["name"] for r in ds.courses + ds.learning_paths}
    enrollments = 0
    for resource_type, children in (("course", ds.course_enrollments), ("learning_path", ds.learning_path_enrollments)):
        for parent_id, listed in children.items():
            for enrollment in listed:
                enrollments += 1
                attrs = enrollment["attributes"]
                item = by_person[attrs["person_id"]][(resource_type, parent_id)]["attributes"]
                progress = attrs["progress"]
                status = "enrolled" if progress == 0 else "completed" if progress == 100 else "in_progress"
                assert (item["name"], item["progress_status"], item["enrolled_at"]) == (
                    names[parent_id],
                    status,
                    attrs["enrolled_at"],
                )
    items = [i["attributes"] for listed in ds.transcripts.values() for i in listed]
    heavy = ds.heavy_transcript_people
    assert [len(ds.transcripts[pid]) for pid in heavy] == [150, 200]
    assert heavy == ds.person_ids_by_index[1:3]
    sessions = sum(1 for i in items if i["resource_type"] == "event")
    assert len(items) == enrollments + sessions and sessions > 100
    enrolled = {e["attributes"]["person_id"] for listed in ds.course_enrollments.values() for e in listed}
    enrolled |= {e["attributes"]["person_id"] for listed in ds.learning_path_enrollments.values() for e in listed}
    assert {pid for pid, listed in ds.transcripts.items() if listed} == enrolled | set(heavy)
    assert set(ds.transcripts) == {p["id"] for p in ds.people}
    for item in items:
        assert list(item) == TRANSCRIPT_ATTRIBUTES
        assert (item["completed_at"] is not None) == (item["progress_status"] == "completed")
        assert item["started_at"] is None or item["progress_status"] != "enrolled"
        assert item["expires_at"] is None or item["progress_status"] == "completed"
        for name in ("enrolled_at", "started_at", "completed_at", "expires_at"):
            assert item[name] is None or TIMESTAMP_RE.match(item[name]), item
        assert item["score"] is None or 0 <= item["score"] <= 100
    for name in ("started_at", "expires_at", "score"):
        assert {i[name] is None for i in items} == {True, False}, name
    assert {i["progress_status"] for i in items} == {"enrolled", "in_progress", "completed"}
    ids = [(pid, i["id"]) for pid, listed in ds.transcripts.items() for i in listed]
    assert len(set(ids)) == len(ids)


def test_transcript_pages_like_every_list_and_the_records_carry_person_id(tx: SandboxServer) -> None:
    ds = tx.dataset
    for person_id, size in zip(ds.heavy_transcript_people, (150, 200), strict=True):
        items, docs = _read_all(tx.base_url, f"/v2/transcripts/{person_id}")
        assert items == ds.transcripts[person_id] and len(items) == size
        assert [len(d["data"]) for d in docs] == [100, size - 100]
        assert "limit" not in parse_qs(urlsplit(docs[0]["links"]["next"]).query)
        assert "next" not in docs[1]["links"]
        assert request(tx.base_url, f"/v2/transcripts/{person_id}?limit=100&page=3").status == 404
    assert len(request(tx.base_url, f"/v2/transcripts/{ds.heavy_transcript_people[0]}").json()["data"]) == 10
    records = tx.expected_records("transcripts")
    assert len(records) == sum(len(items) for items in ds.transcripts.values())
    assert [r["person_id"] for r in records] == sorted(r["person_id"] for r in records)
    served = request(tx.base_url, f"/v2/transcripts/{ds.heavy_transcript_people[1]}?limit=3").json()["data"]
    mine = [r for r in records if r["person_id"] == ds.heavy_transcript_people[1]][:3]
    assert mine == [{"id": d["id"], "type": d["type"], **d["attributes"], "person_id": ds.heavy_transcript_people[1]}
                    for d in served]  # fmt: skip
    assert all("read_at" not in r for r in records)
    over_http = request(tx.base_url, "/_sandbox/expected?stream=transcripts", key=None).json()
    assert over_http == {"transcripts": records}
    assert tx.stats()["by_path"]["/v2/transcripts/{id}"] >= 5


def test_transcript_of_an_unknown_person_or_the_older_path_is_404(tx: SandboxServer) -> None:
    someone = tx.dataset.heavy_transcript_people[0]
    for target in (
        "/v2/transcripts/00000000-0000-4000-8000-000000000000",
        f"/v2/people/{someone}/transcript",
        f"/v2/transcripts/{someone}/items",
    ):
        r = request(tx.base_url, target)
        assert r.status == 404, target
        assert r.json()["errors"][0]["status"] == "404"


def test_a_person_without_items_gets_404_or_an_empty_list_by_the_switch() -> None:
    with SandboxServer(SandboxOptions(**TX_OPTIONS)) as s:
        target = f"/v2/transcripts/{_person_without_items(s.dataset)}?limit=100"
        missing = request(s.base_url, target)
        s.options.transcripts_empty = "empty"
        empty = request(s.base_url, target)
        unknown = request(s.base_url, "/v2/transcripts/00000000-0000-4000-8000-000000000000")
        self_link = s.base_url + target
    assert missing.status == 404 and missing.json()["errors"][0]["status"] == "404"
    assert empty.status == 200 and empty.json() == {"data": [], "links": {"self": self_link}}
    assert unknown.status == 404
    with pytest.raises(ValueError):
        SandboxOptions(transcripts_empty="none")


def test_forbidden_switches_answer_403_on_their_endpoint_only() -> None:
    with SandboxServer(SandboxOptions(**TX_OPTIONS, transcripts_forbidden=True)) as s:
        person = s.dataset.heavy_transcript_people[0]
        gated = [request(s.base_url, t) for t in (f"/v2/transcripts/{person}", "/v2/transcripts/unknown")]
        properties = request(s.base_url, "/v2/properties/courses")
        s.options.transcripts_forbidden, s.options.properties_forbidden = False, True
        open_again = request(s.base_url, f"/v2/transcripts/{person}")
        gated.append(request(s.base_url, "/v2/properties/courses?limit=100"))
        stats = s.stats()
    for r in gated:
        assert r.status == 403
        error = r.json()["errors"][0]
        assert error["status"] == "403" and "plan" in error["detail"]
    assert properties.status == 200 and open_again.status == 200
    assert stats["by_status"]["403"] == 3  # answered after auth and the rate limit, counted like any answer


def test_course_properties_one_per_course_and_an_empty_page_past_the_end(tx: SandboxServer) -> None:
    items, docs = _read_all(tx.base_url, "/v2/properties/courses", limit=4)
    assert [len(d["data"]) for d in docs] == [4, 2] and "next" not in docs[-1]["links"]
    assert [i["id"] for i in items] == [c["id"] for c in tx.dataset.courses]
    records = tx.expected_records("course_properties")
    assert records == [{"id": i["id"], "type": "course_properties", **i["attributes"]} for i in items]
    assert [r["name"] for r in records] == [c["attributes"]["name"] for c in tx.dataset.courses]
    past = request(tx.base_url, "/v2/properties/courses?limit=4&page=3")
    assert past.status == 200
    assert past.json() == {"data": [], "links": {"self": tx.base_url + "/v2/properties/courses?limit=4&page=3"}}
    forty = generate_dataset(people=50, courses=40).expected_records("course_properties")
    assert {type(v) for r in forty for v in r["properties"].values()} == {str, int, float, bool, list, type(None)}
    assert any(r["properties"] == {} for r in forty)
    with SandboxServer(SandboxOptions(people=20, courses=0, requests_per_second=None)) as none:
        assert request(none.base_url, "/v2/properties/courses").status == 404
        assert none.expected_records("course_properties") == []


def test_course_properties_follow_renamed_and_added_courses() -> None:
    ds = _tx_dataset()
    before = {r["id"]: r for r in ds.expected_records("course_properties")}
    change = ds.mutate(update=2, add=1, streams=["courses"])["courses"]
    after = {r["id"]: r for r in ds.expected_records("course_properties")}
    names = {c["id"]: c["attributes"]["name"] for c in ds.courses}
    assert list(after) == sorted(names) and all(after[cid]["name"] == names[cid] for cid in names)
    for cid in change["updated"]:
        assert after[cid]["properties"] == before[cid]["properties"] and after[cid]["name"] != before[cid]["name"]
    assert [after[cid]["properties"] for cid in change["added"]] == [{}]


# ------------------------------------------------------------------ clock
def _dates(r: http.client.HTTPResponse) -> list[str]:
    return [value for name, value in r.getheaders() if name.lower() == "date"]


def test_every_response_carries_one_date_header_from_the_sandbox_clock(tx: SandboxServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", tx.port, timeout=5)
    seen: list[tuple[int, list[str]]] = []
    try:
        for target, key in (("/v2/people", KEY), ("/v2/people", None), ("/v2/nope", KEY), ("/_sandbox/clock", None)):
            conn.request("GET", target, headers={"X-Api-Key": key} if key else {})
            r = conn.getresponse()
            r.read()
            seen.append((r.status, _dates(r)))
    finally:
        conn.close()
    assert [status for status, _ in seen] == [200, 401, 404, 200]
    newest = tx.dataset.newest_timestamp()
    for _, dates in seen:
        assert len(dates) == 1
        sent = parsedate_to_datetime(dates[0])
        assert newest + timedelta(days=1) <= sent <= tx.clock() and sent.year == 2024
    assert abs((tx.clock() - parse_ts(request(tx.base_url, "/_sandbox/clock").json()["now"])).total_seconds()) < 2


def test_the_clock_advances_in_real_time_and_can_be_set_or_moved() -> None:
    with SandboxServer(SandboxOptions(**TX_OPTIONS, clock="2024-08-01T00:00:00Z")) as s:
        start = s.clock()
        time.sleep(1.1)
        assert timedelta(seconds=1) <= s.clock() - start < timedelta(seconds=3)
        assert start - parse_ts("2024-08-01T00:00:00Z") < timedelta(seconds=2)
        r = request(s.base_url, "/_sandbox/clock", method="POST", payload={"at": "2024-12-24T18:00:00Z"})
        assert r.status == 200 and r.json()["now"].startswith("2024-12-24T18:00:0")
        assert parsedate_to_datetime(r.headers["date"]) - parse_ts("2024-12-24T18:00:00Z") < timedelta(seconds=2)
        r = request(s.base_url, "/_sandbox/clock", method="POST", payload={"advance_seconds": 86400})
        assert r.json()["now"].startswith("2024-12-25T18:00:0")
        assert parsedate_to_datetime(request(s.base_url, "/v2/people").headers["date"]).day == 25
        assert request(s.base_url, "/_sandbox/clock", method="POST", payload={"at": "soon"}).status == 400
        assert request(s.base_url, "/_sandbox/clock", method="POST", payload={"back": 1}).status == 400
    with pytest.raises(ValueError):
        SandboxOptions(clock="tomorrow")


# ------------------------------------------------------- transcript changes
AT = "2024-10-01T12:00:00Z"
# The expected streams each kind changes besides transcripts (its evidence); the silent kinds change none.
EVIDENCE_STREAMS = {
    "person_updated": {"people"},
    "event": {"events"},
    "quiz_attempt": {"quiz_attempts"},
    "admin_enroll": set(),
    "certificate_extended": set(),
}


def _everything(ds: Dataset) -> Dict[str, Any]:
    return {s: ds.expected_records(s) for s in ALL_STREAMS + TRANSCRIPT_STREAMS}


@pytest.mark.parametrize("kind", EVIDENCE_KINDS + SILENT_KINDS)
def test_each_change_kind_changes_the_transcript_and_only_its_evidence(kind: str) -> None:
    ds = _tx_dataset()
    before, webhooks = _everything(ds), list(ds.webhooks)
    evidence = kind in EVIDENCE_KINDS
    result = ds.change_transcripts(evidence=int(evidence), silent=int(not evidence), at=AT, kinds=[kind])
    after = _everything(ds)
    assert result["at"] == AT
    [person_id] = result["evidence" if evidence else "silent"][kind]
    assert sum(len(ids) for group in ("evidence", "silent") for ids in result[group].values()) == 1
    [item_id] = result["items"][person_id]
    assert {s for s in after if after[s] != before[s]} == EVIDENCE_STREAMS[kind] | {"transcripts"}
    assert (ds.webhooks != webhooks) == (kind == "quiz_attempt")
    old = {(r["person_id"], r["id"]): r for r in before["transcripts"]}
    new = {(r["person_id"], r["id"]): r for r in after["transcripts"]}
    assert {k for k in old.keys() | new.keys() if old.get(k) != new.get(k)} == {(person_id, item_id)}
    item, was = new[(person_id, item_id)], old.get((person_id, item_id))
    if kind == "person_updated":
        assert [p["updated_at"] for p in after["people"] if p["id"] == person_id] == [AT]
        assert (item["progress_status"], item["completed_at"]) == ("completed", AT) and item["score"] is not None
    elif kind == "event":
        [event] = [e for e in after["events"] if e not in before["events"]]
        assert (event["type"], event["person_id"], event["created_at"]) == (
            "learner_viewed_activity_events",
            person_id,
            AT,
        )
        assert event["activity_id"] and after["events"][-1] == event
        assert was is not None
        if item["progress_status"] == was["progress_status"]:  # a completed item retaken
            assert item["completed_at"] == AT
        else:
            assert AT in (item["started_at"], item["completed_at"])
    elif kind == "quiz_attempt":
        [attempt] = [a for a in after["quiz_attempts"] if a not in before["quiz_attempts"]]
        assert (attempt["person_id"], attempt["webhook_created_at"], attempt["created_at"]) == (person_id, AT, AT)
        messages = [m for m in ds.webhooks if m not in webhooks]
        assert len(messages) == ds.webhook_urls == 2
        assert {m["attributes"]["type"] for m in messages} == {"quiz_completed_events"}
        assert was is not None and item["score"] == attempt["value"] != was["score"]
        assert {k: v for k, v in item.items() if k != "score"} == {k: v for k, v in was.items() if k != "score"}
    elif kind == "admin_enroll":
        assert was is None and item["enrolled_at"] == AT and item["progress_status"] == "enrolled"
        assert [r["id"] for r in after["transcripts"] if r["person_id"] == person_id][-1] == item_id
    else:
        assert was is not None and was["expires_at"] is not None
        assert parse_ts(item["expires_at"]) - parse_ts(was["expires_at"]) == timedelta(days=365)
        assert {k: v for k, v in item.items() if k != "expires_at"} == {
            k: v for k, v in was.items() if k != "expires_at"
        }


def test_changes_cycle_through_the_kinds_on_distinct_people_and_are_deterministic() -> None:
    results = [_tx_dataset().change_transcripts(evidence=7, silent=3, at=AT) for _ in range(2)]
    assert results[0] == results[1]
    evidence, silent = results[0]["evidence"], results[0]["silent"]
    assert [len(evidence[k]) for k in EVIDENCE_KINDS] == [3, 2, 2]
    assert [len(silent[k]) for k in SILENT_KINDS] == [2, 1]
    people = [pid for group in (evidence, silent) for ids in group.values() for pid in ids]
    assert len(set(people)) == 10 == len(results[0]["items"])
    ds = _tx_dataset()
    first = ds.change_transcripts(evidence=3, at=AT)
    assert first != ds.change_transcripts(evidence=3, at=AT)  # the next call picks anew
    for bad in ({"kinds": ["teleport"]}, {"evidence": 1, "kinds": ["admin_enroll"]}, {"silent": -1}):
        with pytest.raises(ValueError):
            ds.change_transcripts(**bad)
    with pytest.raises(ValueError, match="no person left"):
        generate_dataset(people=30, courses=2).change_transcripts(silent=40, kinds=["certificate_extended"])


def test_changes_over_http_default_to_the_clock_and_are_served() -> None:
    with SandboxServer(SandboxOptions(**TX_OPTIONS, clock="2024-11-05T08:00:00Z")) as s:
        r = request(s.base_url, "/_sandbox/transcripts", method="POST", payload={"evidence": 3, "silent": 2})
        assert r.status == 200
        result = r.json()
        assert parse_ts(result["at"]) - parse_ts("2024-11-05T08:00:00Z") < timedelta(seconds=3)
        assert result["at"] == fmt_ts(parse_ts(result["at"]))
        for person_id, item_ids in result["items"].items():
            served, _ = _read_all(s.base_url, f"/v2/transcripts/{person_id}")
            assert set(item_ids) <= {i["id"] for i in served}
            assert served == s.dataset.transcripts[person_id]
        [updated] = result["evidence"]["person_updated"]
        people = request(s.base_url, f"/v2/people?limit=100&filter[updated_at][gteq]={result['at']}").json()["data"]
        assert [p["id"] for p in people] == [updated]
        bad = request(s.base_url, "/_sandbox/transcripts", method="POST", payload={"kinds": ["nope"], "evidence": 1})
        assert bad.status == 400


def test_cli_serve_switches_for_transcripts_and_the_clock() -> None:
    switches = ("--transcripts-forbidden", "--properties-forbidden", "--clock", "2024-08-01T00:00:00Z")
    with _sandbox_cli("--people", "30", "--courses", "3", "--rps", "0", *switches) as (_, info):
        transcript = request(info["base_url"], "/v2/transcripts/anyone")
        properties = request(info["base_url"], "/v2/properties/courses")
    assert transcript.status == properties.status == 403
    assert parsedate_to_datetime(transcript.headers["date"]) - parse_ts("2024-08-01T00:00:00Z") < timedelta(seconds=5)

"""One sync's wiring is built before the streams and handed to their constructors: nothing is set on a stream from
outside once it is built, and `discover` builds the same streams a `read` of the same streams in full refresh does."""

from __future__ import annotations

import inspect
from typing import Any, Dict, List, Optional, Tuple

import pytest
from airbyte_cdk.models import ConfiguredAirbyteCatalog, SyncMode

from source_northpass_lms import SourceNorthpassLms
from source_northpass_lms.base_stream import NorthpassStream, NorthpassSubStream
from source_northpass_lms.parents import EveryParent, ParentsSince
from source_northpass_lms.source import CATALOG
from source_northpass_lms.transcripts import PeopleWithEvidence

from .conftest import catalog, make_config
from .test_checkpoint import state_message

ALL = [name for _, name, _ in CATALOG]  # every stream of the connector, in the order the source builds them


def build(
    monkeypatch: pytest.MonkeyPatch, configured: Optional[ConfiguredAirbyteCatalog], state: Any = None
) -> Tuple[Dict[str, NorthpassStream], List[str]]:
    """The streams a source builds (evidence reads left out), and every attribute set on one outside a constructor."""
    built: Dict[str, NorthpassStream] = {}
    set_outside: List[str] = []
    original_init = NorthpassStream.__init__
    original_setattr = NorthpassStream.__setattr__

    def init(self: NorthpassStream, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        if not self.evidence_for:
            built.setdefault(self.name, self)

    def setattr_(self: NorthpassStream, name: str, value: Any) -> None:
        caller = inspect.currentframe().f_back  # type: ignore[union-attr]
        if caller is not None and caller.f_code.co_name != "__init__":
            set_outside.append(f"{type(self).__name__}.{name} from {caller.f_code.co_name}()")
        original_setattr(self, name, value)

    monkeypatch.setattr(NorthpassStream, "__init__", init)
    monkeypatch.setattr(NorthpassStream, "__setattr__", setattr_)
    config = make_config()
    SourceNorthpassLms(configured, config, state).streams(config)
    return built, set_outside


def wiring(stream: NorthpassStream) -> Dict[str, Any]:
    """A stream's configuration: what it reads, from which list, in which mode."""
    out: Dict[str, Any] = {
        "class": type(stream).__name__,
        "endpoint": stream.endpoint,
        "page_limit": stream.page_limit,
        "lower_bound": stream.lower_bound,
        "checkpoint": type(stream.checkpoint).__name__ if stream.checkpoint else None,
        "lists for children": stream.listing is not None,
    }
    if isinstance(stream, NorthpassSubStream):
        out["reads the list of"] = stream.parent_listing.stream.name
        out["parents"] = type(stream.parents).__name__
    return out


def test_given_discover_and_a_full_refresh_read_then_the_same_streams_wired_the_same_and_nothing_set_from_outside(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    discovered, set_in_discover = build(monkeypatch, None)
    monkeypatch.undo()
    read, set_in_read = build(monkeypatch, catalog(*ALL))

    assert list(discovered) == list(read) == ALL
    assert set_in_discover == set_in_read == []
    differences = {name: (wiring(discovered[name]), wiring(read[name])) for name in ALL}
    assert all(a == b for a, b in differences.values()), {n: d for n, d in differences.items() if d[0] != d[1]}
    # What the catalog decides and discover cannot know: with its children selected, a parent stream takes its records
    # from the one read of its list.
    parents = ["people", "courses", "groups", "learning_paths", "quiz_attempts"]
    assert [discovered[name].listing.emits_records for name in parents] == [False] * 5  # type: ignore[union-attr]
    assert [read[name].listing.emits_records for name in parents] == [True] * 5  # type: ignore[union-attr]
    # The lists read once for their children are the parents' own: one object per list, in both.
    for streams in (discovered, read):
        assert streams["course_enrollments"].parent_listing is streams["courses"].listing  # type: ignore[attr-defined]
        assert streams["transcripts"].parent_listing is streams["people"].listing  # type: ignore[attr-defined]


def test_given_an_incremental_read_resuming_a_sync_then_its_modes_are_in_the_constructors_not_set_afterwards(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    configured = catalog(*ALL, sync_mode=SyncMode.incremental)
    for stream in configured.streams:
        stream.sync_id = 7
    state = [
        state_message("courses", {"updated_at": "2024-05-01T00:00:00Z"}),
        state_message("quiz_attempt_answers", {"webhook_created_at": "2024-06-01T00:00:00Z"}),
        state_message("quiz_attempts", {"webhook_created_at": "2024-06-02T00:00:00Z"}),
        state_message("transcripts", {"evidence_since": "2024-06-01T00:00:00Z", "sweep_start": 3}),
    ]

    streams, set_outside = build(monkeypatch, configured, state)

    assert set_outside == []
    assert streams["courses"].lower_bound is not None and streams["people"].lower_bound is None
    assert type(streams["course_enrollments"].checkpoint).__name__ == "ParentCheckpoint"  # full refresh, resumable
    assert type(streams["quizzes"].checkpoint).__name__ == "StreamCheckpoint"
    answers = streams["quiz_attempt_answers"]
    assert isinstance(answers, NorthpassSubStream) and isinstance(answers.parents, ParentsSince)
    assert answers.parents.lower_bound is not None
    transcripts = streams["transcripts"]
    assert isinstance(transcripts, NorthpassSubStream) and isinstance(transcripts.parents, PeopleWithEvidence)
    assert isinstance(streams["group_memberships"].parents, EveryParent)  # type: ignore[attr-defined]
    # Both readers of the webhook log are incremental: it is listed from the earlier of their cursors, once for both.
    assert streams["quiz_attempts"].listing is not None
    assert streams["quiz_attempts"].listing.emits_records is True
    assert streams["quiz_attempts"].listing.since == answers.parents.lower_bound


def test_given_a_read_resuming_a_sync_when_streams_are_built_then_nothing_is_set_on_the_source_either() -> None:
    configured = catalog(*ALL, sync_mode=SyncMode.incremental)
    for stream in configured.streams:
        stream.sync_id = 7
    config = make_config()
    source = SourceNorthpassLms(configured, config, [state_message("quizzes", {"sync_id": 7, "complete": True})])
    before = dict(vars(source))

    source.streams(config)
    source.streams(config)  # discover, check and read each build them: the second build finds what the first did

    after = vars(source)
    assert after.keys() == before.keys()
    assert [name for name, value in after.items() if value is not before[name]] == []

"""States in a shape the CDK would drop or refuse, read as the per-stream states they hold, when the connector starts.

Every version of this connector (1.0 to 1.2) and Airbyte's 0.x low-code connector wrote per-stream STATE messages,
which need nothing here. Two older shapes of the protocol would otherwise lose the cursors they carry:
- the legacy state, a JSON object `{"<stream>": <state>, ...}` as the file itself (which the CDK refuses) or as the
  `data` of a LEGACY message (which the CDK ignores, so every incremental stream would silently read everything);
- a GLOBAL message, whose `shared_state` makes the CDK raise; its `stream_states` are what the streams use.
Either is rewritten into a list of per-stream STATE messages in a file of the run's scratch directory, and the
command line points there; the file given is not changed. What each stream's state then means is the streams' own
rule (cursor.py, checkpoint.py, transcripts.py).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

from airbyte_cdk.entrypoint import AirbyteEntrypoint

from .config_migrations import replace_option

logger = logging.getLogger("airbyte")
STATE_OPTION = "--state"


def per_stream_states(raw: Any) -> Optional[List[Dict[str, Any]]]:
    """The per-stream STATE messages that `raw` holds, or None if it needs no rewriting (or cannot be read here)."""
    if isinstance(raw, dict):
        return _from_legacy(raw) if raw else None  # an empty one is no state, as the CDK reads it
    if not isinstance(raw, list) or not all(isinstance(m, dict) for m in raw):
        return None
    if not any(m.get("type") in ("LEGACY", "GLOBAL") for m in raw):
        return None
    streams: Dict[Tuple[Any, Any], Dict[str, Any]] = {}  # by (name, namespace)
    for message in raw:
        kind = message.get("type")
        if kind == "STREAM":
            found = [message] if isinstance(message.get("stream"), dict) else []
        elif kind == "LEGACY" and isinstance(message.get("data"), dict):
            found = _from_legacy(message["data"]) or []
        elif kind == "GLOBAL" and isinstance(message.get("global"), dict):
            found = _from_global(message["global"])
        else:
            return None  # not a state message: left to the CDK's reader, which says what is wrong
        for stream_message in found:
            descriptor = stream_message["stream"].get("stream_descriptor") or {}
            key = (descriptor.get("name"), descriptor.get("namespace"))
            # A per-stream message outranks the same stream's state inside a legacy or global one.
            if kind == "STREAM" or key not in streams:
                streams[key] = stream_message
    return list(streams.values())


def migrate_state_file(args: List[str], scratch: Path) -> List[str]:
    """The command line to run with: its --state file rewritten in `scratch` when it is legacy or global."""
    path = AirbyteEntrypoint.extract_state(args)
    if not path:
        return args
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return args  # the entry point says what is wrong with the file
    states = per_stream_states(raw)
    if states is None:
        return args
    migrated = scratch / "state.json"
    migrated.write_text(json.dumps(states), encoding="utf-8")
    names = ", ".join(sorted(str(m["stream"]["stream_descriptor"].get("name")) for m in states)) or "none"
    logger.info(
        f"The incoming state is in the legacy or global shape of the Airbyte protocol: read as the per-stream "
        f"states of {len(states)} streams ({names})."
    )
    return replace_option(args, STATE_OPTION, str(migrated))


def _from_legacy(data: Mapping[str, Any]) -> Optional[List[Dict[str, Any]]]:
    if not all(isinstance(v, dict) for v in data.values()):
        return None
    return [_stream_message({"name": name}, state) for name, state in data.items()]


def _from_global(global_state: Mapping[str, Any]) -> List[Dict[str, Any]]:
    if global_state.get("shared_state"):
        logger.warning(
            "The incoming GLOBAL state has a shared_state, which this connector never writes nor reads (each of "
            "its streams keeps its own state): it is ignored, and the streams' states in it are used."
        )
    found = []
    for stream_state in global_state.get("stream_states") or []:
        if isinstance(stream_state, dict) and isinstance(stream_state.get("stream_descriptor"), dict):
            found.append(_stream_message(stream_state["stream_descriptor"], stream_state.get("stream_state") or {}))
    return found


def _stream_message(descriptor: Mapping[str, Any], state: Any) -> Dict[str, Any]:
    return {"type": "STREAM", "stream": {"stream_descriptor": dict(descriptor), "stream_state": state}}

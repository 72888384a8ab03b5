"""Configs saved by earlier versions, rewritten in this version's form when the connector starts.

Airbyte's way, as its Python connectors do it (a `migrate(args, source)` before `launch`): the entry point reads
the --config file before the CDK does, and when a field is in a form an earlier version accepted but this one
writes differently, it rewrites the file and prints the new config as a CONTROL message of type
CONNECTOR_CONFIG, the first line on stdout, so that the platform stores it and the next sync starts from it.
Only check, discover and read take a config; spec never migrates.

What changed, from the spec and config.py of each release (git history):
- `start_date`: 1.0 and 1.1 read any ISO-8601 string pendulum parses (`2024-01-01`, `2024-01-01T00:00:00` with no
  zone, a space for the T, no seconds, `+0200`, `20240101`, ...) and an empty string as none; 1.2 writes a
  date-time with seconds and a zone (config.py's DATE_TIME_PATTERN). The migrated value is the instant 1.1 read,
  in UTC: `2024-01-01` becomes `2024-01-01T00:00:00Z`; an empty one is removed. A value in 1.2's form is left
  as it is (offset, fraction and all), and a value no version read is left for validation to report.
- Every other field has kept its name, type and range since 1.0 (`transcripts_reread_within_syncs`, new in 1.2,
  has a default); 0.x configs (`api_key` alone) need nothing.

The message carries the whole config, the API key included, as Airbyte's own migrations and OAuth token
rotations do: the platform stores the config it receives and masks its secrets. No log line carries it.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

from airbyte_cdk.config_observation import emit_configuration_as_airbyte_control_message
from airbyte_cdk.entrypoint import AirbyteEntrypoint

from .config import DATE_TIME_PATTERN, ConfigError, format_start_date, parse_start_date

logger = logging.getLogger("airbyte")
START_DATE = "start_date"
CONFIG_OPTION = "--config"


def migrated(config: Mapping[str, Any]) -> Optional[Dict[str, Any]]:
    """`config` in this version's form, or None if it already is (or holds nothing this can rewrite)."""
    value = config.get(START_DATE)
    if not isinstance(value, str) or re.search(DATE_TIME_PATTERN, value):
        return None
    try:
        start = parse_start_date(value)
    except ConfigError:
        return None  # no version read it: validation reports it, naming the field
    new = dict(config)
    if start is None:
        del new[START_DATE]
    else:
        new[START_DATE] = format_start_date(start)
    return new


def migrate_config_file(args: List[str], scratch: Path) -> List[str]:
    """The command line to run with: its --config file migrated and the migrated config announced.

    The file is rewritten in place; where it cannot be written (a read-only mount), the migrated config goes to a
    file in `scratch` and the command line returned points there. A file that cannot be read or is not a JSON
    object is left to the entry point, which says what is wrong with it.
    """
    path = AirbyteEntrypoint.extract_config(args)
    if not path:
        return args
    try:
        config = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return args
    new = migrated(config) if isinstance(config, dict) else None
    if new is None:
        return args
    text = json.dumps(new)
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError:
        path = str(scratch / "config.json")
        Path(path).write_text(text, encoding="utf-8")
        args = replace_option(args, CONFIG_OPTION, path)
    emit_configuration_as_airbyte_control_message(new)
    logger.info(
        f"Config field '{START_DATE}': {config[START_DATE]!r}, in a form that earlier versions accepted, is now "
        f"{_shown(new.get(START_DATE))}; the config was updated (a CONNECTOR_CONFIG control message)."
    )
    return args


def replace_option(args: List[str], option: str, value: str) -> List[str]:
    """`args` with the value of `option` (given as `--option value` or `--option=value`) replaced."""
    result: List[str] = []
    following = False
    for arg in args:
        if following:
            result.append(value)
            following = False
        elif arg == option:
            result.append(arg)
            following = True
        elif arg.startswith(f"{option}="):
            result.append(f"{option}={value}")
        else:
            result.append(arg)
    return result


def _shown(value: Optional[str]) -> str:
    return repr(value) if value is not None else "removed (no start date)"

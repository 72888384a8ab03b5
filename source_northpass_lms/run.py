"""Console entry point: `source-northpass-lms spec|check|discover|read ...`."""

from __future__ import annotations

import json
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, List, Optional, TypeVar

from airbyte_cdk.entrypoint import AirbyteEntrypoint
from airbyte_cdk.exception_handler import init_uncaught_exception_handler
from airbyte_cdk.logger import PRINT_BUFFER
from airbyte_cdk.models import ConnectorSpecification, FailureType

from .config import NorthpassConfig
from .config_migrations import migrate_config_file
from .errors import failure
from .source import SourceNorthpassLms
from .state_migrations import migrate_state_file

logger = logging.getLogger("airbyte")
T = TypeVar("T")
CONFIG_REMEDY = "Write it as a JSON object with the fields of the connector's spec."
CATALOG_REMEDY = "Run discover again and select the streams to read."
# A broken state is an error, not a silent full read: in an append destination a full read duplicates every record.
STATE_REMEDY = (
    "Pass the list of STATE messages the last sync emitted, or run without --state to read every stream from the start."
)


class NorthpassEntrypoint(AirbyteEntrypoint):
    @staticmethod
    def validate_connection(source_spec: ConnectorSpecification, config: Any) -> None:
        # Our own checks first: their messages name the field and say what to do, where the
        # JSON-schema validator's ("'abc' is not of type 'integer'") name neither.
        NorthpassConfig.parse(config)
        AirbyteEntrypoint.validate_connection(source_spec, config)


def read_input_file(kind: str, path: str, reader: Callable[[str], T], remedy: str) -> T:
    """A --config/--catalog/--state file read by the CDK's reader, or a config_error saying what is wrong with it.

    The CDK's readers raise bare ValueErrors (or serializer errors) whose only trace is a Python traceback
    on stderr, before the connector has printed a single protocol message.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise failure(f"Cannot read the {kind} file {path}: {exc}.", FailureType.config_error) from exc
    try:
        json.loads(text)
    except ValueError as exc:
        raise failure(f"The {kind} file {path} is not valid JSON ({exc}). {remedy}", FailureType.config_error) from exc
    try:
        return reader(path)
    except (ValueError, TypeError, KeyError) as exc:
        detail = " ".join(str(exc).split())[:300]
        raise failure(
            f"The {kind} file {path} is not in the format of the Airbyte protocol ({detail}). {remedy}",
            FailureType.config_error,
        ) from exc


def _source(args: List[str]) -> SourceNorthpassLms:
    catalog_path = AirbyteEntrypoint.extract_catalog(args)
    config_path = AirbyteEntrypoint.extract_config(args)
    state_path = AirbyteEntrypoint.extract_state(args)
    return SourceNorthpassLms(
        read_input_file("catalog", catalog_path, SourceNorthpassLms.read_catalog, CATALOG_REMEDY)
        if catalog_path
        else None,
        read_input_file("config", config_path, SourceNorthpassLms.read_config, CONFIG_REMEDY) if config_path else None,
        read_input_file("state", state_path, SourceNorthpassLms.read_state, STATE_REMEDY) if state_path else None,
    )


def run(args: Optional[List[str]] = None) -> None:
    args = sys.argv[1:] if args is None else args
    # Installed before the input files are read, so that an unusable file is reported as a TRACE message.
    init_uncaught_exception_handler(logger)
    with tempfile.TemporaryDirectory(prefix="source-northpass-lms-") as scratch:
        # Before anything reads the files: a migrated config is the first line on stdout, the CDK validates the
        # config in this version's form (config_migrations.py) and reads a legacy or global state's cursors
        # (state_migrations.py).
        args = migrate_state_file(migrate_config_file(args, Path(scratch)), Path(scratch))
        entrypoint = NorthpassEntrypoint(_source(args))
        parsed_args = entrypoint.parse_args(args)
        # One print per message, as the CDK's own launch() does: concurrent streams print from several threads.
        with PRINT_BUFFER:
            for message in entrypoint.run(parsed_args):
                print(f"{message}\n", end="")

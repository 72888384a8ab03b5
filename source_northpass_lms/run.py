"""Console entry point: `source-northpass-lms spec|check|discover|read ...`."""

from __future__ import annotations

import sys
from typing import Any, List, Optional

from airbyte_cdk.entrypoint import AirbyteEntrypoint
from airbyte_cdk.logger import PRINT_BUFFER
from airbyte_cdk.models import ConnectorSpecification

from .config import NorthpassConfig
from .source import SourceNorthpassLms


class NorthpassEntrypoint(AirbyteEntrypoint):
    @staticmethod
    def validate_connection(source_spec: ConnectorSpecification, config: Any) -> None:
        # Our own checks first: their messages name the field and say what to do, where the
        # JSON-schema validator's ("'abc' is not of type 'integer'") name neither.
        NorthpassConfig.parse(config)
        AirbyteEntrypoint.validate_connection(source_spec, config)


def _source(args: List[str]) -> SourceNorthpassLms:
    catalog_path = AirbyteEntrypoint.extract_catalog(args)
    config_path = AirbyteEntrypoint.extract_config(args)
    state_path = AirbyteEntrypoint.extract_state(args)
    return SourceNorthpassLms(
        SourceNorthpassLms.read_catalog(catalog_path) if catalog_path else None,
        SourceNorthpassLms.read_config(config_path) if config_path else None,
        SourceNorthpassLms.read_state(state_path) if state_path else None,
    )


def run(args: Optional[List[str]] = None) -> None:
    args = sys.argv[1:] if args is None else args
    entrypoint = NorthpassEntrypoint(_source(args))
    parsed_args = entrypoint.parse_args(args)
    # One print per message, as the CDK's own launch() does: concurrent streams print from several threads.
    with PRINT_BUFFER:
        for message in entrypoint.run(parsed_args):
            print(f"{message}\n", end="")

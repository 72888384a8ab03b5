"""Test helpers: run the source as Airbyte does, against JSON:API answers mocked with requests-mock."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional

import pytest
import requests_mock as rm
from airbyte_cdk.models import AirbyteStateMessage, ConfiguredAirbyteCatalog, SyncMode
from airbyte_cdk.test.catalog_builder import CatalogBuilder
from airbyte_cdk.test.entrypoint_wrapper import EntrypointOutput, read

from source_northpass_lms import SourceNorthpassLms

API = "https://api.northpass.test/v2"
API_KEY = "unit-test-key-5f3a9"
RESOURCES = Path(__file__).parent / "resources"  # earlier releases' spec.yaml, for the compatibility tests


def make_config(**overrides: Any) -> Dict[str, Any]:
    # A fast pace and tiny backoff keep the tests quick; the production defaults are tested separately.
    config = {
        "api_key": API_KEY,
        "base_url": "https://api.northpass.test",
        "requests_per_second": 1000,
        "backoff_base_seconds": 0.001,
        "retry_budget_seconds": 5,
    }
    config.update(overrides)
    return config


def jsonapi_page(resources: Iterable[Mapping[str, Any]], next_url: Optional[str] = None) -> Dict[str, Any]:
    links: Dict[str, Any] = {"self": "ignored"}
    if next_url:
        links["next"] = next_url
    return {"data": [copy.deepcopy(r) for r in resources], "links": links, "included": []}


def person(index: int, **attributes: Any) -> Dict[str, Any]:
    return {
        "id": f"person-{index:04d}",
        "type": "people",
        "attributes": {
            "name": f"Person {index}",
            "email": f"p{index}@example.com",
            "invite_token": "secret",
            **attributes,
        },
        "relationships": {"school": {"data": {"type": "schools", "id": "school-1"}}},
        "links": {"self": f"{API}/people/person-{index:04d}"},
    }


def course(index: int) -> Dict[str, Any]:
    return {"id": f"course-{index}", "type": "courses", "attributes": {"name": f"Course {index}"}}


def enrollment(index: int, **attributes: Any) -> Dict[str, Any]:
    return {"id": f"enrollment-{index}", "type": "enrollments", "attributes": {"progress": 50, **attributes}}


NOT_FOUND = {"errors": [{"status": "404", "title": "Not Found", "detail": "Not found", "source": {}}]}
UNAUTHORIZED = {
    "errors": [
        {"status": "401", "title": "Unauthorized", "detail": "You don't have the necessary credentials", "source": {}}
    ]
}
FORBIDDEN = {"errors": [{"status": "403", "title": "Forbidden", "detail": "Not allowed", "source": {}}]}


def catalog(*streams: str, sync_mode: SyncMode = SyncMode.full_refresh) -> ConfiguredAirbyteCatalog:
    builder = CatalogBuilder()
    for name in streams:
        builder.with_stream(name, sync_mode)
    return builder.build()


def run_read(
    config: Mapping[str, Any],
    streams: List[str],
    state: Optional[List[AirbyteStateMessage]] = None,
    expecting_exception: bool = False,
    sync_mode: SyncMode = SyncMode.full_refresh,
) -> EntrypointOutput:
    configured = catalog(*streams, sync_mode=sync_mode)
    source = SourceNorthpassLms(configured, config, state)
    return read(source, config, configured, state, expecting_exception=expecting_exception)


def records_of(output: EntrypointOutput, stream: str) -> List[Dict[str, Any]]:
    return [dict(m.record.data) for m in output.records if m.record.stream == stream]


def stream_error(output: EntrypointOutput, stream: str) -> Any:
    """The error trace a failed stream emitted (not the end-of-sync summary)."""
    errors = [
        m.trace.error
        for m in output.errors
        if m.trace.error.stream_descriptor and m.trace.error.stream_descriptor.name == stream
    ]
    assert errors, f"no error trace for stream {stream}: {[m.trace.error.message for m in output.errors]}"
    return errors[0]


@pytest.fixture
def http() -> Iterable[rm.Mocker]:
    with rm.Mocker() as mocker:
        yield mocker

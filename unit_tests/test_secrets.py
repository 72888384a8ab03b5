"""The API key: sent only to base_url's origin, stripped of surrounding whitespace, and never echoed."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any, Dict, List

import pytest
import requests
import requests_mock
from airbyte_cdk.models import AirbyteMessageSerializer
from airbyte_cdk.sources.streams.http import rate_limiting
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_northpass_lms.auth import ApiKeyAuthenticator

from .conftest import API, UNAUTHORIZED, jsonapi_page, make_config, person, run_read

KEY = "np-unit-secret-9c1e77"


def _prepared(url: str) -> requests.PreparedRequest:
    return requests.Request("GET", url).prepare()


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example.invalid/v2/people",
        "http://api.northpass.com/v2/people",  # same host, plain http
        "https://api.northpass.com:8443/v2/people",  # same host, another port
        "https://api.northpass.com.evil.example/v2/people",
    ],
)
def test_given_request_to_another_origin_when_authenticated_then_refused_without_the_key(url: str) -> None:
    auth = ApiKeyAuthenticator(KEY, "https://api.northpass.com")
    request = _prepared(url)

    with pytest.raises(AirbyteTracedException) as raised:
        auth(request)

    assert "X-Api-Key" not in request.headers
    assert KEY not in str(raised.value) and KEY not in (raised.value.message or "")
    assert "only sent to the configured base_url's host" in (raised.value.message or "")


def test_given_request_to_base_url_origin_when_authenticated_then_key_sent_in_x_api_key() -> None:
    auth = ApiKeyAuthenticator(KEY, "https://API.northpass.com:443")

    request = auth(_prepared("https://api.northpass.com/v2/people?page=2"))

    assert request.headers["X-Api-Key"] == KEY


def test_given_key_with_surrounding_whitespace_when_read_then_the_stripped_key_is_sent(
    http: requests_mock.Mocker,
) -> None:
    http.get(f"{API}/people", json=jsonapi_page([person(1)]))

    run_read(make_config(api_key=f"  {KEY}\n"), ["people"])

    assert [r.headers["X-Api-Key"] for r in http.request_history] == [KEY]


def _all_output(output: Any) -> str:
    return "\n".join(json.dumps(AirbyteMessageSerializer.dump(m)) for m in output._messages)


def _no_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    monkeypatch.setattr(rate_limiting, "time", SimpleNamespace(sleep=lambda s: time.sleep(0.2)))


SCENARIOS: Dict[str, List[Dict[str, Any]]] = {
    "401": [{"status_code": 401, "json": UNAUTHORIZED}],
    "503 until the budget runs out": [{"status_code": 503, "text": "<html>down</html>"}],
    "foreign next link": [{"json": jsonapi_page([person(1)], "https://evil.example.invalid/v2/people?page=2")}],
    "redirect": [{"status_code": 302, "headers": {"Location": "https://evil.example.invalid/x"}}],
    "truncated body": [{"text": '{"data": [{"id": '}],
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_given_failing_sync_when_read_then_no_message_contains_the_key_in_any_form(
    http: requests_mock.Mocker, monkeypatch: pytest.MonkeyPatch, scenario: str
) -> None:
    _no_sleep(monkeypatch)
    http.get(f"{API}/people", SCENARIOS[scenario])
    raw_key = f" {KEY}\t\n"

    output = run_read(make_config(api_key=raw_key, retry_budget_seconds=1), ["people"])

    assert output.errors, "the scenario was meant to fail"
    everything = _all_output(output)
    assert KEY not in everything and raw_key not in everything
    assert all(r.headers.get("X-Api-Key") == KEY for r in http.request_history)


def test_given_successful_sync_when_read_then_state_and_records_never_contain_the_key(
    http: requests_mock.Mocker,
) -> None:
    http.get(f"{API}/people", json=jsonapi_page([person(1)]))

    output = run_read(make_config(api_key=KEY), ["people"])

    assert output.state_messages and output.records
    assert KEY not in _all_output(output)

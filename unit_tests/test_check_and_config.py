"""check against the API, and the config rules (each failure names the field and says what to do)."""

from __future__ import annotations

import logging
from typing import Any, Dict, Mapping

import pytest
import requests
import requests_mock
from airbyte_cdk.models import AirbyteConnectionStatus, Status

from source_northpass_lms import SourceNorthpassLms
from source_northpass_lms.config import ConfigError, NorthpassConfig

from .conftest import API, API_KEY, FORBIDDEN, NOT_FOUND, UNAUTHORIZED, jsonapi_page, make_config, person

LOGGER = logging.getLogger("test")


def check(config: Mapping[str, Any]) -> AirbyteConnectionStatus:
    return SourceNorthpassLms(None, config, None).check(LOGGER, config)


def test_given_valid_key_when_check_then_succeeds_with_one_request_carrying_the_key(http: requests_mock.Mocker) -> None:
    http.get(f"{API}/people", json=jsonapi_page([person(1)]))

    status = check(make_config())

    assert status.status == Status.SUCCEEDED
    assert http.call_count == 1
    assert http.last_request.headers["X-Api-Key"] == API_KEY
    assert http.last_request.qs == {"limit": ["1"]}


def test_given_account_with_no_people_when_check_then_succeeds(http: requests_mock.Mocker) -> None:
    http.get(f"{API}/people", status_code=404, json=NOT_FOUND)

    assert check(make_config()).status == Status.SUCCEEDED


@pytest.mark.parametrize(
    "status, answer",
    [(200, {"text": "<html>Welcome</html>"}), (200, {"json": {"items": []}}), (404, {"text": "<h1>Not Found</h1>"})],
)
def test_given_base_url_of_another_server_when_check_then_fails_pointing_at_base_url(
    status: int, answer: Dict[str, Any], http: requests_mock.Mocker
) -> None:
    http.get(f"{API}/people", status_code=status, **answer)

    result = check(make_config())

    assert result.status == Status.FAILED
    assert "not a JSON:API document" in result.message and "base_url" in result.message


def test_given_rejected_key_when_check_then_fails_saying_to_generate_a_new_key_without_echoing_it(
    http: requests_mock.Mocker,
) -> None:
    http.get(f"{API}/people", status_code=401, json=UNAUTHORIZED)

    status = check(make_config())

    assert status.status == Status.FAILED
    assert "rejected the API key" in status.message and "Generate a new key" in status.message
    assert API_KEY not in status.message


def test_given_key_without_permission_when_check_then_fails_naming_the_permission(http: requests_mock.Mocker) -> None:
    http.get(f"{API}/people", status_code=403, json=FORBIDDEN)

    status = check(make_config())

    assert status.status == Status.FAILED
    assert "403" in status.message and "permission" in status.message


def test_given_unreachable_host_when_check_then_fails_naming_the_host(http: requests_mock.Mocker) -> None:
    http.get(f"{API}/people", exc=requests.exceptions.ConnectionError("refused"))

    status = check(make_config())

    assert status.status == Status.FAILED
    assert "api.northpass.test" in status.message


@pytest.mark.parametrize(
    "base_url, expected",
    [
        ("https://api.northpass.com", "https://api.northpass.com"),
        ("https://api.northpass.com/v2/", "https://api.northpass.com"),
        ("http://127.0.0.1:8765", "http://127.0.0.1:8765"),
        ("http://localhost:8765", "http://localhost:8765"),
        ("http://[::1]:8765", "http://[::1]:8765"),
    ],
)
def test_given_https_or_loopback_http_base_url_when_parsed_then_accepted(base_url: str, expected: str) -> None:
    assert NorthpassConfig.parse(make_config(base_url=base_url)).base_url == expected


@pytest.mark.parametrize(
    "base_url", ["http://api.northpass.com", "http://10.0.0.5", "ftp://api.northpass.com", "api.northpass.com", ""]
)
def test_given_insecure_or_malformed_base_url_when_check_then_config_error_naming_base_url(
    base_url: str, http: requests_mock.Mocker
) -> None:
    with pytest.raises(ConfigError) as raised:
        NorthpassConfig.parse(make_config(base_url=base_url))
    assert raised.value.failure_type.value == "config_error"
    assert "base_url" in (raised.value.message or "")

    status = check(make_config(base_url=base_url))
    assert status.status == Status.FAILED and "base_url" in status.message
    assert http.call_count == 0


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"api_key": None}, "api_key"),
        ({"api_key": "   "}, "api_key"),
        ({"api_key": 12345}, "api_key"),
        ({"page_size": 0}, "page_size"),
        ({"page_size": 101}, "page_size"),
        ({"page_size": "100"}, "page_size"),
        ({"num_workers": 0}, "num_workers"),
        ({"requests_per_second": "fast"}, "requests_per_second"),
    ],
)
def test_given_bad_field_when_parsed_then_config_error_names_it(overrides: Dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as raised:
        NorthpassConfig.parse(make_config(**overrides))
    assert f"'{field}'" in (raised.value.message or "")


def test_given_key_with_surrounding_whitespace_when_parsed_then_stripped() -> None:
    assert NorthpassConfig.parse(make_config(api_key=f"  {API_KEY}\n")).api_key == API_KEY


def test_given_unknown_extra_keys_when_parsed_then_accepted() -> None:
    assert NorthpassConfig.parse(make_config(legacy_option=True)).page_size == 100


def test_given_defaults_then_documented_production_values() -> None:
    cfg = NorthpassConfig.parse({"api_key": API_KEY})
    assert (cfg.base_url, cfg.page_size, cfg.requests_per_second, cfg.num_workers) == (
        "https://api.northpass.com",
        100,
        10.0,
        8,
    )
    assert (cfg.retry_budget_seconds, cfg.request_timeout_seconds) == (600.0, 60.0)

"""check against the API, and the config rules (each failure names the field and says what to do)."""

from __future__ import annotations

import logging
import random
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Dict, Mapping

import pytest
import requests
import requests_mock
import yaml
from airbyte_cdk.models import AirbyteConnectionStatus, Status
from airbyte_cdk.sources.utils.schema_helpers import check_config_against_spec_or_exit
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_northpass_lms import SourceNorthpassLms
from source_northpass_lms.config import DATE_TIME_PATTERN, DEFAULT_BASE_URL, ConfigError, NorthpassConfig

from .conftest import API, API_KEY, FORBIDDEN, NOT_FOUND, RESOURCES, UNAUTHORIZED, jsonapi_page, make_config, person

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


# ------------------------------------------------------------------------------------ start_date and its spec field

SPEC = SourceNorthpassLms(None, None, None).spec(LOGGER).connectionSpecification
SPEC_FILE = Path(__file__).resolve().parents[1] / "source_northpass_lms" / "spec.yaml"
UTC = timezone.utc


def spec_accepts(config: Mapping[str, Any]) -> bool:
    """The CDK's own config validation against the spec, as run before check, discover and read."""
    try:
        check_config_against_spec_or_exit(config, SourceNorthpassLms(None, None, None).spec(LOGGER))
    except AirbyteTracedException:
        return False
    return True


@pytest.mark.parametrize("release", ["1.0.0", "1.1.0", "1.2.0"])
def test_spec_accepts_every_config_an_earlier_release_accepted_by_airbytes_spec_compatibility_rule(
    release: str,
) -> None:
    """Airbyte validates saved configs against a new version's spec: no constraint may be added or changed.

    The earlier specs are copies of spec.yaml at the commits that released them (git show <commit>:...). The rule is
    the CDK's own (its standard tests' spec comparator, private, fails a release on it): an added or changed `pattern` or `format` is breaking.
    """
    earlier = yaml.safe_load((RESOURCES / "specs" / f"{release}.yaml").read_text())["connectionSpecification"]
    current = yaml.safe_load(SPEC_FILE.read_text())["connectionSpecification"]

    assert set(current.get("required", [])) <= set(earlier.get("required", [])), "a field became required"
    for name, was in earlier["properties"].items():
        now = current["properties"].get(name)
        assert now is not None, f"{name} removed"
        assert now.get("type") == was.get("type"), f"{name}: type changed"
        for constraint in ("pattern", "format", "enum"):
            assert now.get(constraint) in (None, was.get(constraint)), f"{name}: {constraint} added or changed"
        for bound, narrower in (("minimum", lambda a, b: a > b), ("maximum", lambda a, b: a < b)):
            if now.get(bound) is not None:
                assert was.get(bound) is not None and not narrower(now[bound], was[bound]), f"{name}: {bound} narrowed"


def test_spec_start_date_describes_the_form_config_parsing_writes() -> None:
    start_date = SPEC["properties"]["start_date"]
    assert start_date["pattern_descriptor"] == "YYYY-MM-DDTHH:mm:ssZ"
    assert re.search(DATE_TIME_PATTERN, start_date["examples"][0])
    assert NorthpassConfig.parse(make_config(start_date=start_date["examples"][0])).start_date == datetime(
        2024, 1, 1, tzinfo=UTC
    )


@pytest.mark.parametrize(
    "value, expected",
    [
        ("2024-01-01T00:00:00Z", datetime(2024, 1, 1, tzinfo=UTC)),
        ("2024-01-01T02:30:00+02:30", datetime(2024, 1, 1, tzinfo=UTC)),
        ("2023-12-31T19:00:00-05:00", datetime(2024, 1, 1, tzinfo=UTC)),
        ("2024-02-29T23:59:59.25Z", datetime(2024, 2, 29, 23, 59, 59, 250000, tzinfo=UTC)),
        ("2024-06-30T12:00:00.123456789Z", datetime(2024, 6, 30, 12, 0, 0, 123456, tzinfo=UTC)),
        # JSON schema applies a pattern with a search, where `$` also matches before a final newline.
        ("2024-01-01T00:00:00Z\n", datetime(2024, 1, 1, tzinfo=UTC)),
    ],
)
def test_given_start_date_the_spec_accepts_when_parsed_then_that_instant_in_utc(value: str, expected: datetime) -> None:
    config = make_config(start_date=value)

    assert spec_accepts(config)
    assert NorthpassConfig.parse(config).start_date == expected


@pytest.mark.parametrize(
    "value, expected",
    [
        # Forms 1.0 and 1.1 accepted, which a saved config may hold: read as the instant they read them as.
        ("2024-01-01", datetime(2024, 1, 1, tzinfo=UTC)),
        ("2024-01-01T00:00:00", datetime(2024, 1, 1, tzinfo=UTC)),  # no zone: UTC
        ("2024-01-01 00:00:00Z", datetime(2024, 1, 1, tzinfo=UTC)),
        ("2024-01-01T00:00Z", datetime(2024, 1, 1, tzinfo=UTC)),
        ("2024-01-01T02:00:00+0200", datetime(2024, 1, 1, tzinfo=UTC)),
        ("2024-01-01 10:11:12.5", datetime(2024, 1, 1, 10, 11, 12, 500000, tzinfo=UTC)),
    ],
)
def test_given_start_date_in_a_form_earlier_versions_accepted_then_spec_and_parse_accept_it_as_that_instant(
    value: str, expected: datetime
) -> None:
    config = make_config(start_date=value)

    assert spec_accepts(config)
    assert NorthpassConfig.parse(config).start_date == expected


@pytest.mark.parametrize("value", ["", "\n"])
def test_given_empty_start_date_as_1_1_read_it_then_spec_and_parse_accept_it_as_none(value: str) -> None:
    config = make_config(start_date=value)

    assert spec_accepts(config)
    assert NorthpassConfig.parse(config).start_date is None


@pytest.mark.parametrize(
    "value", ["last tuesday", "01/02/2024", "2024-1-1", " 2024-01-01", "2024-01-01Z", "P1D", "today", "2024.01.01"]
)
def test_given_start_date_no_version_accepted_when_parsed_then_config_error_giving_the_form(
    value: str,
) -> None:
    config = make_config(start_date=value)

    with pytest.raises(ConfigError) as raised:
        NorthpassConfig.parse(config)
    assert "Config field 'start_date': must be a date-time such as 2024-01-01T00:00:00Z" in (raised.value.message or "")


@pytest.mark.parametrize("value", ["2024-02-30T00:00:00Z", "2024-13-01T00:00:00Z", "2024-01-01T24:00:00Z"])
def test_given_start_date_of_the_right_form_but_no_such_instant_when_parsed_then_config_error(value: str) -> None:
    with pytest.raises(ConfigError) as raised:
        NorthpassConfig.parse(make_config(start_date=value))
    assert "Config field 'start_date': is not a valid date-time" in (raised.value.message or "")


def test_given_any_valid_date_time_of_the_1_2_form_when_parsed_then_accepted_as_that_instant() -> None:
    """Every form DATE_TIME_PATTERN allows (zone Z or an offset, with or without a fraction) on dates across the calendar."""
    rng = random.Random(17)
    for _ in range(500):
        instant = datetime(2000, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(40 * 366 * 86400))
        fraction = rng.choice(["", f".{rng.randrange(10**6):06d}"])
        offset = timedelta(minutes=rng.choice([0, 60, -300, 330, 840, -720]))
        local = instant.astimezone(timezone(offset))
        zone = rng.choice(["Z", "+00:00"]) if not offset else local.strftime("%z")[:3] + ":" + local.strftime("%z")[3:]
        value = local.strftime("%Y-%m-%dT%H:%M:%S") + fraction + zone
        expected = instant + (timedelta(microseconds=int(fraction[1:])) if fraction else timedelta())

        assert re.search(DATE_TIME_PATTERN, value), value
        assert NorthpassConfig.parse(make_config(start_date=value)).start_date == expected, value


def test_spec_hides_base_url_from_the_setup_screen_and_keeps_the_fields_in_order() -> None:
    properties = SPEC["properties"]
    hidden = sorted(name for name, field in properties.items() if field.get("airbyte_hidden"))
    assert hidden == ["backoff_base_seconds", "base_url"]
    assert properties["base_url"]["default"] == DEFAULT_BASE_URL
    # Field i has order i: a new field takes the next number.
    assert sorted(field["order"] for field in properties.values()) == list(range(len(properties)))

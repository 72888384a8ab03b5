"""Configs saved by every release run as they did: migrated to 1.2's form at launch, announced once, file rewritten.

Each release's config has exactly the fields of that release's spec (git: 87bd778 is 1.0.0, a723c6f 1.1.0, 2acaefa
1.2.0; 0.x is Airbyte's low-code connector, whose spec had `api_key` alone). They run through the console script's
code (`run.run`), files in and JSON lines out, against the API mocked with requests-mock.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Dict, List

import pytest
import requests_mock as rm
import yaml
from airbyte_cdk.models import AirbyteMessageSerializer, ConfiguredAirbyteCatalogSerializer, SyncMode
from airbyte_cdk.sources.utils.schema_helpers import check_config_against_spec_or_exit
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_northpass_lms import SourceNorthpassLms
from source_northpass_lms.config import DATE_TIME_PATTERN, NorthpassConfig
from source_northpass_lms.config_migrations import migrated
from source_northpass_lms.run import run

from .conftest import API, RESOURCES, catalog, jsonapi_page, person

ROOT = Path(__file__).resolve().parents[1]
KEY = "np-migration-secret-7b20e4"
BASE_URL = "https://api.northpass.test"
PACE = {"requests_per_second": 1000, "backoff_base_seconds": 0.001, "retry_budget_seconds": 5}
# 0.x: Airbyte's low-code connector. Its spec had api_key alone (the host was fixed), so its configs hold nothing else.
CONFIG_0X: Dict[str, Any] = {"api_key": KEY}
# 1.0.0's spec: these nine fields; start_date any ISO-8601 string (pendulum's parser), an empty one meaning none.
CONFIG_1_0: Dict[str, Any] = {
    "api_key": KEY,
    "start_date": "2024-01-01",
    "base_url": BASE_URL,
    "page_size": 100,
    "num_workers": 4,  # 1.0's default
    "request_timeout_seconds": 60,
    **PACE,
}
# 1.1.0's spec: the same fields (num_workers defaults to 8), start_date read the same way.
CONFIG_1_1: Dict[str, Any] = {**CONFIG_1_0, "num_workers": 8}
# 1.2.0's spec: start_date a date-time with seconds and a zone, and transcripts_reread_within_syncs.
CONFIG_1_2: Dict[str, Any] = {**CONFIG_1_1, "start_date": "2024-01-01T00:00:00Z", "transcripts_reread_within_syncs": 7}
MIGRATED_START = "2024-01-01T00:00:00Z"
OLD, NEW = person(1, updated_at="2023-12-31T23:59:59Z"), person(2, updated_at="2024-01-02T00:00:00Z")


def run_connector(
    command: str, tmp_path: Path, config: Dict[str, Any], capfd: pytest.CaptureFixture[str]
) -> List[Dict[str, Any]]:
    """`source-northpass-lms <command>` in-process: the messages on stdout, an uncaught error as the CLI prints it."""
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    args = [command, "--config", str(config_path)]
    if command == "read":
        configured = catalog("people", sync_mode=SyncMode.incremental)
        (tmp_path / "catalog.json").write_text(json.dumps(ConfiguredAirbyteCatalogSerializer.dump(configured)))
        args += ["--catalog", str(tmp_path / "catalog.json")]
    capfd.readouterr()
    try:
        run(args)
    except AirbyteTracedException as exc:  # what the console script's exception hook prints
        print(json.dumps(AirbyteMessageSerializer.dump(exc.as_sanitized_airbyte_message())))
    return [json.loads(line) for line in capfd.readouterr().out.splitlines() if line.strip()]


def controls(messages: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    return [m["control"] for m in messages if m["type"] == "CONTROL"]


def mock_api(http: rm.Mocker, base: str = API) -> None:
    http.get(f"{base}/people", json=jsonapi_page([OLD, NEW]))


def outcome(command: str, messages: List[Dict[str, Any]]) -> Any:
    """What the command answered: check's status, discover's streams, read's record ids."""
    if command == "check":
        return next(m["connectionStatus"]["status"] for m in messages if m["type"] == "CONNECTION_STATUS")
    if command == "discover":
        return "people" in {s["name"] for m in messages if m["type"] == "CATALOG" for s in m["catalog"]["streams"]}
    return [m["record"]["data"]["id"] for m in messages if m["type"] == "RECORD"]


EXPECTED = {"check": "SUCCEEDED", "discover": True, "read": [NEW["id"]]}


@pytest.mark.parametrize("command", ["check", "discover", "read"])
@pytest.mark.parametrize("release, saved", [("1.0", CONFIG_1_0), ("1.1", CONFIG_1_1)])
def test_given_config_saved_by_1_0_or_1_1_with_a_date_alone_when_run_then_migrated_announced_first_and_file_rewritten(
    http: rm.Mocker,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    release: str,
    saved: Dict[str, Any],
    command: str,
) -> None:
    mock_api(http)

    messages = run_connector(command, tmp_path, saved, capfd)

    expected = {**saved, "start_date": MIGRATED_START}
    assert messages[0]["type"] == "CONTROL"  # before any other output
    assert controls(messages) == [
        {
            "type": "CONNECTOR_CONFIG",
            "emitted_at": messages[0]["control"]["emitted_at"],
            "connectorConfig": {"config": expected},
        }
    ]
    assert json.loads((tmp_path / "config.json").read_text()) == expected
    assert outcome(command, messages) == EXPECTED[command]
    if command == "read":  # the start date applied as the instant 1.1 read: midnight UTC
        assert http.last_request.qs["filter[updated_at][gteq]"] == [MIGRATED_START.lower()]


@pytest.mark.parametrize("command", ["check", "discover", "read"])
@pytest.mark.parametrize("release, saved", [("0.x", CONFIG_0X), ("1.2", CONFIG_1_2)])
def test_given_config_saved_by_0x_or_1_2_when_run_then_no_control_message_and_file_untouched(
    http: rm.Mocker,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    release: str,
    saved: Dict[str, Any],
    command: str,
) -> None:
    mock_api(http, f"{saved.get('base_url', 'https://api.northpass.com')}/v2")

    messages = run_connector(command, tmp_path, saved, capfd)

    assert controls(messages) == []
    assert (tmp_path / "config.json").read_text() == json.dumps(saved)
    expected = EXPECTED[command] if release == "1.2" or command != "read" else [OLD["id"], NEW["id"]]
    assert outcome(command, messages) == expected


def test_given_migrated_config_when_run_again_then_announced_only_the_first_time(
    http: rm.Mocker, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    mock_api(http)
    first = run_connector("check", tmp_path, CONFIG_1_1, capfd)
    rewritten = json.loads((tmp_path / "config.json").read_text())

    second = run_connector("check", tmp_path, rewritten, capfd)

    assert len(controls(first)) == 1 and controls(second) == []
    assert outcome("check", second) == "SUCCEEDED"


@pytest.mark.parametrize("command", ["check", "discover", "read"])
def test_given_start_date_no_release_accepted_when_run_then_config_error_naming_the_field_and_no_migration(
    http: rm.Mocker, tmp_path: Path, capfd: pytest.CaptureFixture[str], command: str
) -> None:
    mock_api(http)
    saved = {**CONFIG_1_1, "start_date": "last tuesday"}

    messages = run_connector(command, tmp_path, saved, capfd)

    assert controls(messages) == []
    assert json.loads((tmp_path / "config.json").read_text()) == saved
    if command == "check":
        status = next(m["connectionStatus"] for m in messages if m["type"] == "CONNECTION_STATUS")
        assert status["status"] == "FAILED" and "Config field 'start_date'" in status["message"]
    else:
        errors = [m["trace"]["error"] for m in messages if m["type"] == "TRACE" and m["trace"]["type"] == "ERROR"]
        assert errors and errors[-1]["failure_type"] == "config_error"
        assert "Config field 'start_date'" in errors[-1]["message"]
    assert not http.called


def test_given_migration_when_run_then_the_key_is_in_the_control_message_alone_never_in_a_log_or_trace(
    http: rm.Mocker, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    http.get(f"{API}/people", status_code=401, json={"errors": [{"status": "401", "title": "Unauthorized"}]})
    saved = {**CONFIG_1_1, "api_key": f" {KEY}\n"}

    messages = run_connector("read", tmp_path, saved, capfd)

    # The platform stores the config the message carries, as given (the key with its whitespace), and masks it.
    assert controls(messages)[0]["connectorConfig"]["config"]["api_key"] == f" {KEY}\n"
    others = [json.dumps(m) for m in messages if m["type"] != "CONTROL"]
    assert any(m["type"] == "TRACE" for m in messages)  # the sync failed: its errors are checked too
    assert not any(KEY in line for line in others)
    assert any("start_date" in m["log"]["message"] for m in messages if m["type"] == "LOG")


def test_given_config_file_not_writable_when_run_then_migrated_copy_used_and_still_announced(
    http: rm.Mocker, tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    mock_api(http)
    config_path = tmp_path / "config.json"
    write_text = Path.write_text

    def read_only(self: Path, *args: Any, **kwargs: Any) -> int:
        if self == config_path and self.exists():
            raise PermissionError(13, "Read-only file system", str(self))
        return write_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", read_only)

    messages = run_connector("read", tmp_path, CONFIG_1_1, capfd)

    assert controls(messages)[0]["connectorConfig"]["config"]["start_date"] == MIGRATED_START
    assert json.loads(config_path.read_text())["start_date"] == "2024-01-01"
    assert outcome("read", messages) == [NEW["id"]]


# Forms 1.0 and 1.1 read (pendulum's parser), and what 1.3.0 writes for them.
FORMS_1_1 = [
    ("2024-01-01", "2024-01-01T00:00:00Z"),
    ("2024-01-01T00:00:00", "2024-01-01T00:00:00Z"),  # no zone: 1.1 read UTC
    ("2024-01-01 00:00:00", "2024-01-01T00:00:00Z"),
    ("2024-01-01 10:11:12.5", "2024-01-01T10:11:12.500000Z"),  # str() of a Python datetime
    ("2024-01-01T00:00Z", "2024-01-01T00:00:00Z"),
    ("2024-01-01T02:00:00+0200", "2024-01-01T00:00:00Z"),
    ("2024-01-01T10:30:15,25Z", "2024-01-01T10:30:15.250000Z"),
    ("20240101", "2024-01-01T00:00:00Z"),
    ("2024-W01-1", "2024-01-01T00:00:00Z"),
    ("2024-001", "2024-01-01T00:00:00Z"),
    ("2024-01", "2024-01-01T00:00:00Z"),
    ("2024/01/01", "2024-01-01T00:00:00Z"),
]


@pytest.mark.parametrize("saved, now", FORMS_1_1)
def test_given_start_date_in_a_form_1_1_accepted_when_migrated_then_the_instant_1_1_read_in_1_2_form(
    saved: str, now: str
) -> None:
    config = {**CONFIG_1_1, "start_date": saved}

    new = migrated(config)

    assert new == {**config, "start_date": now}
    assert NorthpassConfig.parse(new).start_date == NorthpassConfig.parse(config).start_date


@pytest.mark.parametrize("saved", ["now", "10:00"])
def test_given_start_date_1_1_read_as_a_moment_of_each_run_when_migrated_then_that_moment_of_the_upgrade(
    saved: str,
) -> None:
    """1.1 read "now", or a time alone, as that moment on the day of each run: the upgrade fixes the day it ran."""
    before = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=1)

    new = migrated({**CONFIG_1_1, "start_date": saved})

    assert new is not None and re.search(DATE_TIME_PATTERN, new["start_date"])
    assert before <= NorthpassConfig.parse(new).start_date <= before + timedelta(days=2)  # type: ignore[operator]


def test_given_empty_start_date_1_1_read_as_none_when_migrated_then_removed() -> None:
    assert migrated({**CONFIG_1_1, "start_date": ""}) == {k: v for k, v in CONFIG_1_1.items() if k != "start_date"}
    assert NorthpassConfig.parse({**CONFIG_1_1, "start_date": ""}).start_date is None


@pytest.mark.parametrize(
    "value", ["2024-01-01T00:00:00Z", "2024-01-01T02:30:00+02:30", "2024-02-29T23:59:59.25Z", "2024-01-01T00:00:00Z\n"]
)
def test_given_start_date_in_1_2_form_when_migrated_then_left_as_it_is(value: str) -> None:
    assert migrated({**CONFIG_1_2, "start_date": value}) is None


@pytest.mark.parametrize("release, saved", [("1.0.0", CONFIG_1_0), ("1.1.0", CONFIG_1_1), ("1.2.0", CONFIG_1_2)])
def test_each_release_config_has_exactly_the_fields_of_that_releases_spec(release: str, saved: Dict[str, Any]) -> None:
    spec = yaml.safe_load((RESOURCES / "specs" / f"{release}.yaml").read_text())  # spec.yaml at the release's commit

    assert set(saved) == set(spec["connectionSpecification"]["properties"])


@pytest.mark.parametrize(
    "saved",
    [CONFIG_0X, CONFIG_1_0, CONFIG_1_1, CONFIG_1_2, {**CONFIG_1_1, "start_date": ""}]
    + [{**CONFIG_1_1, "start_date": form} for form, _ in FORMS_1_1],
)
def test_given_config_of_any_release_then_the_spec_accepts_it_so_validation_before_launch_passes(
    saved: Dict[str, Any],
) -> None:
    """The platform validates a saved config against a new version's spec, and PyAirbyte's read() does before it
    starts the connector (which migrates): every config an earlier release accepted must pass."""
    spec = SourceNorthpassLms(None, None, None).spec(logging.getLogger("test"))
    check_config_against_spec_or_exit(saved, spec)


def test_given_1_1_config_when_main_py_checks_then_first_line_is_the_control_message_and_exit_0(tmp_path: Path) -> None:
    """The process as Airbyte runs it: nothing on stdout before the CONTROL message, nothing on stderr."""
    # A loopback port with nothing listening: the check fails at once, after the migration.
    saved: Dict[str, Any] = {**CONFIG_1_1, "base_url": "http://127.0.0.1:9"}
    (tmp_path / "config.json").write_text(json.dumps(saved))
    env = {k: v for k, v in os.environ.items() if k != "LOG_LEVEL"}

    done = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "check", "--config", str(tmp_path / "config.json")],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )

    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert done.returncode == 0 and done.stderr == ""
    assert lines[0]["type"] == "CONTROL"
    assert lines[0]["control"]["connectorConfig"]["config"] == {**saved, "start_date": MIGRATED_START}
    assert [m["type"] for m in lines].count("CONTROL") == 1
    status = next(m["connectionStatus"] for m in lines if m["type"] == "CONNECTION_STATUS")
    assert status["status"] == "FAILED" and "Could not reach" in status["message"]
    assert json.loads((tmp_path / "config.json").read_text())["start_date"] == MIGRATED_START

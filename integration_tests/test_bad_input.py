"""Bad config, catalog and state: a config_error that says what to fix, never a bare traceback.

Each config mistake runs through the connector's own entrypoint in-process (check and read); the process
level (exit code, messages on stdout, nothing else on stderr) is shown once per command through the CLI.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest
from airbyte_cdk.models import AirbyteMessageSerializer, Type
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from sandbox import SandboxOptions, SandboxServer
from source_northpass_lms.run import NorthpassEntrypoint, _source

from .conftest import catalog_for, keyed, run_cli

KEY = "np-badinput-secret-31d0aa"

BAD_CONFIGS: List[Tuple[Dict[str, Any], str]] = [
    ({"api_key": None}, "api_key"),
    ({"api_key": ""}, "api_key"),
    ({"api_key": " \n "}, "api_key"),
    ({"api_key": 42}, "api_key"),
    ({"base_url": "http://api.northpass.com"}, "base_url"),
    ({"base_url": "ftp://api.northpass.com"}, "base_url"),
    ({"page_size": 0}, "page_size"),
    ({"page_size": 101}, "page_size"),
    ({"page_size": "100"}, "page_size"),
    ({"requests_per_second": "fast"}, "requests_per_second"),
    ({"num_workers": 1.5}, "num_workers"),
    ({"request_timeout_seconds": 0}, "request_timeout_seconds"),
    ({"start_date": "last tuesday"}, "start_date"),
]


@pytest.fixture(scope="module")
def sb() -> Iterator[SandboxServer]:
    with SandboxServer(SandboxOptions(seed=3, people=120, courses=3, requests_per_second=None, api_key=KEY)) as server:
        yield server


def good_config(sb: SandboxServer) -> Dict[str, Any]:
    return {"api_key": KEY, "base_url": sb.base_url, "requests_per_second": 1000}


def bad_config(sb: SandboxServer, overrides: Dict[str, Any]) -> Dict[str, Any]:
    config = {**good_config(sb), **overrides}
    return {k: v for k, v in config.items() if v is not None}


def run_entrypoint(command: str, tmp_path: Path, config: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The console script's code path in-process: our entrypoint, input files read by run.py."""
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "catalog.json").write_text(json.dumps(catalog_for("people")))
    args = [command, "--config", str(tmp_path / "config.json")]
    if command == "read":
        args += ["--catalog", str(tmp_path / "catalog.json")]
    entrypoint = NorthpassEntrypoint(_source(args))
    messages: List[Dict[str, Any]] = []
    try:
        for line in entrypoint.run(entrypoint.parse_args(args)):
            messages.append(json.loads(line))
    except AirbyteTracedException as exc:  # what the console script's exception hook prints
        messages.append(AirbyteMessageSerializer.dump(exc.as_airbyte_message()))
    return messages


@pytest.mark.parametrize("overrides, field", BAD_CONFIGS, ids=[f"{f}={o[f]!r}" for o, f in BAD_CONFIGS])
def test_given_bad_config_field_when_check_then_failed_status_naming_the_field(
    sb: SandboxServer, tmp_path: Path, overrides: Dict[str, Any], field: str
) -> None:
    sb.reset_stats()

    messages = run_entrypoint("check", tmp_path, bad_config(sb, overrides))

    status = [m["connectionStatus"] for m in messages if m["type"] == Type.CONNECTION_STATUS.value]
    assert status and status[0]["status"] == "FAILED"
    assert f"Config field '{field}'" in status[0]["message"]
    assert sb.stats()["requests"] == 0


@pytest.mark.parametrize("overrides, field", BAD_CONFIGS, ids=[f"{f}={o[f]!r}" for o, f in BAD_CONFIGS])
def test_given_bad_config_field_when_read_then_config_error_trace_naming_the_field(
    sb: SandboxServer, tmp_path: Path, overrides: Dict[str, Any], field: str
) -> None:
    sb.reset_stats()

    messages = run_entrypoint("read", tmp_path, bad_config(sb, overrides))

    errors = [m["trace"]["error"] for m in messages if m["type"] == "TRACE" and m["trace"]["type"] == "ERROR"]
    assert errors and errors[-1]["failure_type"] == "config_error"
    assert f"Config field '{field}'" in errors[-1]["message"]
    assert not any(m["type"] == "RECORD" for m in messages)
    assert sb.stats()["requests"] == 0


def test_given_bad_config_when_cli_checks_then_failed_status_naming_the_field_and_exit_0(
    sb: SandboxServer, tmp_path: Path
) -> None:
    run = run_cli("check", tmp_path, bad_config(sb, {"page_size": 500}))

    assert run.returncode == 0, run.stderr[-2000:]
    status = run.of_type("CONNECTION_STATUS")[0]["connectionStatus"]
    assert status["status"] == "FAILED" and "Config field 'page_size': must be from 1 to 100" in status["message"]


def test_given_bad_config_when_cli_reads_with_debug_then_config_error_trace_nonzero_exit_key_never_printed(
    sb: SandboxServer, tmp_path: Path
) -> None:
    run = run_cli(
        "read",
        tmp_path,
        bad_config(sb, {"api_key": f"  {KEY}\n", "base_url": "http://api.northpass.com"}),
        catalog_for("people"),
        extra=("--debug",),
    )

    assert run.returncode != 0
    errors = [m["trace"]["error"] for m in run.of_type("TRACE") if m["trace"]["type"] == "ERROR"]
    assert errors[-1]["failure_type"] == "config_error" and "Config field 'base_url'" in errors[-1]["message"]
    assert KEY not in run.stdout + run.stderr


def test_given_key_with_surrounding_whitespace_when_cli_reads_then_stripped_key_accepted_and_never_printed(
    sb: SandboxServer, tmp_path: Path
) -> None:
    raw = f"\t{KEY}  \n"

    run = run_cli("read", tmp_path, {**good_config(sb), "api_key": raw}, catalog_for("courses"), extra=("--debug",))

    assert run.returncode == 0, run.stderr[-2000:]
    assert keyed(run.records["courses"], ("id",)) == keyed(sb.expected_records("courses"), ("id",))
    assert KEY not in run.stdout + run.stderr


# ---------------------------------------------------------------------------------- catalog and state


def test_given_catalog_naming_an_unknown_stream_when_cli_reads_then_config_error_naming_it_and_others_read(
    sb: SandboxServer, tmp_path: Path
) -> None:
    run = run_cli("read", tmp_path, good_config(sb), catalog_for("courses", "lessons"))

    assert run.returncode != 0
    errors = {
        (m["trace"]["error"].get("stream_descriptor") or {}).get("name"): m["trace"]["error"]
        for m in run.of_type("TRACE")
        if m["trace"]["type"] == "ERROR"
    }
    assert errors["lessons"]["failure_type"] == "config_error"
    assert (
        "The stream 'lessons' in your connection configuration was not found" in errors["lessons"]["internal_message"]
    )
    assert len(run.records["courses"]) == len(sb.expected_records("courses"))


STATE_FILES = {
    "not JSON": ("{not json", "is not valid JSON"),
    "a legacy object": (json.dumps({"people": {"updated_at": "2024-01-01"}}), "is not in the format of the Airbyte"),
    "a stream state that is not an object": (
        json.dumps([{"type": "STREAM", "stream": {"stream_descriptor": {"name": "people"}, "stream_state": "x"}}]),
        "is not in the format of the Airbyte",
    ),
}


@pytest.mark.parametrize("kind", list(STATE_FILES))
def test_given_unusable_state_file_when_read_then_config_error_saying_how_to_fix_not_a_traceback(
    sb: SandboxServer, tmp_path: Path, kind: str
) -> None:
    text, problem = STATE_FILES[kind]
    (tmp_path / "state.json").write_text(text)
    (tmp_path / "config.json").write_text(json.dumps(good_config(sb)))
    (tmp_path / "catalog.json").write_text(json.dumps(catalog_for("people")))
    files = {name: str(tmp_path / f"{name}.json") for name in ("config", "catalog", "state")}

    with pytest.raises(AirbyteTracedException) as raised:
        _source(["read", "--config", files["config"], "--catalog", files["catalog"], "--state", files["state"]])

    assert raised.value.failure_type.value == "config_error"
    assert problem in (raised.value.message or "")
    assert "run without --state to read every stream from the start" in (raised.value.message or "")


def test_given_malformed_state_when_cli_reads_then_trace_on_stdout_and_nonzero_exit(
    sb: SandboxServer, tmp_path: Path
) -> None:
    (tmp_path / "state.json").write_text("{not json")

    run = run_cli(
        "read", tmp_path, good_config(sb), catalog_for("people"), extra=("--state", str(tmp_path / "state.json"))
    )

    assert run.returncode != 0 and not run.records
    error = [m["trace"]["error"] for m in run.of_type("TRACE") if m["trace"]["type"] == "ERROR"][-1]
    assert error["failure_type"] == "config_error"
    assert error["message"].startswith(f"The state file {tmp_path / 'state.json'} is not valid JSON")
    assert "Traceback" not in run.stderr


def test_given_protocol_valid_state_a_full_refresh_stream_does_not_understand_when_read_then_everything(
    sb: SandboxServer, tmp_path: Path
) -> None:
    state = [{"type": "STREAM", "stream": {"stream_descriptor": {"name": "people"}, "stream_state": {"page": "??"}}}]

    run = run_cli("read", tmp_path, good_config(sb), catalog_for("people"), state=state)

    assert run.returncode == 0, run.stderr[-2000:]
    assert keyed(run.records["people"], ("id",)) == keyed(sb.expected_records("people"), ("id",))

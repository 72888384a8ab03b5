"""The connector's packaging: metadata.yaml, the Dockerfile, and the wheel they install."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any, List, Mapping
from urllib.parse import urlsplit

import pytest
import yaml

from source_northpass_lms import SourceNorthpassLms
from source_northpass_lms.config import DEFAULT_BASE_URL

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest depends on tomli before Python 3.11
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "source_northpass_lms"
WHEEL_BUILD_TIMEOUT_SECONDS = 120


def _metadata() -> Mapping[str, Any]:
    return yaml.safe_load((ROOT / "metadata.yaml").read_text())["data"]


def _pyproject() -> Mapping[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _dockerfile_instructions() -> List[tuple[str, str]]:
    """(INSTRUCTION, arguments) for each instruction, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, arguments = line.partition(" ")
            instructions.append((keyword.upper(), arguments.strip()))
    return instructions


def _arguments(keyword: str) -> List[str]:
    return [arguments for name, arguments in _dockerfile_instructions() if name == keyword]


def test_metadata_is_valid_against_airbytes_published_metadata_schema() -> None:
    """Field names, types and allowed values are Airbyte's to define: checked with their models, not by hand."""
    if sys.version_info >= (3, 13):
        pytest.importorskip(
            "airbyte_connector_models", reason="airbyte-connector-models 0.1 declares Python <3.13 and is not installed"
        )
    from airbyte_connector_models.metadata.v0.connector_metadata_definition_v0 import ConnectorMetadataDefinitionV0

    metadata = ConnectorMetadataDefinitionV0.model_validate(yaml.safe_load((ROOT / "metadata.yaml").read_text()))
    assert metadata.data.connector_type.value == "source"


def _docs_request_costs() -> Mapping[str, str]:
    """Stream -> its full-refresh cost in requests, from the streams table of the docs page."""
    page = (ROOT / "docs/integrations/sources/northpass-lms.md").read_text()
    section = page.split("\n## Supported Streams\n", 1)[1].split("\n#", 1)[0]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in section.splitlines()]
    return {row[0].strip("`"): row[-1] for row in rows if row[0].startswith("`")}


def test_suggested_streams_are_streams_of_the_source_and_cheap_by_the_docs_cost_table() -> None:
    suggested = set(_metadata()["suggestedStreams"]["streams"])
    config = {"api_key": "key"}
    costs = _docs_request_costs()

    assert suggested <= {stream.name for stream in SourceNorthpassLms(None, config, None).streams(config)}
    assert set(costs) >= suggested
    one_request_per_page_of_their_own_list = {name for name, cost in costs.items() if cost.endswith(" / 100")}
    # course_enrollments, one request or more per course, is the one fan-out suggested: the reason to sync an LMS.
    assert suggested - one_request_per_page_of_their_own_list == {"course_enrollments"}


def test_test_suites_declared_are_the_ones_this_repository_has_with_airbytes_secret_naming() -> None:
    suites = {options["suite"]: options for options in _metadata()["connectorTestSuitesOptions"]}
    name = _pyproject()["project"]["name"]

    assert set(suites) == {"unitTests", "integrationTests", "acceptanceTests"}
    assert (ROOT / "unit_tests").is_dir() and (ROOT / "integration_tests").is_dir()
    assert (ROOT / "acceptance-test-config.yml").is_file()
    (secret,) = suites["acceptanceTests"]["testSecrets"]
    assert secret["name"] == f"SECRET_{name.upper()}__CREDS" and secret["fileName"] == "config.json"
    assert secret["secretStore"] == {"type": "GSM", "alias": "airbyte-connector-testing-secret-store"}


def test_pypi_publishing_declared_for_the_distribution_under_airbytes_prefix() -> None:
    pypi = _metadata()["remoteRegistries"]["pypi"]
    assert pypi == {"enabled": True, "packageName": f"airbyte-{_pyproject()['project']['name']}"}


def test_metadata_allows_only_the_host_of_the_default_base_url() -> None:
    assert _metadata()["allowedHosts"]["hosts"] == [urlsplit(DEFAULT_BASE_URL).hostname]


def test_docker_repository_and_issue_label_name_the_package() -> None:
    data = _metadata()
    name = _pyproject()["project"]["name"]
    assert data["dockerRepository"] == f"airbyte/{name}"
    assert data["githubIssueLabel"] == name


def test_docker_image_tag_is_the_package_version() -> None:
    assert _metadata()["dockerImageTag"] == _pyproject()["project"]["version"]


def test_dockerfile_builds_from_the_base_image_declared_in_metadata() -> None:
    base_image = _metadata()["connectorBuildOptions"]["baseImage"]
    assert _arguments("FROM") == [base_image]
    # Pinned by digest, as Airbyte requires, so a rebuild gets the same base.
    assert re.fullmatch(r"docker\.io/airbyte/python-connector-base:\d+\.\d+\.\d+@sha256:[0-9a-f]{64}", base_image)


def test_every_path_the_dockerfile_copies_exists() -> None:
    copies = _arguments("COPY")
    assert copies
    missing = []
    for arguments in copies:
        sources = [word for word in shlex.split(arguments) if not word.startswith("--")][:-1]
        missing += [source for source in sources if not (ROOT / source).exists()]
    assert not missing, f"the Dockerfile copies paths that do not exist: {missing}"


def test_dockerfile_copies_what_the_package_build_reads() -> None:
    """`pip install .` in the image needs the readme pyproject.toml names, and the package itself."""
    copied = {word for arguments in _arguments("COPY") for word in shlex.split(arguments)[:-1]}
    assert {"pyproject.toml", "main.py", PACKAGE} <= copied
    assert _pyproject()["project"]["readme"] in copied


def test_entrypoint_runs_main_py_which_starts_the_connector() -> None:
    entrypoints = _arguments("ENTRYPOINT")
    assert len(entrypoints) == 1
    command = json.loads(entrypoints[0])
    assert command == ["python", "/airbyte/integration_code/main.py"]
    assert any(arguments.startswith("/airbyte/integration_code") for arguments in _arguments("WORKDIR"))
    assert any(
        arguments == 'AIRBYTE_ENTRYPOINT="python /airbyte/integration_code/main.py"' for arguments in _arguments("ENV")
    )
    main = (ROOT / "main.py").read_text()
    assert f"from {PACKAGE}.run import run" in main and "run()" in main


def test_main_py_answers_spec() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "spec"], capture_output=True, text=True, timeout=60, check=True
    )
    messages = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    specs = [message["spec"] for message in messages if message["type"] == "SPEC"]
    assert len(specs) == 1
    assert "api_key" in specs[0]["connectionSpecification"]["properties"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    # No build isolation: the build backend (setuptools) is already installed, so no index is needed.
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q", "-w", str(out)],
        check=True,
        timeout=WHEEL_BUILD_TIMEOUT_SECONDS,
        capture_output=True,
    )
    (built,) = out.glob("source_northpass_lms-*.whl")
    return zipfile.ZipFile(built)


def test_wheel_contains_the_spec_and_every_schema(wheel: zipfile.ZipFile) -> None:
    package_dir = ROOT / PACKAGE
    data_files = ["spec.yaml"] + [
        path.relative_to(package_dir).as_posix()
        for pattern in ("schemas/*.json", "schemas/shared/*.json")
        for path in sorted(package_dir.glob(pattern))
    ]
    assert any(name.startswith("schemas/shared/") for name in data_files)
    missing = sorted({f"{PACKAGE}/{name}" for name in data_files} - set(wheel.namelist()))
    assert not missing, f"the wheel lacks {missing}"


def test_wheel_declares_the_console_script(wheel: zipfile.ZipFile) -> None:
    (entry_points,) = [name for name in wheel.namelist() if name.endswith(".dist-info/entry_points.txt")]
    text = wheel.read(entry_points).decode()
    assert re.search(r"^\[console_scripts\]$", text, re.M)
    assert re.search(rf"^source-northpass-lms\s*=\s*{PACKAGE}\.run:run$", text, re.M)

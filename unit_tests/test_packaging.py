"""The connector's packaging: metadata.yaml, the Dockerfile, and the wheel they install."""

from __future__ import annotations

import importlib.metadata
import json
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any, Dict, List, Mapping, NoReturn, Tuple
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
# Airbyte's template for Python connectors, `docker-images/Dockerfile.python-connector` in airbytehq/airbyte (read at
# commit 02e8a80). The installed CDK does not ship it: `airbyte-cdk image build` reads it from a checkout of that
# repository or downloads it from there, and passes it BASE_IMAGE and CONNECTOR_NAME (`_airbytes_build` below
# takes the template's name and both arguments from the CDK's own code). What the template's final stage is:
# the base image, the builder stage's /usr/local (where the package was installed), an entrypoint script that
# runs the connector's console script, and these instructions.
TEMPLATE_FINAL_STAGE = [
    ("WORKDIR", "/airbyte/integration_code"),
    ("COPY", "--from=builder /usr/local /usr/local"),
    ("USER", "airbyte"),
    ("ENV", 'AIRBYTE_ENTRYPOINT="/entrypoint.sh"'),
    ("ENTRYPOINT", '["/entrypoint.sh"]'),
]
TEMPLATE_ENTRYPOINT_SCRIPT = '#!/usr/bin/env bash\nset -e\n\n{connector_name} "$@"\n'
TEMPLATE_ENTRYPOINT_PATH = "/entrypoint.sh"


def _metadata() -> Mapping[str, Any]:
    return yaml.safe_load((ROOT / "metadata.yaml").read_text())["data"]


def _poetry() -> Mapping[str, Any]:
    """pyproject.toml's [tool.poetry]: the package's name, version and readme are declared there only."""
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["poetry"]


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


def _base_image_argument() -> str:
    """The default of the Dockerfile's global `ARG BASE_IMAGE=...` (the one before the first FROM)."""
    global_args = [arguments for name, arguments in _dockerfile_instructions()[:1] if name == "ARG"]
    assert global_args and global_args[0].startswith("BASE_IMAGE="), "the Dockerfile starts with ARG BASE_IMAGE=..."
    return global_args[0].partition("=")[2]


def _stages() -> List[List[Tuple[str, str]]]:
    """Each build stage's instructions, its FROM first."""
    stages: List[List[Tuple[str, str]]] = []
    for instruction in _dockerfile_instructions():
        if instruction[0] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def _copied_from_context() -> List[List[str]]:
    """Each COPY from the build context (not from another stage) as its source paths."""
    copies = []
    for arguments in _arguments("COPY"):
        words = shlex.split(arguments)
        if not any(word.startswith("--from=") for word in words):
            copies.append([word for word in words if not word.startswith("--")][:-1])
    return copies


def _written_entrypoint_script(stage: List[Tuple[str, str]]) -> Tuple[str, str]:
    """(content, mode) of the entrypoint script a RUN of this stage writes with printf and chmod."""
    for name, arguments in stage:
        words = shlex.split(arguments)
        if name == "RUN" and words[:1] == ["printf"] and words[2:4] == [">", TEMPLATE_ENTRYPOINT_PATH]:
            chmod = words[4:]
            assert "%" not in words[1] and len(chmod) == 4 and chmod[:2] == ["&&", "chmod"], arguments
            assert chmod[3] == TEMPLATE_ENTRYPOINT_PATH, arguments
            return words[1].replace("\\n", "\n"), chmod[2]
    raise AssertionError(f"no RUN of the final stage writes {TEMPLATE_ENTRYPOINT_PATH} with printf")


@pytest.fixture
def airbytes_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Dict[str, Any]:
    """What `airbyte-cdk image build` does for this connector, by the installed CDK's own code.

    Docker and the network are replaced by recorders, and there is no checkout of Airbyte's repository, so the
    CDK takes its download path: the template it fetches and the build arguments it passes are recorded.
    """
    from airbyte_cdk.models.connector_metadata import MetadataFile
    from airbyte_cdk.utils import docker

    fetched: List[str] = []
    builds: List[Dict[str, Any]] = []

    class Downloaded:
        text = ""

        def raise_for_status(self) -> None:
            """The recorded download succeeded."""

    def no_checkout(from_dir: Path) -> NoReturn:
        raise FileNotFoundError(f"no checkout of Airbyte's repository around {from_dir}")

    def download(url: str, *args: Any, **kwargs: Any) -> Downloaded:
        fetched.append(url)
        return Downloaded()

    def build(**kwargs: Any) -> str:
        builds.append(kwargs)
        return str(kwargs["tag"])

    monkeypatch.setattr(docker, "resolve_airbyte_repo_root", no_checkout)
    monkeypatch.setattr(docker.requests, "get", download)
    monkeypatch.setattr(docker, "_build_image", build)
    monkeypatch.setattr(docker, "_tag_image", lambda **kwargs: None)
    # Airbyte's connector folder is named as the image repository's name, and passed as the connector name.
    name = _metadata()["dockerRepository"].split("/")[-1]
    connector = tmp_path / name
    connector.mkdir()
    shutil.copy(ROOT / "metadata.yaml", connector / "metadata.yaml")
    metadata = MetadataFile.from_file(connector / "metadata.yaml")

    docker.build_connector_image(
        connector_name=name, connector_directory=connector, metadata=metadata, tag="dev", no_verify=True
    )

    assert builds, "the CDK built nothing"
    return {"templates": fetched, "build_args": builds[0]["build_args"]}


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
    name = _poetry()["name"]

    assert set(suites) == {"unitTests", "integrationTests", "acceptanceTests"}
    assert (ROOT / "unit_tests").is_dir() and (ROOT / "integration_tests").is_dir()
    assert (ROOT / "acceptance-test-config.yml").is_file()
    (secret,) = suites["acceptanceTests"]["testSecrets"]
    assert secret["name"] == f"SECRET_{name.upper()}__CREDS" and secret["fileName"] == "config.json"
    assert secret["secretStore"] == {"type": "GSM", "alias": "airbyte-connector-testing-secret-store"}


def test_pypi_publishing_declared_for_the_distribution_under_airbytes_prefix() -> None:
    pypi = _metadata()["remoteRegistries"]["pypi"]
    assert pypi == {"enabled": True, "packageName": f"airbyte-{_poetry()['name']}"}


def test_metadata_allows_only_the_host_of_the_default_base_url() -> None:
    assert _metadata()["allowedHosts"]["hosts"] == [urlsplit(DEFAULT_BASE_URL).hostname]


def test_docker_repository_and_issue_label_name_the_package() -> None:
    data = _metadata()
    name = _poetry()["name"]
    assert data["dockerRepository"] == f"airbyte/{name}"
    assert data["githubIssueLabel"] == name


def test_docker_image_tag_is_the_package_version() -> None:
    assert _metadata()["dockerImageTag"] == _poetry()["version"]


def test_dockerfile_builds_every_stage_from_the_base_image_declared_in_metadata() -> None:
    base_image = _metadata()["connectorBuildOptions"]["baseImage"]
    assert _base_image_argument() == base_image
    assert [re.sub(r"\s+AS\s+\S+$", "", arguments, flags=re.I) for arguments in _arguments("FROM")] == [
        "${BASE_IMAGE}"
    ] * 2
    # Pinned by digest, as Airbyte requires, so a rebuild gets the same base.
    assert re.fullmatch(r"docker\.io/airbyte/python-connector-base:\d+\.\d+\.\d+@sha256:[0-9a-f]{64}", base_image)


def test_airbytes_build_of_this_connector_uses_the_python_template_with_our_base_image(
    airbytes_build: Dict[str, Any],
) -> None:
    assert [PurePosixPath(urlsplit(url).path).parts[-2:] for url in airbytes_build["templates"]] == [
        ("docker-images", "Dockerfile.python-connector"),
        ("docker-images", "Dockerfile.python-connector.dockerignore"),
    ]
    assert airbytes_build["build_args"]["BASE_IMAGE"] == _base_image_argument()


def test_dockerfile_final_stage_is_airbytes_template_with_our_connector_name(airbytes_build: Dict[str, Any]) -> None:
    """Same base image, entrypoint script, user, environment and installed files as `airbyte-cdk image build`."""
    connector_name = airbytes_build["build_args"]["CONNECTOR_NAME"]
    *_, final = _stages()
    script, mode = _written_entrypoint_script(final)

    assert [instruction for instruction in final if instruction[0] not in ("FROM", "RUN")] == TEMPLATE_FINAL_STAGE
    assert script == TEMPLATE_ENTRYPOINT_SCRIPT.format(connector_name=connector_name)
    assert mode == "755"
    # The script runs the connector by its console script, which the installed package must provide.
    scripts = importlib.metadata.distribution(_poetry()["name"]).entry_points
    assert connector_name in {entry.name for entry in scripts if entry.group == "console_scripts"}


def test_builder_stage_installs_the_locked_dependencies_then_the_package_into_the_base_images_python() -> None:
    """poetry.lock's versions, hash-checked, then the package with no dependencies of its own choosing.

    That the requirements file is the lock's main group: unit_tests/test_poetry_lock.py; that the built image holds
    exactly the lock's versions: integration_tests/test_image.py.
    """
    builder, _ = _stages()
    assert builder[0] == ("FROM", "${BASE_IMAGE} AS builder")
    runs = [" ".join(arguments.split()) for name, arguments in builder if name == "RUN"]
    assert runs == [
        "python requirements_from_lock.py poetry.lock > requirements.lock "
        "&& pip install --no-cache-dir --require-hashes --no-deps -r requirements.lock",
        "pip install --no-cache-dir --no-deps .",
    ]
    copied = [shlex.split(arguments) for name, arguments in builder if name == "COPY"]
    assert copied[0] == ["poetry.lock", "scripts/requirements_from_lock.py", "./"]


def test_every_path_the_dockerfile_copies_exists() -> None:
    copies = _copied_from_context()
    assert copies
    missing = [source for sources in copies for source in sources if not (ROOT / source).exists()]
    assert not missing, f"the Dockerfile copies paths that do not exist: {missing}"


def test_dockerfile_copies_what_the_package_build_reads() -> None:
    """`pip install .` in the image needs the readme pyproject.toml names, and the package itself."""
    copied = {source for sources in _copied_from_context() for source in sources}
    assert {"pyproject.toml", PACKAGE, _poetry()["readme"], "poetry.lock"} <= copied


def test_dockerignore_lets_into_the_build_context_every_path_the_dockerfile_copies() -> None:
    """.dockerignore excludes everything (`*`) and lets back in, by name, each path the Dockerfile copies."""
    lines = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()]
    allowed = {line[1:] for line in lines if line.startswith("!")}
    assert "*" in lines
    copied = {source for sources in _copied_from_context() for source in sources}
    assert copied == allowed


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
    # No build isolation: the build backend (poetry-core, in the dev group) is installed, so no index is needed.
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


def test_wheel_holds_only_the_connector_package(wheel: zipfile.ZipFile) -> None:
    """The sandbox, the tools and the tests are top-level folders beside the package, and stay out of the wheel."""
    top_level = {name.split("/")[0] for name in wheel.namelist()}
    assert {name for name in top_level if not name.endswith(".dist-info")} == {PACKAGE}

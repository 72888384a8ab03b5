"""The connector image, built from the Dockerfile and run as Airbyte runs it, against the sandbox.

Built once for the module (tools/image.py: docker, or buildah on a stand-in base image); each command
runs the image's ENTRYPOINT as its USER, with its files mounted read-only and the host's network, where the sandbox
listens on 127.0.0.1. Without an engine the module skips, saying why; with CI=true it fails instead. RUN_IMAGE=0
skips it (scripts/test.sh passes it on).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, Iterator, Mapping, Optional, Tuple

import pytest

from sandbox import SandboxOptions, SandboxServer
from sandbox.data import PRIMARY_KEYS
from tools.image import FILES_IN_CONTAINER, ConnectorImage, ImageEngineUnavailable, build_connector_image
from tools.lock import for_python, installed_against_lock, locked_versions, pyproject_package

from .conftest import CliRun, catalog_for, keyed

# The sandbox does not rate limit; the connector's pace is set high to keep the module fast.
FAST = {"api_key": "sandbox-key", "requests_per_second": 500, "page_size": 50}


@pytest.fixture(scope="module")
def image() -> Iterator[ConnectorImage]:
    if os.environ.get("RUN_IMAGE") == "0":
        pytest.skip("RUN_IMAGE=0: the image is not built")
    started = time.monotonic()
    try:
        built = build_connector_image()
    except ImageEngineUnavailable as unavailable:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must build and run the connector image, and cannot: {unavailable}.", pytrace=False)
        pytest.skip(f"The connector image cannot be built here: {unavailable}.")
    try:
        print(f"\n{built.engine} built the image in {time.monotonic() - started:.0f} s; its size: {built.size()}")
        yield built
    finally:
        built.remove()


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    # The options of the in-process every-stream test, whose dataset has records in every stream.
    with SandboxServer(SandboxOptions(seed=7, people=600, courses=15, requests_per_second=None)) as sb:
        yield sb


def run_image(
    image: ConnectorImage,
    command: str,
    tmp_path: Path,
    config: Optional[Mapping[str, Any]] = None,
    catalog: Optional[Mapping[str, Any]] = None,
) -> CliRun:
    """`docker run <image> <command> --config ... --catalog ...`, the files written to a folder the image's user reads."""
    files = Path(tempfile.mkdtemp(dir=tmp_path))
    files.chmod(0o755)
    args = [command]
    for name, content in (("config", config), ("catalog", catalog)):
        if content is not None:
            (files / f"{name}.json").write_text(json.dumps(content))
            (files / f"{name}.json").chmod(0o644)
            args += [f"--{name}", f"{FILES_IN_CONTAINER}/{name}.json"]
    started = time.monotonic()
    done = image.run(args, files)
    return CliRun.from_output(done, time.monotonic() - started)


def test_image_runs_its_entrypoint_as_airbyte_says_it_does_as_the_non_root_user(image: ConnectorImage) -> None:
    config = image.config()
    env = dict(item.split("=", 1) for item in config.get("Env") or [])
    # Airbyte's platform reads AIRBYTE_ENTRYPOINT to know the command the image runs.
    assert env["AIRBYTE_ENTRYPOINT"].split() == config["Entrypoint"] == ["/entrypoint.sh"]
    assert config["User"] == "airbyte"
    assert config["WorkingDir"] == "/airbyte/integration_code"


def test_image_holds_exactly_poetry_locks_versions_and_otherwise_only_what_its_base_image_has(
    image: ConnectorImage,
) -> None:
    """Every package installed in the image is the lock's main group at the lock's version (for the image's Python,
    by the markers it reports), the connector itself at pyproject.toml's version, or came with the base image."""
    built = image.python_report()
    base = image.python_report(of_base_image=True)

    compared = installed_against_lock(built.environment, built.distributions, base.distributions)

    assert not compared.mismatched, f"the image's versions differ from poetry.lock's: {compared.mismatched}"
    assert not compared.unexplained, f"in the image, neither locked nor from the base image: {compared.unexplained}"
    assert "airbyte-cdk" in compared.expected
    print(
        f"\nthe image (Python {built.environment['python_full_version']}) holds the {len(compared.expected) - 1} "
        f"packages of poetry.lock's main group for it at the lock's versions (airbyte-cdk "
        f"{compared.expected['airbyte-cdk']}) and the connector; besides, from its base image: "
        f"{', '.join(compared.from_base) or 'nothing'}"
    )


def test_the_image_comparison_fails_an_image_that_resolved_its_own_versions() -> None:
    """What the test above would say of an image built by `pip install .` a month later (no image needed)."""
    environment = for_python("3.11")
    locked = locked_versions(["main"], environment)
    name, version = pyproject_package()
    base = [("pip", "23.0.1"), ("setuptools", "66.1.1")]
    exact = [(name, version), *locked.items(), *base]
    drifted = [(n, "99.0.0" if n == "airbyte-cdk" else v) for n, v in exact if n != "six"] + [("extra-package", "1.0")]

    assert not installed_against_lock(environment, exact, base).mismatched
    assert not installed_against_lock(environment, exact, base).unexplained
    compared = installed_against_lock(environment, drifted, base)
    assert compared.mismatched == {
        "airbyte-cdk": {"locked": locked["airbyte-cdk"], "installed": "99.0.0"},
        "six": {"locked": locked["six"], "installed": None},
    }
    assert compared.unexplained == ["airbyte-cdk 99.0.0", "extra-package 1.0"]


def test_given_image_when_spec_and_check_with_good_and_bad_key_then_spec_succeeded_and_failed(
    image: ConnectorImage, sandbox: SandboxServer, tmp_path: Path
) -> None:
    config = {**FAST, "base_url": sandbox.base_url}

    spec = run_image(image, "spec", tmp_path)
    good = run_image(image, "check", tmp_path, config)
    bad = run_image(image, "check", tmp_path, {**config, "api_key": "wrong-key"})

    assert spec.returncode == 0, spec.stderr[-2000:]
    properties = spec.of_type("SPEC")[0]["spec"]["connectionSpecification"]["properties"]
    assert properties["api_key"]["airbyte_secret"] is True
    assert good.of_type("CONNECTION_STATUS")[0]["connectionStatus"]["status"] == "SUCCEEDED", good.stdout[-2000:]
    status = bad.of_type("CONNECTION_STATUS")[0]["connectionStatus"]
    assert status["status"] == "FAILED" and "rejected the API key" in status["message"]
    assert "wrong-key" not in bad.stdout + bad.stderr


def test_given_image_when_discover_then_read_every_stream_then_each_streams_records_equal_the_sandboxs(
    image: ConnectorImage, sandbox: SandboxServer, tmp_path: Path
) -> None:
    config = {**FAST, "base_url": sandbox.base_url}

    discover = run_image(image, "discover", tmp_path, config)
    assert discover.returncode == 0, discover.stderr[-2000:]
    keys: Dict[str, Tuple[str, ...]] = {
        stream["name"]: tuple(path[0] for path in stream["source_defined_primary_key"])
        for stream in discover.of_type("CATALOG")[0]["catalog"]["streams"]
    }
    read = run_image(image, "read", tmp_path, config, catalog_for(*keys))

    assert set(keys) == set(PRIMARY_KEYS), (
        f"streams only in the image's catalog: {sorted(set(keys) - set(PRIMARY_KEYS))}; "
        f"only in the sandbox's: {sorted(set(PRIMARY_KEYS) - set(keys))}"
    )
    assert read.returncode == 0, read.stderr[-2000:]
    assert not [m for m in read.of_type("TRACE") if m["trace"]["type"] == "ERROR"]
    assert read.streams_with_status("COMPLETE") == set(keys)
    for stream, key in keys.items():
        expected = keyed(sandbox.expected_records(stream), key)
        assert expected, f"the sandbox should have {stream} records"
        assert keyed(read.records.get(stream, []), key) == expected, stream
    counts = {stream: len(records) for stream, records in sorted(read.records.items())}
    print(f"\nthe image read {sum(counts.values())} records in {read.seconds:.1f} s: {counts}")

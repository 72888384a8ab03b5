"""The CDK's standard source tests (`airbyte_cdk.test.standard_tests`), run against the local sandbox.

The scenarios are listed in `integration_tests/acceptance-test-config.yml`. Their configs point at a
sandbox started for this session on 127.0.0.1, so the files are written here, into the git-ignored
`secrets/` folder, once the sandbox's port is known.

The suite's image tests (`@pytest.mark.image_tests`) build the connector's Docker image and run it;
the CDK skips them only when the `docker` CLI is missing, so they are skipped here too when no Docker
engine answers. With an engine, the image's `spec` tests run; its check, discover and read tests are
skipped, since a container cannot reach the sandbox on the host's loopback.
Run with: `pytest integration_tests/test_standard_suite.py`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml
from airbyte_cdk.test.standard_tests import SourceTestSuiteBase
from airbyte_cdk.test.standard_tests.docker_base import DockerConnectorTestSuite
from boltons.typeutils import classproperty

from integration_tests.sandbox import SandboxOptions, SandboxServer
from source_northpass_lms import SourceNorthpassLms

pytest_plugins = ["airbyte_cdk.test.standard_tests.pytest_hooks"]

CONNECTOR_ROOT = Path(__file__).resolve().parent.parent
ACCEPTANCE_TEST_CONFIG = Path(__file__).resolve().parent / "acceptance-test-config.yml"
VALID_CONFIG = CONNECTOR_ROOT / "secrets" / "sandbox_config.json"
INVALID_CONFIG = CONNECTOR_ROOT / "secrets" / "sandbox_invalid_config.json"
DOCKER_INFO_TIMEOUT_SECONDS = 20
# Image tests that send the scenario's config to the connector inside a container. The sandbox listens on the
# host's 127.0.0.1, which a container does not reach (the CDK runs it without host networking), and the
# connector allows plain http only to a loopback host: these cannot reach the sandbox from the image.
IMAGE_TESTS_NEEDING_THE_SANDBOX = frozenset(
    {"test_docker_image_build_and_check", "test_docker_image_build_and_discover", "test_docker_image_build_and_read"}
)


@lru_cache(maxsize=1)
def docker_engine_unavailable() -> str | None:
    """Why the image tests cannot run here, or None when a Docker engine answers."""
    if shutil.which("docker") is None:
        return "the docker CLI is not installed"
    try:
        probe = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=DOCKER_INFO_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"`docker info` did not answer in {DOCKER_INFO_TIMEOUT_SECONDS} s"
    if probe.returncode != 0 or not probe.stdout.strip():
        reason = (probe.stderr.strip().splitlines() or ["no server version"])[-1]
        return f"no Docker engine answers `docker info` ({reason})"
    return None


@pytest.fixture(scope="module", autouse=True)
def sandbox_configs() -> Iterator[dict[str, Any]]:
    """Start the sandbox and write the scenarios' configs with its base_url."""
    with SandboxServer(SandboxOptions(seed=42, people=200, courses=8, requests_per_second=None)) as sandbox:
        # The sandbox does not rate limit; the connector's own pace is set to its maximum to keep the suite fast.
        valid = {"api_key": "sandbox-key", "base_url": sandbox.base_url, "requests_per_second": 1000}
        invalid = {**valid, "api_key": "not-the-sandbox-key"}
        VALID_CONFIG.parent.mkdir(exist_ok=True)
        VALID_CONFIG.write_text(json.dumps(valid))
        INVALID_CONFIG.write_text(json.dumps(invalid))
        try:
            yield valid
        finally:
            VALID_CONFIG.unlink(missing_ok=True)
            INVALID_CONFIG.unlink(missing_ok=True)


class TestNorthpassLmsStandardSuite(SourceTestSuiteBase):
    """Every standard source test, for the scenarios of integration_tests/acceptance-test-config.yml."""

    # The suite derives the module and class names from the checkout folder's name, which need not be
    # `source-northpass-lms` (e.g. a git worktree); name both explicitly.
    connector = SourceNorthpassLms

    @classproperty
    def connector_name(cls) -> str:
        return "source-northpass-lms"

    @classmethod
    def get_connector_root_dir(cls) -> Path:
        # The CDK would stop at integration_tests/, which holds acceptance-test-config.yml.
        return CONNECTOR_ROOT

    @classproperty
    def acceptance_test_config(cls) -> Any:
        config = yaml.safe_load(ACCEPTANCE_TEST_CONFIG.read_text())
        if "acceptance_tests" not in config:
            raise ValueError(f"{ACCEPTANCE_TEST_CONFIG} has no `acceptance_tests` section.")
        return config

    @pytest.fixture(autouse=True)
    def _image_tests_need_a_docker_engine(self, request: pytest.FixtureRequest) -> None:
        if request.node.get_closest_marker("image_tests") is None:
            return
        reason = docker_engine_unavailable()
        if reason:
            pytest.skip(f"Image test needs a running Docker engine to build and run the connector image: {reason}.")
        if request.node.originalname in IMAGE_TESTS_NEEDING_THE_SANDBOX:
            pytest.skip(
                "The connector in a container cannot reach the sandbox on the host's 127.0.0.1; "
                "the same command is tested in-process by the non-image test."
            )


def test_every_image_test_of_the_cdk_is_covered_by_the_docker_engine_skip() -> None:
    """The skip above keys on the `image_tests` mark: a new CDK image test without it would fail here, not skip."""
    image_tests = [name for name in vars(DockerConnectorTestSuite) if name.startswith("test_docker_image")]
    assert image_tests
    for name in image_tests:
        marks = {mark.name for mark in getattr(getattr(TestNorthpassLmsStandardSuite, name), "pytestmark", [])}
        assert "image_tests" in marks, f"{name} is not marked image_tests"

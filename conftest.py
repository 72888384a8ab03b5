"""The CDK's standard tests run against the bundled sandbox, however they are started.

`acceptance-test-config.yml` (next to metadata.yaml, where Airbyte's tools look for it) lists scenarios whose
configs are `secrets/sandbox_config.json` and `secrets/sandbox_invalid_config.json`. They point at a sandbox
started for the test session on 127.0.0.1, so they are written here once its port is known. This file sits at
the connector's root so that pytest loads it both for the project's own suite
(`integration_tests/test_standard_suite.py`) and for Airbyte's command, `airbyte-cdk connector test`, which
generates its own test module under `.tmp/` in this folder and runs pytest here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Iterator

import pytest
from airbyte_cdk.test.standard_tests.docker_base import DockerConnectorTestSuite

from tools.image import docker_engine_unavailable

CONNECTOR_ROOT = Path(__file__).resolve().parent
VALID_CONFIG = CONNECTOR_ROOT / "secrets" / "sandbox_config.json"
INVALID_CONFIG = CONNECTOR_ROOT / "secrets" / "sandbox_invalid_config.json"
# Image tests that send the scenario's config to the connector inside a container. The sandbox listens on the
# host's 127.0.0.1, which a container does not reach (the CDK runs it without host networking), and the
# connector allows plain http only to a loopback host: these cannot reach the sandbox from the image.
IMAGE_TESTS_NEEDING_THE_SANDBOX = frozenset(
    {"test_docker_image_build_and_check", "test_docker_image_build_and_discover", "test_docker_image_build_and_read"}
)


@pytest.fixture(scope="session")
def standard_suite_sandbox_configs() -> Iterator[Dict[str, Any]]:
    """Start the sandbox and write the scenarios' configs with its base_url; remove them afterwards."""
    from sandbox import SandboxOptions, SandboxServer

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


@pytest.fixture(autouse=True)
def _standard_suite_environment(request: pytest.FixtureRequest) -> None:
    """For a CDK standard suite's test only: the sandbox is up, and an image test has what it needs or is skipped.

    The CDK skips its image tests only when the `docker` CLI is missing; with the CLI but no engine they would
    fail, so they are skipped here too, saying why.
    """
    if request.cls is None or not issubclass(request.cls, DockerConnectorTestSuite):
        return
    if request.node.get_closest_marker("image_tests") is not None:
        reason = docker_engine_unavailable()
        if reason:
            pytest.skip(f"Image test needs a running Docker engine to build and run the connector image: {reason}.")
        if getattr(request.node, "originalname", "") in IMAGE_TESTS_NEEDING_THE_SANDBOX:
            pytest.skip(
                "The connector in a container cannot reach the sandbox on the host's 127.0.0.1; "
                "the same command is tested in-process by the non-image test."
            )
    request.getfixturevalue("standard_suite_sandbox_configs")

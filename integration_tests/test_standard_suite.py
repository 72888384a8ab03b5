"""The CDK's standard source tests (`airbyte_cdk.test.standard_tests`), run against the local sandbox.

The scenarios are listed in `acceptance-test-config.yml` at the connector's root, where Airbyte's own command
(`airbyte-cdk connector test`) reads them too. The sandbox they run against, the configs that point at it and
the skip of the image tests without a Docker engine live in the root `conftest.py`, shared by both ways of
running the suite. Run with: `pytest integration_tests/test_standard_suite.py`.
"""

from __future__ import annotations

from airbyte_cdk.test.standard_tests import SourceTestSuiteBase
from airbyte_cdk.test.standard_tests.docker_base import DockerConnectorTestSuite
from boltons.typeutils import classproperty

from source_northpass_lms import SourceNorthpassLms

pytest_plugins = ["airbyte_cdk.test.standard_tests.pytest_hooks"]


class TestNorthpassLmsStandardSuite(SourceTestSuiteBase):
    """Every standard source test, for the scenarios of acceptance-test-config.yml."""

    # The suite derives the module and class names from the checkout folder's name, which need not be
    # `source-northpass-lms` (a git worktree, CI's clone); name both explicitly.
    connector = SourceNorthpassLms

    @classproperty
    def connector_name(cls) -> str:
        return "source-northpass-lms"


def test_every_image_test_of_the_cdk_is_covered_by_the_docker_engine_skip() -> None:
    """The root conftest's skip keys on the `image_tests` mark: a new CDK image test without it would fail here."""
    image_tests = [name for name in vars(DockerConnectorTestSuite) if name.startswith("test_docker_image")]
    assert image_tests
    for name in image_tests:
        marks = {mark.name for mark in getattr(getattr(TestNorthpassLmsStandardSuite, name), "pytestmark", [])}
        assert "image_tests" in marks, f"{name} is not marked image_tests"

#!/usr/bin/env bash
# The one command that sets up and runs every test: lint, types, the oldest and newest Python versions promised,
# unit and integration tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy  # every folder CI runs, as Python 3.10 (pyproject.toml [tool.mypy] files)
# Python 3.10 and 3.13, each in its own .venv-py<version>/ (2 to 3 minutes on first use, about 2 after), with the
# lowest airbyte-cdk pyproject.toml allows on 3.10 and the newest on 3.13; RUN_OTHER_PYTHONS=0 skips them. In CI a
# missing interpreter fails the run.
if [ "${RUN_OTHER_PYTHONS:-1}" != 0 ]; then
  scripts/test-pythons.sh
fi
# The image (integration_tests/test_image.py): without a Docker engine, built with buildah on a stand-in base image
# that scripts/image-base.sh installs buildah for and makes once per machine (about two minutes), then names here.
# RUN_IMAGE=0 skips it; in CI a missing engine fails the run.
export RUN_IMAGE="${RUN_IMAGE:-1}"
if [ "$RUN_IMAGE" != 0 ]; then
  IMAGE_TEST_BASE="$(scripts/image-base.sh)"
  export IMAGE_TEST_BASE
fi
# PyAirbyte end to end installs PyAirbyte into .venv-pyairbyte/ on first use (~800 MB); RUN_PYAIRBYTE=0 skips it.
# Airbyte's QA checks install airbyte-internal-ops into .venv-qa/ on first use (~860 MB, about 4 minutes);
# RUN_AIRBYTE_QA=0 skips them, except in CI.
RUN_PYAIRBYTE="${RUN_PYAIRBYTE:-1}" RUN_AIRBYTE_QA="${RUN_AIRBYTE_QA:-1}" .venv/bin/python -m pytest "$@"

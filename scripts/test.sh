#!/usr/bin/env bash
# The one command that sets up and runs every test: lint, types, the oldest and newest Python versions promised,
# unit and integration tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy  # every folder CI runs, as Python 3.10 (pyproject.toml [tool.mypy] files)
# Python 3.10 and 3.13, each in its own .venv-py<version>/ (about a minute on first use, 30 s after);
# RUN_OTHER_PYTHONS=0 skips them. In CI a missing interpreter fails the run.
if [ "${RUN_OTHER_PYTHONS:-1}" != 0 ]; then
  scripts/test-pythons.sh
fi
# PyAirbyte end to end installs PyAirbyte into .venv-pyairbyte/ on first use (~800 MB); RUN_PYAIRBYTE=0 skips it.
RUN_PYAIRBYTE="${RUN_PYAIRBYTE:-1}" .venv/bin/python -m pytest "$@"

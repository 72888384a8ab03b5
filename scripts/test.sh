#!/usr/bin/env bash
# The one command that sets up and runs every test: lint, types, unit and integration tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy  # every folder CI runs, as Python 3.10 (pyproject.toml [tool.mypy] files)
# PyAirbyte end to end installs PyAirbyte into .venv-pyairbyte/ on first use (~800 MB); RUN_PYAIRBYTE=0 skips it.
RUN_PYAIRBYTE="${RUN_PYAIRBYTE:-1}" .venv/bin/python -m pytest "$@"

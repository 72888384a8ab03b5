#!/usr/bin/env bash
# The one command that sets up and runs every test: lint, types, unit and integration tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy source_northpass_lms
.venv/bin/python -m pytest "$@"

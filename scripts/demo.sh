#!/usr/bin/env bash
# The one command that sets up and runs the main job: a sync of every stream against the bundled sandbox.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
.venv/bin/python -m tools.demo "$@"

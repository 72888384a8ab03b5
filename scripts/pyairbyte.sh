#!/usr/bin/env bash
# CI step: read the sandbox twice through PyAirbyte (tools/pyairbyte_e2e.py).
#
# PyAirbyte is a large install (about 800 MB) with dependencies of its own, so it lives in its own venv,
# PYAIRBYTE_VENV (default .venv-pyairbyte/ at the repository root), created here if missing. The connector
# runs from CONNECTOR_PYTHON's environment (default: python3), where the connector package must already
# be installed (scripts/bootstrap.sh); its `source-northpass-lms` console script is what PyAirbyte runs.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
connector_python="${CONNECTOR_PYTHON:-python3}"
pyairbyte_venv="${PYAIRBYTE_VENV:-$root/.venv-pyairbyte}"
pyairbyte_requirement='airbyte>=0.71,<0.72'

scripts_dir="$("$connector_python" -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
connector_executable="$scripts_dir/source-northpass-lms"
if [ ! -x "$connector_executable" ]; then
    echo "No $connector_executable: install the connector into $connector_python's environment first." >&2
    exit 2
fi

if [ ! -x "$pyairbyte_venv/bin/python" ]; then
    python3 -m venv "$pyairbyte_venv"
fi
if ! "$pyairbyte_venv/bin/python" -c 'import airbyte' 2>/dev/null; then
    "$pyairbyte_venv/bin/python" -m pip install --quiet "$pyairbyte_requirement"
fi

exec "$pyairbyte_venv/bin/python" "$root/tools/pyairbyte_e2e.py" \
    --connector-executable "$connector_executable" \
    --sandbox-python "$(command -v "$connector_python")" \
    "$@"

#!/usr/bin/env bash
# CI step: Airbyte's QA checks on this repository laid out as Airbyte's monorepo, offline
# (tools/airbyte_qa.py; integration_tests/test_airbyte_qa.py says which results are expected).
#
# The checks ship in airbyte-internal-ops, a large install (about 430 packages, 860 MB) whose dependencies
# are not the connector's, so it lives in its own venv, AIRBYTE_QA_VENV (default .venv-qa/ at the repository
# root), created here on first use (about 4 minutes) with the pinned version below and reused while that pin
# holds. It needs Python 3.11 or 3.12 (AIRBYTE_QA_PYTHON, default python3). pip's output goes to
# <venv>/install.log and is shown only when the install fails.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
qa_python="${AIRBYTE_QA_PYTHON:-python3}"
qa_venv="${AIRBYTE_QA_VENV:-$root/.venv-qa}"
# Pinned: the checks (and what the test expects of each) change from one release to the next.
qa_requirement='airbyte-internal-ops==0.132.0'
stamp="$qa_venv/.installed-$(echo "$qa_requirement" | sha1sum | cut -c1-12)"

if [ ! -f "$stamp" ]; then
    if ! "$qa_python" -c 'import sys; assert (3, 11) <= sys.version_info[:2] <= (3, 12)' 2>/dev/null; then
        echo "airbyte-qa: '$qa_python' is not Python 3.11 or 3.12, which $qa_requirement needs; set AIRBYTE_QA_PYTHON." >&2
        exit 2
    fi
    echo "Setting up $qa_venv with $qa_requirement (first run, about 4 minutes)..." >&2
    rm -rf "$qa_venv"
    "$qa_python" -m venv "$qa_venv"
    if ! "$qa_venv/bin/python" -m pip install "$qa_requirement" >"$qa_venv/install.log" 2>&1; then
        tail -n 40 "$qa_venv/install.log" >&2
        echo "airbyte-qa: installing $qa_requirement failed; the whole pip output is in $qa_venv/install.log" >&2
        exit 1
    fi
    touch "$stamp"
fi

# The checks' own libraries warn about Python versions on import; the results are what matters here.
exec env PYTHONWARNINGS=ignore::FutureWarning "$qa_venv/bin/python" "$root/tools/airbyte_qa.py" "$@"

#!/usr/bin/env bash
# The performance benchmark (issue 4): full syncs at the API's 10 requests/s against their floors, and a CPU run.
# Takes about 3 minutes; `scripts/benchmark.sh --quick` about 30 s. See docs/performance.md.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
.venv/bin/python -m integration_tests.benchmark "$@"

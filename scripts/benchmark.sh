#!/usr/bin/env bash
# The performance benchmark (issues 4, 10 and 16): full syncs at the API's 10 requests/s against their floors,
# transcripts at 30,000 people (a full read against the second incremental sync, at 100 requests/s), and a CPU
# run. Takes about 30 minutes; `--skip-transcripts` about 10; `--quick` about 3. See docs/performance.md.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
.venv/bin/python -m tools.benchmark "$@"

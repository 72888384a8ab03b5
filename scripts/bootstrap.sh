#!/usr/bin/env bash
# Creates .venv (Python 3.10 to 3.13) with the connector and its dev tools, unless it is already up to date.
# pip's own output goes to .venv/install.log and is shown only when the install fails: a user's command prints
# the connector's output, not the build tools' notices.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
stamp="$VENV/.installed-$(sha1sum pyproject.toml | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  # The versions pyproject.toml's requires-python allows, said plainly before pip says it less plainly.
  if ! version="$("$PYTHON" -c 'import sys; assert (3, 10) <= sys.version_info[:2] <= (3, 13); print(sys.version.split()[0])' 2>/dev/null)"; then
    echo "bootstrap: '$PYTHON' is not a working Python 3.10 to 3.13; set PYTHON to one (e.g. PYTHON=python3.11)." >&2
    exit 1
  fi
  echo "Setting up $VENV with Python $version (first run or pyproject.toml changed, about a minute)..." >&2
  "$PYTHON" -m venv "$VENV"
  log="$VENV/install.log"
  if ! { "$VENV/bin/python" -m pip install --upgrade pip && "$VENV/bin/python" -m pip install -e '.[dev]'; } >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "bootstrap: installing into $VENV failed; the whole pip output is in $log" >&2
    exit 1
  fi
  rm -f "$VENV"/.installed-*
  touch "$stamp"
fi

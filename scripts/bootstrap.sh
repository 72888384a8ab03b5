#!/usr/bin/env bash
# Creates .venv (Python 3.10+) with the connector and its dev tools, unless it is already up to date.
# pip's own output goes to .venv/install.log and is shown only when the install fails: a user's command prints
# the connector's output, not the build tools' notices.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
stamp="$VENV/.installed-$(sha1sum pyproject.toml | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  echo "Setting up $VENV with $("$PYTHON" --version 2>&1) (first run or pyproject.toml changed, about a minute)..." >&2
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

#!/usr/bin/env bash
# Creates .venv (Python 3.10 to 3.13) with the connector and its dev tools at the versions poetry.lock pins, unless
# it is already up to date. Poetry itself lives in its own .venv-poetry/, made here on first use: a fresh machine
# needs only Python and PyPI. The installers' output goes to install.log in each venv and is shown only when an
# install fails: a user's command prints the connector's output, not the build tools' notices.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
# The Poetry that wrote poetry.lock (its first line says so); README's "Poetry" section says how to move to another.
POETRY_VERSION=2.5.1
POETRY_VENV=.venv-poetry
POETRY="$POETRY_VENV/bin/poetry"
# No keyring lookups: the only index is public, and a desktop keyring can stall a headless run.
export PYTHON_KEYRING_BACKEND=keyring.backends.null.Keyring

# Shows the tail of a failed install's log and stops.
fail() {
  tail -n 40 "$2" >&2
  echo "bootstrap: $1; the whole output is in $2" >&2
  exit 1
}

stamp="$VENV/.installed-$(cat pyproject.toml poetry.lock | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  # The versions pyproject.toml's python constraint allows, said plainly before Poetry says it less plainly.
  if ! version="$("$PYTHON" -c 'import sys; assert (3, 10) <= sys.version_info[:2] <= (3, 13); print(sys.version.split()[0])' 2>/dev/null)"; then
    echo "bootstrap: '$PYTHON' is not a working Python 3.10 to 3.13; set PYTHON to one (e.g. PYTHON=python3.11)." >&2
    exit 1
  fi
  if [ ! -f "$POETRY_VENV/.installed-poetry-$POETRY_VERSION" ] || ! "$POETRY" --version >/dev/null 2>&1; then
    echo "Installing Poetry $POETRY_VERSION into $POETRY_VENV (first run only)..." >&2
    rm -rf "$POETRY_VENV"
    "$PYTHON" -m venv "$POETRY_VENV"
    "$POETRY_VENV/bin/python" -m pip install "poetry==$POETRY_VERSION" >"$POETRY_VENV/install.log" 2>&1 ||
      fail "installing Poetry into $POETRY_VENV failed" "$POETRY_VENV/install.log"
    touch "$POETRY_VENV/.installed-poetry-$POETRY_VERSION"
  fi
  echo "Setting up $VENV with Python $version (first run, or pyproject.toml or poetry.lock changed, about a minute)..." >&2
  "$PYTHON" -m venv "$VENV"
  # Poetry installs into the venv named by VIRTUAL_ENV; `sync` also removes what the lock no longer lists.
  VIRTUAL_ENV="$PWD/$VENV" "$POETRY" sync --with dev --no-interaction >"$VENV/install.log" 2>&1 ||
    fail "installing into $VENV failed" "$VENV/install.log"
  rm -f "$VENV"/.installed-*
  touch "$stamp"
fi

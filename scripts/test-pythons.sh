#!/usr/bin/env bash
# Proves the oldest and newest Python versions pyproject.toml promises (python = ">=3.10,<3.14"), beside the
# full suite on the machine's default Python: for each, a fresh venv (.venv-py<version>/) with poetry.lock's versions
# installed by scripts/bootstrap.sh (the connector and the dev group),
# an import of every module, the unit tests, and the demo's CLI syncs (spec, check, discover, read of every stream,
# then a second, incremental read of transcripts) against a small sandbox at 50 requests/s (the demo's 10 would
# spend half a minute on its 300 transcripts). One result line per version, naming the airbyte-cdk it ran; exit 1
# if any failed. An interpreter that cannot be found fails the run in CI (CI is set); elsewhere it is reported and
# skipped.
#
# The same two venvs prove both ends of pyproject.toml's airbyte-cdk range: on the oldest Python, the lowest release
# the range allows (its floor, installed over the lock with pip, which moves the CDK's own dependencies only where
# that release needs it); on the newest Python, the newest release the range allows on the package index today
# (today the lock's own; a newer one, once released, is tested before anyone re-locks). The main suite (.venv) runs
# the lock's. Where the CDK is not the lock's, the one unit test that the environment equals the lock is deselected.
#
# Usage: scripts/test-pythons.sh [VERSION[:CDK]...]   CDK: locked (the default), lowest or newest
#        (default: 3.10:lowest 3.13:newest)
set -uo pipefail
cd "$(dirname "$0")/.."
versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=(3.10:lowest 3.13:newest)
LOCK_TEST=unit_tests/test_poetry_lock.py::test_the_environment_holds_exactly_the_locked_versions

# The interpreter for VERSION (e.g. 3.10): pyenv's, then one on PATH, checked by running it.
find_python() {
  local version="$1" candidate roots=()
  command -v pyenv >/dev/null 2>&1 && roots+=("$(pyenv root)")
  roots+=("${PYENV_ROOT:-}" "$HOME/.pyenv" /root/.pyenv)
  for root in "${roots[@]}"; do
    [ -n "$root" ] || continue
    for candidate in "$root"/versions/"$version".*/bin/python"$version"; do
      if [ -x "$candidate" ] && [ "$("$candidate" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" = "$version" ]; then
        echo "$candidate"
        return 0
      fi
    done
  done
  candidate="$(command -v "python$version" 2>/dev/null)" || return 1
  [ "$("$candidate" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" = "$version" ] || return 1
  echo "$candidate"
}

# Imports every module of the project: the connector, the sandbox, the tools and the tests.
IMPORT_EVERY_MODULE='
import importlib, pathlib
names = ["main", "conftest"] + sorted(
    ".".join(path.with_suffix("").parts).removesuffix(".__init__")
    for folder in ("source_northpass_lms", "sandbox", "tools", "integration_tests", "unit_tests")
    for path in pathlib.Path(folder).rglob("*.py")
)
for name in names:
    importlib.import_module(name)
print(f"{len(names)} modules")
'

# pyproject.toml's airbyte-cdk constraint, read by the venv's poetry-core (a dev dependency) as Poetry reads it:
# prints the range as PEP 440 (">=7.1,<8.0"), its lowest version, and the lock's version.
CDK_RANGE='
import sys
from poetry.core.constraints.version import parse_constraint
if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib
constraint = tomllib.load(open("pyproject.toml", "rb"))["tool"]["poetry"]["dependencies"]["airbyte-cdk"]
allowed = parse_constraint(constraint if isinstance(constraint, str) else constraint["version"])
assert allowed.include_min and allowed.min is not None, f"airbyte-cdk {constraint!r} has no lowest version to test"
(locked,) = [p["version"] for p in tomllib.load(open("poetry.lock", "rb"))["package"] if p["name"] == "airbyte-cdk"]
print(allowed, allowed.min.text, locked)
'
CDK_VERSION='import importlib.metadata; print(importlib.metadata.version("airbyte-cdk"))'

# Puts the airbyte-cdk that $cdk names into $venv (after bootstrap.sh installed the lock); sets $cdk_installed,
# $cdk_said (how the result line names it) and $deselect.
install_cdk() {
  local range lowest locked
  read -r range lowest locked < <("$venv/bin/python" -c "$CDK_RANGE") && [ -n "$locked" ] || return 1
  case "$cdk" in
    lowest)
      "$venv/bin/python" -m pip install --disable-pip-version-check "airbyte-cdk==$lowest" || return 1
      cdk_said="the lowest $range allows"
      ;;
    newest)
      "$venv/bin/python" -m pip install --disable-pip-version-check --upgrade "airbyte-cdk$range" || return 1
      cdk_said="the newest $range allows on the index"
      ;;
    *) cdk_said="poetry.lock's" ;;
  esac
  cdk_installed="$("$venv/bin/python" -c "$CDK_VERSION")" || return 1
  deselect=()
  if [ "$cdk" != locked ] && [ "$cdk_installed" != "$locked" ]; then
    deselect=(--deselect "$LOCK_TEST")
    cdk_said="$cdk_said; the lock has $locked"
    # bootstrap.sh's stamp says the venv holds the lock: a later run that wants another CDK installs it again.
    echo "$cdk" >"$venv/.cdk-not-locked"
  fi
  echo "airbyte-cdk $cdk_installed ($cdk_said)"
}

failed=0
results=()
for spec in "${versions[@]}"; do
  version="${spec%%:*}"
  cdk="locked"
  [ "$spec" = "$version" ] || cdk="${spec#*:}"
  case "$cdk" in
    locked | lowest | newest) ;;
    *)
      echo "test-pythons: '$spec': the airbyte-cdk after ':' is locked, lowest or newest" >&2
      exit 2
      ;;
  esac
  venv=".venv-py$version"
  log="$venv/test-pythons.log"
  if ! python="$(find_python "$version")"; then
    if [ -n "${CI:-}" ]; then
      results+=("Python $version: FAIL (no interpreter found: pyenv root, ~/.pyenv/versions/$version.*, python$version on PATH)")
      failed=1
    else
      results+=("Python $version: SKIPPED (no interpreter found; CI fails here)")
    fi
    continue
  fi
  full="$("$python" -c 'import platform; print(platform.python_version())')"
  echo "== Python $full ($python): install, imports, unit tests, CLI sync; output in $log" >&2
  mkdir -p "$venv"
  # A venv whose CDK an earlier run moved away from the lock for another choice than this one: installed anew.
  if [ -f "$venv/.cdk-not-locked" ] && [ "$(cat "$venv/.cdk-not-locked")" != "$cdk" ]; then
    rm -f "$venv"/.installed-* "$venv/.cdk-not-locked"
  fi
  step="install"
  cdk_installed="?"
  cdk_said="$cdk"
  deselect=()
  {
    PYTHON="$python" VENV="$venv" scripts/bootstrap.sh &&
      step="install airbyte-cdk ($cdk)" && install_cdk &&
      step="import every module" && modules="$("$venv/bin/python" -c "$IMPORT_EVERY_MODULE")" &&
      step="unit tests" && "$venv/bin/python" -m pytest -q -p no:cacheprovider unit_tests "${deselect[@]}" &&
      step="CLI sync" && "$venv/bin/python" -m tools.demo --people 300 --courses 6 --latency-ms 0 \
        --requests-per-second 50 --output "$venv/demo-output"
  } >"$log" 2>&1
  status=$?
  if [ $status -eq 0 ]; then
    unit="$(grep -Eo '[0-9]+ passed[^=]*' "$log" | tail -n 1 | sed 's/ *$//')"
    # the first table's total: the sync of every stream; the second table's: the incremental transcripts sync
    records="$(awk '$1 == "total" { print $2 }' "$log" | head -n 1)"
    again="$(awk '$1 == "total" { print $2 }' "$log" | sed -n 2p)"
    results+=("Python $full, airbyte-cdk $cdk_installed ($cdk_said): PASS (install; $modules imported; unit tests $unit; CLI sync of every stream, $records records; incremental transcripts, $again records)")
  else
    tail -n 30 "$log" >&2
    results+=("Python $full, airbyte-cdk $cdk_installed ($cdk_said): FAIL at $step (see $log)")
    failed=1
  fi
done
printf '%s\n' "${results[@]}"
exit $failed

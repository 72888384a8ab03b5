"""poetry.lock: in step with pyproject.toml, and what the environment running the tests was installed from."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Dict, Mapping

import pytest
from packaging.markers import Marker
from packaging.utils import canonicalize_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest depends on tomli before Python 3.11
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
# The Poetry scripts/bootstrap.sh installs (the version that wrote the lock), not whichever one is on PATH.
POETRY = ROOT / ".venv-poetry" / "bin" / "poetry"
POETRY_TIMEOUT_SECONDS = 120
STALE_LOCK_MESSAGE = "pyproject.toml changed significantly since poetry.lock was last generated"


def _lock() -> Mapping[str, Any]:
    return tomllib.loads((ROOT / "poetry.lock").read_text())


def _poetry_check_lock(project: Path) -> subprocess.CompletedProcess[str]:
    if not POETRY.exists():
        pytest.fail(f"{POETRY} is missing: scripts/bootstrap.sh installs it")
    return subprocess.run(
        [str(POETRY), "check", "--lock", "--no-interaction", "--directory", str(project)],
        capture_output=True,
        text=True,
        timeout=POETRY_TIMEOUT_SECONDS,
        env={**os.environ, "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring"},
    )


def test_poetry_lock_matches_pyproject() -> None:
    result = _poetry_check_lock(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert STALE_LOCK_MESSAGE not in result.stdout + result.stderr


def test_a_dependency_changed_without_relocking_fails_the_lock_check(tmp_path: Path) -> None:
    """The check above would catch a stale lock: here pyproject.toml gains a dependency the lock never saw."""
    for name in ("pyproject.toml", "poetry.lock", "poetry.toml", "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "source_northpass_lms", tmp_path / "source_northpass_lms")
    pyproject = (tmp_path / "pyproject.toml").read_text()
    dependencies = "[tool.poetry.dependencies]\n"
    assert dependencies in pyproject
    (tmp_path / "pyproject.toml").write_text(pyproject.replace(dependencies, dependencies + 'six = "^1.16"\n', 1))

    result = _poetry_check_lock(tmp_path)

    assert result.returncode != 0
    assert STALE_LOCK_MESSAGE in result.stdout + result.stderr


def _locked_versions_for_this_interpreter() -> Dict[str, str]:
    """Each package the lock installs here (main and dev groups, markers evaluated for this Python) -> its version."""
    versions: Dict[str, str] = {}
    for package in _lock()["package"]:
        markers = package.get("markers")
        for group in package["groups"]:
            marker = markers.get(group) if isinstance(markers, dict) else markers
            if group in ("main", "dev") and (marker is None or Marker(marker).evaluate()):
                versions[canonicalize_name(package["name"])] = package["version"]
    return versions


def test_the_environment_holds_exactly_the_locked_versions() -> None:
    """scripts/bootstrap.sh installs from poetry.lock: a resolution of its own (pip install .) would drift from it."""
    locked = _locked_versions_for_this_interpreter()
    installed: Dict[str, str] = {
        canonicalize_name(dist.metadata["Name"]): dist.version for dist in metadata.distributions()
    }
    assert {"airbyte-cdk", "requests", "pendulum", "orjson", "pytest", "poetry-core"} <= set(locked)

    mismatched = {
        name: {"locked": version, "installed": installed.get(name)}
        for name, version in locked.items()
        if installed.get(name) != version
    }
    assert not mismatched, f"installed versions differ from poetry.lock: {mismatched}"

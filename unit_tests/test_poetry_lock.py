"""poetry.lock: in step with pyproject.toml, and what the environment running the tests was installed from."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Dict, Mapping, Set, Tuple

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tools.lock import (
    dependency_closure,
    for_python,
    locked_versions,
    pythons_the_lock_covers,
    this_python,
)

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
    return locked_versions(["main", "dev"], this_python())


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


# The image's dependencies: the Dockerfile runs scripts/requirements_from_lock.py on poetry.lock and installs its
# output with `pip install --require-hashes --no-deps -r`; the image test compares the built image with the lock.
REQUIREMENTS_FROM_LOCK = ROOT / "scripts" / "requirements_from_lock.py"


def _requirements_from_lock(lock_file: Path = ROOT / "poetry.lock") -> str:
    """The requirements file the Dockerfile writes, by the same script run as a program, as the image runs it."""
    done = subprocess.run(
        [sys.executable, str(REQUIREMENTS_FROM_LOCK), str(lock_file)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _parsed(requirements: str, environment: Mapping[str, str]) -> Dict[str, Tuple[str, Set[str]]]:
    """Each requirement whose marker applies in this environment: name -> (pinned version, its hashes)."""
    parsed: Dict[str, Tuple[str, Set[str]]] = {}
    for line in requirements.replace(" \\\n", " ").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        requirement_text, *hashes = line.split(" --hash=")
        requirement = Requirement(requirement_text)
        if requirement.marker is not None and not requirement.marker.evaluate({**environment, "extra": ""}):
            continue
        (specifier,) = requirement.specifier
        assert specifier.operator == "==" and hashes, line
        name = canonicalize_name(requirement.name)
        assert name not in parsed, f"{name} twice for Python {environment['python_version']}"
        parsed[name] = (specifier.version, {digest.strip() for digest in hashes})
    return parsed


def test_the_locks_main_group_is_what_pyprojects_dependencies_need_on_every_python() -> None:
    """The lock's groups and markers, which the image's requirements come from, against a walk of the dependencies."""
    for python in pythons_the_lock_covers():
        environment = for_python(python)
        assert set(locked_versions(["main"], environment)) == dependency_closure(environment), python


def test_the_images_requirements_are_the_locks_main_group_with_its_hashes_on_every_python() -> None:
    requirements = _requirements_from_lock()
    hashes: Dict[Tuple[str, str], Set[str]] = {
        (canonicalize_name(package["name"]), package["version"]): {file["hash"] for file in package["files"]}
        for package in _lock()["package"]
    }
    assert pythons_the_lock_covers() == ["3.10", "3.11", "3.12", "3.13"]

    for python in pythons_the_lock_covers():
        environment = for_python(python)
        parsed = _parsed(requirements, environment)
        locked = locked_versions(["main"], environment)
        assert {"airbyte-cdk", "requests", "pendulum", "orjson"} <= set(parsed)
        assert {name: version for name, (version, _) in parsed.items()} == locked, python
        assert not [name for name, (version, digests) in parsed.items() if digests != hashes[name, version]], python
    assert "pytest" not in requirements and "poetry-core" not in requirements  # the dev group stays out


def test_the_requirements_script_refuses_a_lock_format_it_does_not_read(tmp_path: Path) -> None:
    old = tmp_path / "poetry.lock"
    old.write_text((ROOT / "poetry.lock").read_text().replace('lock-version = "2.1"', 'lock-version = "2.0"'))
    done = subprocess.run(
        [sys.executable, str(REQUIREMENTS_FROM_LOCK), str(old)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0 and "lock format 2.0" in done.stderr

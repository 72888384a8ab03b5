"""What poetry.lock installs into a given Python: read here independently of scripts/requirements_from_lock.py, which
the Dockerfile runs, so that the tests compare that script's output and the built image with the lock itself.

An environment is the marker environment of PEP 508 (python_version, sys_platform, ...): this interpreter's
(`packaging.markers.default_environment()`), one with another python_version (`for_python`), or the one a Python
inside the image reports (integration_tests/test_image.py).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

from packaging.markers import Marker, default_environment
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest depends on tomli before Python 3.11
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
Environment = Mapping[str, str]


@lru_cache(maxsize=1)
def lock() -> Mapping[str, Any]:
    return tomllib.loads((ROOT / "poetry.lock").read_text())


def pyproject_dependencies() -> Mapping[str, Any]:
    """pyproject.toml's [tool.poetry.dependencies], python itself left out: what the package requires."""
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["poetry"]["dependencies"]
    return {name: spec for name, spec in dependencies.items() if name != "python"}


def this_python() -> Dict[str, str]:
    """This interpreter's marker environment."""
    return {key: str(value) for key, value in default_environment().items()}


def pyproject_package() -> Tuple[str, str]:
    """The connector's own distribution: pyproject.toml's name and version."""
    poetry = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["poetry"]
    return str(poetry["name"]), str(poetry["version"])


def for_python(version: str) -> Dict[str, str]:
    """This interpreter's marker environment with another Python version (e.g. "3.10")."""
    return {**this_python(), "python_version": version, "python_full_version": f"{version}.0"}


def pythons_the_lock_covers() -> List[str]:
    """Each Python minor version the lock resolved for (its metadata's python-versions, e.g. >=3.10,<3.14)."""
    allowed = SpecifierSet(lock()["metadata"]["python-versions"])
    return [f"3.{minor}" for minor in range(6, 30) if f"3.{minor}.0" in allowed]


def _applies(marker: Optional[str], environment: Environment, extra: str = "") -> bool:
    return marker is None or Marker(marker).evaluate({**environment, "extra": extra})


def locked_versions(groups: Iterable[str], environment: Environment) -> Dict[str, str]:
    """Each package the lock installs for these groups in this environment -> its version, by the lock's own
    groups and markers (lock format 2.1: one marker for every group, or one per group)."""
    versions: Dict[str, str] = {}
    for package in lock()["package"]:
        markers = package.get("markers")
        for group in set(groups) & set(package["groups"]):
            marker = markers.get(group) if isinstance(markers, dict) else markers
            if _applies(marker, environment):
                name = canonicalize_name(package["name"])
                assert versions.get(name, package["version"]) == package["version"], f"two versions of {name}"
                versions[name] = package["version"]
    return versions


def _requirements(spec: Any) -> List[Mapping[str, Any]]:
    """A dependency's declaration in pyproject.toml or the lock ("^1.2", a table, or a list of tables by marker)."""
    if isinstance(spec, str):
        return [{"version": spec}]
    if isinstance(spec, dict):
        return [spec]
    return list(spec)


def dependency_closure(environment: Environment) -> Set[str]:
    """The packages pyproject.toml's dependencies need in this environment, walked through each locked package's
    declared dependencies (their markers and the extras asked for), not through the lock's groups. Of a package
    locked at several versions, the dependencies walked are those of the version the lock installs here."""
    installed_here = locked_versions({group for p in lock()["package"] for group in p["groups"]}, environment)
    packages: Dict[str, List[Mapping[str, Any]]] = {}
    for package in lock()["package"]:
        key = canonicalize_name(package["name"])
        if installed_here.get(key, package["version"]) == package["version"]:
            packages.setdefault(key, []).append(package)
    needed: Set[Tuple[str, str]] = set()  # (package, extra asked for: "" for the package itself)
    todo: List[Tuple[str, Any, str]] = [(name, spec, "") for name, spec in pyproject_dependencies().items()]
    while todo:
        name, spec, extra = todo.pop()
        for requirement in _requirements(spec):
            if requirement.get("optional") and not extra:
                continue
            if not _applies(requirement.get("markers"), environment, extra):
                continue
            dependency = canonicalize_name(name)
            for asked in ["", *requirement.get("extras", [])]:
                if (dependency, asked) in needed:
                    continue
                needed.add((dependency, asked))
                candidates = packages.get(dependency, [])
                assert candidates, f"{dependency} is needed and not in poetry.lock"
                for candidate in candidates:
                    for sub_name, sub_spec in candidate.get("dependencies", {}).items():
                        todo.append((sub_name, sub_spec, asked))
    return {name for name, _ in needed}


@dataclass(frozen=True)
class InstalledAgainstLock:
    """An environment's installed distributions against what the lock installs there (see installed_against_lock)."""

    expected: Dict[str, str]  # the lock's main group for that Python, and the connector at pyproject.toml's version
    mismatched: Dict[str, Dict[str, Optional[str]]]  # expected -> {"locked": ..., "installed": ... or None}
    unexplained: List[str]  # "name version" installed, neither expected nor in the base
    from_base: List[str]  # "name version" the base had, not expected ("(shadowed)" where another copy is imported)


def installed_against_lock(
    environment: Environment, installed: Sequence[Tuple[str, str]], base_installed: Sequence[Tuple[str, str]]
) -> InstalledAgainstLock:
    """`installed`, in sys.path order (the first of a name is the one imported), against the lock's main group for
    `environment` and the connector itself; whatever else is installed must be, at that version, in `base_installed`
    (what the base image had before the package was installed into it)."""
    name, version = pyproject_package()
    expected = {**locked_versions(["main"], environment), canonicalize_name(name): version}
    imported: Dict[str, str] = {}
    for dist_name, dist_version in installed:
        imported.setdefault(canonicalize_name(dist_name), dist_version)
    base = {(canonicalize_name(dist_name), dist_version) for dist_name, dist_version in base_installed}
    every = {(canonicalize_name(dist_name), dist_version) for dist_name, dist_version in installed}
    return InstalledAgainstLock(
        expected=expected,
        mismatched={
            package: {"locked": wanted, "installed": imported.get(package)}
            for package, wanted in expected.items()
            if imported.get(package) != wanted
        },
        unexplained=sorted(f"{n} {v}" for n, v in every if expected.get(n) != v and (n, v) not in base),
        from_base=sorted(
            f"{n} {v}" + (" (shadowed)" if imported.get(n) != v else "")
            for n, v in every & base
            if expected.get(n) != v
        ),
    )

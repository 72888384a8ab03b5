"""Prints poetry.lock's main group as a pip requirements file: each package at the lock's version with every hash the
lock records for it, under the lock's marker for the main group, so that

    python requirements_from_lock.py poetry.lock > requirements.lock
    pip install --require-hashes --no-deps -r requirements.lock

installs on any Python the lock covers exactly the versions `poetry sync --only main` would, and nothing else.

The Dockerfile's builder stage runs it, with the base image's Python, on the poetry.lock it copies. It needs only the
standard library (tomllib: Python 3.11+, as Airbyte's base image has; tomli, where installed, on 3.10), and it reads
lock format 2.1, whose packages say which groups need them and under which marker (`markers`: one marker for every
group, or one per group, a group without one needing the package unconditionally). A package the lock holds at
several versions (one per range of Python) gets one line per version, their markers disjoint, as the lock has them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Iterator, List, Mapping, Optional

if sys.version_info >= (3, 11):
    import tomllib
else:  # tomli, where installed (pytest depends on it before 3.11)
    import tomli as tomllib

GROUP = "main"
SUPPORTED_LOCK_VERSIONS = ("2.1",)


def group_marker(package: Mapping[str, Any], group: str = GROUP) -> Optional[str]:
    """The marker under which `group` needs this package; None when it needs it everywhere."""
    markers = package.get("markers")
    if isinstance(markers, dict):
        return markers.get(group)
    return markers


def locked_packages(lock: Mapping[str, Any], group: str = GROUP) -> Iterator[Mapping[str, Any]]:
    """The lock's packages that `group` needs, in the lock's order (by name)."""
    version = str(lock.get("metadata", {}).get("lock-version"))
    if version not in SUPPORTED_LOCK_VERSIONS:
        raise ValueError(f"poetry.lock is lock format {version}; this reads {', '.join(SUPPORTED_LOCK_VERSIONS)}")
    for package in lock["package"]:
        if group in package["groups"]:
            yield package


def requirement_lines(package: Mapping[str, Any]) -> List[str]:
    """`name==version ; marker` and a `--hash` line for each file of that version, as pip's requirements syntax."""
    if package.get("source", {}).get("type") not in (None, "legacy"):
        # a path, directory or git dependency has no hashes for --require-hashes; none is in the lock today
        raise ValueError(f"{package['name']} comes from a {package['source']['type']} source, not an index")
    marker = group_marker(package)
    hashes = sorted({file["hash"] for file in package["files"]})
    if not hashes:
        raise ValueError(f"poetry.lock records no file hashes for {package['name']} {package['version']}")
    line = f"{package['name']}=={package['version']}" + (f" ; {marker}" if marker else "")
    return [line] + [f"    --hash={digest}" for digest in hashes]


def requirements(lock_text: str) -> str:
    """The requirements file for `lock_text` (a poetry.lock)."""
    lines = [f"# poetry.lock's {GROUP} group, written by scripts/requirements_from_lock.py: do not edit."]
    for package in locked_packages(tomllib.loads(lock_text)):
        entry = requirement_lines(package)
        lines += [part + " \\" for part in entry[:-1]] + entry[-1:]
    return "\n".join(lines) + "\n"


def main(argv: List[str]) -> int:
    if len(argv) != 1:
        print("usage: requirements_from_lock.py POETRY_LOCK  (writes the requirements file to stdout)", file=sys.stderr)
        return 2
    sys.stdout.write(requirements(Path(argv[0]).read_text(encoding="utf-8")))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

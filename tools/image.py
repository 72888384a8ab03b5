"""The connector image: built from the Dockerfile and run with whichever engine this machine has.

A Docker engine when one answers. Otherwise Debian's buildah, which needs no daemon, on the stand-in for Airbyte's
base image that `scripts/image-base.sh` makes (its name in IMAGE_TEST_BASE): the same Dockerfile, its BASE_IMAGE
argument pointed at the stand-in because Airbyte's base image cannot be pulled here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parent.parent
DOCKER_INFO_TIMEOUT_SECONDS = 20
BUILD_TIMEOUT_SECONDS = 1200
RUN_TIMEOUT_SECONDS = 600
# Where the container finds the files a command reads (config, catalog), mounted read-only from the host.
FILES_IN_CONTAINER = "/data"
# pip inside the build verifies PyPI's certificate with the host's bundle: the stand-in's own may be older.
HOST_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
# vfs needs no kernel overlay support and chroot isolation no user namespaces: both work inside a container.
BUILDAH = ["buildah", "--storage-driver", "vfs"]
BUILDAH_ISOLATION = ["--isolation", "chroot", "--network", "host"]


# Run by the image's Python (standard library only): its PEP 508 marker environment, as packaging's
# default_environment() computes it, and every installed distribution, in sys.path order (the first of a name is the
# one `import` finds; a later one of the same name is shadowed).
PYTHON_REPORT = """
import importlib.metadata, json, os, platform, sys
info = sys.implementation.version
implementation_version = f"{info.major}.{info.minor}.{info.micro}"
if info.releaselevel != "final":
    implementation_version += info.releaselevel[0] + str(info.serial)
environment = {
    "implementation_name": sys.implementation.name,
    "implementation_version": implementation_version,
    "os_name": os.name,
    "platform_machine": platform.machine(),
    "platform_release": platform.release(),
    "platform_system": platform.system(),
    "platform_version": platform.version(),
    "python_full_version": platform.python_version(),
    "platform_python_implementation": platform.python_implementation(),
    "python_version": ".".join(platform.python_version_tuple()[:2]),
    "sys_platform": sys.platform,
}
distributions = [[d.metadata["Name"], d.version] for d in importlib.metadata.distributions()]
print(json.dumps({"environment": environment, "distributions": distributions}))
"""


@dataclass(frozen=True)
class PythonReport:
    """What PYTHON_REPORT printed: the marker environment and each (name, version) installed, in sys.path order."""

    environment: Dict[str, str]
    distributions: List[Tuple[str, str]]

    @classmethod
    def from_output(cls, done: subprocess.CompletedProcess[str], what: str) -> PythonReport:
        if done.returncode != 0:
            raise RuntimeError(f"the Python of {what} failed ({done.returncode}): {done.stderr[-3000:]}")
        report = json.loads(done.stdout.strip().splitlines()[-1])
        return cls(
            dict(report["environment"]), [(str(name), str(version)) for name, version in report["distributions"]]
        )


class ImageEngineUnavailable(Exception):
    """Neither a Docker engine nor buildah with a stand-in base image is available."""


@lru_cache(maxsize=1)
def docker_engine_unavailable() -> Optional[str]:
    """Why no Docker engine can build and run images here, or None when one answers."""
    if shutil.which("docker") is None:
        return "the docker CLI is not installed"
    try:
        probe = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=DOCKER_INFO_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"`docker info` did not answer in {DOCKER_INFO_TIMEOUT_SECONDS} s"
    if probe.returncode != 0 or not probe.stdout.strip():
        reason = (probe.stderr.strip().splitlines() or ["no server version"])[-1]
        return f"no Docker engine answers `docker info` ({reason})"
    return None


def _run(args: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, check=False)


def _checked(args: Sequence[str], timeout: float, what: str) -> str:
    done = _run(args, timeout)
    if done.returncode != 0:
        raise RuntimeError(
            f"{what} failed ({done.returncode}): {' '.join(args)}\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
        )
    return done.stdout


class ConnectorImage(ABC):
    """An image built from the Dockerfile; each command runs the image's own ENTRYPOINT as its USER."""

    engine = ""

    def __init__(self) -> None:
        self.tag = f"localhost/source-northpass-lms:test-{uuid.uuid4().hex[:12]}"

    @abstractmethod
    def config(self) -> Dict[str, Any]:
        """The image's OCI config: User, Entrypoint, Env, WorkingDir."""

    @abstractmethod
    def run(self, args: Sequence[str], files: Path) -> subprocess.CompletedProcess[str]:
        """Run the image with these arguments, host network, `files` mounted read-only at FILES_IN_CONTAINER."""

    @abstractmethod
    def python_report(self, of_base_image: bool = False) -> PythonReport:
        """PYTHON_REPORT run by `python` in this image, or in the base image it was built on."""

    @abstractmethod
    def size(self) -> str:
        """The image's size as the engine reports it."""

    @abstractmethod
    def remove(self) -> None:
        """Delete the image (and what was made from it)."""


class DockerImage(ConnectorImage):
    engine = "docker"

    def __init__(self) -> None:
        super().__init__()
        _checked(["docker", "build", "-t", self.tag, str(ROOT)], BUILD_TIMEOUT_SECONDS, "docker build")

    def _inspect(self) -> Dict[str, Any]:
        (image,) = json.loads(_checked(["docker", "image", "inspect", self.tag], 60, "docker image inspect"))
        return dict(image)

    def config(self) -> Dict[str, Any]:
        return dict(self._inspect()["Config"])

    def run(self, args: Sequence[str], files: Path) -> subprocess.CompletedProcess[str]:
        mount = f"{files}:{FILES_IN_CONTAINER}:ro"
        return _run(["docker", "run", "--rm", "--network", "host", "-v", mount, self.tag, *args], RUN_TIMEOUT_SECONDS)

    def python_report(self, of_base_image: bool = False) -> PythonReport:
        image = dockerfile_base_image() if of_base_image else self.tag
        done = _run(
            ["docker", "run", "--rm", "--entrypoint", "python", image, "-c", PYTHON_REPORT], RUN_TIMEOUT_SECONDS
        )
        return PythonReport.from_output(done, image)

    def size(self) -> str:
        return f"{self._inspect()['Size'] / 1e6:.0f} MB"

    def remove(self) -> None:
        _run(["docker", "image", "rm", "--force", self.tag], 120)


class BuildahImage(ConnectorImage):
    """buildah builds it; one working container made from it runs every command, as `docker run` would.

    `buildah run` runs the command it is given, not the image's ENTRYPOINT: the ENTRYPOINT is read from the
    image and put first, so a wrong one fails here as it would under docker. User, working directory and
    environment come from the image's config.
    """

    engine = "buildah"

    def __init__(self, base_image: str) -> None:
        super().__init__()
        self.base_image = base_image
        self.container = ""
        _checked(
            [
                *BUILDAH,
                "bud",
                *BUILDAH_ISOLATION,
                "--volume",
                f"{HOST_CA_BUNDLE}:{HOST_CA_BUNDLE}:ro",
                "--build-arg",
                f"BASE_IMAGE={base_image}",
                "--tag",
                self.tag,
                str(ROOT),
            ],
            BUILD_TIMEOUT_SECONDS,
            "buildah bud",
        )
        self.container = _checked([*BUILDAH, "from", "--quiet", self.tag], 300, "buildah from").strip()

    def _inspect(self) -> Dict[str, Any]:
        return dict(json.loads(_checked([*BUILDAH, "inspect", "--type", "image", self.tag], 60, "buildah inspect")))

    def config(self) -> Dict[str, Any]:
        return dict(self._inspect()["OCIv1"]["config"])

    def run(self, args: Sequence[str], files: Path) -> subprocess.CompletedProcess[str]:
        entrypoint: List[str] = list(self.config().get("Entrypoint") or [])
        mount = f"{files}:{FILES_IN_CONTAINER}:ro"
        command = [*BUILDAH, "run", *BUILDAH_ISOLATION, "--volume", mount, self.container, "--", *entrypoint, *args]
        return _run(command, RUN_TIMEOUT_SECONDS)

    def python_report(self, of_base_image: bool = False) -> PythonReport:
        if not of_base_image:
            command = [*BUILDAH, "run", *BUILDAH_ISOLATION, self.container, "--", "python", "-c", PYTHON_REPORT]
            return PythonReport.from_output(_run(command, RUN_TIMEOUT_SECONDS), self.tag)
        base = _checked([*BUILDAH, "from", "--quiet", self.base_image], 300, "buildah from").strip()
        try:
            command = [*BUILDAH, "run", *BUILDAH_ISOLATION, base, "--", "python", "-c", PYTHON_REPORT]
            return PythonReport.from_output(_run(command, RUN_TIMEOUT_SECONDS), self.base_image)
        finally:
            _run([*BUILDAH, "rm", base], 300)

    def size(self) -> str:
        return _checked([*BUILDAH, "images", "--format", "{{.Size}}", self.tag], 60, "buildah images").strip()

    def remove(self) -> None:
        if self.container:
            _run([*BUILDAH, "rm", self.container], 300)
        _run([*BUILDAH, "rmi", "--force", self.tag], 300)


def dockerfile_base_image() -> str:
    """The default of the Dockerfile's `ARG BASE_IMAGE=...`: the base a `docker build` without arguments uses."""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("ARG BASE_IMAGE="):
            return line.partition("=")[2].strip()
    raise RuntimeError("the Dockerfile has no ARG BASE_IMAGE=...")


def build_connector_image() -> ConnectorImage:
    """Build the image with the engine this machine has; ImageEngineUnavailable says why when it has none."""
    docker_reason = docker_engine_unavailable()
    if docker_reason is None:
        return DockerImage()
    base_image = os.environ.get("IMAGE_TEST_BASE", "")
    if not base_image:
        raise ImageEngineUnavailable(
            f"{docker_reason}, and no stand-in base image for buildah is named in IMAGE_TEST_BASE "
            "(scripts/test.sh sets it from scripts/image-base.sh, which says why when it cannot)"
        )
    if shutil.which("buildah") is None:
        raise ImageEngineUnavailable(f"{docker_reason}, and buildah is not installed")
    return BuildahImage(base_image)

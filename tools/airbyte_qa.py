"""Airbyte's own QA checks (`airbyte-internal-ops`, module `airbyte_ops_mcp.connector_qa`), run offline.

Run with the Python of a venv where `airbyte-internal-ops` is installed, NOT the connector's
(`scripts/airbyte-qa.sh` creates that venv and runs this):

    .venv-qa/bin/python tools/airbyte_qa.py --json results.json

The checks read a git checkout of Airbyte's monorepo from the working directory, so this lays out the
repository the way it would sit there, in a temporary git repository: the connector's files (tracked, or
new and not ignored) under `airbyte-integrations/connectors/source-northpass-lms/`, its documentation pages
under `docs/integrations/sources/`. Then it runs every check of `checks.ENABLED_CHECKS` on
`Connector("source-northpass-lms")` but one (below), as `airbyte-ops local connector qa` would, with:

- the documentation-template checks made to apply: they apply only from `ab_internal.sl` 300, a level
  Airbyte gives its most used connectors and that this connector's metadata does not (and should not) claim;
- the three lookups that go to the internet answered here, at the functions that make them: Airbyte's
  registry (`connector_ops.utils.download_catalog`), Docker Hub (`metadata_validator.is_image_on_docker_hub`
  and `get_latest_version_on_dockerhub`) and the previous version on GitHub's master
  (`CheckVersionIncrement._get_master_metadata`). The answers are what those services held for Airbyte's own
  low-code Northpass LMS connector when this was written (0.2.25), and the pinned base image's digest;
- any other connection off this machine refused (no name is resolved), so a lookup not listed above fails loudly instead of
  reaching the internet or hanging.

`CheckDocumentationLinks` is not run: it fetches every link of the docs page, and it counts a link it
cannot reach as valid, so offline it would report a pass that means nothing.

Prints one line per check (check, result, message) and writes them as JSON with `--json`.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

ROOT = Path(__file__).resolve().parent.parent
TECHNICAL_NAME = "source-northpass-lms"
CONNECTOR_DIR = Path("airbyte-integrations/connectors") / TECHNICAL_NAME
DOCS_DIR = Path("docs/integrations/sources")
NOT_RUN = {"CheckDocumentationLinks": "not run: it fetches every link of the docs page (needs the internet)"}
# The level from which the documentation-template checks apply (CheckDocumentationContent).
TEMPLATE_CHECKS_SL = 300

# What Airbyte's registry and Airbyte's master branch held for this definition when this was written: Airbyte's
# low-code connector, 0.2.25 (docs/integrations/sources/northpass-lms.md's changelog).
RELEASED_VERSION = "0.2.25"
DEFINITION_ID = "dd4d317e-7537-456c-b6ba-264b17ce6daa"
REGISTRY_ENTRY = {
    "sourceDefinitionId": DEFINITION_ID,
    "name": "Northpass LMS",
    "dockerRepository": f"airbyte/{TECHNICAL_NAME}",
    "dockerImageTag": RELEASED_VERSION,
}
MASTER_METADATA = {
    "connectorType": "source",
    "definitionId": DEFINITION_ID,
    "dockerRepository": f"airbyte/{TECHNICAL_NAME}",
    "dockerImageTag": RELEASED_VERSION,
    "name": "Northpass LMS",
    "registryOverrides": {"cloud": {"enabled": True}, "oss": {"enabled": True}},
}
# Docker Hub: the tags (and digests) that exist. The base image is pinned by digest in metadata.yaml; a new pin
# must be added here by whoever checked it exists, or the metadata check fails.
DOCKER_HUB_TAGS: Mapping[str, Mapping[str, str]] = {
    "airbyte/python-connector-base": {
        "4.0.2": "sha256:9fdb1888c4264cf6fee473649ecb593f56f58e5d0096a87ee0b231777e2e3e73",
    },
}
DOCKER_HUB_LATEST = {f"airbyte/{TECHNICAL_NAME}": RELEASED_VERSION}


def download_catalog(catalog_url: str) -> Dict[str, Any]:
    """Airbyte's OSS and Cloud registries, as far as this connector's definition goes."""
    from airbyte_ops_mcp.connector_ops.utils import CLOUD_CATALOG_URL, OSS_CATALOG_URL

    if catalog_url not in (OSS_CATALOG_URL, CLOUD_CATALOG_URL):
        raise AssertionError(f"unexpected registry lookup: {catalog_url}")
    return {"sources": [dict(REGISTRY_ENTRY)], "destinations": []}


def is_image_on_docker_hub(
    image_name: str, version: str, digest: Optional[str] = None, retries: int = 0, wait_sec: int = 30
) -> bool:
    known = DOCKER_HUB_TAGS.get(image_name, {}).get(version)
    if known is None:
        return False
    return digest is None or known == f"sha256:{digest}"


def get_latest_version_on_dockerhub(image_name: str) -> Optional[str]:
    return DOCKER_HUB_LATEST.get(image_name)


def master_metadata(_check: Any, connector: Any) -> Optional[Dict[str, Any]]:
    if connector.technical_name != TECHNICAL_NAME:
        raise AssertionError(f"unexpected lookup of master's metadata for {connector.technical_name}")
    return dict(MASTER_METADATA)


def refuse_connections_off_this_machine() -> None:
    """Every connection starts with a name lookup (requests, urllib3, git): none is answered but a loopback address."""
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not _is_loopback(str(host)):
            raise socket.gaierror(f"the offline QA run connects to nothing off this machine (asked for {host})")
        return real_getaddrinfo(host, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def install_offline_answers() -> None:
    # Imported here, not at the top: the tests import every module of the project in the connector's own venvs
    # (scripts/test-pythons.sh), where airbyte-internal-ops is not installed.
    from airbyte_ops_mcp import metadata_validator
    from airbyte_ops_mcp.connector_ops import utils as connector_utils
    from airbyte_ops_mcp.connector_ops.utils import Connector
    from airbyte_ops_mcp.connector_qa.checks.version import CheckVersionIncrement

    connector_utils.download_catalog = download_catalog
    metadata_validator.is_image_on_docker_hub = is_image_on_docker_hub
    metadata_validator.get_latest_version_on_dockerhub = get_latest_version_on_dockerhub
    CheckVersionIncrement._get_master_metadata = master_metadata  # type: ignore[method-assign]
    Connector.ab_internal_sl = property(lambda self: TEMPLATE_CHECKS_SL)  # type: ignore[assignment]
    refuse_connections_off_this_machine()


def project_files(root: Path) -> List[Path]:
    """The files git would commit: tracked ones that still exist, and new ones that are not ignored."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return sorted({Path(name) for name in listed.split("\0") if name and (root / name).is_file()})


def lay_out_monorepo(root: Path, monorepo: Path) -> None:
    for relative in project_files(root):
        if relative.parent == DOCS_DIR:
            target = monorepo / relative
        else:
            target = monorepo / CONNECTOR_DIR / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / relative, target)
    git = ["git", "-c", "user.name=qa", "-c", "user.email=qa@localhost", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "init", "-q", "-b", "master"], cwd=monorepo, check=True)
    subprocess.run([*git, "add", "-A"], cwd=monorepo, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "source-northpass-lms"], cwd=monorepo, check=True)


def run_checks() -> List[Dict[str, str]]:
    from airbyte_ops_mcp.connector_ops.utils import Connector
    from airbyte_ops_mcp.connector_qa import checks
    from airbyte_ops_mcp.connector_qa.checks.documentation.models import DocumentationContent

    connector = Connector(TECHNICAL_NAME)
    results = []
    for check in checks.ENABLED_CHECKS:
        key = type(check).__name__
        if key in NOT_RUN:
            links = sorted(set(DocumentationContent(connector=connector).links))
            message = f"{NOT_RUN[key]}; its {len(links)} links: {' '.join(links)}"
            results.append({"check": key, "name": check.name, "status": "NOT RUN", "message": message})
            continue
        try:
            result = check.run(connector)
            status, message = result.status.name, result.message
        except Exception as exc:  # a crashing check is a result to report, like a failed one
            status, message = "CRASHED", f"{type(exc).__name__}: {exc}"
        results.append({"check": key, "name": check.name, "status": status, "message": " ".join(message.split())})
    return results


def print_table(results: List[Dict[str, str]]) -> None:
    width = max(len(result["check"]) for result in results)
    for result in results:
        print(f"{result['check']:<{width}}  {result['status']:<8}  {result['message'][:160]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the results here as JSON")
    args = parser.parse_args()
    install_offline_answers()
    with tempfile.TemporaryDirectory(prefix="airbyte-qa-") as folder:
        monorepo = Path(folder)
        lay_out_monorepo(ROOT, monorepo)
        os.chdir(monorepo)
        # The checks print their progress (validators, lookups) on stdout: the table is this script's output.
        with contextlib.redirect_stdout(sys.stderr):
            results = run_checks()
    print_table(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

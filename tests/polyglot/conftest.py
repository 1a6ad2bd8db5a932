"""The Node toolchain from the project's .tools/ (scripts/ensure-servers.sh installs it).

Missing parts are a failure under CI=true, else a skip.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / ".tools" / "node_modules"
# The libraries the generated code and the client script import at run time.
LIBRARIES = ("@bufbuild/protobuf", "@connectrpc/connect", "@connectrpc/connect-node")


@dataclass(frozen=True)
class NodeTools:
    """Where the binaries and the `node_modules` directory are."""

    node: str
    buf: str
    protoc_gen_es: str
    node_modules: Path


def _missing(why: str) -> None:
    why += " (scripts/ensure-servers.sh, run by `make test`, installs it into .tools/)"
    if os.environ.get("CI") == "true":
        pytest.fail(why)
    pytest.skip(why)


def _which(name: str) -> str | None:
    return shutil.which(name, path=str(TOOLS / ".bin")) or shutil.which(name)


@pytest.fixture(scope="session")
def node_tools() -> NodeTools:
    found = {name: _which(name) for name in ("node", "buf", "protoc-gen-es")}
    for name, path in found.items():
        if path is None:
            _missing(f"{name} is not installed")
    for lib in LIBRARIES:
        if not (TOOLS / lib).is_dir():
            _missing(f"the npm package {lib} is not installed")
    node, buf, plugin = (found[n] for n in ("node", "buf", "protoc-gen-es"))
    assert node and buf and plugin
    return NodeTools(node, buf, plugin, TOOLS)

"""lokit picks grpc-core's poll-based I/O manager unless GRPC_EXPERIMENTS is set or grpc
was loaded before it."""

from __future__ import annotations

import os
import subprocess
import sys

from lokit.transport.grpc.iomgr import POLL_IOMGR

_SHOW = (
    "import os; print(repr(os.environ.get('GRPC_EXPERIMENTS')), os.environ.get('GRPC_VERBOSITY'))"
)
_SERVER = "from lokit.cli.grpc_env import server_defaults; server_defaults(); " + _SHOW


def _run(code: str, env: dict[str, str] | None = None) -> str:
    base = {k: v for k, v in os.environ.items() if not k.startswith("GRPC_")}
    out = subprocess.run(
        [sys.executable, "-c", code], env={**base, **(env or {})}, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_server_defaults_apply_only_where_unset() -> None:
    assert _run(_SERVER) == f"{POLL_IOMGR!r} ERROR"
    assert _run(_SERVER, {"GRPC_EXPERIMENTS": ""}) == "'' ERROR"  # empty keeps grpc's choice
    assert _run(_SERVER, {"GRPC_EXPERIMENTS": "x", "GRPC_VERBOSITY": "INFO"}) == "'x' INFO"


def test_the_grpc_transport_chooses_it_only_where_it_loads_grpc() -> None:
    # a library user's process: lokit's client loads grpc, so the default applies
    assert _run("import lokit.transport.grpc.client; " + _SHOW) == f"{POLL_IOMGR!r} None"
    assert _run("import lokit.transport.grpc.client; " + _SHOW, {"GRPC_EXPERIMENTS": "x"}) == (
        "'x' None"
    )
    # grpc loaded first: grpc-core has read its settings, so nothing is set
    assert _run("import grpc, lokit.transport.grpc.client; " + _SHOW) == "None None"

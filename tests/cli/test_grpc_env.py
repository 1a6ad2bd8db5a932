"""lokit's processes pick grpc-core's poll-based I/O manager unless GRPC_EXPERIMENTS is set."""

from __future__ import annotations

import os
import subprocess
import sys

from lokit.cli.grpc_env import POLL_IOMGR

_SHOW = (
    "import os; from lokit.cli.grpc_env import server_defaults; server_defaults(); "
    "print(repr(os.environ.get('GRPC_EXPERIMENTS')), os.environ.get('GRPC_VERBOSITY'))"
)


def _run(env: dict[str, str]) -> str:
    base = {k: v for k, v in os.environ.items() if not k.startswith("GRPC_")}
    out = subprocess.run(
        [sys.executable, "-c", _SHOW], env={**base, **env}, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_defaults_apply_only_where_unset() -> None:
    assert _run({}) == f"{POLL_IOMGR!r} ERROR"
    assert _run({"GRPC_EXPERIMENTS": ""}) == "'' ERROR"  # an empty value keeps grpc's choice
    assert _run({"GRPC_EXPERIMENTS": "x", "GRPC_VERBOSITY": "INFO"}) == "'x' INFO"

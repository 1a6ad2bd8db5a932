"""Real servers for the CLI's tests: `python -m lokit serve ...` or a service's own script."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.procs import LokitProcess

Serve = Callable[..., LokitProcess]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    """serve(*args, module="lokit"): `python -m MODULE ARGS` in tmp_path, once it is listening."""
    started: list[LokitProcess] = []

    def _serve(*args: str, module: str = "lokit", listeners: int = 2) -> LokitProcess:
        p = LokitProcess(list(args), tmp_path, module=module)
        started.append(p)
        return p.wait_ready(listeners)

    yield _serve
    for p in started:
        p.stop()

"""Fixtures that run the workshop services as real processes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.procs import LokitProcess

Start = Callable[..., LokitProcess]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    """Start `lokit ARGS` in tmp_path; every child is stopped at the end of the test."""
    started: list[LokitProcess] = []

    def _start(*args: str, listeners: int, env: dict[str, str] | None = None) -> LokitProcess:
        p = LokitProcess(list(args), tmp_path, env)
        started.append(p)
        return p.wait_ready(listeners)

    yield _start
    for p in started:
        p.stop()

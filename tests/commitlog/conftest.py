"""Shared helpers for the commit log tests."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from lokit.commitlog import Log, LogConfig


def value_for(offset: int) -> bytes:
    """A deterministic record for `offset`, of varying length (0..299 bytes after the tag)."""
    tag = f"{offset}:".encode()
    return tag + hashlib.shake_128(tag).digest((offset * 7919) % 300)


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    return tmp_path / "log"


@pytest.fixture
def open_log(log_dir: Path):  # type: ignore[no-untyped-def]
    """Open logs in log_dir with fsync 'never' by default; closes them all afterwards."""
    opened: list[Log] = []

    def _open(**kw: object) -> Log:
        kw.setdefault("fsync", "never")
        log = Log.open(log_dir, LogConfig(**kw))  # type: ignore[arg-type]
        opened.append(log)
        return log

    yield _open
    for log in opened:
        log.close()

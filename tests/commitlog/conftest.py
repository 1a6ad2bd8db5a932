"""Shared helpers for the commit log tests."""

from __future__ import annotations

import hashlib
import itertools
import os
import threading
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


class Fsyncs:
    """Replaces `os.fdatasync` to record every call and, once armed, to hold one call.

    Each record is (tick when the call returned, inode, file size when it began): a
    record at offset o is covered by a call on its store file that began with the file
    at least as long as the record's end, i.e. after the record was written.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.done: list[tuple[int, int, int]] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        self._hold = False
        real = os.fdatasync

        def fdatasync(fd: int) -> None:
            st = os.fstat(fd)
            if self._hold:
                self._hold = False
                self.entered.set()
                self.release.wait(30)
            real(fd)
            self.done.append((tick(), st.st_ino, st.st_size))

        monkeypatch.setattr(os, "fdatasync", fdatasync)

    def hold_next(self) -> None:
        """Make the next fdatasync signal `entered` and wait for `release`."""
        self.entered.clear()
        self.release.clear()
        self._hold = True

    def covered(self, log: Log, offset: int, acked: int) -> bool:
        """True if a fdatasync that began after `offset` was written returned before `acked`."""
        with log._lock:
            seg = log._segs.find(offset, log.next_offset)[1]
            end = seg._end_of(offset - seg.base)
            ino = os.fstat(seg.store.fd).st_ino
        return any(t < acked and i == ino and size >= end for t, i, size in self.done)


_ticks = itertools.count()


def tick() -> int:
    """A global, thread-safe sequence number: orders events across threads."""
    return next(_ticks)

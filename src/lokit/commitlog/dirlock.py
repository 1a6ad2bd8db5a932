"""An exclusive lock on a directory, so two users (processes, or two opens in one
process) never share it.

The lock is an ``flock(2)`` on a file in the directory, created with mode 0600 and left
in place. It belongs to the open file description, so it ends when its holder releases
it, closes it or dies (``kill -9`` included): there is never a stale lock to clean up.
Two `DirLock`s on one directory conflict even within one process.

Both failures raise `DirLockError`, whose message is the caller's template for the
case with ``{dir}`` (and ``{strerror}``) filled in::

    DirLock(data, ".lokit-log.lock",
            in_use="data directory {dir} is in use by another log server",
            unusable="cannot use data directory {dir}: {strerror}",
            create=True)
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from .errors import DirLockError
from .files import FILE_MODE, make_dirs

IN_USE = "the directory {dir} is in use (locked by this or another process)"
"""The default message when another holder has the lock; ``{dir}`` is the directory."""
UNUSABLE = "cannot lock the directory {dir}: {strerror}"
"""The default message when the lock file cannot be created, opened or locked."""


class DirLock:
    """An exclusive, non-blocking lock on `directory`, held through `lock_file` in it.

    `acquire()` takes it or raises DirLockError at once (never waits); `release()`
    gives it up (idempotent); as a context manager it is held inside the block.
    `create` makes the directory (and its parents, 0700) first if missing.
    """

    __slots__ = ("_create", "_fd", "_in_use", "_unusable", "directory", "path")

    def __init__(
        self,
        directory: Path,
        lock_file: str,
        *,
        in_use: str = IN_USE,
        unusable: str = UNUSABLE,
        create: bool = False,
    ) -> None:
        for template in (in_use, unusable):  # a bad template fails here, not when it is needed
            template.format(dir=directory, strerror="")
        self.directory = directory
        self.path = directory / lock_file
        self._in_use = in_use
        self._unusable = unusable
        self._create = create
        self._fd = -1

    @property
    def held(self) -> bool:
        return self._fd >= 0

    def acquire(self) -> None:
        """Take the lock (nothing to do if this DirLock holds it already)."""
        if self._fd >= 0:
            return
        try:
            if self._create:
                make_dirs(self.directory)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        except OSError as e:
            raise self._unusable_error(e) from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            message = self._in_use.format(dir=self.directory, strerror="")
            raise DirLockError(message, self.directory, in_use=True) from None
        except OSError as e:
            os.close(fd)
            raise self._unusable_error(e) from e
        self._fd = fd

    def _unusable_error(self, e: OSError) -> DirLockError:
        message = self._unusable.format(dir=self.directory, strerror=e.strerror or e)
        return DirLockError(message, self.directory, in_use=False)

    def release(self) -> None:
        """Give the lock up (the lock file stays)."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def __enter__(self) -> DirLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"DirLock({str(self.path)!r}, held={self.held})"

"""`dir:PATH`: every live Unix socket of one kind in a directory (the one-box registry).

An instance registers by binding `PATH/<name>.grpc.sock` (or `.http.sock`) and
deregisters by removing it on shutdown, which every lokit server does. A server
killed with SIGKILL leaves its socket file behind: each poll probes every socket
with a non-blocking connect, and one that refuses connections is left out.

Why polling (every 0.25 s) and not inotify: the stdlib has no inotify binding
(it would take a dependency or ctypes), inotify cannot see a server die without
unlinking its socket (the probe is needed anyway), and it is Linux-only. A
directory listing plus one connect per socket costs microseconds, and 0.25 s
keeps "a new socket joins within 1 s" with a wide margin.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
from collections.abc import Iterable

from lokit.sd.backoff import Backoff
from lokit.sd.instancer import PollingInstancer

POLL_INTERVAL = 0.25

# connect() errors that mean "a live server, just busy" (its backlog is full).
_BUSY = {errno.EAGAIN, errno.EWOULDBLOCK, errno.EINPROGRESS}


def accepts(path: str) -> bool:
    """True when a server listens on the Unix socket `path` (a non-blocking connect)."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.setblocking(False)
        err = probe.connect_ex(path)
    except OSError:  # a path too long for AF_UNIX
        return False
    finally:
        probe.close()
    return err == 0 or err in _BUSY


class DirInstancer(PollingInstancer):
    """The sockets `PATH/*.<kind>.sock` that accept connections, as `unix:/abs/path` strings."""

    def __init__(self, target: str, path: str, kind: str, interval: float = POLL_INTERVAL) -> None:
        super().__init__(target, Backoff(initial=interval, cap=5.0))
        self.path = os.path.abspath(path)
        self.suffix = f".{kind}.sock"
        self.interval = interval

    async def _poll(self) -> tuple[Iterable[str], float]:
        return self.scan(), self.interval

    def scan(self) -> list[str]:
        """One look at the directory (raises OSError when it cannot be read)."""
        found: list[str] = []
        try:
            entries = list(os.scandir(self.path))
        except FileNotFoundError:
            raise OSError(f"directory {self.path} does not exist") from None
        except NotADirectoryError:
            raise OSError(f"{self.path} is not a directory") from None
        for entry in entries:
            if not entry.name.endswith(self.suffix):
                continue
            try:
                if not stat.S_ISSOCK(entry.stat(follow_symlinks=True).st_mode):
                    continue
            except OSError:
                continue  # removed while we looked
            if accepts(entry.path):
                found.append("unix:" + entry.path)
        return found

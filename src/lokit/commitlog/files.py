"""File modes, and the bounded pool of open segment files.

**Modes.** Every file the engine creates is created 0600 (`FILE_MODE`) and every
directory 0700 (`DIR_MODE`): records are readable by their owner only, whatever the
umask; with a `group` set (`LogConfig.group`), data files and directories are 0640
and 0750 and belong to that group (lock files stay 0600).

**The pool.** A segment holds up to `FDS_PER_SEGMENT` descriptors while open (its
store, its index, and the index's mmap, which keeps a descriptor of its own). A
`FilePool` bounds how many all the segments of its logs hold together: one pool is
shared by every log of one `Topics` (a standalone `Log` has its own). A segment's
files are opened when it is first used -- read, written, recovered -- and the pool
closes the least recently used segments when opening one more would pass the bound,
the active segment of an idle log included; the next append or read reopens it.

Closing a segment that was written since its log's last sync round fsyncs it first
(flushing its index), unless the log's fsync policy is ``never``: then it stays in the
log's dirty set and a later `sync()` reopens it by path to fsync it. A closed segment
keeps its sizes and record count in memory; reopening checks the files still match.

Threads: a segment opens, closes and is used under its log's lock. The pool takes the
lock of a victim's log without waiting (``acquire(blocking=False)``) and skips a
victim whose log is busy, so two logs evicting each other's segments never deadlock;
when every candidate is busy the bound is passed for a moment rather than wait. Lock
order: a log's lock, then the pool's mutex, then (never waiting) another log's lock.
Marking a segment used (`touch`) takes no lock: moving a key of an OrderedDict is one
C call under the GIL, and a segment is in the pool exactly while it is open, which
only changes under its log's lock, held by the caller.
"""

from __future__ import annotations

import grp
import os
import resource
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .segment import Segment

FILE_MODE = 0o600
DIR_MODE = 0o700
GROUP_FILE_MODE = 0o640
GROUP_DIR_MODE = 0o750
FDS_PER_SEGMENT = 3
"""Descriptors an open segment may hold: store, index, and the index's mmap."""
MIN_OPEN_FILES = 2 * FDS_PER_SEGMENT
DEFAULT_OPEN_FILES = 4096
"""The bound when the process has no file limit."""


@dataclass(frozen=True, slots=True)
class Perms:
    """Modes (and group) for what the engine creates: 0600/0700 by default; with a
    group, 0640/0750 and that group (`LogConfig.group`)."""

    file_mode: int = FILE_MODE
    dir_mode: int = DIR_MODE
    gid: int = -1

    @classmethod
    def for_group(cls, group: str | int | None) -> Perms:
        """The permissions for `group` (a name or a gid; None: owner only)."""
        if group is None:
            return PRIVATE
        if isinstance(group, bool) or not isinstance(group, int | str):
            raise ValueError(f"group must be a group name or id, not {group!r}")
        gid = group if isinstance(group, int) else _gid(group)
        return cls(GROUP_FILE_MODE, GROUP_DIR_MODE, gid)

    def apply(self, fd: int) -> None:
        """Give a file this engine just created its group and mode (with a group)."""
        if self.gid >= 0:
            os.fchown(fd, -1, self.gid)
            os.fchmod(fd, self.file_mode)

    def open_append(self, path: Path) -> int:
        """`path` opened read-write for appending (created with these permissions)."""
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, self.file_mode)
        if self.gid >= 0:
            try:
                self.apply(fd)
            except BaseException:
                os.close(fd)
                raise
        return fd


def _gid(name: str) -> int:
    if name.isdigit():
        return int(name)
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise ValueError(f"group {name!r} does not exist") from None


PRIVATE = Perms()


def make_dirs(path: Path, perms: Perms = PRIVATE) -> None:
    """Create `path` and any missing parents, each 0700 (0750 and the group, with a
    group); an existing one is left as is."""
    missing: list[Path] = []
    p = path
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for d in reversed(missing):
        try:
            os.mkdir(d, perms.dir_mode)
        except FileExistsError:
            continue
        if perms.gid >= 0:
            os.chown(d, -1, perms.gid)
        os.chmod(d, perms.dir_mode)  # exact even under a umask stricter than the mode


def default_max_open_files() -> int:
    """Half the soft RLIMIT_NOFILE (the other half is left for sockets, transient
    descriptors of sync rounds and snapshots, and the rest of the process)."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return DEFAULT_OPEN_FILES
    return max(MIN_OPEN_FILES, soft // 2)


class Owner(Protocol):
    """What the pool needs of a segment's log (its `SegmentSet`)."""

    lock: threading.RLock

    def evict(self, seg: Segment) -> bool:
        """Close `seg`'s files (syncing first if needed); False to keep it open."""
        ...


class Standalone:
    """The owner of a segment used without a log: closing it needs no sync."""

    def __init__(self) -> None:
        self.lock = threading.RLock()

    def evict(self, seg: Segment) -> bool:
        seg.close_files()
        return True


class FilePool:
    """At most `max_open_files` descriptors held by open segments (see the module)."""

    __slots__ = ("_lru", "_mutex", "evictions", "last", "max_open_files")

    def __init__(self, max_open_files: int | None = None) -> None:
        if max_open_files is None:
            max_open_files = default_max_open_files()
        if isinstance(max_open_files, bool) or not isinstance(max_open_files, int):
            raise ValueError(f"max_open_files must be an integer, not {max_open_files!r}")
        if max_open_files < MIN_OPEN_FILES:
            raise ValueError(f"max_open_files must be at least {MIN_OPEN_FILES}")
        self.max_open_files = max_open_files
        self._lru: OrderedDict[Segment, None] = OrderedDict()
        self._mutex = threading.Lock()
        self.last: Segment | None = None
        """The segment used most recently (its `touch` is skipped)."""
        self.evictions = 0
        """Segments closed to make room, since the pool was made."""

    @property
    def open_segments(self) -> int:
        return len(self._lru)

    @property
    def open_files(self) -> int:
        """Descriptors the open segments hold now."""
        return sum(s.open_fds for s in list(self._lru))

    def touch(self, seg: Segment) -> None:
        """Mark an open segment most recently used (the caller holds its log's lock)."""
        self._lru.move_to_end(seg)
        self.last = seg

    def open(self, seg: Segment, create: bool = False) -> None:
        """Open a closed segment's files, closing others first if the bound needs it;
        OSError if they cannot be opened. The caller holds the segment's log's lock."""
        with self._mutex:
            self._make_room()
            seg.open_files(create)
            self._lru[seg] = None
            self.last = seg

    def forget(self, seg: Segment) -> None:
        """Close a segment for good, or before deleting it (the caller holds its log's
        lock; nothing is synced here)."""
        with self._mutex:
            self._lru.pop(seg, None)
            if self.last is seg:
                self.last = None
        seg.close_files()

    def _make_room(self) -> None:
        """Close least recently used segments until one more fits (under the mutex)."""
        while (len(self._lru) + 1) * FDS_PER_SEGMENT > self.max_open_files:
            if not self._evict_one():
                return  # every candidate is busy: pass the bound rather than wait

    def _evict_one(self) -> bool:
        for victim in list(self._lru):  # oldest first; one C call, so a touch cannot interleave
            owner = victim.owner
            if not owner.lock.acquire(blocking=False):
                continue  # its log is busy (or is ours, mid-operation in another thread)
            try:
                if victim not in self._lru or not owner.evict(victim):
                    continue
                del self._lru[victim]
                if self.last is victim:
                    self.last = None
                self.evictions += 1
                return True
            finally:
                owner.lock.release()
        return False

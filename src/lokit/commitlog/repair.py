"""Applying a recovery `Plan` to a segment's files: quarantine first, then the change.

Before recovery changes anything that is not a torn tail -- bytes cut from a store,
index entries dropped or moved -- or leaves verified frames without an offset, it
copies the store and the index, as they are, beside the segment:
``<base>.store.damaged-<UTC time>`` and ``<base>.index.damaged-<UTC time>`` (mode
0600, fsynced with their directory before the first byte of the segment changes).
Those names are not segment names, so the log ignores them; an operator can inspect
or salvage them, then delete them. Cutting a torn tail needs no copy (it is what a
crash leaves of records that were never acknowledged); nor does keeping a damaged
record in place (its bytes are still in the store).

What was found is logged through structlog under ``lokit.commitlog``, at ``error``
for damage (with the path and the offset ranges) and at ``warning`` for a torn tail
cut or an index rebuilt from its store.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from .index import ENTRY_SIZE, pack_entries
from .recovery import Plan, offset_ranges

if TYPE_CHECKING:
    from .segment import Segment

_log = structlog.get_logger("lokit.commitlog")
_CHUNK = 1 << 20


def apply(seg: Segment, plan: Plan, raw_index: bytes, expected: int | None) -> int:
    """Make `seg`'s files and in-memory state what `plan` says (`raw_index`: the index
    file's bytes as read for the plan; `expected`: a sealed segment's record count).
    Returns the lowest next offset the log may have after this segment (its own next
    offset, or past the offsets the plan reserves). Raises OSError if a file cannot
    be changed."""
    base = seg.base
    store_path = str(seg.store.path)
    kept = len(plan.positions)
    unreadable = [offset_ranges(base, plan.damaged)] if plan.damaged else []
    if plan.reserve > kept:
        unreadable.append(f"{base + kept}..{base + plan.reserve - 1}")
    if plan.missing_from is not None and expected is not None:
        unreadable.append(f"{base + plan.missing_from}..{base + expected - 1}")
    new_index = pack_entries(0, plan.positions) if plan.positions else b""
    t = plan.trusted * ENTRY_SIZE
    lossy = len(plan.positions) < plan.listed or new_index[:t] != raw_index[:t]
    cut_damage = plan.cut is not None and not plan.torn
    if plan.unplaced is not None or lossy or cut_damage:
        copies = quarantine(seg)
        what = []
        unplaced = None
        if plan.unplaced is not None:
            unplaced = f"{plan.unplaced[0]}..{plan.unplaced[1] - 1}"
            what.append(f"bytes {unplaced} hold records that cannot be given an offset")
        if lossy:
            what.append("index entries disagree with the store")
        if cut_damage:
            what.append(f"bytes {plan.cut}..{seg.store.size - 1} are cut from the store")
        _log.error(
            "commitlog.damage_quarantined",
            path=store_path,
            index_path=str(seg.index.path),
            copies=[str(c) for c in copies],
            damaged_bytes=unplaced,
            unreadable_offsets=",".join(unreadable) or None,
            reason="; ".join(what),
        )
    if plan.cut is not None and plan.torn:
        _log.warning(
            "commitlog.torn_tail_dropped",
            path=store_path,
            dropped_bytes=seg.store.size - plan.cut,
            kept_records=len(plan.positions),
            first_dropped_offset=base + len(plan.positions),
            reason="torn frame at the end of the file, not listed by the index",
        )
    if plan.cut is not None:
        seg.store.truncate(plan.cut)
    if raw_index != new_index:
        _log.warning(
            "commitlog.index_rebuilt",
            path=str(seg.index.path),
            entries_before=len(raw_index) / ENTRY_SIZE,
            entries_after=len(plan.positions),
        )
        seg.index.rewrite(plan.positions)
    seg.damaged = plan.damaged
    if plan.damaged:
        _log.error(
            "commitlog.corrupt_records_kept",
            path=store_path,
            count=len(plan.damaged),
            offsets=offset_ranges(base, plan.damaged),
            note="their offsets are kept; reading them raises CorruptRecordError",
        )
    if plan.missing_from is not None and expected is not None:
        _log.error(
            "commitlog.segment_damaged",
            path=store_path,
            unreadable_offsets=f"{base + plan.missing_from}..{base + expected - 1}",
        )
    if plan.reserve > kept:
        _log.error(
            "commitlog.offsets_reserved",
            path=store_path,
            unreadable_offsets=f"{base + kept}..{base + plan.reserve - 1}",
            note="records there may have been read: the offsets are never handed out again, "
            "and reading them raises CorruptRecordError",
        )
    return base + max(kept, plan.reserve)


def quarantine(seg: Segment) -> list[Path]:
    """Copy the segment's store and index files beside them (0600, durable); returns
    the copies' paths."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    copies: list[Path] = []
    for fd, path in ((seg.store.fd, seg.store.path), (seg.index.fd, seg.index.path)):
        copies.append(_copy(fd, path, stamp))
    fsync_dir(seg.store.path.parent)
    return copies


def fsync_dir(directory: Path) -> None:
    """Make the directory's entries (files created or renamed in it) durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy(src: int, path: Path, stamp: str) -> Path:
    n = 0
    while True:
        target = path.with_name(f"{path.name}.damaged-{stamp}" + (f"-{n}" if n else ""))
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            break
        except FileExistsError:
            n += 1
    try:
        os.fchmod(fd, 0o600)
        pos = 0
        while chunk := os.pread(src, _CHUNK, pos):
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view) :]
            pos += len(chunk)
        os.fsync(fd)
    finally:
        os.close(fd)
    return target

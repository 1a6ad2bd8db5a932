"""Recovery of one segment on open: which records a store and its index still hold.

`plan` reads a store (as a buffer) and the raw bytes of its index and returns a
`Plan`: the store position of every record the segment keeps, which of them are
damaged, and what to change on disk. It changes nothing itself (`Segment.recover`
applies the plan). The rules, in order of authority:

1. **The index counts records.** Its valid prefix (entry k holds relative offset k,
   positions start at 0 and strictly increase) gives each listed record's span;
   every listed record keeps its offset: it verifies, or it is *damaged* (reading it
   raises `CorruptRecordError`). Entries past a broken one that still hold their own
   relative offset count as listed too (their positions are not trusted), so the
   next offset never drops below what the index says was handed out.
2. **Checksums place records the index does not.** After the last listed position
   the store is walked by length fields. A frame that does not verify starts a
   damaged region; the walk resynchronises at the next frame that verifies. The
   region is exactly one damaged record when its own length field lands on that
   frame, or when the checksum over the region as a payload matches its header
   (only the length was hit). Otherwise the number of records in it is unknown: the
   verified frames after it cannot be numbered, so none of them is given an offset
   (their bytes stay in place and are quarantined by the caller), and the newest
   segment reserves one offset for the region and one for each frame after it.
3. **A torn tail is cut.** Bytes after the last verified frame, with no verified
   frame after them and not listed by the index, are what a crash leaves behind:
   the store is cut back to the last verified frame. Nothing else is ever cut.
4. **Listed records with no bytes left** (the store ends before them) get 8-byte
   tombstone frames (all zero, which never verifies) in the newest segment, so their
   offsets stay taken. A sealed segment never changes its store: its missing records
   are not indexed, and reads report them missing (its offsets are fixed by the next
   segment's base).

Every damaged record's span is chosen so that it can never verify (a walk by length
fields stops at its first byte), so a batched read can never run through one.
"""

from __future__ import annotations

import re
import sys
from array import array
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Final

import crc32c

from .index import ENTRY_SIZE, pack_entries
from .record import CRC_SEED, HEADER, HEADER_SIZE, Buffer, scan

TOMBSTONE: Final = bytes(HEADER_SIZE)
"""The frame that stands for a record whose bytes are gone (never verifies)."""

_unpack_from = HEADER.unpack_from
_crc = crc32c.crc32c
_NONZERO: Final = re.compile(rb"[^\x00]")


@dataclass(slots=True)
class Plan:
    """What recovery keeps of one segment (record numbers are relative to its base)."""

    positions: list[int] = field(default_factory=list)
    """Store position of every record the index will list, tombstones included."""
    damaged: list[int] = field(default_factory=list)
    """Numbers of the kept records that do not verify, ascending."""
    listed: int = 0
    """How many records the index on disk listed."""
    trusted: int = 0
    """How many of its entries, from the first, were valid (their positions are kept)."""
    cut: int | None = None
    """Cut the store back to this size, or None."""
    torn: bool = False
    """The cut drops only a torn tail (no copy needed)."""
    tombstones: int = 0
    """Zero frames to append at the end of the store (their positions are in `positions`)."""
    unplaced: tuple[int, int] | None = None
    """A byte range holding verified frames that could not be given an offset."""
    missing_from: int | None = None
    """Sealed segments: the first record number past the end of what could be indexed."""
    reasons: dict[int, str] = field(default_factory=dict)
    """Why a damaged record cannot be read, where the frame's own check would mislead."""


def frame_end(buf: Buffer, p: int, size: int) -> int | None:
    """The end of the frame at `p` if it is complete and verifies, else None."""
    if p + HEADER_SIZE > size:
        return None
    n, crc = _unpack_from(buf, p)
    e: int = p + HEADER_SIZE + n
    if e > size or _crc(buf[p + HEADER_SIZE : e], CRC_SEED) != crc:
        return None
    return e


def span_ok(buf: Buffer, s: int, e: int) -> bool:
    """True if buf[s:e] is exactly one frame and it verifies."""
    if e - s < HEADER_SIZE:
        return False
    n, crc = _unpack_from(buf, s)
    return bool(n == e - s - HEADER_SIZE and _crc(buf[s + HEADER_SIZE : e], CRC_SEED) == crc)


@lru_cache(maxsize=8)
def _first_byte(limit: int) -> re.Pattern[bytes]:
    """Bytes that can start the length field of a frame of at most `limit` bytes."""
    hi = min(limit >> 24, 255)
    return re.compile(b"[\\x00-" + re.escape(bytes([hi])) + b"]")


def next_frame(buf: Buffer, start: int, size: int, limit: int) -> int | None:
    """The first position >= `start` where a frame of at most `limit` bytes verifies.

    Candidates are found by a regular expression on the length field's first byte
    (C speed through garbage), and runs of zeros are skipped whole.
    """
    first = _first_byte(limit)
    q = start
    last = size - HEADER_SIZE
    while q <= last:
        m = first.search(buf, q, last + 1)
        if m is None:
            return None
        q = m.start()
        n, crc = _unpack_from(buf, q)
        if n == 0 and crc == 0:  # inside a run of zeros: no header in it can verify
            z = _NONZERO.search(buf, q, size)
            if z is None:
                return None
            q = max(q + 1, z.start() - HEADER_SIZE + 1)
            continue
        e = q + HEADER_SIZE + n
        if n <= limit and e <= size and _crc(buf[q + HEADER_SIZE : e], CRC_SEED) == crc:
            return q
        q += 1
    return None


def parse_index(raw: bytes, cap: int | None) -> tuple[list[int], int]:
    """(positions of the valid prefix of an index file's entries, records it lists).

    `cap`: the most records the segment can hold (a sealed segment's count)."""
    n = len(raw) // ENTRY_SIZE
    if cap is not None:
        n = min(n, cap)
    if n == 0:
        return [], 0
    rel = array("I", _column(raw, n, 0, 4))
    pos = array("Q", _column(raw, n, 4, 8))
    if sys.byteorder == "little":
        rel.byteswap()
        pos.byteswap()
    if rel == array("I", range(n)) and pos[0] == 0 and all(map(int.__lt__, pos, pos[1:])):
        return pos.tolist(), n
    m = 0
    while m < n and rel[m] == m and (pos[m] == 0 if m == 0 else pos[m] > pos[m - 1]):
        m += 1
    listed = max((k + 1 for k in range(m, n) if rel[k] == k), default=m)
    return pos[:m].tolist(), listed


def _column(raw: bytes, n: int, at: int, width: int) -> bytes:
    out = bytearray(n * width)
    for j in range(width):
        out[j::width] = raw[at + j : n * ENTRY_SIZE : ENTRY_SIZE]
    return bytes(out)


def fast_plan(buf: Buffer, size: int, raw: bytes, expected: int | None) -> Plan | None:
    """The plan when nothing is damaged (one pass by length fields, the common case):
    every frame verifies up to the end and the index is a prefix of them. None if not."""
    positions, bad, end = scan(buf, size) if size else ([], [], 0)
    n_full = len(raw) // ENTRY_SIZE
    if bad or end != size or n_full > len(positions):
        return None
    if expected is not None and len(positions) != expected:
        return None
    if n_full and raw[: n_full * ENTRY_SIZE] != pack_entries(0, positions[:n_full]):
        return None
    return Plan(positions=positions, listed=n_full, trusted=n_full)


def plan(buf: Buffer, size: int, raw: bytes, expected: int | None, limit: int) -> Plan:
    """What to keep of a segment whose store is buf[:size] and whose index file holds
    `raw`; `expected` is a sealed segment's record count (None for the newest),
    `limit` the largest record to look for when resynchronising."""
    fast = fast_plan(buf, size, raw, expected)
    if fast is not None:
        return fast
    pos, listed = parse_index(raw, expected)
    out = Plan(listed=listed, trusted=len(pos))
    m = len(pos)
    k = 0
    s = 0
    while k + 1 < m:  # records the index gives both ends of
        e = pos[k + 1]
        f = frame_end(buf, s, size)
        if f is not None:  # verifies by its own length: it outranks the index's position
            out.positions.append(s)
            k += 1
            s = f
            continue
        if e <= s or e > size:
            break
        _keep_damaged(out, k, s, None)
        k += 1
        s = e
    if k + 1 < m and pos[k + 1] > size:
        # the store ends inside the records the index lists
        if expected is not None:
            _cut(out, s, size, torn=False)
        elif s < size:
            _keep_damaged(out, k, s, "the record is cut short by the end of the file")
            _tombstones(out, k + 1, size)
        else:
            _tombstones(out, k, size)
    else:
        _walk(out, buf, size, k, s, expected, limit)
    if expected is not None:
        if len(out.positions) > expected:
            out.unplaced = (out.positions[expected], size)
            _cut(out, out.positions[expected], size, torn=False)
            del out.positions[expected:]
            out.damaged = [d for d in out.damaged if d < expected]
        if len(out.positions) < expected:
            out.missing_from = len(out.positions)
    return out


def _walk(
    out: Plan, buf: Buffer, size: int, k: int, p: int, expected: int | None, limit: int
) -> None:
    """Place records from record `k` at byte `p` by length fields and checksums."""
    pieces: list[tuple[str, int]] = []  # ("ok" | "bad" | "gap" | "tail", start)
    while p < size:
        e = frame_end(buf, p, size)
        if e is not None:
            pieces.append(("ok", p))
            p = e
            continue
        q = None
        n = crc = 0
        if p + HEADER_SIZE <= size:
            n, crc = _unpack_from(buf, p)
            e = p + HEADER_SIZE + n
            if (n or crc) and e < size and frame_end(buf, e, size) is not None:
                q = e  # its length field is intact: one record whose payload or crc is hit
        kind = "bad"
        if q is None:
            q = next_frame(buf, p + 1, size, limit)
            if q is None:
                pieces.append(("tail", p))
                break
            repaired = q - p >= HEADER_SIZE and (n or crc) and checksum_at(buf, p, q) == crc
            kind = "bad" if repaired else "gap"
        pieces.append((kind, p))
        p = q
    newest = expected is None
    for i, (kind, s) in enumerate(pieces):
        if kind == "gap":
            out.unplaced = (s, size)
            if not newest:
                _cut(out, s, size, torn=False)
                return
            rest = sum(1 for kd, _ in pieces[i + 1 :] if kd != "tail")
            need = max(1 + rest, out.listed - k)
            _keep_damaged(out, k, s, None)
            _tombstones(out, k + 1, size, need - 1)
            for j in range(k, k + need):
                out.reasons[j] = (
                    "the record is in a damaged region whose records cannot be told apart "
                    "(its offset is kept; the bytes were quarantined)"
                )
            return
        if kind == "tail":
            if newest and k < out.listed:  # listed by the index: not a torn tail
                _keep_damaged(out, k, s, None)
                _tombstones(out, k + 1, size)
            else:
                _cut(out, s, size, torn=newest)
            return
        out.positions.append(s)
        if kind == "bad":
            out.damaged.append(k)
        k += 1
    if newest:
        _tombstones(out, k, size)


def _cut(out: Plan, at: int, size: int, *, torn: bool) -> None:
    if at < size:
        out.cut = at
        out.torn = torn


def checksum_at(buf: Buffer, p: int, q: int) -> int:
    """The frame checksum of buf[p+8:q] taken as a payload."""
    return int(_crc(buf[p + HEADER_SIZE : q], CRC_SEED))


def _keep_damaged(out: Plan, k: int, s: int, reason: str | None) -> None:
    out.positions.append(s)
    out.damaged.append(k)
    if reason is not None:
        out.reasons[k] = reason


def _tombstones(out: Plan, k: int, size: int, n: int | None = None) -> None:
    """Tombstones for records k.. up to what the index listed (or exactly `n` of them)."""
    if n is None:
        n = out.listed - k
    if n <= 0:
        return
    base = size + HEADER_SIZE * out.tombstones
    for j in range(n):
        out.positions.append(base + HEADER_SIZE * j)
        out.damaged.append(k + j)
        out.reasons.setdefault(
            k + j, "the record's bytes are gone (its offset is kept so it is never reused)"
        )
    out.tombstones += n


def offset_ranges(base: int, numbers: list[int]) -> str:
    """Record numbers as offset ranges: ``"5..7,12..12"``."""
    runs: list[str] = []
    i = 0
    while i < len(numbers):
        j = i
        while j + 1 < len(numbers) and numbers[j + 1] == numbers[j] + 1:
            j += 1
        runs.append(f"{base + numbers[i]}..{base + numbers[j]}")
        i = j + 1
    return ",".join(runs)

"""Recovery of one segment on open: which records a store and its index still hold.

`plan` reads a store (as a buffer) and the raw bytes of its index and returns a
`Plan`: the store position of every record the segment keeps, which of them are
damaged, and what to change on disk. It changes nothing itself (`repair.apply` does,
copying the files aside first). The rules, in order of authority:

1. **The index counts records.** Its valid prefix (entry k holds relative offset k,
   positions start at 0 and strictly increase) says where each listed record starts;
   a frame that verifies by its own length field outranks a listed position (the
   entry was damaged), a frame that does not is a *damaged* record kept at its
   offset (reading it raises `CorruptRecordError`). Entries past a broken one that
   still hold their own relative offset count as listed too, so the next offset
   never drops below what the index says was handed out.
2. **Checksums place records the index does not.** After the last listed position
   the store is walked by length fields. A frame that does not verify starts a
   damaged region; the walk resynchronises at the next frame that verifies. The
   region is one damaged record when its own length field lands on that frame, or
   when the checksum over the region taken as a payload matches its header (only the
   length was hit). Otherwise the number of records in it is unknown, so the frames
   after it cannot be numbered: the region and everything after it is cut off (after
   the copy), and the newest segment *reserves* the offsets they might have held --
   at most one per 8 bytes of damaged region plus one per verified frame -- by
   having the log start its next segment past them. Reading a reserved offset raises
   `CorruptRecordError` (missing); no reserved offset is ever handed out again.
3. **A torn tail is cut.** Bytes after the last verified frame, with no verified
   frame after them and not listed by the index, are what a crash leaves behind:
   the newest store is cut back to the last verified frame, with no copy.
4. **The store ends inside listed records.** The newest segment keeps a listed record
   that runs into the end of the file as a damaged record and reserves the offsets of
   the listed records after it. A sealed segment cuts such bytes off (after the copy);
   its records from there on read as missing, and its offsets are fixed anyway by the
   next segment's base.

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

_unpack_from = HEADER.unpack_from
_crc = crc32c.crc32c
_NONZERO: Final = re.compile(rb"[^\x00]")


@dataclass(slots=True)
class Plan:
    """What recovery keeps of one segment (record numbers are relative to its base)."""

    positions: list[int] = field(default_factory=list)
    """Store position of every record the index will list."""
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
    reserve: int = 0
    """Newest segment: the record count the offsets must reach although fewer records
    are kept (the log then starts its next segment there), or 0."""
    unplaced: tuple[int, int] | None = None
    """A byte range holding verified frames that could not be given an offset."""
    missing_from: int | None = None
    """Sealed segments: the first record number past the end of what could be indexed."""


def frame_end(buf: Buffer, p: int, size: int) -> int | None:
    """The end of the frame at `p` if it is complete and verifies, else None."""
    if p + HEADER_SIZE > size:
        return None
    n, crc = _unpack_from(buf, p)
    e: int = p + HEADER_SIZE + n
    if e > size or _crc(buf[p + HEADER_SIZE : e], CRC_SEED) != crc:
        return None
    return e


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
    if expected is not None and len(pos) == expected:
        pos.append(size)  # a sealed segment's last record ends where the file does
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
        out.positions.append(s)
        out.damaged.append(k)
        k += 1
        s = e
    if k + 1 < m and pos[k + 1] > size:  # the store ends inside the records the index lists
        _listed_tail(out, k, s, size, expected)
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
    elif out.reserve < listed:
        out.reserve = listed
    return out


def _walk(
    out: Plan, buf: Buffer, size: int, k: int, p: int, expected: int | None, limit: int
) -> None:
    """Place records from record `k` at byte `p` by length fields and checksums."""
    pieces: list[tuple[str, int, int]] = []  # ("ok" | "bad" | "gap" | "tail", start, end)
    while p < size:
        e = frame_end(buf, p, size)
        if e is not None:
            pieces.append(("ok", p, e))
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
                pieces.append(("tail", p, size))
                break
            repaired = q - p >= HEADER_SIZE and (n or crc) and checksum_at(buf, p, q) == crc
            kind = "bad" if repaired else "gap"
        pieces.append((kind, p, q))
        p = q
    for i, (kind, s, _) in enumerate(pieces):
        if kind == "gap":
            # Cannot be numbered from here on. At most one record per 8 bytes of each
            # damaged region, one per frame: reserve that many offsets (newest segment).
            out.unplaced = (s, size)
            _cut(out, s, size, torn=False)
            if expected is None:
                bound = sum(_most_records(kd, a, b) for kd, a, b in pieces[i:])
                out.reserve = k + bound
            return
        if kind == "tail":
            if expected is None and k < out.listed:  # listed by the index: not a torn tail
                _listed_tail(out, k, s, size, expected)
            else:
                _cut(out, s, size, torn=expected is None)
            return
        out.positions.append(s)
        if kind == "bad":
            out.damaged.append(k)
        k += 1


def _most_records(kind: str, start: int, end: int) -> int:
    """The most records a piece of the walk can have held: one per verified or
    one-record piece, one per started 8 bytes of a damaged region."""
    return 1 if kind in ("ok", "bad") else -(-(end - start) // HEADER_SIZE)


def _listed_tail(out: Plan, k: int, s: int, size: int, expected: int | None) -> None:
    """Record `k`, which the index lists, starts at `s` but does not verify before the
    end of the store. The newest segment keeps it (damaged, in place); a sealed one
    cuts it off (it then reads as missing)."""
    if expected is not None:
        _cut(out, s, size, torn=False)
    elif s < size:
        out.positions.append(s)
        out.damaged.append(k)


def _cut(out: Plan, at: int, size: int, *, torn: bool) -> None:
    if at < size:
        out.cut = at
        out.torn = torn


def checksum_at(buf: Buffer, p: int, q: int) -> int:
    """The frame checksum of buf[p+8:q] taken as a payload."""
    return int(_crc(buf[p + HEADER_SIZE : q], CRC_SEED))


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

"""Record framing and checksums: the store file format.

A store file (``<base>.store``) is a plain concatenation of frames, nothing else::

    offset 0      4           8
           +------+-----------+---------------------+
           | len  | crc       | payload (len bytes) |
           +------+-----------+---------------------+
           uint32 BE   uint32 BE

``crc`` is CRC-32C (Castagnoli) of the payload, with the CRC register continued
from ``len XOR 0x6C6F6B69`` instead of 0 -- in the `crc32c` package's terms,
``crc32c.crc32c(payload, len ^ 0x6C6F6B69)``. Seeding with the length means a
damaged length field fails the check too, and an all-zero frame (which a file
system can leave behind after a power cut) never verifies, even for an empty record.

Offsets are not stored in the frame: record *k* of a segment has offset
``base + k``, and the segment's index maps *k* to the frame's position.
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Sequence
from itertools import accumulate, chain, repeat
from operator import xor
from typing import Final

import crc32c

Buffer = bytes | bytearray | memoryview | mmap.mmap
"""Anything frames can be parsed from."""

HEADER: Final = struct.Struct(">II")
HEADER_SIZE: Final = HEADER.size  # 8
CRC_SEED: Final = 0x6C6F6B69

_crc = crc32c.crc32c
_pack = HEADER.pack
_unpack_from = HEADER.unpack_from


def checksum(payload: Buffer) -> int:
    """The frame checksum of one payload."""
    return _crc(payload, len(payload) ^ CRC_SEED)


def frame(value: bytes) -> bytes:
    """One framed record."""
    n = len(value)
    return _pack(n, _crc(value, n ^ CRC_SEED)) + value


def frame_batch(values: Sequence[bytes]) -> tuple[bytes, list[int]]:
    """Frame many records at once; returns the bytes and each frame's size.

    All the per-record work runs in C-level `map`s: this is the batched-append hot path.
    """
    lengths = list(map(len, values))
    crcs = map(_crc, values, map(xor, lengths, repeat(CRC_SEED)))
    headers = map(_pack, lengths, crcs)
    data = b"".join(chain.from_iterable(zip(headers, values, strict=True)))
    return data, [n + HEADER_SIZE for n in lengths]


def positions_after(start: int, sizes: Sequence[int]) -> list[int]:
    """Start positions of consecutive frames of `sizes`, the first at `start`."""
    pos = list(accumulate(sizes, initial=start))
    pos.pop()
    return pos


def decode(buf: bytes, pos: int, end: int) -> bytes | str:
    """The payload of the frame at buf[pos:end], or a reason string if it is damaged."""
    if end - pos < HEADER_SIZE:
        return f"frame of {end - pos} bytes is shorter than its {HEADER_SIZE}-byte header"
    n, crc = _unpack_from(buf, pos)
    if n != end - pos - HEADER_SIZE:
        return f"length field says {n} bytes but the frame holds {end - pos - HEADER_SIZE}"
    payload = buf[pos + HEADER_SIZE : end]
    if _crc(payload, n ^ CRC_SEED) != crc:
        return "checksum mismatch"
    return payload


def decode_run(
    buf: bytes,
    first: int,
    limit: int,
    max_records: int,
    max_bytes: int,
    out: list[tuple[int, bytes]],
) -> tuple[int, int, str | None]:
    """Decode consecutive frames from the start of `buf` into `out` as (offset, payload).

    Stops after `max_records`, before the payload total would pass `max_bytes` (but
    always takes one record if `out` is empty), at `limit` bytes, or at the first
    damaged frame. Returns (records taken, bytes consumed, damage reason or None).
    """
    p = 0
    k = 0
    total = 0
    blen = len(buf)
    append = out.append
    must_take = not out
    off = first
    while k < max_records:
        if p + HEADER_SIZE > blen:
            if p < limit < p + HEADER_SIZE:
                return k, p, f"{limit - p} stray bytes at the end of the segment"
            break
        n, crc = _unpack_from(buf, p)
        q = p + HEADER_SIZE + n
        if q > blen:
            if q > limit:
                return k, p, f"length field {n} runs past the end of the segment"
            break  # the frame continues past this read window
        total += n
        if total > max_bytes and not must_take:
            break
        payload = buf[p + HEADER_SIZE : q]
        if _crc(payload, n ^ CRC_SEED) != crc:
            return k, p, "checksum mismatch"
        append((off, payload))
        must_take = False
        off += 1
        k += 1
        p = q
    return k, p, None


def scan(buf: Buffer, end: int) -> tuple[list[int], list[bool], int]:
    """Walk the frames of buf[:end] by their length fields (recovery).

    Returns each complete frame's position, whether its checksum verified, and the
    position just after the last complete frame (where the structure ends).
    """
    positions: list[int] = []
    oks: list[bool] = []
    p = 0
    while p + HEADER_SIZE <= end:
        n, crc = _unpack_from(buf, p)
        q = p + HEADER_SIZE + n
        if q > end:
            break
        positions.append(p)
        oks.append(_crc(buf[p + HEADER_SIZE : q], n ^ CRC_SEED) == crc)
        p = q
    return positions, oks, p

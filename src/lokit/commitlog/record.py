"""Record framing and checksums (the store file format), and the checks on what an
append is given.

A store file (``<base>.store``) is a plain concatenation of frames, nothing else::

    offset 0      4           8
           +------+-----------+---------------------+
           | len  | crc       | payload (len bytes) |
           +------+-----------+---------------------+
           uint32 BE   uint32 BE

``crc`` is CRC-32C (Castagnoli) of the payload, continued from the value
``0x6C6F6B69`` instead of 0 -- in the `crc32c` package's terms,
``crc32c.crc32c(payload, 0x6C6F6B69)``. The non-zero start means an all-zero frame
(which a file system can leave behind after a power cut) never verifies, not even as
an empty record. A damaged length moves the payload's boundaries, so the checksum
of what is then read as the payload fails too.

Offsets are not stored in the frame: record *k* of a segment has offset
``base + k``, and the segment's index maps *k* to the frame's position.
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Sequence
from itertools import accumulate, chain, repeat
from typing import Final

import crc32c

from .errors import RecordTooLargeError

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
    return _crc(payload, CRC_SEED)


def frame(value: bytes) -> bytes:
    """One framed record."""
    return _pack(len(value), _crc(value, CRC_SEED)) + value


def frame_batch(
    values: Sequence[bytes], lengths: list[int] | None = None
) -> tuple[bytes, list[int]]:
    """Frame many records at once (`lengths`: their lengths, if already known); returns
    the bytes and each frame's size.

    All the per-record work runs in C-level `map`s: this is the batched-append hot path.
    """
    if lengths is None:
        lengths = list(map(len, values))
    crcs = map(_crc, values, repeat(CRC_SEED))
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
    if _crc(payload, CRC_SEED) != crc:
        return "checksum mismatch"
    return payload


def decode_frames(buf: bytes, first: int, end: int, out: list[tuple[int, bytes]]) -> str | None:
    """Decode the frames filling buf[:end] (boundaries known from the index) into
    `out` as (offset, payload), numbering from `first`. Stops at the first damaged
    frame and returns why, or None when every frame verified.

    This is the sequential-read hot path: one unpack, one slice and one checksum
    call per record, with no bounds bookkeeping (the end came from the index).
    """
    values: list[bytes] = []
    keep = values.append
    unpack = _unpack_from
    crc32c_ = _crc
    seed = CRC_SEED
    p = 0
    reason = None
    try:
        while p < end:
            n, crc = unpack(buf, p)
            p += HEADER_SIZE
            q = p + n
            v = buf[p:q]
            if crc32c_(v, seed) != crc:
                reason = "checksum mismatch"
                break
            keep(v)
            p = q
    except struct.error:
        reason = "frame header cut off by the end of the file"
    if reason is None and p != end:
        reason = "frame lengths disagree with the index"
    out.extend(zip(range(first, first + len(values)), values, strict=True))
    return reason


def split_frames(buf: bytes | bytearray, limit: int) -> tuple[list[bytes], int, str | None]:
    """Payloads of the complete frames at the start of `buf` (a stream being read).

    Returns (payloads, bytes consumed, damage reason or None); an incomplete frame at
    the end is left unconsumed for the caller to complete with more data. A length
    field over `limit` is damage, so a caller never buffers more than one record's worth.
    """
    values: list[bytes] = []
    p = 0
    blen = len(buf)
    with memoryview(buf) as mv:  # released on return, so a bytearray can be resized again
        while p + HEADER_SIZE <= blen:
            n, crc = _unpack_from(mv, p)
            if n > limit:
                why = (
                    f"the length field says {n} bytes, over the record limit of {limit} "
                    "(a damaged stream, or a snapshot of a log with a larger max_record_bytes)"
                )
                return values, p, why
            q = p + HEADER_SIZE + n
            if q > blen:
                break
            v = bytes(mv[p + HEADER_SIZE : q])
            if _crc(v, CRC_SEED) != crc:
                return values, p, "checksum mismatch"
            values.append(v)
            p = q
    return values, p, None


def scan(buf: Buffer, end: int) -> tuple[list[int], list[int], int]:
    """Walk the frames of buf[:end] by their length fields (recovery).

    Returns each complete frame's position, the numbers of the frames whose checksum
    failed, and the position just after the last complete frame (where the structure
    ends).
    """
    positions: list[int] = []
    bad: list[int] = []
    keep = positions.append
    unpack = _unpack_from
    crc32c_ = _crc
    seed = CRC_SEED
    p = 0
    while p + HEADER_SIZE <= end:
        n, crc = unpack(buf, p)
        q = p + HEADER_SIZE + n
        if q > end:
            break
        if crc32c_(buf[p + HEADER_SIZE : q], seed) != crc:
            bad.append(len(positions))
        keep(p)
        p = q
    return positions, bad, p


# -- checking what an append was given -----------------------------------------------------


def _as_bytes(value: object, where: str) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    raise TypeError(f"{where} must be bytes, not {type(value).__name__}")


def check_value(value: object, limit: int) -> bytes:
    """A record as bytes, or the TypeError / RecordTooLargeError its append would raise
    (`limit`: the log's `config.record_limit`)."""
    v = value if type(value) is bytes else _as_bytes(value, "a record value")
    if len(v) > limit:
        raise RecordTooLargeError(len(v), limit)
    return v


def check_batch(values: object, limit: int) -> tuple[list[bytes], list[int]]:
    """A batch as a non-empty list of bytes and their lengths, or the error its
    append would raise (`limit` as for `check_value`)."""
    if isinstance(values, bytes | bytearray | memoryview | str):
        raise TypeError("append_batch takes a sequence of records, not a single value")
    try:
        vals: list[bytes] = list(values)  # type: ignore[call-overload]
    except TypeError:
        raise TypeError(
            f"append_batch takes a sequence of records, not {type(values).__name__}"
        ) from None
    if not vals:
        raise ValueError("append_batch needs at least one record")
    if list(map(type, vals)).count(bytes) != len(vals):  # faster than a set of types
        vals = [_as_bytes(v, f"record {i} of the batch") for i, v in enumerate(vals)]
    lengths = list(map(len, vals))
    if max(lengths) > limit:
        i = next(i for i, n in enumerate(lengths) if n > limit)
        raise RecordTooLargeError(lengths[i], limit, index=i)
    return vals, lengths

"""Commit log storage engine (`lokit.commitlog`) beside the bare-file floor, in one run.

Records of 100 bytes; 1,000,000 of them by default, 100,000 with --quick.

Cases (metric records_per_s), lokit | floor:
  append-one              `Log.append` per record, fsync never | os.write per record
  append-batched          `append_batch` of 1,000, fsync never | os.write per 64 KiB
  read-sequential         `read_range(off, 1000, 1 MiB)` to the end | by offset through
                          the index mmap and a store mmap
  read-random             `read(off)` at random offsets | the same at the same offsets
  append-fsync-always-N   `AsyncLog.append` under fsync always from N concurrent tasks
                          (group commit) | N=1 only: write + index entry + fdatasync + msync

The floor is a plain inline loop over one store file of [uint64 BE length][payload]
records and a preallocated, mmap'd index of 12-byte `>IQ` entries: proglog's layout
with no checksums, no segments, no recovery and no locking. lokit verifies every
record's CRC-32C on read; the floor checks nothing.
Throughput rows are the median of the trials (3 by default, 1 with --quick). The
machine is shared, so the CPU-bound cases run lokit and the floor alternately in
chunks of 10,000 records and add up each one's time: load from other tenants then
falls on both alike and the ratio stays meaningful even when the absolute figures move.
"""

from __future__ import annotations

import asyncio
import mmap
import os
import random
import shutil
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import uvloop
from _common import Row, median, parser, report

from lokit.commitlog import AsyncLog, Log, LogConfig

RECORD = 100
BATCH = 1000
LEN = struct.Struct(">Q")
IDX = struct.Struct(">IQ")


def payloads(n: int) -> list[bytes]:
    """1,000 distinct 100-byte records, cycled (building 1M objects would skew memory)."""
    rng = random.Random(7)
    pool = [rng.randbytes(RECORD) for _ in range(1000)]
    return [pool[i % 1000] for i in range(n)]


# -- floor ---------------------------------------------------------------------------------------


class Floor:
    """The bare loop's state: one store file and a preallocated, mmap'd index."""

    def __init__(self, directory: Path, capacity: int) -> None:
        flags = os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
        self.sfd = os.open(directory / "floor.store", flags)
        self.ifd = os.open(directory / "floor.index", os.O_RDWR | os.O_CREAT | os.O_TRUNC)
        os.ftruncate(self.ifd, capacity * IDX.size)
        self.mi = mmap.mmap(self.ifd, capacity * IDX.size)
        self.pos = 0
        self.count = 0
        self.buf = bytearray()
        self.ms: mmap.mmap | None = None

    def append(self, values: list[bytes], buffered: bool) -> None:
        """Buffered: os.write every 64 KiB (and at the end); else one os.write per record."""
        sfd, mi, pos, i = self.sfd, self.mi, self.pos, self.count
        pack_len, pack_idx, write = LEN.pack, IDX.pack_into, os.write
        if buffered:
            buf = self.buf
            for v in values:
                buf += pack_len(len(v))
                buf += v
                pack_idx(mi, i * 12, i, pos)
                pos += 8 + len(v)
                i += 1
                if len(buf) >= 65536:
                    write(sfd, buf)
                    buf.clear()
        else:
            for v in values:
                write(sfd, pack_len(len(v)) + v)
                pack_idx(mi, i * 12, i, pos)
                pos += 8 + len(v)
                i += 1
        self.pos, self.count = pos, i

    @classmethod
    def existing(cls, directory: Path) -> Floor:
        """Reopen a floor's files for reading."""
        f = cls.__new__(cls)
        f.sfd = os.open(directory / "floor.store", os.O_RDONLY)
        f.ifd = os.open(directory / "floor.index", os.O_RDONLY)
        f.mi = mmap.mmap(f.ifd, 0, access=mmap.ACCESS_READ)
        f.ms = None
        f.buf = bytearray()
        f.pos = f.count = 0
        return f

    def finish(self) -> None:
        if self.buf:
            os.write(self.sfd, self.buf)
            self.buf.clear()

    def read(self, offsets: range | list[int]) -> None:
        """Read records by offset: index entry, then length and payload from a store mmap."""
        if self.ms is None:
            self.ms = mmap.mmap(self.sfd, 0, access=mmap.ACCESS_READ)
        ms, mi = self.ms, self.mi
        idx, ln = IDX.unpack_from, LEN.unpack_from
        for i in offsets:
            pos = idx(mi, i * 12)[1]
            n = ln(ms, pos)[0]
            v = ms[pos + 8 : pos + 8 + n]
        del v

    def close(self) -> None:
        if self.ms is not None:
            self.ms.close()
        self.mi.close()
        os.close(self.ifd)
        os.close(self.sfd)


def floor_fsync_one(directory: Path, seconds: float) -> float:
    """Durable appends one at a time: write + index entry + fdatasync + msync; rec/s."""
    cap = 1 << 20
    sfd = os.open(directory / "fs.store", os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND)
    ifd = os.open(directory / "fs.index", os.O_RDWR | os.O_CREAT | os.O_TRUNC)
    os.ftruncate(ifd, cap * IDX.size)
    mi = mmap.mmap(ifd, cap * IDX.size)
    page = mmap.PAGESIZE
    v = payloads(1)[0]
    pos = 0
    i = 0
    t0 = time.perf_counter()
    deadline = t0 + seconds
    while time.perf_counter() < deadline and i < cap:
        os.write(sfd, LEN.pack(len(v)) + v)
        IDX.pack_into(mi, i * 12, i, pos)
        os.fdatasync(sfd)
        start = (i * 12) // page * page
        mi.flush(start, page * 2 if (i * 12 + 12) > start + page else page)
        pos += 8 + len(v)
        i += 1
    elapsed = time.perf_counter() - t0
    mi.close()
    os.close(ifd)
    os.close(sfd)
    return i / elapsed


# -- lokit ---------------------------------------------------------------------------------------


NEVER = LogConfig(fsync="never")


def lokit_append(log: Log, values: list[bytes], batched: bool) -> None:
    if batched:
        append_batch = log.append_batch
        for i in range(0, len(values), BATCH):
            append_batch(values[i : i + BATCH])
    else:
        append = log.append
        for v in values:
            append(v)


def lokit_read_sequential(log: Log, start: int, stop: int) -> None:
    read_range = log.read_range
    off = start
    while off < stop:
        off = read_range(off, min(1000, stop - off), 1 << 20)[-1][0] + 1


def lokit_read_random(log: Log, offsets: list[int]) -> None:
    read = log.read
    for o in offsets:
        read(o)


def interleave(
    chunks: int, lokit_step: Callable[[int], None], floor_step: Callable[[int], None]
) -> tuple[float, float]:
    """Run both systems chunk by chunk, alternating which goes first, so that load
    from other tenants of the machine falls on both alike; returns total seconds."""
    tl = tf = 0.0
    clock = time.perf_counter
    for c in range(chunks):
        steps = (
            [(0, lokit_step), (1, floor_step)] if c % 2 == 0 else [(1, floor_step), (0, lokit_step)]
        )
        for which, step in steps:
            t0 = clock()
            step(c)
            dt = clock() - t0
            if which == 0:
                tl += dt
            else:
                tf += dt
    return tl, tf


async def fsync_always_suite(scratch: Path, slices: int, slice_seconds: float) -> dict[str, float]:
    """Durable appends: lokit with 1, 8 and 64 concurrent appenders and the floor loop
    take turns in short slices (so disk load from other tenants falls on all alike);
    returns records/s per system (key "1", "8", "64", "floor")."""
    logs: dict[int, AsyncLog] = {}
    for k in (1, 8, 64):
        d = scratch / f"fs{k}"
        shutil.rmtree(d, ignore_errors=True)
        logs[k] = await AsyncLog.open(d, LogConfig(fsync="always"))
    floor_dir = scratch / "fsfloor"
    shutil.rmtree(floor_dir, ignore_errors=True)
    floor_dir.mkdir()
    v = payloads(1)[0]
    counts = dict.fromkeys(("1", "8", "64", "floor"), 0.0)
    seconds = dict.fromkeys(counts, 0.0)

    async def run(k: int) -> None:
        alog = logs[k]
        stop = False
        count = 0

        async def worker() -> None:
            nonlocal count
            while not stop:
                await alog.append(v)
                count += 1

        t0 = time.perf_counter()
        tasks = [asyncio.create_task(worker()) for _ in range(k)]
        await asyncio.sleep(slice_seconds)
        stop = True
        await asyncio.gather(*tasks)
        seconds[str(k)] += time.perf_counter() - t0
        counts[str(k)] += count

    systems: list[int] = [1, 8, 64, 0]  # 0: the floor
    for s in range(slices):
        for k in systems[s % 4 :] + systems[: s % 4]:
            if k == 0:
                rate = floor_fsync_one(floor_dir, slice_seconds)
                counts["floor"] += rate * slice_seconds
                seconds["floor"] += slice_seconds
            else:
                await run(k)
    for alog in logs.values():
        await alog.close()
    return {k: counts[k] / seconds[k] for k in counts}


def measure_appends(
    scratch: Path, values: list[bytes], chunk: int, batched: bool
) -> tuple[float, float]:
    """Append all values to a fresh lokit log and a fresh floor, interleaved."""
    n = len(values)
    for name in ("lokit", "floor"):
        shutil.rmtree(scratch / name, ignore_errors=True)
        (scratch / name).mkdir()
    log = Log.open(scratch / "lokit", NEVER)
    floor = Floor(scratch / "floor", n)

    def lokit_step(c: int) -> None:
        lokit_append(log, values[c * chunk : (c + 1) * chunk], batched)

    def floor_step(c: int) -> None:
        floor.append(values[c * chunk : (c + 1) * chunk], batched)

    tl, tf = interleave(n // chunk, lokit_step, floor_step)
    floor.finish()
    assert log.next_offset == n and floor.count == n
    log.close()
    floor.close()
    return tl, tf


def measure_reads(
    scratch: Path, chunks: int, chunk: int, offsets: list[int] | None
) -> tuple[float, float]:
    """Read sequentially (offsets None) or at `offsets`, interleaved; returns seconds."""
    log = Log.open(scratch / "lokit", NEVER)
    floor = Floor.existing(scratch / "floor")

    def lokit_step(c: int) -> None:
        if offsets is None:
            lokit_read_sequential(log, c * chunk, (c + 1) * chunk)
        else:
            lokit_read_random(log, offsets[c * chunk : (c + 1) * chunk])

    def floor_step(c: int) -> None:
        if offsets is None:
            floor.read(range(c * chunk, (c + 1) * chunk))
        else:
            floor.read(offsets[c * chunk : (c + 1) * chunk])

    tl, tf = interleave(chunks, lokit_step, floor_step)
    log.close()
    floor.close()
    return tl, tf


# -- driver --------------------------------------------------------------------------------------


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--records", type=int, help="records per run (default 1,000,000; quick 100,000)")
    p.add_argument("--trials", type=int, help="trials per case (default 3; quick 1)")
    p.add_argument("--dir", help="scratch directory (default: a temporary directory)")
    args = p.parse_args()
    n = args.records or (100_000 if args.quick else 1_000_000)
    trials = args.trials or (1 if args.quick else 3)
    fsync_slices = 2 if args.quick else 6  # x 0.5 s per system per trial
    n_random = min(n, 20_000 if args.quick else 200_000)
    values = payloads(n)
    scratch = Path(tempfile.mkdtemp(prefix="lokit-bench-", dir=args.dir))
    results: dict[tuple[str, str], list[float]] = {}

    def add(case: str, system: str, rate: float) -> None:
        results.setdefault((case, system), []).append(rate)

    def say(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    chunk = min(10_000, max(1, n // 10))
    chunks = n // chunk
    n = chunks * chunk
    values = values[:n]
    rng = random.Random(11)
    offsets = [rng.randrange(n) for _ in range(n_random)]
    rchunk = n_random // chunks or 1
    try:
        say(f"{n:,} records of {RECORD} B, {trials} trial(s), scratch {scratch}")
        for t in range(trials):
            say(f"trial {t + 1}: appends and reads (lokit and floor interleaved per {chunk:,})")
            for case, batched in (("append-one", False), ("append-batched", True)):
                tl, tf = measure_appends(scratch, values, chunk, batched)
                add(case, "lokit", n / tl)
                add(case, "floor", n / tf)
            # read back what append-batched wrote (lokit reopened, as after a restart)
            tl, tf = measure_reads(scratch, chunks, chunk, None)
            add("read-sequential", "lokit", n / tl)
            add("read-sequential", "floor", n / tf)
            tl, tf = measure_reads(scratch, chunks, rchunk, offsets)
            add("read-random", "lokit", rchunk * chunks / tl)
            add("read-random", "floor", rchunk * chunks / tf)
        for t in range(trials):
            say(f"trial {t + 1}: fsync always (1, 8, 64 appenders and the floor take turns)")
            rates = uvloop.run(fsync_always_suite(scratch, fsync_slices, 0.5))  # as services run
            for k in ("1", "8", "64"):
                add(f"append-fsync-always-{k}", "lokit", rates[k])
            add("append-fsync-always-1", "floor", rates["floor"])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    med: Callable[[str, str], float] = lambda c, s: median(results[(c, s)])  # noqa: E731
    rows = [
        Row(case, system, "records_per_s", median(v), "rec/s")
        for (case, system), v in results.items()
    ]
    rows.sort(key=lambda r: (ORDER.index(r.case), r.system != "lokit"))
    pct = {
        c: 100 * med(c, "lokit") / med(c, "floor") for c in ("append-batched", "read-sequential")
    }
    speedup = med("append-fsync-always-64", "lokit") / med("append-fsync-always-1", "lokit")
    rows += [Row(c, "lokit", "pct_of_floor", v, "%") for c, v in pct.items()]
    rows.append(Row("append-fsync-always-64", "lokit", "speedup_vs_1", speedup, "x"))
    report(rows, args, f"lokit.commitlog storage, {n:,} x {RECORD} B")
    checks = [
        ("append-batched >= 70% of floor", pct["append-batched"] >= 70),
        ("read-sequential >= 70% of floor", pct["read-sequential"] >= 70),
        ("read-random >= 100k/s", med("read-random", "lokit") >= 100_000),
        ("fsync always: 64 appenders >= 20x one", speedup >= 20),
    ]
    for name, ok in checks:
        print(f"  {'met   ' if ok else 'MISSED'}  {name}")


ORDER = [
    "append-one",
    "append-batched",
    "read-sequential",
    "read-random",
    "append-fsync-always-1",
    "append-fsync-always-8",
    "append-fsync-always-64",
]

if __name__ == "__main__":
    main()

"""Commit log storage engine (`lokit.commitlog`) beside the bare-file floor, in one run.

Records of 100 bytes; 1,000,000 of them by default, 100,000 with --quick.

Cases (metric records_per_s):
  append-one              lokit `Log.append` per record (fsync never)  |  floor: os.write per record
  append-batched          lokit `append_batch` of 1,000                |  floor: 64 KiB-buffered os.write
  read-sequential         lokit `read_range(off, 1000, 1 MiB)` to end  |  floor: read by offset, index+store mmap
  read-random             lokit `read(off)`, random offsets            |  floor: the same, random offsets
  append-fsync-always-N   lokit `AsyncLog.append` under fsync always, N concurrent tasks (group commit)
                          floor (N=1 only): os.write + index + fdatasync + msync per record

The floor is a plain inline loop over one store file of [uint64 BE length][payload]
records and a preallocated, mmap'd index of 12-byte `>IQ` entries: proglog's layout
with no checksums, no segments, no recovery and no locking. lokit verifies every
record's CRC-32C on read; the floor checks nothing.
Throughput rows are the median of the trials (3 by default, 1 with --quick).
"""

from __future__ import annotations

import asyncio
import mmap
import os
import random
import shutil
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _common import Row, parser, report

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


def floor_append(directory: Path, values: list[bytes], buffered: bool) -> float:
    """The bare loop; returns seconds. Buffered: flush every 64 KiB; else os.write per record."""
    n = len(values)
    sfd = os.open(directory / "floor.store", os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND)
    ifd = os.open(directory / "floor.index", os.O_RDWR | os.O_CREAT | os.O_TRUNC)
    os.ftruncate(ifd, n * IDX.size)
    mi = mmap.mmap(ifd, n * IDX.size)
    pack_len = LEN.pack
    pack_idx = IDX.pack_into
    write = os.write
    t0 = time.perf_counter()
    pos = 0
    if buffered:
        buf = bytearray()
        for i, v in enumerate(values):
            buf += pack_len(len(v))
            buf += v
            pack_idx(mi, i * 12, i, pos)
            pos += 8 + len(v)
            if len(buf) >= 65536:
                write(sfd, buf)
                buf.clear()
        if buf:
            write(sfd, buf)
    else:
        for i, v in enumerate(values):
            write(sfd, pack_len(len(v)) + v)
            pack_idx(mi, i * 12, i, pos)
            pos += 8 + len(v)
    elapsed = time.perf_counter() - t0
    mi.close()
    os.close(ifd)
    os.close(sfd)
    return elapsed


def floor_read(directory: Path, offsets: range | list[int]) -> float:
    """Read records by offset through the index mmap and a store mmap; returns seconds."""
    sfd = os.open(directory / "floor.store", os.O_RDONLY)
    ifd = os.open(directory / "floor.index", os.O_RDONLY)
    ms = mmap.mmap(sfd, 0, access=mmap.ACCESS_READ)
    mi = mmap.mmap(ifd, 0, access=mmap.ACCESS_READ)
    idx = IDX.unpack_from
    ln = LEN.unpack_from
    t0 = time.perf_counter()
    for i in offsets:
        pos = idx(mi, i * 12)[1]
        n = ln(ms, pos)[0]
        v = ms[pos + 8 : pos + 8 + n]
    elapsed = time.perf_counter() - t0
    del v
    ms.close()
    mi.close()
    os.close(sfd)
    os.close(ifd)
    return elapsed


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


def lokit_append(directory: Path, values: list[bytes], batched: bool) -> float:
    log = Log.open(directory, NEVER)
    append = log.append
    t0 = time.perf_counter()
    if batched:
        for i in range(0, len(values), BATCH):
            log.append_batch(values[i : i + BATCH])
    else:
        for v in values:
            append(v)
    elapsed = time.perf_counter() - t0
    assert log.next_offset == len(values)
    log.close()
    return elapsed


def lokit_read_sequential(directory: Path, n: int) -> float:
    log = Log.open(directory, NEVER)
    t0 = time.perf_counter()
    off = 0
    while off < n:
        off = log.read_range(off, 1000, 1 << 20)[-1][0] + 1
    elapsed = time.perf_counter() - t0
    log.close()
    return elapsed


def lokit_read_random(directory: Path, offsets: list[int]) -> float:
    log = Log.open(directory, NEVER)
    read = log.read
    t0 = time.perf_counter()
    for o in offsets:
        read(o)
    elapsed = time.perf_counter() - t0
    log.close()
    return elapsed


async def lokit_fsync_always(directory: Path, appenders: int, seconds: float) -> float:
    """N tasks appending one record at a time under fsync always; total rec/s."""
    alog = await AsyncLog.open(directory, LogConfig(fsync="always"))
    v = payloads(1)[0]
    stop = False
    count = 0

    async def worker() -> None:
        nonlocal count
        while not stop:
            await alog.append(v)
            count += 1

    t0 = time.perf_counter()
    tasks = [asyncio.create_task(worker()) for _ in range(appenders)]
    await asyncio.sleep(seconds)
    stop = True
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - t0
    await alog.close()
    return count / elapsed


# -- driver --------------------------------------------------------------------------------------


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--records", type=int, help="records per run (default 1,000,000; quick 100,000)")
    p.add_argument("--trials", type=int, help="trials per case (default 3; quick 1)")
    p.add_argument("--dir", help="scratch directory (default: a temporary directory)")
    args = p.parse_args()
    n = args.records or (100_000 if args.quick else 1_000_000)
    trials = args.trials or (1 if args.quick else 3)
    fsync_seconds = 1.0 if args.quick else 3.0
    n_random = min(n, 20_000 if args.quick else 200_000)
    values = payloads(n)
    scratch = Path(tempfile.mkdtemp(prefix="lokit-bench-", dir=args.dir))
    results: dict[tuple[str, str], list[float]] = {}

    def add(case: str, system: str, rate: float) -> None:
        results.setdefault((case, system), []).append(rate)

    def fresh(name: str) -> Path:
        d = scratch / name
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir()
        return d

    def say(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    try:
        say(f"{n:,} records of {RECORD} B, {trials} trial(s), scratch {scratch}")
        for t in range(trials):
            say(f"trial {t + 1}: appends")
            add("append-one", "lokit", n / lokit_append(fresh("lokit-one"), values, False))
            add("append-one", "floor", n / floor_append(fresh("floor-one"), values, False))
            add("append-batched", "lokit", n / lokit_append(fresh("lokit"), values, True))
            add("append-batched", "floor", n / floor_append(fresh("floor"), values, True))
            shutil.rmtree(scratch / "lokit-one")
            shutil.rmtree(scratch / "floor-one")
        rng = random.Random(11)
        offsets = [rng.randrange(n) for _ in range(n_random)]
        for t in range(trials):
            say(f"trial {t + 1}: reads")
            add("read-sequential", "lokit", n / lokit_read_sequential(scratch / "lokit", n))
            add("read-sequential", "floor", n / floor_read(scratch / "floor", range(n)))
            add("read-random", "lokit", n_random / lokit_read_random(scratch / "lokit", offsets))
            add("read-random", "floor", n_random / floor_read(scratch / "floor", offsets))
        for t in range(trials):
            for k in (1, 8, 64):
                say(f"trial {t + 1}: fsync always, {k} appender(s)")
                rate = asyncio.run(lokit_fsync_always(fresh(f"fs{k}"), k, fsync_seconds))
                add(f"append-fsync-always-{k}", "lokit", rate)
            add("append-fsync-always-1", "floor", floor_fsync_one(fresh("fsfloor"), fsync_seconds))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    med: Callable[[str, str], float] = lambda c, s: statistics.median(results[(c, s)])  # noqa: E731
    rows = [
        Row(case, system, "records_per_s", statistics.median(v), "rec/s")
        for (case, system), v in results.items()
    ]
    rows.sort(key=lambda r: (ORDER.index(r.case), r.system != "lokit"))
    pct = {c: 100 * med(c, "lokit") / med(c, "floor") for c in ("append-batched", "read-sequential")}
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

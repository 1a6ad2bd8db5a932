"""Crash tests with real processes: SIGKILL a child appending with fsync 'always'.

Every trial reuses the same directory, so each one also recovers what the previous
kill left behind. After each kill: every acknowledged record is present and intact,
everything in the log verifies, and appends continue right after the last record.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from lokit.commitlog import CorruptRecordError, Log, LogConfig
from lokit.commitlog.record import HEADER_SIZE

from .crash_child import CONFIG_KW, value_for

CHILD = Path(__file__).with_name("crash_child.py")
TRIALS_PER_MODE = 8  # x 3 modes = 24 SIGKILLs


def _one_trial(directory: Path, mode: str, rng: random.Random) -> list[int]:
    """Start the child, SIGKILL it at a random moment; returns the acknowledged offsets."""
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), str(directory), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    lines: list[bytes] = []
    ready = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line == b"ready\n":
                ready.set()
            lines.append(line)
        ready.set()

    t = threading.Thread(target=pump, daemon=True)
    t.start()
    try:
        assert ready.wait(30), "the child never opened the log"
        threading.Event().wait(rng.uniform(0.0, 0.3))
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
        t.join(10)
        stderr = proc.stderr.read().decode(errors="replace")
        proc.stderr.close()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL, f"child exited on its own:\n{stderr}"
    # a line cut by the kill has no newline: it was not acknowledged in full
    return [int(x) for x in lines if x.endswith(b"\n") and x.strip().isdigit()]


def _verify(directory: Path, acked: list[int]) -> int:
    log = Log.open(directory, LogConfig(**CONFIG_KW))  # type: ignore[arg-type]
    try:
        nxt = log.next_offset
        assert all(o < nxt for o in acked), f"acknowledged offsets lost: max {max(acked)} >= {nxt}"
        for off in acked:
            assert log.read(off) == value_for(off), f"acknowledged record {off} damaged"
        assert log.lowest_offset == 0
        off = 0
        while off < nxt:  # every record in the log, acknowledged or not, verifies
            batch = log.read_range(off, 500, 1 << 20)
            for o, v in batch:
                assert o == off and v == value_for(o)
                off += 1
        assert log.highest_offset == nxt - 1
        assert log.append(value_for(nxt)) == nxt  # appends continue the offsets
        return nxt + 1
    finally:
        log.close()


@pytest.mark.timeout(90)
@pytest.mark.parametrize("mode", ["sync", "async", "batch"])
def test_sigkill_during_fsync_always_appends(tmp_path: Path, mode: str) -> None:
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    directory = tmp_path / "log"
    total_acked = 0
    for trial in range(TRIALS_PER_MODE):
        acked = _one_trial(directory, mode, rng)
        total_acked += len(acked)
        try:
            _verify(directory, acked)
        except AssertionError as e:
            raise AssertionError(f"{mode} trial {trial} (seed {seed}): {e}") from e
    assert total_acked > 0


@pytest.mark.timeout(60)
def test_truncated_tail_and_flipped_byte_after_a_crash(tmp_path: Path) -> None:
    rng = random.Random()
    directory = tmp_path / "log"
    acked: list[int] = []
    stores: list[Path] = []
    while len(stores) < 3 or stores[-1].stat().st_size == 0:  # two sealed, newest not empty
        acked += _one_trial(directory, "batch", rng)
        stores = sorted(directory.glob("*.store"))

    newest = stores[-1]
    size = newest.stat().st_size
    with newest.open("r+b") as f:  # tear the last record (as a crash mid-write would)
        f.truncate(size - 5)

    sealed = stores[0]  # flip one payload byte of the first record of a sealed segment
    data = bytearray(sealed.read_bytes())
    data[HEADER_SIZE] ^= 0x01
    sealed.write_bytes(bytes(data))
    damaged = int(sealed.name.split(".")[0])

    with capture_logs() as logs:
        log = Log.open(directory, LogConfig(**CONFIG_KW))  # type: ignore[arg-type]
    try:
        with pytest.raises(CorruptRecordError) as e:
            log.read(damaged)
        assert e.value.path == str(sealed) and e.value.offset == damaged
        nxt = log.next_offset
        torn = [e for e in logs if e["event"] == "commitlog.torn_tail_dropped"]
        if torn:  # the torn record was not in the index yet (never acknowledged): cut
            (ev,) = torn
            assert 0 < ev["dropped_bytes"] <= size
            unreadable = {damaged}
            assert all(o < nxt or o == max(acked) for o in acked)  # only the torn one is gone
        else:  # the index listed it: its offset is kept, and reading it raises
            unreadable = {damaged, nxt - 1}
            with pytest.raises(CorruptRecordError):
                log.read(nxt - 1)
            assert all(o < nxt for o in acked)
        for off in range(nxt):  # everything else is intact
            if off not in unreadable:
                assert log.read(off) == value_for(off)
        assert log.append(value_for(nxt)) == nxt
    finally:
        log.close()

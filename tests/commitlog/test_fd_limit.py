"""Many topics, or many segments, under a small RLIMIT_NOFILE, in real child processes.

Each child lowers its own file limit to 256 and then works through more topics (or
segments) than that many descriptors could hold open at once; a second child reopens
the same directory under the same limit. Nothing may fail with EMFILE.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

LIMIT = 256

CHILD = textwrap.dedent(
    """
    import asyncio, json, os, resource, sys
    resource.setrlimit(resource.RLIMIT_NOFILE, (%(limit)d, %(limit)d))
    from lokit.commitlog import Log, LogConfig, Topics

    data, what, phase, fsync = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[5]
    n = int(sys.argv[4])

    def fds():
        return len(os.listdir("/proc/self/fd"))

    def value(i, k):
        return b"%%d:%%d:" %% (i, k) + b"v" * (i %% 50)

    async def topics_phase():
        topics = Topics(data, LogConfig(fsync=fsync))
        most = 0
        first = 0 if phase == "create" else 4
        for i in range(n):
            t = await topics.get("t%%d" %% i)
            got = await t.append_batch([value(i, k) for k in range(first, first + 3)])
            assert got == first, (i, got)
            most = max(most, fds())
        for i in range(n):  # read all of them, and append once more to each
            t = await topics.get("t%%d" %% i)
            want = [(k, value(i, k)) for k in range(first + 3)]
            assert await t.read_range(0) == want, i
            assert await t.append(value(i, first + 3)) == first + 3
            most = max(most, fds())
        default = await topics.get()
        await default.append(b"still fine")
        out = {"most_fds": most, "open_files": topics.open_files,
               "bound": topics.pool.max_open_files, "names": len(topics.names())}
        await topics.close()
        return out

    def log_phase():
        cfg = LogConfig(max_store_bytes=64, fsync=fsync)
        log = Log.open(data, cfg)
        first = log.next_offset
        most = 0
        for k in range(first, first + n):
            assert log.append(value(k %% 20, k)) == k
            most = max(most, fds())
        want = [(k, value(k %% 20, k)) for k in range(first + n)]
        assert log.read_range(0, 100000, 1 << 30) == want
        for k in range(0, first + n, 7):
            assert log.read(k) == value(k %% 20, k)
        out = {"most_fds": most, "open_files": log.open_files,
               "bound": log.pool.max_open_files, "segments": log.segment_count}
        log.close()
        return out

    out = asyncio.run(topics_phase()) if what == "topics" else log_phase()
    print(json.dumps(out))
    """
) % {"limit": LIMIT}


def run_child(data: Path, what: str, phase: str, n: int, fsync: str) -> dict[str, int]:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(data), what, phase, str(n), fsync],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Too many open files" not in proc.stderr
    result: dict[str, int] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize(("n", "fsync"), [(1000, "never"), (300, "always")])
def test_many_topics_under_a_small_fd_limit_and_a_restart(
    tmp_path: Path, n: int, fsync: str
) -> None:
    data = tmp_path / "data"
    first = run_child(data, "topics", "create", n, fsync)
    assert first["bound"] == LIMIT // 2
    assert first["most_fds"] < LIMIT and first["open_files"] <= first["bound"] + 1
    assert first["names"] == n + 1
    again = run_child(data, "topics", "reopen", n, fsync)  # reads back all, appends again
    assert again["most_fds"] < LIMIT and again["names"] == n + 1


def test_more_segments_than_the_fd_limit_in_one_log(tmp_path: Path) -> None:
    data = tmp_path / "log"
    first = run_child(data, "log", "create", 600, "never")
    assert first["segments"] > LIMIT and first["most_fds"] < LIMIT
    again = run_child(data, "log", "reopen", 300, "always")
    assert again["segments"] > first["segments"] and again["most_fds"] < LIMIT

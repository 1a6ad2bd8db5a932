"""File modes, and the bounded pool of open segment files."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from lokit.commitlog import Log, LogConfig, Topics
from lokit.commitlog.files import FDS_PER_SEGMENT, FilePool, default_max_open_files
from lokit.commitlog.topics import TOPICS_LOCK

from .conftest import value_for

TINY = {"max_store_bytes": 64, "fsync": "never"}  # 1-3 records per segment


def mode(p: Path) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


@pytest.fixture(params=[0o022, 0o000], ids=["umask022", "umask000"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def assert_private(root: Path, top: Path) -> None:
    """Every directory from `top` down is 0700 and every file 0600."""
    assert mode(top) == 0o700, top
    for dirpath, dirnames, filenames in os.walk(top):
        for d in dirnames:
            assert mode(Path(dirpath, d)) == 0o700, Path(dirpath, d)
        for f in filenames:
            assert mode(Path(dirpath, f)) == 0o600, Path(dirpath, f)
    assert root in top.parents or root == top


# -- file modes --------------------------------------------------------------------------------


@pytest.mark.parametrize("fsync", ["never", "always"])
def test_log_files_and_directories_are_owner_only(tmp_path: Path, umask: int, fsync: str) -> None:
    log_dir = tmp_path / "a" / "b" / "log"
    log = Log.open(log_dir, LogConfig(max_store_bytes=200, fsync=fsync))
    log.append(b"x" * 50)
    assert log.segment_count == 1
    assert_private(tmp_path, tmp_path / "a")
    for i in range(10):  # rolls to new segments
        log.append(value_for(i)[:60])
    assert log.segment_count > 2
    assert_private(tmp_path, tmp_path / "a")
    names = {p.name for p in log_dir.iterdir()}
    assert "LOCK" in names and sum(n.endswith(".store") for n in names) == log.segment_count
    log.close()


def test_a_restored_snapshot_is_owner_only(tmp_path: Path, umask: int) -> None:
    src = Log.open(tmp_path / "src", LogConfig(**TINY))  # type: ignore[arg-type]
    src.append_batch([value_for(i)[:40] for i in range(20)])
    with src.reader() as stream:
        restored = Log.restore(tmp_path / "copy" / "log", stream, LogConfig(**TINY))  # type: ignore[arg-type]
    assert restored.read_range(0, 100) == src.read_range(0, 100)
    assert_private(tmp_path, tmp_path / "copy")
    restored.close()
    src.close()


def test_topics_files_and_directories_are_owner_only(tmp_path: Path, umask: int) -> None:
    async def main() -> None:
        topics = Topics(tmp_path / "data", LogConfig(max_store_bytes=100, fsync="always"))
        for name in ("orders", "default"):
            t = await topics.get(name)
            for i in range(6):
                await t.append(value_for(i)[:40])
            assert t.log.segment_count > 1
        await topics.close()

    asyncio.run(main())
    assert_private(tmp_path, tmp_path / "data")
    assert (tmp_path / "data" / TOPICS_LOCK).exists()


def test_existing_directories_keep_their_mode(tmp_path: Path, umask: int) -> None:
    tmp_path.joinpath("shared").mkdir(mode=0o755)
    os.chmod(tmp_path / "shared", 0o755)
    Log.open(tmp_path / "shared" / "log", LogConfig(fsync="never")).close()
    assert mode(tmp_path / "shared") == 0o755
    assert mode(tmp_path / "shared" / "log") == 0o700


# -- the pool ----------------------------------------------------------------------------------


def test_default_bound_is_half_the_soft_limit() -> None:
    import resource

    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    assert default_max_open_files() == max(2 * FDS_PER_SEGMENT, soft // 2)
    assert FilePool().max_open_files == default_max_open_files()
    assert FilePool(9).max_open_files == 9
    with pytest.raises(ValueError, match="at least"):
        FilePool(3)
    with pytest.raises(ValueError, match="max_open_files"):
        LogConfig(max_open_files=2)
    assert LogConfig.from_mapping({"max_open_files": "12"}).max_open_files == 12
    assert LogConfig.from_mapping({"max_open_files": "auto"}).max_open_files is None


def test_one_log_with_more_segments_than_the_pool_holds(tmp_path: Path) -> None:
    cfg = LogConfig(max_open_files=2 * FDS_PER_SEGMENT, **TINY)  # type: ignore[arg-type]
    log = Log.open(tmp_path / "log", cfg)
    values = [value_for(i)[:30] for i in range(120)]
    for v in values[:60]:
        log.append(v)
    log.append_batch(values[60:])  # spread over many new segments in one write
    assert log.segment_count > 40
    assert log.pool.open_segments <= 2
    assert log.open_files <= 2 * FDS_PER_SEGMENT + 1  # + its LOCK
    assert [v for _, v in log.read_range(0, 1000, 1 << 20)] == values
    for i in (5, 119, 0, 77):  # random reads reopen sealed segments
        assert log.read(i) == values[i]
    assert log.pool.open_segments <= 2 and log.pool.evictions > 40
    with log.reader() as snap:
        assert len(snap.read()) > sum(map(len, values))
    log.truncate_suffix(100)
    assert log.append(b"after") == 101
    log.truncate_prefix(50)
    log.close()
    log = Log.open(tmp_path / "log", cfg)
    assert log.read(101) == b"after" and log.read(99) == values[99]
    assert log.lowest_offset is not None and log.lowest_offset <= 50
    log.close()


async def test_idle_topics_close_their_files_and_reopen_on_use(tmp_path: Path) -> None:
    topics = Topics(tmp_path, LogConfig(fsync="always"), max_open_files=3 * FDS_PER_SEGMENT)
    logs = [await topics.get(f"t{i}") for i in range(12)]
    for i, t in enumerate(logs):
        assert await t.append_batch([b"%d-a" % i, b"%d-b" % i]) == 0
        assert topics.pool.open_segments <= 3
    assert topics.open_files <= 3 * FDS_PER_SEGMENT + 1
    assert sum(t.open_files > 0 for t in logs) <= 3
    assert not logs[0].log._segments[-1].is_open  # an idle topic's active segment
    for i, t in enumerate(logs):  # appends and reads reopen it, at the right position
        assert await t.append(b"%d-c" % i) == 2
        assert await t.read_range(0) == [(0, b"%d-a" % i), (1, b"%d-b" % i), (2, b"%d-c" % i)]
    await topics.close()
    assert topics.open_files == 0
    again = Topics(tmp_path, LogConfig(fsync="never"), max_open_files=2 * FDS_PER_SEGMENT)
    for i in range(12):
        assert await (await again.get(f"t{i}")).read(2) == b"%d-c" % i
    await again.close()


def test_a_written_segment_is_fsynced_before_the_pool_closes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real = os.fdatasync

    def fdatasync(fd: int) -> None:
        synced.append(os.fstat(fd).st_ino)
        real(fd)

    monkeypatch.setattr(os, "fdatasync", fdatasync)
    pool = FilePool(2 * FDS_PER_SEGMENT)
    cfg = LogConfig(fsync="interval:3600000")  # no round would come in time
    a = Log.open(tmp_path / "a", cfg, pool=pool)
    a.append(b"unsynced")
    seg = a._segments[-1]
    ino = os.fstat(seg.store.fd).st_ino
    assert seg in a._dirty and ino not in synced
    b = Log.open(tmp_path / "b", cfg, pool=pool)
    c = Log.open(tmp_path / "c", cfg, pool=pool)  # closes a's segment
    assert not seg.is_open and ino in synced and seg not in a._dirty
    assert a.read(0) == b"unsynced" and a.append(b"more") == 1
    for log in (a, b, c):
        log.close()


def test_under_fsync_never_a_closed_segment_is_synced_by_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = FilePool(2 * FDS_PER_SEGMENT)
    cfg = LogConfig(fsync="never")
    a = Log.open(tmp_path / "a", cfg, pool=pool)
    a.append(b"x")
    seg = a._segments[-1]
    ino = os.stat(seg.store.path).st_ino
    others = [Log.open(tmp_path / n, cfg, pool=pool) for n in "bc"]
    assert not seg.is_open and seg in a._dirty  # closed without an fsync: never means never
    synced: list[int] = []
    real = os.fdatasync

    def fdatasync(fd: int) -> None:
        synced.append(os.fstat(fd).st_ino)
        real(fd)

    monkeypatch.setattr(os, "fdatasync", fdatasync)
    a.sync()
    assert ino in synced and not seg.is_open
    for log in (a, *others):
        log.close()


def test_a_segment_changed_while_closed_is_refused_with_a_log_error(tmp_path: Path) -> None:
    from lokit.commitlog import LogError

    pool = FilePool(2 * FDS_PER_SEGMENT)
    cfg = LogConfig(fsync="never")
    a = Log.open(tmp_path / "a", cfg, pool=pool)
    a.append(b"x")
    others = [Log.open(tmp_path / n, cfg, pool=pool) for n in "bc"]
    with open(a._segments[-1].store.path, "ab") as f:
        f.write(b"junk")
    with pytest.raises(LogError, match="changed while closed"):
        a.read(0)
    with pytest.raises(LogError, match="changed while closed"):
        a.append(b"y")
    for log in (a, *others):
        log.close()


# -- a group -----------------------------------------------------------------------------------


def test_with_a_group_files_are_0640_and_directories_0750_of_that_group(
    tmp_path: Path, umask: int
) -> None:
    import grp

    gid = os.getgid()
    if os.geteuid() == 0:  # root may give its files any group: prove it is not its own
        gid = next((g.gr_gid for g in grp.getgrall() if g.gr_gid != gid), gid)
    name = grp.getgrgid(gid).gr_name
    for group in (gid, name):
        root = tmp_path / str(group)
        cfg = LogConfig(max_store_bytes=100, fsync="never", group=group)
        log = Log.open(root / "a" / "log", cfg)
        for i in range(8):  # rolls
            log.append(value_for(i)[:40])
        assert log.segment_count > 1
        log.close()
        for p in [root, root / "a", root / "a" / "log"]:
            assert mode(p) == 0o750 and os.stat(p).st_gid == gid, p
        for p in (root / "a" / "log").iterdir():
            want = 0o600 if p.name == "LOCK" else 0o640
            assert mode(p) == want and (p.name == "LOCK" or os.stat(p).st_gid == gid), p
    assert LogConfig.from_mapping({"group": str(gid)}).perms.gid == gid
    with pytest.raises(ValueError, match="does not exist"):
        LogConfig(group="no-such-group-lokit")


async def test_topics_with_a_group(tmp_path: Path) -> None:
    topics = Topics(tmp_path / "data", LogConfig(fsync="never", group=os.getgid()))
    await (await topics.get("orders")).append(b"x")
    await topics.close()
    assert mode(tmp_path / "data") == 0o750
    assert mode(tmp_path / "data" / "orders") == 0o750
    assert {mode(p) for p in (tmp_path / "data" / "orders").glob("*.store")} == {0o640}
    assert mode(tmp_path / "data" / TOPICS_LOCK) == 0o600

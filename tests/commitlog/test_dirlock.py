"""DirLock: one exclusive lock per directory, with the caller's messages."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lokit.commitlog import DirLock, DirLockError, Log, LogConfig, LogError

SERVICE: dict[str, Any] = {
    "in_use": "data directory {dir} is in use by another log server",
    "unusable": "cannot use data directory {dir}: {strerror}",
}


def test_a_second_lock_on_the_directory_is_refused_until_the_first_is_released(
    tmp_path: Path,
) -> None:
    first = DirLock(tmp_path, "LOCK")
    first.acquire()
    second = DirLock(tmp_path, "LOCK")
    with pytest.raises(DirLockError) as info:
        second.acquire()
    assert info.value.in_use and info.value.directory == str(tmp_path)
    assert isinstance(info.value, LogError)
    first.release()
    first.release()  # idempotent
    second.acquire()
    assert second.held and not first.held
    second.release()


def test_the_lock_file_is_created_0600_and_left_in_place(tmp_path: Path) -> None:
    with DirLock(tmp_path, ".x.lock") as lock:
        assert lock.held
        assert stat.S_IMODE(os.stat(tmp_path / ".x.lock").st_mode) == 0o600
    assert not lock.held
    assert (tmp_path / ".x.lock").exists()


def test_the_callers_templates_give_the_log_services_exact_messages(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with DirLock(data, ".lokit-log.lock", create=True, **SERVICE):
        with pytest.raises(DirLockError) as info:
            DirLock(data, ".lokit-log.lock", **SERVICE).acquire()
    assert str(info.value) == f"data directory {data} is in use by another log server"

    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(DirLockError) as info:
        DirLock(blocker / "data", ".lokit-log.lock", create=True, **SERVICE).acquire()
    assert str(info.value) == f"cannot use data directory {blocker / 'data'}: Not a directory"
    assert not info.value.in_use


def test_without_create_a_missing_directory_is_unusable(tmp_path: Path) -> None:
    with pytest.raises(DirLockError, match=r"^cannot lock the directory .*: No such file"):
        DirLock(tmp_path / "missing", "LOCK").acquire()


def test_a_bad_template_fails_when_the_lock_is_made(tmp_path: Path) -> None:
    with pytest.raises(KeyError):
        DirLock(tmp_path, "LOCK", in_use="{directory} is busy")


def test_the_lock_holds_across_processes_and_ends_with_its_holder(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from lokit.commitlog import DirLock; "
        "DirLock(Path(sys.argv[1]), 'LOCK').acquire(); print('locked', flush=True); "
        "sys.stdin.read()"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == "locked\n"
        with pytest.raises(DirLockError, match="in use"):
            DirLock(tmp_path, "LOCK").acquire()
    finally:
        child.kill()
        child.wait()
    with DirLock(tmp_path, "LOCK"):
        pass


def test_the_logs_own_messages_are_unchanged(tmp_path: Path) -> None:
    log_dir = tmp_path / "log"
    with Log.open(log_dir, LogConfig(fsync="never")):
        with pytest.raises(DirLockError) as info:
            Log.open(log_dir, LogConfig(fsync="never"))
    assert str(info.value) == f"the log at {log_dir} is already open (in this or another process)"
    assert stat.S_IMODE(os.stat(log_dir / "LOCK").st_mode) == 0o600

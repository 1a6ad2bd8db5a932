"""`lokit serve --limit ...`: mistakes are one sentence and a non-zero exit, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.procs import run_cli


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--limit", "fast"], "'fast' is not a rate: write it as N/UNIT"),
        (["--limit", "Sum=0/second"], "'0/second' allows no call at all"),
        (["--limit", "=5/second"], "names no method before '='"),
        (["--limit", "1/second", "--limit", "2/second"], "two default rates"),
        (["--limit", "1/second", "--limit-storage", "mysql://db"], "is not a rate limit storage"),
        (
            ["--limit", "1/second", "--limit-fail", "maybe"],
            "'maybe' is not one of 'open', 'closed'",
        ),
        (["--limit-storage", "redis://127.0.0.1:6379"], "need a --limit RATE"),
    ],
)
def test_bad_flags_are_one_sentence(tmp_path: Path, args: list[str], says: str) -> None:
    r = run_cli(["serve", "addsvc", *args], tmp_path)
    assert r.returncode in (1, 2)
    assert says in r.stderr
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_an_unknown_method_is_named(tmp_path: Path) -> None:
    sock = f"unix:{tmp_path}/a.grpc.sock"
    r = run_cli(["serve", "addsvc", "--grpc", sock, "--limit", "multiply=1/second"], tmp_path)
    assert r.returncode == 1
    assert (
        "--limit names multiply, which addsvc does not have (its methods: Concat, Mult, Sum)"
        in r.stderr
    )
    assert "Traceback" not in r.stderr

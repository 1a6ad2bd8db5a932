"""`lokit log produce | consume | info` and `lokit serve log` as real processes."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.logsvc.conftest import run_cli

ADDR = ("--addr", "unix:g.sock")


@pytest.fixture
def served(tmp_path: Path, spawn: Any) -> Path:
    spawn("--data", "data", "--grpc", "unix:g.sock", "--http", "unix:h.sock")
    return tmp_path


def ok(cwd: Path, *args: str | bytes, stdin: bytes | None = None) -> bytes:
    r = run_cli(cwd, *args, stdin=stdin)
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout


def one_sentence_error(r: subprocess.CompletedProcess[bytes]) -> str:
    assert r.returncode == 1
    err = r.stderr.decode()
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


def table_rows(text: str) -> list[list[str]]:
    """The cells of every row of the rich tables in `text`."""
    return [
        [cell.strip() for cell in line.strip().strip("│").split("│")]
        for line in text.splitlines()
        if line.strip().startswith("│")
    ]


def test_produce_and_consume(served: Path) -> None:
    assert ok(served, "log", "produce", *ADDR, "a", "b") == b"0\n1\n"
    out = ok(served, "log", "produce", *ADDR, "--topic", "lines", stdin=b"x\ny\n\nz")
    assert out == b"produced 4 records to lines (offsets 0-3)\n"
    assert ok(served, "log", "consume", *ADDR, "-t", "lines") == b"x\ny\n\nz\n"
    assert ok(served, "log", "consume", *ADDR, "-t", "lines", "--from", "1") == b"y\n\nz\n"
    assert ok(served, "log", "consume", *ADDR) == b"a\nb\n"


def test_values_that_are_not_utf8_go_in_as_given(served: Path) -> None:
    """argv bytes that are not UTF-8 (surrogate-escaped by Python) are produced as is."""
    assert ok(served, "log", "produce", *ADDR, "-t", "raw", b"\xff\xfeok") == b"0\n"
    assert ok(served, "log", "consume", *ADDR, "-t", "raw") == b"\xff\xfeok\n"


def test_consumer_group_resumes(served: Path) -> None:
    ok(served, "log", "produce", *ADDR, "one", "two")
    assert ok(served, "log", "consume", *ADDR, "--group", "g") == b"one\ntwo\n"
    assert ok(served, "log", "consume", *ADDR, "--group", "g") == b""
    ok(served, "log", "produce", *ADDR, "three")
    assert ok(served, "log", "consume", *ADDR, "--group", "g") == b"three\n"
    info = ok(served, "log", "info", *ADDR).decode()
    assert "default" in info and "0-2" in info and "g" in info
    assert ["g", "default", "3", "0"] in table_rows(info)  # consumer, topic, next offset, lag


def test_client_errors_are_one_sentence(served: Path) -> None:
    err = one_sentence_error(run_cli(served, "log", "consume", "--addr", "unix:nothing.sock"))
    assert "no log server at unix:nothing.sock" in err
    err = one_sentence_error(run_cli(served, "log", "info", "--addr", "127.0.0.1:1"))
    assert "cannot reach the log server at 127.0.0.1:1" in err
    err = one_sentence_error(run_cli(served, "log", "consume", *ADDR, "--from", "-1"))
    assert "--from must be an offset" in err
    err = one_sentence_error(run_cli(served, "log", "consume", *ADDR, "--from", "²"))
    assert "--from must be an offset" in err
    err = one_sentence_error(run_cli(served, "log", "produce", *ADDR, "-t", "a/b", "v"))
    assert "invalid topic name 'a/b'" in err


def test_the_client_address_variable_serves_and_addresses(tmp_path: Path, spawn: Any) -> None:
    """An exported LOKIT_LOG_ADDR starts the server (not a server setting) and aims the client."""
    env = {"LOKIT_LOG_ADDR": "unix:g.sock"}
    spawn("--data", "data", "--grpc", "unix:g.sock", "--http", "unix:h.sock", env=env)
    r = run_cli(tmp_path, "log", "produce", "v", env=env)
    assert r.returncode == 0 and r.stdout == b"0\n", r.stderr.decode()


def test_serve_errors_are_one_sentence(served: Path) -> None:
    err = one_sentence_error(run_cli(served, "serve", "log", "--fsync", "sometimes"))
    assert "invalid fsync policy 'sometimes'" in err
    err = one_sentence_error(run_cli(served, "serve", "log", "--config", "missing.toml"))
    assert "cannot read config file missing.toml" in err
    err = one_sentence_error(
        run_cli(served, "serve", "log", "--data", "data", "--grpc", "unix:other.sock")
    )
    assert "is in use by another log server" in err


def test_config_file_and_flags(tmp_path: Path, spawn: Any) -> None:
    (tmp_path / "log.toml").write_text(
        'grpc = "unix:from-file.sock"\nhttp = ["unix:h.sock"]\nfsync = "interval:50"\n'
        'data = "d"\nsegment-max-bytes = "1MiB"\n'
    )
    server = spawn("--config", "log.toml", "--grpc", "unix:g.sock")
    assert server.addrs == {"grpc": "unix:g.sock", "http": "unix:h.sock"}
    assert ok(tmp_path, "log", "produce", *ADDR, "v") == b"0\n"
    assert (tmp_path / "d" / "default").is_dir()


def test_chapter1_curl_commands_verbatim(tmp_path: Path, spawn: Any) -> None:
    server = spawn("--data", "data", "--http", "127.0.0.1:0", listeners=1)
    host = "localhost:" + server.addrs["http"].rsplit(":", 1)[1]

    def curl(*args: str) -> str:
        r = subprocess.run(["curl", "-s", *args], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        return r.stdout

    assert curl("-X", "POST", host, "-d", '{"record":{"value":"TGV0J3MgR28gIzEK"}}') == (
        '{"offset":0}\n'
    )
    assert curl("-X", "GET", host, "-d", '{"offset":0}') == (
        '{"record":{"value":"TGV0J3MgR28gIzEK","offset":0}}\n'
    )
    status = curl("-o", "/dev/null", "-w", "%{http_code}", "-X", "GET", host, "-d", '{"offset":1}')
    assert status == "404"


def test_lokit_call_reaches_the_log_by_its_contract(served: Path) -> None:
    """`lokit call` knows the log through its plugin's contract: any method, over gRPC."""
    ok(served, "log", "produce", *ADDR, "-t", "t", "a", "b")
    assert orjson.loads(
        ok(served, "call", "log", "fetch-position", "c", "t", "--grpc", ADDR[1])
    ) == {
        "offset": 0,
        "found": False,
    }
    info = orjson.loads(ok(served, "call", "log", "list_topics", "--grpc", ADDR[1]))
    assert [t["name"] for t in info["topics"]] == ["t"]
    err = one_sentence_error(run_cli(served, "call", "log", "ListTopics", "--http", "unix:h.sock"))
    assert "lokit clients call the log over gRPC" in err


def test_an_oversized_stdin_line_skips_only_itself(tmp_path: Path, spawn: Any) -> None:
    """Valid neighbours of a refused line are produced, in order; each refused line is one
    warning naming its number, and the command exits 1 saying how many were refused."""
    spawn(
        "--data",
        "data",
        "--grpc",
        "unix:g.sock",
        "--http",
        "unix:h.sock",
        "--max-record-bytes",
        "8",
    )
    lines = [b"a", b"x" * 20, b"b", b"c", b"y" * 9, b"d"]
    r = run_cli(tmp_path, "log", "produce", *ADDR, "-t", "t", stdin=b"\n".join(lines) + b"\n")
    assert r.returncode == 1
    assert r.stdout == b"produced 4 records to t (offsets 0-3)\n"
    err = r.stderr.decode().splitlines()
    assert err[:2] == [
        "warning: line 2 not produced: its 20 bytes are over the server's maximum record "
        "size of 8 bytes",
        "warning: line 5 not produced: its 9 bytes are over the server's maximum record "
        "size of 8 bytes",
    ]
    assert err[2:] == [
        "error: 2 of 6 lines were refused as over the server's maximum record size "
        "(lines 2, 5); the other 4 records were produced to t"
    ]
    assert ok(tmp_path, "log", "consume", *ADDR, "-t", "t") == b"a\nb\nc\nd\n"

    r = run_cli(tmp_path, "log", "produce", *ADDR, "-t", "u", stdin=b"z" * 30 + b"\n")
    assert r.returncode == 1 and r.stdout == b""
    assert r.stderr.decode().splitlines()[-1] == (
        "error: 1 of 1 line was refused as over the server's maximum record size (line 1); "
        "nothing was produced to u"
    )
    # VALUEs are one batch: all or none, said plainly
    err = one_sentence_error(run_cli(tmp_path, "log", "produce", *ADDR, "ok", "z" * 30))
    assert "over the limit of 8 bytes" in err and err.rstrip().endswith("nothing was written")


def test_stdin_errors_say_once_what_was_produced(served: Path) -> None:
    err = one_sentence_error(run_cli(served, "log", "produce", *ADDR, "-t", "a/b", stdin=b"v\n"))
    assert "invalid topic name 'a/b'" in err
    assert err.rstrip().endswith("; nothing was produced to a/b") and "(nothing was)" not in err


def test_the_http_socket_is_named_as_such(served: Path) -> None:
    """A log command aimed at the log's HTTP listener says so (not 'cannot reach')."""
    for args in (("info",), ("consume",), ("produce", "v")):
        err = one_sentence_error(run_cli(served, "log", *args, "--addr", "unix:h.sock"))
        assert "unix:h.sock is an HTTP listener; lokit log talks gRPC" in err, err


def test_the_client_commands_default_topic_is_the_logs() -> None:
    from lokit.commitlog import DEFAULT_TOPIC
    from lokit.logsvc import defaults

    assert defaults.DEFAULT_TOPIC == DEFAULT_TOPIC

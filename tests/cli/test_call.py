"""`lokit call`: typed requests from command-line words; any service by its contract; one
sentence for every mistake."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest

from lokit.cli.call import request_from_args
from lokit.derive import describe
from lokit.errors import InvalidArgument
from tests.cli.conftest import Serve
from tests.e2e.procs import run_cli


class Calc:
    async def add(self, a: int, b: int = 1) -> int:
        return a + b

    async def name(self, s: str, loud: bool = False) -> str:
        return s.upper() if loud else s


def test_request_from_args() -> None:
    ms = {m.name: m for m in describe(Calc())}
    assert request_from_args(ms["Add"], ["1", "2"]) == ms["Add"].request_type(1, 2)
    assert request_from_args(ms["Add"], ["b=5", "1"]) == ms["Add"].request_type(1, 5)
    assert request_from_args(ms["Name"], ["x", "loud=true"]) == ms["Name"].request_type("x", True)
    with pytest.raises(InvalidArgument, match="invalid arguments for Add"):
        request_from_args(ms["Add"], ["one"])
    with pytest.raises(InvalidArgument, match="takes 2 argument"):
        request_from_args(ms["Add"], ["1", "2", "3"])


# --- `lokit call` as a real process, against real servers ------------------------------

USER_MODULE = """
import lokit
from lokit.examples.greeter import Greeter

greeter = lokit.contract("greeter", Greeter)


def greeter_contract():
    return greeter


definition = lokit.define(greeter, Greeter())
answer = 42


def not_a_contract():
    return 42
"""


def error_line(r: subprocess.CompletedProcess[str]) -> str:
    """The one line of a failed command: `error: <sentence>`, exit 1, no traceback."""
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.stderr
    return r.stderr.removeprefix("error: ").rstrip("\n")


def results(r: subprocess.CompletedProcess[str]) -> list[Any]:
    assert r.returncode == 0, r.stderr
    return [orjson.loads(line) for line in r.stdout.splitlines()]


@pytest.fixture
def greeter(serve: Serve, tmp_path: Path) -> tuple[str, str]:
    """The README's greeter served by its own script; its (gRPC, HTTP) addresses."""
    serve("--grpc", "unix:g.sock", "--http", "unix:h.sock", module="lokit.examples.greeter")
    (tmp_path / "mine.py").write_text(USER_MODULE)
    (tmp_path / "broken.py").write_text("raise RuntimeError('half-written module')\n")
    return "unix:g.sock", "unix:h.sock"


def test_call_any_service_by_module_and_object(greeter: tuple[str, str], tmp_path: Path) -> None:
    """MODULE:OBJECT names a class, a Contract, a ServiceDef or a function returning a Contract;
    the current directory is on the path (mine.py lives there)."""
    g, h = greeter

    def call(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(["call", *args], tmp_path)

    hello = [{"v": "hello, ada"}]
    assert results(call("lokit.examples.greeter:Greeter", "greet", "ada", "--grpc", g)) == hello
    assert results(call("lokit.examples.greeter:Greeter", "greet", "ada", "--http", h)) == hello
    assert results(call("mine:greeter", "greet", "ada", "excited=true", "--grpc", g)) == [
        {"v": "hello, ada!"}
    ]
    assert results(call("mine:greeter_contract", "countdown", "3", "--http", h)) == [
        {"v": 3},
        {"v": 2},
        {"v": 1},
    ]
    assert results(call("mine:definition", "countdown", "2", "--grpc", g)) == [{"v": 2}, {"v": 1}]
    assert error_line(call("mine:greeter", "greet", "", "--grpc", g)) == "name is required"

    assert error_line(call("nosuch:Greeter", "greet", "x", "--grpc", g)) == (
        "cannot import 'nosuch': no module named 'nosuch' in the current directory "
        "or the installed packages"
    )
    assert error_line(call("broken:X", "greet", "x", "--grpc", g)) == (
        "cannot import 'broken': RuntimeError: half-written module"
    )
    assert error_line(call("mine:Nope", "greet", "x", "--grpc", g)) == (
        "module 'mine' has no 'Nope'"
    )
    assert "is int, not a lokit.Contract" in error_line(call("mine:answer", "greet", "--grpc", g))
    assert error_line(call("mine:not_a_contract", "greet", "--grpc", g)) == (
        "mine:not_a_contract() returned int, not a lokit.Contract"
    )
    assert error_line(call("mine", "greet", "x", "--grpc", g)).startswith(
        "no service 'mine' is registered (there are addsvc, log, stringsvc"
    )


def test_a_wrong_protocol_or_server_is_one_sentence(serve: Serve, tmp_path: Path) -> None:
    serve("serve", "addsvc", "--grpc", "unix:a.grpc.sock", "--http", "unix:a.http.sock")
    g, h = "unix:a.grpc.sock", "unix:a.http.sock"
    r = run_cli(["call", "addsvc", "sum", "1", "2", "--http", g], tmp_path)
    assert error_line(r) == f"{g} is a gRPC listener, not HTTP: call it with --grpc {g}"
    r = run_cli(["call", "addsvc", "sum", "1", "2", "--grpc", h], tmp_path)
    assert error_line(r) == f"{h} is an HTTP listener, not gRPC: call it with --http {h}"
    r = run_cli(["call", "lokit.examples.greeter:Greeter", "greet", "x", "--grpc", g], tmp_path)
    assert error_line(r) == (
        f"{g} does not serve greeter.Greet (Method not found!); is greeter listening there?"
    )
    r = run_cli(["call", "lokit.examples.greeter:Greeter", "greet", "x", "--http", h], tmp_path)
    assert error_line(r) == (
        f"{h} does not serve greeter.Greet (no route for /greet); is greeter listening there?"
    )


def test_unknown_flags_are_refused_and_negative_numbers_are_arguments(
    serve: Serve, tmp_path: Path
) -> None:
    serve("serve", "addsvc", "--grpc", "unix:a.grpc.sock", "--http", "unix:a.http.sock")
    g = "unix:a.grpc.sock"

    def call(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(["call", *args], tmp_path)

    assert results(call("addsvc", "sum", "-1", "2", "--grpc", g)) == [{"v": 1}]
    assert results(call("addsvc", "sum", "-1", "-2", "--grpc", g)) == [{"v": -3}]
    assert results(call("addsvc", "mult", "-1.5", "2", "--grpc", g)) == [{"v": -3.0}]
    assert results(call("addsvc", "sum", "--grpc", g, "--", "-4", "1")) == [{"v": -3}]
    assert error_line(call("addsvc", "sum", "1", "2", "--grpc", g, "--bogus")) == (
        "no such option: --bogus; see `lokit call --help`"
    )
    assert error_line(call("addsvc", "sum", "1", "--bogus=2", "--grpc", g)) == (
        "no such option: --bogus; see `lokit call --help`"
    )
    assert error_line(call("addsvc", "sum", "1", "2", "--grcp", g)) == (
        "no such option: --grcp (did you mean --grpc?); see `lokit call --help`"
    )
    assert error_line(call("addsvc")) == "missing argument 'METHOD'; see `lokit call --help`"
    assert error_line(call("addsvc", "sum", "1", "2")) == (
        "unix:run/addsvc.http.sock is unavailable: cannot connect (No such file or directory)"
    )
    # every command: a usage mistake is one sentence, exit 1
    r = run_cli(["log", "produce", "--bogus"], tmp_path)
    assert error_line(r) == "no such option: --bogus; see `lokit log produce --help`"
    assert error_line(run_cli(["nocommand"], tmp_path)) == (
        "no such command 'nocommand'; see `lokit --help`"
    )
    r = run_cli(["serve", "addsvc", "--grace", "soon"], tmp_path)
    assert "'soon' is not a valid float" in error_line(r)

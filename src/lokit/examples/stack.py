"""The local stack `lokit run` (`make run`) starts: the commit log, two stringsvc, addsvc.

Each entry is a service instance's name and the `lokit` arguments that serve it,
with its debug server on its own loopback port; dependencies come first. The two
stringsvc instances bind their sockets in `run/stringsvc.d/`, the one-box
registry addsvc discovers them in (`--stringsvc dir:run/stringsvc.d`): addsvc
balances Concat's uppercasing over both, and keeps answering when one dies.
"""

from __future__ import annotations

from dataclasses import dataclass

from lokit.transport.address import RUN_DIR, default_address

__all__ = ["HINTS", "STRINGSVC_DIR", "Instance", "stack"]

STRINGSVC_DIR = f"{RUN_DIR}/stringsvc.d"
"""The directory the stringsvc instances register in by binding their sockets there."""

STRINGSVC_INSTANCES = (("a", 9102), ("b", 9104))
"""Each stringsvc instance: its socket names' stem and its debug port."""

HINTS = (
    ".venv/bin/lokit call addsvc concat ab cd --grpc " + default_address("addsvc", "grpc"),
    f".venv/bin/lokit call stringsvc uppercase hi --grpc dir:{STRINGSVC_DIR}",
    "kill -9 <a stringsvc's pid>, then call addsvc concat again: the other instance answers",
    ".venv/bin/lokit log produce hello world; .venv/bin/lokit log consume",
)
"""What to try once the stack runs."""


@dataclass(frozen=True)
class Instance:
    """One process of the stack: `lokit ARGS...`.

    `replica`: one of several instances of a service; the stack keeps running
    when it exits (the others carry on), where any other exit stops the stack.
    """

    name: str
    args: list[str]
    replica: bool = False


def _serve(name: str, grpc: str, http: str, debug_port: int, *extra: str) -> list[str]:
    """`lokit serve NAME` on `grpc` and `http`, with its debug server on loopback."""
    return [
        "serve",
        name,
        "--grpc",
        grpc,
        "--http",
        http,
        "--debug",
        f"127.0.0.1:{debug_port}",
        *extra,
    ]


def _default(name: str, debug_port: int, *extra: str) -> list[str]:
    """`lokit serve NAME` on its default sockets."""
    return _serve(
        name, default_address(name, "grpc"), default_address(name, "http"), debug_port, *extra
    )


def stack(log_format: str) -> list[Instance]:
    """The stack, dependencies first."""
    common = ("--log-format", log_format)
    strings = [
        Instance(
            f"stringsvc/{stem}",
            _serve(
                "stringsvc",
                f"unix:{STRINGSVC_DIR}/{stem}.grpc.sock",
                f"unix:{STRINGSVC_DIR}/{stem}.http.sock",
                port,
                *common,
            ),
            replica=True,
        )
        for stem, port in STRINGSVC_INSTANCES
    ]
    return [
        Instance("log", _default("log", 9103, "--data", "data/log", *common)),
        *strings,
        Instance(
            "addsvc",
            _default("addsvc", 9101, "--stringsvc", f"dir:{STRINGSVC_DIR}", *common),
        ),
    ]

"""The local stack `lokit run` (`make run`) starts: the commit log, stringsvc, addsvc using it.

Each entry is a service's name and the `lokit` arguments that serve it on its
default sockets, with its debug server on loopback; dependencies come first.
"""

from __future__ import annotations

from lokit.transport.address import default_address

__all__ = ["HINTS", "stack"]

HINTS = (
    ".venv/bin/lokit call addsvc concat ab cd --grpc " + default_address("addsvc", "grpc"),
    ".venv/bin/lokit log produce hello world; .venv/bin/lokit log consume",
)
"""What to try once the stack runs."""


def _serve(name: str, debug_port: int, *extra: str) -> list[str]:
    """`lokit serve NAME` on its default sockets, with its debug server on loopback."""
    return [
        "serve",
        name,
        "--grpc",
        default_address(name, "grpc"),
        "--http",
        default_address(name, "http"),
        "--debug",
        f"127.0.0.1:{debug_port}",
        *extra,
    ]


def stack(log_format: str) -> list[tuple[str, list[str]]]:
    """The stack, dependencies first."""
    common = ("--log-format", log_format)
    return [
        ("log", _serve("log", 9103, "--data", "data/log", *common)),
        ("stringsvc", _serve("stringsvc", 9102, *common)),
        (
            "addsvc",
            _serve("addsvc", 9101, "--stringsvc", default_address("stringsvc", "grpc"), *common),
        ),
    ]

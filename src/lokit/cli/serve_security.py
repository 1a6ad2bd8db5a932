"""`lokit serve` flags for TLS and Unix-socket permissions.

    --tls-cert FILE --tls-key FILE    TLS on every TCP listener (gRPC and HTTP)
    --tls-client-ca FILE              and require client certificates from this CA (mTLS)
    --tls-unix                        TLS on Unix-socket listeners too
    --debug-tls                       TLS on the debug listener too (no client certificate asked)
    --socket-mode OCTAL               mode of the socket files (default 0660)
    --socket-group GROUP              their group (a name or a gid)

The certificate files are read and checked when the service starts: a missing,
unreadable, mismatched or expired file is one sentence and exit 1. `CONFIG_KEYS`
lets a service that reads a config file (`lokit serve log --config`) take the
same settings from it, under the flags' names.
"""

from __future__ import annotations

import grp
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from lokit.runtime import Extension, Listeners

__all__ = ["CONFIG_KEYS", "OPTIONS", "configure", "parse_group", "parse_mode"]

DEFAULT_MODE = "0660"


def parse_mode(value: Any, key: str = "--socket-mode") -> int:
    """`0660`, `660` or `0o660` -> 0o660.

    Only text: a number from a config file is ambiguous (YAML reads 0660 as 432).
    """
    if not isinstance(value, str):
        raise ValueError(f'{key} must be an octal mode in quotes, such as "0660", not {value!r}')
    text = value.strip().lower()
    digits = text[2:] if text.startswith("0o") else text
    if not digits or any(c not in "01234567" for c in digits) or int(digits, 8) > 0o777:
        raise ValueError(f"{key} must be an octal file mode such as 0660, not {value!r}")
    return int(digits, 8)


def parse_group(value: Any, key: str = "--socket-group") -> int:
    """A group name or number -> its gid (the group must exist)."""
    text = str(value).strip()
    if text.isdigit():
        return int(text)
    try:
        return grp.getgrnam(text).gr_gid
    except KeyError:
        raise ValueError(f"{key}: there is no group {text!r} on this machine") from None


def _flag_or_bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"{key} must be true or false, not {value!r}")


def _file(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{key} must be a file name, not {value!r}")
    return value.strip()


# Config-file keys (as `lokit serve log --config` spells them, `-` or `_`) and how a
# value from a file becomes the flag's value; ValueError carries the sentence.
CONFIG_KEYS: dict[str, Callable[[Any], Any]] = {
    "tls_cert": lambda v: _file(v, "tls-cert"),
    "tls_key": lambda v: _file(v, "tls-key"),
    "tls_client_ca": lambda v: _file(v, "tls-client-ca"),
    "tls_unix": lambda v: _flag_or_bool(v, "tls-unix"),
    "debug_tls": lambda v: _flag_or_bool(v, "debug-tls"),
    "socket_mode": lambda v: parse_mode(v, "socket-mode"),
    "socket_group": lambda v: parse_group(v, "socket-group"),
}


class _Mode(click.ParamType[int]):
    name = "octal"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_mode(value)
        except ValueError as e:
            self.fail(str(e).removeprefix("--socket-mode "), param, ctx)


class _Group(click.ParamType[int]):
    name = "group"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_group(value)
        except ValueError as e:
            self.fail(str(e).removeprefix("--socket-group: "), param, ctx)


OPTIONS: list[Callable[[Any], Any]] = [
    click.option(
        "--tls-cert",
        metavar="FILE",
        help="Serve TLS on every TCP listener with this certificate (PEM); needs --tls-key.",
    ),
    click.option("--tls-key", metavar="FILE", help="The private key of --tls-cert (PEM)."),
    click.option(
        "--tls-client-ca",
        metavar="FILE",
        help="Require client certificates signed by this CA (mTLS).",
    ),
    click.option(
        "--tls-unix",
        is_flag=True,
        default=False,
        help="TLS on Unix-socket listeners too (default: plaintext; file permissions decide).",
    ),
    click.option(
        "--debug-tls",
        is_flag=True,
        default=False,
        help="TLS on the debug listener too (no client certificate required: probes work).",
    ),
    click.option(
        "--socket-mode",
        type=_Mode(),
        default=DEFAULT_MODE,
        show_default=True,
        metavar="OCTAL",
        help="Mode of the Unix socket files (who may connect).",
    ),
    click.option(
        "--socket-group",
        type=_Group(),
        default=None,
        metavar="GROUP",
        help="Group of the Unix socket files (a name or a gid).",
    ),
]


def configure(opts: dict[str, Any], listeners: Listeners, service: str) -> list[Extension]:
    """Take this group's flags out of `opts`; put TLS and socket settings on `listeners`.

    Bad combinations and bad certificate files are one sentence (a lokit error).
    """
    from lokit.errors import InvalidArgument
    from lokit.security.tls import ServerTLS

    cert, key = opts.pop("tls_cert", None), opts.pop("tls_key", None)
    client_ca = opts.pop("tls_client_ca", None)
    unix = bool(opts.pop("tls_unix", False))
    debug_tls = bool(opts.pop("debug_tls", False))
    mode = opts.pop("socket_mode", DEFAULT_MODE)
    listeners.socket_mode = mode if isinstance(mode, int) else parse_mode(mode)
    group = opts.pop("socket_group", None)
    listeners.socket_group = (
        group if group is None or isinstance(group, int) else parse_group(group)
    )
    if (cert is None) != (key is None):
        given, missing = ("--tls-cert", "--tls-key") if cert else ("--tls-key", "--tls-cert")
        raise InvalidArgument(f"{given} needs {missing} too (the certificate and its key)")
    if cert is None:
        for flag, on in (
            ("--tls-client-ca", client_ca),
            ("--tls-unix", unix),
            ("--debug-tls", debug_tls),
        ):
            if on:
                raise InvalidArgument(f"{flag} needs --tls-cert and --tls-key")
        return []
    listeners.tls = ServerTLS.load(cert, key, client_ca, unix=unix)
    listeners.debug_tls = debug_tls
    return []

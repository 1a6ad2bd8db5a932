"""The TLS flags of every client command (`lokit call`, `lokit log ...`): one decorator.

    @click.command()
    @tls_options
    def cmd(..., tls: ClientTLS | None) -> None: ...

`--tls-ca FILE` (the CA that signed the server's certificate), `--tls-cert FILE`
and `--tls-key FILE` (a client certificate, for servers that require one), and
`--tls-unix` (TLS on Unix sockets too, for servers started with `--tls-unix`);
or `LOKIT_TLS_CA`, `LOKIT_TLS_CERT`, `LOKIT_TLS_KEY`, `LOKIT_TLS_UNIX`. The
command gets one keyword, `tls`: the loaded `ClientTLS`, or None for plaintext.
A bad file is one sentence and exit 1. Nothing heavy is imported unless a flag
or variable is set. grpc core's own log lines are off in these commands
(`GRPC_VERBOSITY=NONE` unless set): a failure is the command's one sentence.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, TypeVar

import click

from lokit.cli.errors import fail

__all__ = ["tls_options"]

F = TypeVar("F", bound=Callable[..., Any])

_NAMES = ("tls_ca", "tls_cert", "tls_key", "tls_unix")


def tls_options(fn: F) -> F:
    """Add the client TLS flags to a click command; it receives `tls=ClientTLS | None`."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        # grpc core prints failed handshakes on stderr itself; a client command says
        # what failed in one sentence instead (set GRPC_VERBOSITY to see grpc's lines).
        os.environ.setdefault("GRPC_VERBOSITY", "NONE")
        ca, cert, key, unix = (kwargs.pop(name, None) for name in _NAMES)
        kwargs["tls"] = _load(ca, cert, key, bool(unix))
        return fn(*args, **kwargs)

    options = [
        click.option(
            "--tls-ca",
            metavar="FILE",
            envvar="LOKIT_TLS_CA",
            help="Verify the server against this CA (PEM) and speak TLS [env LOKIT_TLS_CA].",
        ),
        click.option(
            "--tls-cert",
            metavar="FILE",
            envvar="LOKIT_TLS_CERT",
            help="Client certificate for mTLS (PEM) [env LOKIT_TLS_CERT].",
        ),
        click.option(
            "--tls-key",
            metavar="FILE",
            envvar="LOKIT_TLS_KEY",
            help="The key of --tls-cert (PEM) [env LOKIT_TLS_KEY].",
        ),
        click.option(
            "--tls-unix",
            is_flag=True,
            default=False,
            envvar="LOKIT_TLS_UNIX",
            help="TLS on Unix sockets too (servers run with --tls-unix) [env LOKIT_TLS_UNIX].",
        ),
    ]
    decorated: Any = wrapper
    for option in reversed(options):
        decorated = option(decorated)
    return decorated  # type: ignore[no-any-return]


def _load(ca: str | None, cert: str | None, key: str | None, unix: bool) -> Any:
    if ca is None and cert is None and key is None:
        if unix:
            fail("--tls-unix needs --tls-ca, or --tls-cert and --tls-key")
        return None
    from lokit.security.errors import CertError
    from lokit.security.tls import ClientTLS

    try:
        return ClientTLS.load(ca, cert, key, unix=unix)
    except CertError as e:
        fail(str(e))


async def speaks_tls(addr: str, timeout: float = 1.0) -> bool:  # noqa: ASYNC109 (a probe's bound)
    """True when a TLS server answers at `addr` (asked after a plaintext call failed there).

    One short connection that completes a handshake without checking anything.
    """
    import asyncio
    import ssl

    from lokit.transport.address import AddressError, parse

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        a = parse(addr).dialable()
        if a.path is not None:
            opening = asyncio.open_unix_connection(a.path, ssl=context, server_hostname="localhost")
        else:
            opening = asyncio.open_connection(a.host, a.port, ssl=context)
        _, writer = await asyncio.wait_for(opening, timeout)
    except (OSError, TimeoutError, AddressError, ssl.SSLError):
        return False
    writer.close()
    return True


def plaintext_to_tls(addr: str) -> str:
    """The sentence for a plaintext call that reached a TLS listener."""
    return (
        f"{addr} is a TLS listener: call it with --tls-ca FILE (and --tls-cert and "
        "--tls-key when it requires client certificates), or set LOKIT_TLS_CA"
    )

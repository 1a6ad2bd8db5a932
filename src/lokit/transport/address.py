"""Addresses (`unix:PATH` or `HOST:PORT`) and listening sockets bound safely.

Both grpcio and asyncio silently unlink an existing Unix socket file before
binding, which would steal the address from a live server. `bind` checks first:
a socket file a live server answers on is refused with one clear sentence, a
stale one is replaced; a TCP port in use is refused too. SO_REUSEPORT is set
only when asked (`reuse_port`): for the instances of one `--instances` run,
whose supervisor holds the port (`reserve_shared_port`) so that no unrelated
server can join them.
A socket file gets its mode (`SOCKET_MODE`, 0660, unless told otherwise) and
group before anyone can connect: Linux checks write permission on the file at
connect(), so the file's mode and group decide which local users may call.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat
from collections.abc import Iterator
from dataclasses import dataclass

# Wildcard listening hosts and the loopback host a local client dials instead.
_WILDCARDS: dict[str | None, str] = {"0.0.0.0": "127.0.0.1", "::": "::1"}


SOCKET_MODE = 0o660
"""The mode of the socket files servers create: owner and group may connect."""

RUN_DIR = "run"
"""Where services put their sockets by default (relative to the working directory)."""


def default_address(service: str, kind: str) -> str:
    """Where `service` listens for `kind` (grpc, http) by default: `unix:run/<service>.<kind>.sock`.

    The one place this convention is written: servers, clients, the CLI and the
    local stack all ask here.
    """
    return f"unix:{RUN_DIR}/{service}.{kind}.sock"


def beside(addr: str, kind: str, of: str) -> str | None:
    """The `kind` socket beside an `of` one, by the convention: `unix:STEM.<kind>.sock`
    for `unix:STEM.<of>.sock` (grpc, http, frames); None for any other address."""
    text = addr.strip()
    suffix = f".{of}.sock"
    if not (text.startswith("unix:") and text.endswith(suffix)) or len(text) == 5 + len(suffix):
        return None
    return f"{text[: -len(suffix)]}.{kind}.sock"


class AddressError(Exception):
    """An address that cannot be parsed or bound; the message is one plain sentence."""


@dataclass(frozen=True)
class Address:
    """A parsed address: a Unix socket path, or a TCP host and port."""

    raw: str
    path: str | None = None
    host: str | None = None
    port: int | None = None

    @property
    def is_unix(self) -> bool:
        return self.path is not None

    def grpc_target(self) -> str:
        """The target string grpcio understands (absolute `unix://` path or host:port)."""
        if self.path is not None:
            return "unix://" + os.path.abspath(self.path)
        host = f"[{self.host}]" if self.host and ":" in self.host else self.host
        return f"{host}:{self.port}"

    def dialable(self) -> Address:
        """The address a client on this machine dials: a wildcard host becomes loopback.

        A server listening on `0.0.0.0` is reached at 127.0.0.1, one
        on `::` at ::1; anything else, Unix sockets included, is returned as is.
        """
        if self.path is not None or self.host not in _WILDCARDS:
            return self
        host = _WILDCARDS[self.host]
        raw = f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"
        return Address(raw=raw, host=host, port=self.port)

    def __str__(self) -> str:
        if self.path is not None:
            return f"unix:{self.path}"
        host = f"[{self.host}]" if self.host and ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse(raw: str) -> Address:
    """Parse `unix:PATH`, `unix://PATH`, `HOST:PORT` or `[::1]:PORT`.

    `:PORT` is refused: it used to mean every interface, silently; the address
    must say `0.0.0.0:PORT` (every interface) or `127.0.0.1:PORT` (this machine).
    """
    text = raw.strip()
    if text.startswith("unix:"):
        path = text[5:]
        if path.startswith("//"):
            path = path[2:]
        if not path:
            raise AddressError(f"address {raw!r} has no socket path after 'unix:'")
        return Address(raw=text, path=path)
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit():
        raise AddressError(f"address {raw!r} is neither unix:PATH nor HOST:PORT")
    port = int(port_text)
    if port > 65535:
        raise AddressError(f"address {raw!r} has a port above 65535")
    host = host.strip("[]")
    if not host:
        raise AddressError(
            f"address {raw!r} has no host; write 0.0.0.0:{port} to listen on every interface"
            f" or 127.0.0.1:{port} for this machine only"
        )
    return Address(raw=text, host=host, port=port)


def unix_socket_alive(path: str) -> bool:
    """True when a server accepts connections on the Unix socket file `path`."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(0.5)
    try:
        probe.connect(path)
    except OSError:
        return False
    else:
        return True
    finally:
        probe.close()


@contextlib.contextmanager
def socket_umask(mode: int) -> Iterator[None]:
    """A umask under which a new socket file gets `mode` (for libraries that create it)."""
    old = os.umask(0o777 & ~mode)
    try:
        yield
    finally:
        os.umask(old)


def set_socket_access(addr: Address, mode: int = SOCKET_MODE, group: int | None = None) -> None:
    """Give the socket file at `addr` its `mode` and, when given, its group (a gid)."""
    assert addr.path is not None
    try:
        if group is not None:
            os.chown(addr.path, -1, group)
        os.chmod(addr.path, mode)
    except OSError as e:
        raise AddressError(f"cannot set the mode or group of {addr}: {e.strerror or e}") from None


def bind(
    addr: Address,
    backlog: int = 1024,
    *,
    mode: int = SOCKET_MODE,
    group: int | None = None,
    reuse_port: bool = False,
) -> socket.socket:
    """A listening socket on `addr`, refusing live owners and replacing stale socket files.

    A Unix socket file gets `mode` and `group` before the socket listens. With
    `reuse_port` a TCP socket sets SO_REUSEPORT and shares its port with the
    other instances (and the reservation) of the same run; Unix sockets ignore it.
    """
    if addr.path is not None:
        path = addr.path
        parent = os.path.dirname(os.path.abspath(path))
        os.makedirs(parent, exist_ok=True)
        if os.path.lexists(path):
            mode = os.lstat(path).st_mode
            if not stat.S_ISSOCK(mode):
                raise AddressError(f"cannot listen on {addr}: {path} exists and is not a socket")
            if unix_socket_alive(path):
                raise AddressError(f"cannot listen on {addr}: another server is running there")
            os.unlink(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(path)
        except OSError as e:
            sock.close()
            raise AddressError(f"cannot listen on {addr}: {e.strerror}") from None
        try:
            set_socket_access(addr, mode, group)
        except AddressError:
            sock.close()
            os.unlink(path)
            raise
    else:
        sock = _bound_tcp(addr, reuse_addr=True, reuse_port=reuse_port)
    sock.listen(backlog)
    sock.setblocking(False)
    return sock


def reserve_shared_port(addr: Address) -> socket.socket:
    """Hold the TCP port of `addr` for the instances of one run (a bound, non-listening socket).

    It binds with SO_REUSEADDR only (so the last run's connections in TIME_WAIT
    do not hold the port) and turns that off at once, so a port anyone holds is
    refused with the usual sentence; then it turns SO_REUSEPORT on: the run's
    instances (`bind(..., reuse_port=True)`, same user) may then listen on it,
    while a server without SO_REUSEPORT, or a second run's reservation, is
    refused as long as this socket is open. It never listens, so the kernel
    gives it no connections. Port 0 is resolved here (`bound_address`).
    """
    sock = _bound_tcp(addr, reuse_addr=True, reuse_port=False)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 0)  # no second reservation
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    return sock


def _bound_tcp(addr: Address, *, reuse_addr: bool, reuse_port: bool) -> socket.socket:
    """A TCP socket bound to `addr`; a busy port or another failure is one sentence."""
    assert addr.host is not None and addr.port is not None
    family = socket.AF_INET6 if ":" in addr.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    if reuse_addr:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((addr.host, addr.port))
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise AddressError(f"cannot listen on {addr}: the port is already in use") from None
        raise AddressError(f"cannot listen on {addr}: {e.strerror}") from None
    return sock


def bound_address(addr: Address, sock: socket.socket) -> Address:
    """`addr` with the real port filled in (for `HOST:0`)."""
    if addr.path is not None:
        return addr
    port = sock.getsockname()[1]
    return Address(raw=f"{addr.host}:{port}", host=addr.host, port=port)


def remove_socket_file(addr: Address) -> None:
    """Remove a Unix socket file this process created (no error if already gone)."""
    if addr.path is not None:
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISSOCK(os.lstat(addr.path).st_mode):
                os.unlink(addr.path)

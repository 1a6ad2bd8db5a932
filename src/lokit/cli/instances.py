"""Where instance i of a service listens, and how a supervisor tells an instance its part.

A service run as several processes (`--instances N`) gives each its own
listeners, derived from the addresses on the command line:

- `dir:PATH` (the one-box registry `lokit.sd`'s `dir:` instancer reads) becomes
  `unix:PATH/<service>-<i>.grpc.sock` (`.http.sock`, `.debug.sock`): clients
  dial `dir:PATH` and balance over the instances that answer;
- `HOST:PORT` (gRPC, HTTP) stays as it is: the instances share the port with
  SO_REUSEPORT (the kernel spreads new connections over them), which the
  supervisor has reserved so no unrelated server can join;
- a debug `HOST:PORT` becomes `HOST:PORT+i` (each instance's /metrics is its
  own; port 0 stays 0), a debug `unix:DIR/NAME.debug.sock` `unix:DIR/NAME-<i>.debug.sock`;
- a gRPC or HTTP `unix:PATH` is refused for N > 1: a Unix socket has one owner
  (SO_REUSEPORT does not exist for AF_UNIX).

The supervisor passes each instance its `InstancePlan` in the environment
variable `LOKIT_INSTANCE` (JSON), and the instance, re-running the same command
line, listens where the plan says instead of where its flags say.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
from dataclasses import asdict, dataclass, field

from lokit.transport.address import AddressError, parse, unix_socket_alive

__all__ = [
    "DIR_PREFIX",
    "ENV",
    "InstancePlan",
    "first_free_index",
    "instance_addresses",
    "unix_paths",
]

ENV = "LOKIT_INSTANCE"
DIR_PREFIX = "dir:"
_MAX_SLOTS = 1024  # how far `first_free_index` looks


@dataclass
class InstancePlan:
    """What one instance of a supervised run listens on and runs on."""

    index: int
    grpc: list[str]
    http: list[str]
    debug: str | None
    cpus: list[int] = field(default_factory=list)  # empty: not pinned
    supervisor: int = 0  # the supervisor's pid (the instance stops when it is gone)

    def listeners(self) -> int:
        """How many "listening on" lines the instance prints once it serves."""
        return len(self.grpc) + len(self.http) + (1 if self.debug else 0)

    def to_env(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_env(cls, text: str) -> InstancePlan:
        data = json.loads(text)
        return cls(**data)


def _dir_socket(raw: str, service: str, index: int, kind: str) -> str:
    path = raw[len(DIR_PREFIX) :].strip()
    if not path:
        raise AddressError(f"address {raw!r} has no directory after 'dir:'")
    return f"unix:{os.path.join(path, f'{service}-{index}.{kind}.sock')}"


def _numbered_path(path: str, index: int) -> str:
    """`run/addsvc.debug.sock` -> `run/addsvc-1.debug.sock` (the index before the first dot)."""
    head, name = os.path.split(path)
    stem, dot, rest = name.partition(".")
    return os.path.join(head, f"{stem}-{index}{dot}{rest}")


def _listener(raw: str, service: str, index: int, count: int, kind: str) -> str:
    if raw.strip().startswith(DIR_PREFIX):
        return _dir_socket(raw.strip(), service, index, kind)
    addr = parse(raw)
    if addr.path is not None and count > 1:
        raise AddressError(
            f"{count} instances cannot share the Unix socket {addr}: give --{kind} dir:PATH "
            f"(a socket per instance in PATH, which clients dial as dir:PATH) or HOST:PORT "
            "(one port shared with SO_REUSEPORT)"
        )
    return raw


def _debug(raw: str, service: str, index: int, count: int) -> str:
    if raw.strip().startswith(DIR_PREFIX):
        return _dir_socket(raw.strip(), service, index, "debug")
    addr = parse(raw)
    if count == 1:
        return raw
    if addr.path is not None:
        return f"unix:{_numbered_path(addr.path, index)}"
    assert addr.port is not None
    if addr.port == 0:
        return raw
    port = addr.port + index
    if port > 65535:
        raise AddressError(f"debug address {addr} leaves no port for instance {index} (port+i)")
    return str(dataclasses.replace(addr, port=port))


def instance_addresses(
    service: str,
    index: int,
    count: int,
    grpc: list[str],
    http: list[str],
    debug: str | None,
) -> tuple[list[str], list[str], str | None]:
    """Instance `index`'s gRPC, HTTP and debug addresses (raises AddressError in one sentence)."""
    return (
        [_listener(a, service, index, count, "grpc") for a in grpc],
        [_listener(a, service, index, count, "http") for a in http],
        _debug(debug, service, index, count) if debug else None,
    )


def unix_paths(*addrs: str | None) -> list[str]:
    """The socket file paths among `addrs` (plain addresses only, no `dir:`)."""
    return [a.path for a in (parse(x) for x in addrs if x) if a.path is not None]


def first_free_index(
    service: str, grpc: list[str], http: list[str], debug: str | None
) -> tuple[int, tuple[list[str], list[str], str | None]]:
    """The lowest instance number whose sockets no live server holds, and its addresses.

    A process started alone with `dir:PATH` takes the first free slot, so several
    started by hand (or by systemd template units) register side by side and a
    slot whose process died is reused. A slot is claimed with a lock held for the
    process's life (`PATH/.<service>-<i>.lock`, flock), so processes started at
    the same moment never pick the same one; a slot whose socket a live server
    holds without the lock is skipped too.
    """
    for index in range(_MAX_SLOTS):
        addrs = instance_addresses(service, index, 1, grpc, http, debug)
        g, h, d = addrs
        own = unix_paths(*[a for a in (*g, *h, d) if a and a not in (*grpc, *http, debug)])
        locks = _claim(own, service, index)
        if locks is None:
            continue
        if any(unix_socket_alive(p) for p in own):
            for fd in locks:
                os.close(fd)
            continue
        _CLAIMED.extend(locks)
        return index, addrs
    raise AddressError(f"every one of {_MAX_SLOTS} instance sockets of {service} is taken")


_CLAIMED: list[int] = []  # the slot locks this process holds until it exits


def _claim(paths: list[str], service: str, index: int) -> list[int] | None:
    """Slot `index`'s lock in the directory of each of `paths`, or None if one is held."""
    fds: list[int] = []
    for directory in sorted({os.path.dirname(p) or "." for p in paths}):
        os.makedirs(directory, exist_ok=True)
        name = os.path.join(directory, f".{service}-{index}.lock")
        fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            for held in fds:
                os.close(held)
            return None
        fds.append(fd)
    return fds

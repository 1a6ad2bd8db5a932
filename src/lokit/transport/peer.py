"""Who is at the other end of a connection (HTTP or frames): its authenticated `Caller`.

- `cert`: the common name of the client certificate the TLS handshake verified
  (mTLS, on TCP or a Unix socket); `ssl.SSLObject.getpeercert()` returns a
  subject only for a certificate that was verified.
- `unix`: on a Unix socket, the user of the connecting process, from the
  kernel's SO_PEERCRED (its uid at connect time, which the peer cannot forge),
  named through the passwd database (the uid itself when it has no entry).

A certificate wins over the Unix peer when both are there. Nothing here reads a
header: `x-caller-id` is only a hint (see `lokit.context`).
"""

from __future__ import annotations

import pwd
import socket
import struct
from typing import Any

from lokit.context import NO_TRANSPORT_SECURITY, Caller

__all__ = ["NO_COMMON_NAME", "NO_PEER", "PEER_KEY", "connection_peer"]

PEER_KEY = "lokit.peer"
"""The ASGI scope key of a connection's (Caller or None, why none) pair (lokit's protocol)."""
NO_PEER: tuple[Caller | None, str] = (
    None,
    "the HTTP server gave no caller identity (not lokit's server)",
)

_CRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
_NO_CLIENT_CERT = "no client certificate was presented"
NO_COMMON_NAME = "the client certificate has no common name (CN) to go by"
_NO_CREDENTIALS = "the Unix peer's credentials could not be read"
# Callers by uid and by certificate CN: bounded by the users and certificates there are.
_BY_UID: dict[int, Caller] = {}
_BY_CN: dict[str, Caller] = {}
_MAX_CACHED = 4096


def connection_peer(transport: Any) -> tuple[Caller | None, str]:
    """The caller of an asyncio transport's connection, or None and why there is none."""
    tls = transport.get_extra_info("ssl_object")
    no_cn = ""
    if tls is not None:
        cert = tls.getpeercert()
        name = _common_name(cert)
        if name is not None:
            return _cached(_BY_CN, name, name, "cert"), ""
        if cert:
            no_cn = NO_COMMON_NAME
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family == socket.AF_UNIX:
        try:
            _pid, uid, _gid = _CRED.unpack(
                sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CRED.size)
            )
        except (OSError, struct.error):
            return None, _NO_CREDENTIALS
        caller = _BY_UID.get(uid)
        if caller is None:
            caller = _cached(_BY_UID, uid, _user_name(uid), "unix")
        return caller, ""
    if tls is None:
        return None, NO_TRANSPORT_SECURITY
    return None, no_cn or _NO_CLIENT_CERT


def _common_name(cert: Any) -> str | None:
    """The first commonName of a `getpeercert()` subject; None without a verified certificate."""
    if not cert:
        return None
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName" and value:
                return str(value)
    return None


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _cached(cache: dict[Any, Caller], key: Any, name: str, source: str) -> Caller:
    caller = cache.get(key)
    if caller is None:
        if len(cache) >= _MAX_CACHED:
            cache.clear()
        caller = cache[key] = Caller(name, source)
    return caller

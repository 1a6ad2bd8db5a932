"""Which instancer a client address needs: `instancer_for(addr, kind)`."""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Literal

from lokit.transport.address import AddressError, parse

if TYPE_CHECKING:  # the instancers (and their metrics) load only for a discovery address
    from lokit.sd.instancer import Instancer

Kind = Literal["grpc", "http"]
KINDS: tuple[Kind, ...] = ("grpc", "http")

# A Serf service name: it becomes part of a tag key (`lokit.SERVICE`).
SERVICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
# A DNS name for SRV: labels of letters, digits, `-` and `_` (`_grpc._tcp.svc.example.`).
DNS_NAME = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.?")

PREFIXES = ("dir:", "srv:", "serf:")


def is_discovery(addr: str) -> bool:
    """True when `addr` names a set of instances rather than one."""
    text = addr.strip()
    return text.startswith(PREFIXES) or "," in text


def instancer_for(addr: str, kind: Kind) -> Instancer | None:
    """The instancer for `addr`, or None for a single plain address (`unix:PATH`, `HOST:PORT`).

    A malformed address raises AddressError with one sentence. The instancer is
    not started: `await instancer.start()` (or `async with instancer`).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown client kind {kind!r}: use grpc or http")
    text = addr.strip()
    if text.startswith("dir:"):
        path = text[4:]
        if not path:
            raise AddressError(f"address {addr!r} has no directory after 'dir:'")
        from lokit.sd.directory import DirInstancer

        return DirInstancer(text, path, kind)
    if text.startswith("srv:"):
        name = text[4:]
        if not DNS_NAME.fullmatch(name):
            raise AddressError(f"address {addr!r} needs a DNS name after 'srv:'")
        from lokit.sd.srv import SrvInstancer

        return SrvInstancer(text, name, os.environ.get("LOKIT_DNS_SERVER") or None)
    if text.startswith("serf:"):
        service = text[5:]
        if not SERVICE_NAME.fullmatch(service):
            raise AddressError(
                f"address {addr!r} needs a service name (letters, digits, '_', '.', '-')"
                " after 'serf:'"
            )
        from lokit.sd.serf import SerfInstancer

        return SerfInstancer(text, service, kind, os.environ.get("LOKIT_SERF_RPC") or None)
    if "," in text:
        parts = [p.strip() for p in text.split(",")]
        if not all(parts):
            raise AddressError(f"address list {addr!r} has an empty entry")
        for p in parts:
            if p.startswith(PREFIXES):
                raise AddressError(
                    f"address list {addr!r} mixes in {p!r}: list plain addresses only"
                )
            parse(p)
        from lokit.sd.instancer import FixedInstancer

        return FixedInstancer(text, parts)
    parse(text)
    return None

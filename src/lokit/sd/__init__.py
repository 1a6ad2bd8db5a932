"""Service discovery (Go kit's `sd`): instancers, the endpointer cache, Serf registration.

A client address names either one instance (`unix:PATH`, `HOST:PORT`) or a set
that discovery keeps current:

- `ADDR,ADDR,...`: a fixed set;
- `dir:PATH`: the live `*.grpc.sock` / `*.http.sock` sockets in a directory;
- `srv:NAME`: DNS SRV records (`LOKIT_DNS_SERVER=HOST:PORT` picks the server);
- `serf:SERVICE`: alive Serf members tagged `lokit.SERVICE` (agent RPC at
  `LOKIT_SERF_RPC`, default 127.0.0.1:7373).

`instancer_for(addr, kind)` picks the instancer; `Endpointer` keeps one client
per instance. Importing this package is light: dnspython and msgpack load only
when an `srv:` or `serf:` instancer is made.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lokit.sd.target import Kind, instancer_for, is_discovery

if TYPE_CHECKING:
    from lokit.sd.endpointer import Endpointer
    from lokit.sd.instancer import FixedInstancer, Instancer, Instances

_LAZY = {
    "Endpointer": "lokit.sd.endpointer",
    "FixedInstancer": "lokit.sd.instancer",
    "Instancer": "lokit.sd.instancer",
    "Instances": "lokit.sd.instancer",
}


def __getattr__(name: str) -> Any:
    """The instancers and the endpointer load on first use (a plain client address needs none)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'lokit.sd' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = [
    "Endpointer",
    "FixedInstancer",
    "Instancer",
    "Instances",
    "Kind",
    "instancer_for",
    "is_discovery",
]

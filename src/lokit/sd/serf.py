"""`serf:SERVICE`: the alive members of a Serf cluster tagged `lokit.SERVICE` (in progress)."""

from __future__ import annotations

from lokit.sd.instancer import Instancer


class SerfInstancer(Instancer):
    """Not ready yet."""

    def __init__(self, target: str, service: str, kind: str, rpc: str | None = None) -> None:
        super().__init__(target)
        self.service = service
        self.kind = kind
        self.rpc = rpc or "127.0.0.1:7373"

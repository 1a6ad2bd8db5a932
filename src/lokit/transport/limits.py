"""What one client may take of a server's listeners: bodies, time, connections, streams.

`Limits` holds the settings every `lokit serve` takes as flags (`--max-body-bytes`,
`--idle-timeout`, `--header-timeout`, `--max-connections`, `--max-streams`,
`--max-body-rate`); the HTTP server applies them in its protocol
(`transport/http/protocol.py`) and the HTTP app while it reads a body (the size
limit, and `BodyPacer` for large bodies), the gRPC server hands them to grpc-core as
channel arguments (`grpc_options`). Each refusal is counted here, in the style
of `observability/metrics.py`:

- `lokit_connections_open{listener,address}`: connections held now (HTTP, debug);
- `lokit_connections_refused_total{listener,address,reason}`: connections closed
  by a limit — `max_connections` (answered 503 and closed at once),
  `header_timeout` (408), `header_too_large` (431);
- `lokit_http_requests_refused_total{service,reason}`: `body_too_large` (413).
"""

from __future__ import annotations

import asyncio
import re
import resource
import time
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter, Gauge

from lokit.errors import ResourceExhausted

__all__ = [
    "CONNECTIONS_OPEN",
    "CONNECTIONS_REFUSED",
    "HTTP_REFUSED",
    "BodyPacer",
    "BodyTooLarge",
    "Limits",
    "ListenerState",
    "auto_max_connections",
    "grpc_options",
    "parse_size",
]

MiB = 1 << 20
MAX_HEADER_BYTES = 64 << 10
"""A request's line and headers larger than this are refused (431) and the connection closed."""

CONNECTIONS_OPEN = Gauge(
    "lokit_connections_open",
    "Connections a listener holds now.",
    ("listener", "address"),
    multiprocess_mode="livesum",
)
CONNECTIONS_REFUSED = Counter(
    "lokit_connections_refused",
    "Connections a listener closed because of a limit, by the limit.",
    ("listener", "address", "reason"),
)
HTTP_REFUSED = Counter(
    "lokit_http_requests_refused",
    "HTTP requests refused before their body was read in full, by the limit.",
    ("service", "reason"),
)


class ListenerState:
    """One listening socket's count of open connections, its limit and metric children."""

    __slots__ = ("gauge", "label", "limit", "open", "refused")

    def __init__(self, listener: str, address: str, limit: int) -> None:
        self.label = (listener, address)
        self.limit = limit
        self.open = 0
        self.gauge = CONNECTIONS_OPEN.labels(listener, address)
        self.refused = {
            reason: CONNECTIONS_REFUSED.labels(listener, address, reason)
            for reason in ("max_connections", "header_timeout", "header_too_large")
        }


class BodyTooLarge(ResourceExhausted):
    """A request body over `--max-body-bytes`: 413, and the connection is closed."""

    http_status = 413
    error_name = "lokit.BODY_TOO_LARGE"

    @classmethod
    def of(cls, limit: int) -> BodyTooLarge:
        return cls(f"the request body is larger than the server's limit of {limit} bytes")


PACE_FREE_BYTES = 1 * MiB
"""The first bytes of every request body are read at once; only the rest is paced."""


class BodyPacer:
    """One token bucket for the large request bodies of an HTTP app (`--max-body-rate`).

    A client that streams bodies at loopback speed (hundreds of MB/s) would keep
    the event loop busy reading them up to the size limit, and every other call on
    that loop (gRPC on the Unix socket, /healthz) would wait behind it. Bytes of a
    body past its first `PACE_FREE_BYTES` are taken from one bucket refilled at
    `rate` bytes/s; a reader that finds it empty sleeps, uvicorn stops reading
    that socket and TCP pushes back on the sender. Ordinary requests never wait.
    """

    __slots__ = ("burst", "last", "rate", "tokens")

    def __init__(self, rate: float) -> None:
        self.rate = float(rate)
        self.burst = self.rate / 10  # at most 0.1 s worth at once
        self.tokens = self.burst
        self.last = time.monotonic()

    async def take(self, n: int) -> None:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate) - n
        self.last = now
        if self.tokens < 0:
            await asyncio.sleep(-self.tokens / self.rate)


def auto_max_connections() -> int:
    """A quarter of the process's open-file limit, between 64 and 10,000."""
    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):  # pragma: no cover - every Linux has it
        soft = 1024
    if soft == resource.RLIM_INFINITY:
        soft = 40_000
    return max(64, min(10_000, soft // 4))


@dataclass(frozen=True)
class Limits:
    """Per-listener limits; `max_connections` 0 means `auto_max_connections()`."""

    max_body_bytes: int = 8 * MiB
    idle_timeout: float = 60.0
    header_timeout: float = 10.0
    max_connections: int = 0
    max_streams: int = 100
    max_body_rate: int = 64 * MiB

    def __post_init__(self) -> None:
        if self.max_body_bytes < 1 or self.max_body_rate < 1:
            raise ValueError("max-body-bytes and max-body-rate must be at least 1")
        if self.idle_timeout <= 0 or self.header_timeout <= 0:
            raise ValueError("idle-timeout and header-timeout must be seconds > 0")
        if self.max_connections < 0 or self.max_streams < 1:
            raise ValueError("max-connections must be >= 0 (0: auto) and max-streams >= 1")

    @property
    def connections(self) -> int:
        """The connection limit per listener in effect."""
        return self.max_connections or auto_max_connections()


def grpc_options(limits: Limits) -> list[tuple[str, Any]]:
    """grpc-core channel arguments for `limits` (what grpc-core offers, see below).

    - `grpc.max_connection_idle_ms`: a connection with no call for this long gets GOAWAY;
    - `grpc.server_handshake_timeout_ms`: a connection that has not finished its
      HTTP/2 handshake (the client preface and SETTINGS) by then is closed — gRPC's
      slowloris guard, which the header timeout sets;
    - `grpc.max_concurrent_streams`: calls at once on one connection (HTTP/2 SETTINGS);
    - `grpc.max_allowed_incoming_connections`: connections per listening port
      (grpc-core closes those beyond it at accept);
    - keepalive: the server pings a quiet connection every 60 s and drops it when
      no answer comes within 20 s; clients may ping every 10 s even without calls
      (lokit's clients keep idle streams alive so), and a client pinging faster
      gets GOAWAY after 2 strikes (`grpc.http2.max_ping_strikes`).
    """
    return [
        ("grpc.max_connection_idle_ms", int(limits.idle_timeout * 1000)),
        ("grpc.server_handshake_timeout_ms", int(limits.header_timeout * 1000)),
        ("grpc.max_concurrent_streams", limits.max_streams),
        ("grpc.max_allowed_incoming_connections", limits.connections),
        ("grpc.keepalive_time_ms", 60_000),
        ("grpc.keepalive_timeout_ms", 20_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ("grpc.http2.max_ping_strikes", 2),
    ]


_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "kib": 1 << 10,
    "m": 1000**2,
    "mb": 1000**2,
    "mib": 1 << 20,
    "g": 1000**3,
    "gb": 1000**3,
    "gib": 1 << 30,
}


def parse_size(value: int | str, key: str) -> int:
    """Bytes from an int or a string like `8MiB`, `10MB`, `4096` (ValueError: one sentence)."""
    if isinstance(value, bool):
        raise ValueError(f"{key} must be a size in bytes, not a boolean")
    if isinstance(value, int):
        return value
    m = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]*)\s*", str(value))
    if not m or m.group(2).lower() not in _SIZE_UNITS:
        raise ValueError(f"{key} must be a size such as 4096, '8MiB' or '1GB', not {value!r}")
    return int(m.group(1)) * _SIZE_UNITS[m.group(2).lower()]

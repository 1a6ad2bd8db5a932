"""Rates and storages as users write them, checked into what the `limits` library takes.

A rate is limits' notation for one limit: `100/second`, `10/minute`,
`5 per 2 seconds`. It is parsed here (the `limits` package costs about 0.2 s
to import, which `lokit call` and a client must not pay) and becomes limits'
`RateLimitItem` only where a limiter counts. A storage is `memory://` (this
process), `redis://HOST:PORT[/DB]`, `rediss://...` (TLS) or
`redis+unix:///PATH/TO/SOCKET` (a Redis Unix socket); they become limits'
asyncio URIs (`async+...`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "STORAGE_SCHEMES",
    "Rate",
    "normalize_method",
    "parse_rate",
    "parse_spec",
    "redacted",
    "storage_uri",
]

STORAGE_SCHEMES = ("memory", "redis", "rediss", "redis+unix")

# limits' granularities, in seconds (a month is 30 days, a year 12 months, as there).
UNITS = {
    "second": 1,
    "minute": 60,
    "hour": 3600,
    "day": 86400,
    "month": 30 * 86400,
    "year": 12 * 30 * 86400,
}
_RATE = re.compile(
    r"\s*(\d+)\s*(?:/|\s+per\s+)\s*(\d+)?\s*(second|minute|hour|day|month|year)s?\s*",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Rate:
    """`amount` calls per `per` `unit`s; `str()` is how the user wrote it, normalized."""

    amount: int
    per: int
    unit: str

    def __str__(self) -> str:
        return (
            f"{self.amount}/{self.unit}"
            if self.per == 1
            else f"{self.amount}/{self.per} {self.unit}s"
        )

    @property
    def window(self) -> float:
        """The window's length in seconds."""
        return float(self.per * UNITS[self.unit])

    @property
    def interval(self) -> float:
        """Seconds between calls spaced evenly at this rate."""
        return self.window / self.amount

    def item(self) -> Any:
        """The same rate as the `limits` library's `RateLimitItem` (imports it).

        (Typed Any: with `bench/` on mypy's path, its `limits.py` shadows the library.)
        """
        from limits.limits import GRANULARITIES

        return GRANULARITIES[self.unit](self.amount, self.per)


def parse_rate(text: str) -> Rate:
    """One rate (`100/second`); a ValueError with one sentence when it is not one."""
    m = _RATE.fullmatch(text)
    if m is None:
        raise ValueError(
            f"{text!r} is not a rate: write it as N/UNIT, such as 100/second or 10/minute"
        )
    amount, per = int(m.group(1)), int(m.group(2) or 1)
    if amount < 1 or per < 1:
        raise ValueError(f"{text!r} allows no call at all: both numbers must be at least 1")
    return Rate(amount, per, m.group(3).lower())


def parse_spec(spec: str) -> tuple[str | None, Rate]:
    """`RATE` (the default: None) or `METHOD=RATE`, as `--limit` takes them."""
    method, sep, rate = spec.partition("=")
    if not sep:
        return None, parse_rate(spec)
    method = method.strip()
    if not method:
        raise ValueError(f"{spec!r} names no method before '=': write METHOD=RATE")
    return method, parse_rate(rate)


def normalize_method(name: str) -> str:
    """The spelling-free key of a method name: `get_servers`, `get-servers`, `GetServers` agree."""
    return name.replace("-", "").replace("_", "").lower()


def storage_uri(uri: str) -> str:
    """limits' asyncio URI for a user's storage URI; a ValueError with one sentence otherwise."""
    scheme, sep, rest = uri.partition("://")
    if not sep or scheme not in STORAGE_SCHEMES:
        raise ValueError(
            f"{uri!r} is not a rate limit storage: use memory://, redis://HOST:PORT, "
            "rediss://HOST:PORT or redis+unix:///PATH/TO/SOCKET"
        )
    if scheme == "memory":
        return "async+memory://"
    if scheme == "redis+unix":
        if not rest.startswith("/") or rest == "/":
            raise ValueError(
                f"{uri!r} names no socket: write redis+unix:///PATH/TO/SOCKET (an absolute path)"
            )
    else:
        try:
            host = urlsplit(uri).hostname
            urlsplit(uri).port  # noqa: B018 -- raises ValueError for a port that is no number
        except ValueError:
            host = None
        if not host:
            raise ValueError(f"{uri!r} names no Redis host and port: write {scheme}://HOST:PORT")
    return f"async+{uri}"


def redacted(uri: str) -> str:
    """`uri` without its password, for logs."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))

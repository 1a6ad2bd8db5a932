"""Rate limits (Go kit's `ratelimit`), on the `limits` library.

- Ingress: `RateLimit` (a default rate, per-method rates, memory or Redis
  storage, moving window, fail open or closed) and `ingress(limit)`, the
  `MethodMiddleware` a server wraps every method with; `lokit serve --limit`.
- Rates in limits' notation (`100/second`), parsed here without importing
  `limits` (0.2 s): only a limiter that counts loads it.
- Egress: `delaying(rate)`, a middleware that delays calls to stay under a
  rate within each call's deadline; `lokit.connect(..., limit=...)`.

The ingress side (and its logging and metrics libraries) loads on first use,
so a client that only delays does not pay for it.
"""

from typing import TYPE_CHECKING, Any

from lokit.ratelimit.delaying import Delayer, delaying
from lokit.ratelimit.rates import STORAGE_SCHEMES, Rate, parse_rate, parse_spec, storage_uri

if TYPE_CHECKING:
    from lokit.ratelimit.limiter import FAIL_MODES, RateLimit, ingress

_LAZY = ("FAIL_MODES", "RateLimit", "ingress")


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from lokit.ratelimit import limiter

        return getattr(limiter, name)
    raise AttributeError(f"module 'lokit.ratelimit' has no attribute {name!r}")


__all__ = [
    "FAIL_MODES",
    "STORAGE_SCHEMES",
    "Delayer",
    "Rate",
    "RateLimit",
    "delaying",
    "ingress",
    "parse_rate",
    "parse_spec",
    "storage_uri",
]

"""Rate limits (Go kit's `ratelimit`), on the `limits` library.

- Ingress: `RateLimit` (a default rate, per-method rates, memory or Redis
  storage, moving window, fail open or closed) and `ingress(limit)`, the
  `MethodMiddleware` a server wraps every method with; `lokit serve --limit`.
- Rates in limits' notation (`100/second`), parsed here without importing
  `limits` (0.2 s): only a limiter that counts loads it.
- Egress: `delaying(rate)`, a middleware that delays calls to stay under a
  rate within each call's deadline; `lokit.connect(..., limit=...)`.
"""

from lokit.ratelimit.delaying import Delayer, delaying
from lokit.ratelimit.ingress import FAIL_MODES, RateLimit, ingress
from lokit.ratelimit.rates import STORAGE_SCHEMES, Rate, parse_rate, parse_spec, storage_uri

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

"""The cost of one ACL decision through `lokit.auth.acl`, for bench/tls.py's case `acl`.

`measure_acl(quick)` wraps a no-op endpoint (the log's Produce: action
`produce`, object the request's topic) in the ACL middleware with proglog's
model and policy, makes `root` the authenticated caller, and times calls in
one event loop:

- `cached`: the same (subject, topic, action) every call: the decision is a
  dict lookup (target <= 5 µs);
- `uncached`: a topic never seen before on every call: casbin's `enforce()`
  runs (twice: the topic's own rule, then the `*` rule that grants it).

Each figure is µs per call of the wrapped endpoint minus the bare endpoint's,
i.e. what the ACL adds to a call; the best of a few rounds.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

MODEL = """[request_definition]
r = sub, obj, act
[policy_definition]
p = sub, obj, act
[policy_effect]
e = some(where (p.eft == allow))
[matchers]
m = r.sub == p.sub && r.obj == p.obj && r.act == p.act
"""
POLICY = "p, root, *, produce\np, root, *, consume\n"


class _Request:
    __slots__ = ("topic",)

    def __init__(self, topic: str) -> None:
        self.topic = topic


async def _nop(request: Any) -> None:
    return None


async def _per_call(endpoint: Any, requests: list[Any]) -> float:
    """µs per call of `endpoint` over `requests`."""
    t0 = time.perf_counter()
    for request in requests:
        await endpoint(request)
    return (time.perf_counter() - t0) / len(requests) * 1e6


async def _measure(quick: bool) -> dict[str, float]:
    from lokit import context
    from lokit.auth import Authorizer, acl
    from lokit.endpoint import Method

    with tempfile.TemporaryDirectory() as tmp:
        model, policy = Path(tmp, "model.conf"), Path(tmp, "policy.csv")
        model.write_text(MODEL)
        policy.write_text(POLICY)
        authorizer = Authorizer(model, policy)
    method = Method(
        "Produce",
        _nop,
        action="produce",
        acl_object=lambda r: r.topic,
    )
    middleware = acl(authorizer)(method)
    wrapped = middleware(_nop)
    ctx = context.RequestContext("bench", caller=context.Caller("root", "cert"))
    token = context.set_current(ctx)
    try:
        hot = 20_000 if quick else 200_000
        cold = 300 if quick else 3_000
        rounds = 3 if quick else 5
        same = [_Request("orders")] * hot
        await wrapped(same[0])  # the one decision the cached figure reuses
        cached = uncached = float("inf")
        for r in range(rounds):
            bare = await _per_call(_nop, same)
            cached = min(cached, await _per_call(wrapped, same) - bare)
            fresh = [_Request(f"topic-{r}-{i}") for i in range(cold)]
            bare_cold = await _per_call(_nop, fresh)
            uncached = min(uncached, await _per_call(wrapped, fresh) - bare_cold)
        return {"cached": max(cached, 0.0), "uncached": uncached}
    finally:
        context.reset(token)


def measure_acl(quick: bool) -> dict[str, float]:
    """{"cached": µs, "uncached": µs}: what one ACL decision adds to a call (see above)."""
    return asyncio.run(_measure(quick))


if __name__ == "__main__":
    print(measure_acl("--quick" in sys.argv))

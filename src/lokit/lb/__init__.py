"""Client-side load balancing and retries (Go kit's `sd/lb`).

- `Load`: one instance's outstanding requests and EWMA latency;
- `Member` (what a balancer needs of an instance: `address`, `load`,
  `breaker`, a `Breaker` such as `lokit.circuitbreaker.Breaker`) and
  `Instance`, a plain one;
- balancers `P2C` (the default) and `RoundRobin`, by name `balancer("p2c")`;
- `RetryBudget`: Finagle's cap on retries (20 % of requests plus 10/s);
- `balanced(...)`: one endpoint over many instances with Go kit's retry
  semantics, the budget, per-instance breakers and per-attempt deadlines.
"""

from lokit.lb.balancers import BALANCERS, P2C, Balancer, Instance, Member, RoundRobin, balancer
from lokit.lb.budget import RetryBudget
from lokit.lb.load import Load
from lokit.lb.retry import RETRIED, RETRIED_IF_IDEMPOTENT, balanced, default_retryable

__all__ = [
    "BALANCERS",
    "P2C",
    "RETRIED",
    "RETRIED_IF_IDEMPOTENT",
    "Balancer",
    "Breaker",
    "Instance",
    "Load",
    "Member",
    "RetryBudget",
    "RoundRobin",
    "balanced",
    "balancer",
    "default_retryable",
]

"""Discovery metrics: how many instances each target has, and how often discovery failed.

Registered once, on import, in prometheus_client's default registry (next to the
RED metrics of `lokit.observability.metrics`). `target` is the address as the
user wrote it (`dir:run/stringsvc.d`, `srv:_grpc._tcp.stringsvc`, `serf:stringsvc`).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

INSTANCES = Gauge(
    "lokit_sd_instances",
    "Instances discovery currently reports for a target.",
    ("target",),
    multiprocess_mode="liveall",
)
ERRORS = Counter(
    "lokit_sd_errors",
    "Failed discovery attempts (the last known instances were kept).",
    ("target",),
)

"""The standard gRPC health service, driven by the service's own health check.

`ServiceHealth` is grpcio's asyncio `HealthServicer` whose statuses follow
`ServiceDef.health` (None: SERVING, a sentence: NOT_SERVING, logged once per
change): `Check` asks the check before answering, and a poll task re-asks it
every `interval` seconds so `Watch` streams see a change without anyone
calling `Check`. The overall status ("") and every service name move together.
After `enter_graceful_shutdown` everything stays NOT_SERVING.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from grpc_health.v1 import health, health_pb2

from lokit.observability.debug import HealthCheck, health_reason
from lokit.observability.logs import get_logger

__all__ = ["ServiceHealth"]

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class ServiceHealth(health.aio.HealthServicer):  # type: ignore[misc]
    """Health statuses for `names` (and ""), following `check`."""

    def __init__(
        self, service: str, names: list[str], check: HealthCheck | None, interval: float = 1.0
    ) -> None:
        super().__init__()
        self._service = service
        self._names = ["", *names]
        self._check = check
        self._interval = interval
        self._serving: bool | None = None
        self._poll: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Set the first statuses; poll the check while serving (when there is one)."""
        await self.refresh()
        if self._check is not None and self._poll is None:
            self._poll = asyncio.create_task(self._polling(), name="lokit-grpc-health")

    async def refresh(self) -> None:
        """Ask the check and set every status when the answer changed."""
        if self._gracefully_shutting_down:
            return
        reason = health_reason(self._check)
        serving = reason is None
        if serving == self._serving:
            return
        if self._serving is not None or not serving:
            log = get_logger("lokit")
            if serving:
                log.info("serving again", service=self._service)
            else:
                log.warning("not serving", service=self._service, err=reason)
        self._serving = serving
        for name in self._names:
            await self.set(name, SERVING if serving else NOT_SERVING)

    async def _polling(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.refresh()

    async def Check(self, request: Any, context: Any) -> Any:
        await self.refresh()
        return await super().Check(request, context)

    async def enter_graceful_shutdown(self) -> None:
        await self.stop_polling()
        await super().enter_graceful_shutdown()

    async def stop_polling(self) -> None:
        task, self._poll = self._poll, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

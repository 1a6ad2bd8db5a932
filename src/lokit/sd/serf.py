"""Serf discovery: `serf:SERVICE` instancers and the `--register serf` registration.

An instance registers by setting the tag `lokit.SERVICE` on its machine's Serf
agent; the value lists its addresses, comma-separated, each optionally marked
with its kind: `grpc=unix:/srv/run/stringsvc.grpc.sock,http=10.0.0.5:8081`.
A `serf:SERVICE` instancer for gRPC takes the `grpc=` entries and the unmarked
ones of every *alive* member; a wildcard host (`0.0.0.0:PORT`) becomes the
member's own gossip address. A Unix socket is reachable only on its own machine,
so `unix:` entries count only for members that gossip from the same address as
the agent asked (the local agent: same address, same machine).

Several instances on one machine share one agent (tags are per node), so a
registration adds its entries to the tag's value and removes only its own at
exit, and checks every 10 s that they are still there (the agent may
have restarted, or another instance raced its update).

The instancer uses the agent's member-event stream rather than polling
`members`: a join, leave, failure or tag change arrives at once, an agent that
goes away is noticed at once (its connection closes), and nothing is sent
while nothing changes. On each event it lists the alive members again, so a
missed event cannot leave it wrong. Connection and agent errors keep the last
known set; reconnects back off (0.25 s doubling to 10 s, with jitter).

Environment: `LOKIT_SERF_RPC` (default 127.0.0.1:7373), `LOKIT_SERF_RPC_AUTH`
(the agent's `-rpc-auth` key, if it has one).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator

from lokit.observability.logs import get_logger
from lokit.sd.backoff import Backoff
from lokit.sd.instancer import Instancer
from lokit.sd.serfrpc import Member, SerfError, SerfRPC, rpc_address
from lokit.transport.address import AddressError, parse

TAG_PREFIX = "lokit."
KINDS = ("grpc", "http")
CHECK_INTERVAL = 10.0  # how often a registration checks its tag is still there

_log = get_logger("lokit.sd")
_WILDCARDS = {"0.0.0.0", "::"}


def _auth() -> str | None:
    return os.environ.get("LOKIT_SERF_RPC_AUTH") or None


def tag_entries(value: str) -> list[str]:
    """The comma-separated entries of a `lokit.SERVICE` tag value."""
    return [e.strip() for e in value.split(",") if e.strip()]


def member_instances(member: Member, key: str, kind: str, here: str = "") -> list[str]:
    """The addresses of `kind` a member's tag `key` lists (malformed entries skipped).

    `here` is the gossip address of this machine's agent: Unix sockets of members
    elsewhere are left out (when it is known).
    """
    found: list[str] = []
    for entry in tag_entries(member.tags.get(key, "")):
        marked, sep, rest = entry.partition("=")
        if sep and marked in KINDS:
            if marked != kind:
                continue
            entry = rest
        try:
            addr = parse(entry)
        except AddressError:
            _log.debug("skipping a malformed serf tag entry", member=member.name, entry=entry)
            continue
        if addr.is_unix and here and member.addr != here:
            continue
        if addr.host in _WILDCARDS and member.addr:
            host = f"[{member.addr}]" if ":" in member.addr else member.addr
            found.append(f"{host}:{addr.port}")
        else:
            found.append(str(addr))
    return found


class SerfInstancer(Instancer):
    """The `kind` addresses of the alive members tagged `lokit.SERVICE`, from the agent's stream."""

    def __init__(self, target: str, service: str, kind: str, rpc: str | None = None) -> None:
        super().__init__(target, Backoff(initial=0.25, cap=10.0))
        self.service = service
        self.kind = kind
        self.key = TAG_PREFIX + service
        self.rpc = rpc
        self._here = ""
        rpc_address(rpc)  # a malformed LOKIT_SERF_RPC fails here, in one sentence

    async def _watch(self) -> None:
        client = await SerfRPC.connect(self.rpc, _auth())
        try:
            events = await client.stream()  # subscribe first: no change falls between
            self._here = await self._local_address(client)
            await self._list(client)
            while True:
                if await events.get() is None:
                    raise SerfError("the connection to the Serf agent was lost")
                while not events.empty():  # a burst of events: one listing
                    if events.get_nowait() is None:
                        raise SerfError("the connection to the Serf agent was lost")
                await self._list(client)
        finally:
            await client.close()

    async def _local_address(self, client: SerfRPC) -> str:
        """The gossip address of the agent we ask (where its Unix sockets are reachable)."""
        name = (await client.stats()).get("agent", {}).get("name")
        return next((m.addr for m in await client.members() if m.name == name), "")

    async def _list(self, client: SerfRPC) -> None:
        members = await client.members(status="alive", tags={self.key: ".+"})
        self._update(
            i for m in members for i in member_instances(m, self.key, self.kind, self._here)
        )


class SerfRegistration:
    """This process's entries in its agent's `lokit.SERVICE` tag, kept there until `close`."""

    def __init__(self, service: str, addresses: list[str], rpc: str | None = None) -> None:
        if not service or "," in service or "=" in service:
            raise ValueError(f"cannot register service {service!r} with serf: a bad name")
        self.service = service
        self.key = TAG_PREFIX + service
        self.entries = [e.strip() for e in addresses if e.strip()]
        if not self.entries or any("," in e for e in self.entries):
            raise ValueError(f"cannot register {service} with serf: no addresses, or one has a ','")
        self.rpc = rpc or os.environ.get("LOKIT_SERF_RPC") or None
        self.agent = "{}:{}".format(*rpc_address(self.rpc))
        self.registered = False  # our entries are on the agent now
        self._tagged = False  # we set them at least once (and did not remove them since)
        self._task: asyncio.Task[None] | None = None
        self._first = asyncio.Event()

    async def start(self) -> None:
        """Register (one attempt, awaited); on failure keep trying in the background."""
        self._task = asyncio.create_task(self._keep(), name=f"lokit.sd register {self.key}")
        await self._first.wait()

    async def _keep(self) -> None:
        backoff = Backoff(initial=0.5, cap=30.0)
        failing: str | None = None
        while True:
            try:
                client = await SerfRPC.connect(self.rpc, _auth())
                try:
                    while True:
                        await self._ensure(client)
                        if failing is not None or not self._first.is_set():
                            _log.info(
                                "registered with serf",
                                service=self.service,
                                tag=self.key,
                                addresses=",".join(self.entries),
                                agent=self.agent,
                            )
                        failing = None
                        self.registered = self._tagged = True
                        self._first.set()
                        backoff.reset()
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(asyncio.shield(client.lost), CHECK_INTERVAL)
                        if client.lost.done():
                            raise SerfError("the connection to the Serf agent was lost")
                finally:
                    await client.close()
            except Exception as e:  # the agent is unreachable or refused; never end the keeper
                self.registered = False
                why = str(e) or repr(e)
                if why != failing:
                    _log.warning(
                        "not registered with serf; serving unregistered and retrying",
                        service=self.service,
                        agent=self.agent,
                        err=why,
                    )
                    failing = why
                self._first.set()
            await asyncio.sleep(backoff.next())

    async def _current(self, client: SerfRPC) -> list[str]:
        stats = await client.stats()
        tags = stats.get("tags") or {}
        return tag_entries(str(tags.get(self.key, "")))

    async def _ensure(self, client: SerfRPC) -> None:
        """Add our entries to the tag when missing; re-read to catch a racing instance."""
        for _ in range(5):
            current = await self._current(client)
            missing = [e for e in self.entries if e not in current]
            if not missing:
                return
            await client.set_tags({self.key: ",".join(current + missing)})
        raise SerfError(f"tag {self.key} keeps losing this instance's entries")

    async def close(self) -> None:
        """Stop keeping the tag and remove this process's entries from it."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.registered = False
        if not self._tagged:
            return
        try:
            client = await SerfRPC.connect(self.rpc, _auth())
            try:
                rest = [e for e in await self._current(client) if e not in self.entries]
                if rest:
                    await client.set_tags({self.key: ",".join(rest)})
                else:
                    await client.set_tags({}, delete=[self.key])
            finally:
                await client.close()
        except Exception as e:
            _log.warning(
                "could not deregister from serf",
                service=self.service,
                agent=self.agent,
                err=str(e) or repr(e),
            )
            return
        self._tagged = False
        _log.info("deregistered from serf", service=self.service, tag=self.key)


@contextlib.asynccontextmanager
async def register(
    service: str, addresses: list[str], rpc: str | None = None
) -> AsyncIterator[SerfRegistration]:
    """Hold `lokit.<service>` = `addresses` on the local Serf agent while inside.

    `addresses` are tag entries: plain addresses, or `grpc=ADDR` / `http=ADDR`.
    An unreachable agent is not fatal: one warning, and registration keeps being
    retried in the background (the service serves, unregistered, meanwhile).
    """
    registration = SerfRegistration(service, addresses, rpc)
    await registration.start()
    try:
        yield registration
    finally:
        await registration.close()

"""A small asyncio client of the Serf agent's RPC protocol (msgpack over TCP).

Why our own: serfclient, the one Python client, is stale (2018), uses blocking
sockets (its event stream would need a thread) and imports `pkg_resources`,
which setuptools 81 removed. The protocol is small: after a `handshake`, each
request is a msgpack header `{Command, Seq}` and maybe a body; each response a
header `{Seq, Error}` and, for some commands, a body. A `stream` subscription
answers once, then sends `{Seq, Error}` + an event record for every event.
One reader task matches responses to requests by `Seq`, so requests and a
stream share one connection. The agent's protocol: Serf's `agent/ipc.go`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import os
from dataclasses import dataclass
from typing import Any

import msgpack  # type: ignore[import-untyped]

from lokit.transport.address import AddressError, parse

DEFAULT_RPC = "127.0.0.1:7373"
CONNECT_TIMEOUT = 2.0
CALL_TIMEOUT = 5.0
MEMBER_EVENTS = "member-join,member-leave,member-failed,member-update,member-reap"

# Commands whose successful response carries a body.
_WITH_BODY = {"members", "members-filtered", "stats", "join", "force-leave"}


class SerfError(OSError):
    """The agent is unreachable, closed the connection, or refused a command."""


@dataclass(frozen=True)
class Member:
    """One member of the cluster, as the agent reports it."""

    name: str
    addr: str  # the member's gossip IP
    status: str  # alive, leaving, left, failed
    tags: dict[str, str]


def rpc_address(text: str | None) -> tuple[str, int]:
    """`HOST:PORT` of the agent's RPC listener (default 127.0.0.1:7373); one sentence if bad."""
    raw = text or DEFAULT_RPC
    try:
        addr = parse(raw)
    except AddressError:
        addr = None
    if addr is None or addr.host is None or addr.port is None:
        raise AddressError(f"Serf RPC address {raw!r} must be HOST:PORT, such as {DEFAULT_RPC}")
    return addr.host, addr.port


def _member(raw: dict[str, Any]) -> Member:
    ip = raw.get("Addr") or b""
    try:
        parsed = ipaddress.ip_address(bytes(ip))
        if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
            parsed = parsed.ipv4_mapped
        addr = str(parsed)
    except ValueError:
        addr = ""
    tags = raw.get("Tags") or {}
    return Member(
        name=str(raw.get("Name", "")),
        addr=addr,
        status=str(raw.get("Status", "")),
        tags={str(k): str(v) for k, v in tags.items()},
    )


class SerfRPC:
    """One connection to a Serf agent: requests, and member-event streams, on it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._seq = itertools.count()
        self._pending: dict[int, tuple[bool, asyncio.Future[Any]]] = {}
        self._streams: dict[int, asyncio.Queue[dict[str, Any] | None]] = {}
        self._abandoned: set[int] = set()  # timed-out requests whose body may still come
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._read(), name="lokit.sd serf rpc")

    @classmethod
    async def connect(
        cls, rpc: str | None = None, auth: str | None = None, within: float = CONNECT_TIMEOUT
    ) -> SerfRPC:
        """Connect and shake hands (and authenticate when the agent wants an `-rpc-auth` key)."""
        host, port = rpc_address(rpc)
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), within)
        except TimeoutError:
            raise SerfError(f"cannot reach the Serf agent at {host}:{port}: timed out") from None
        except OSError as e:
            why = os.strerror(e.errno) if e.errno else str(e)
            raise SerfError(f"cannot reach the Serf agent at {host}:{port}: {why}") from None
        client = cls(reader, writer)
        try:
            await client.call("handshake", {"Version": 1}, within=within)
            if auth:
                await client.call("auth", {"AuthKey": auth}, within=within)
        except BaseException:
            await client.close()
            raise
        return client

    async def call(
        self, command: str, body: dict[str, Any] | None = None, within: float = CALL_TIMEOUT
    ) -> Any:
        """Send one command; its response body (None for commands without one)."""
        seq = next(self._seq)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[seq] = (command in _WITH_BODY, future)
        try:
            self._send(command, seq, body)
            return await asyncio.wait_for(future, within)
        except TimeoutError:
            if command in _WITH_BODY:
                self._abandoned.add(seq)
            raise SerfError(f"the Serf agent did not answer {command!r} in {within:g} s") from None
        finally:
            self._pending.pop(seq, None)

    async def stream(self, types: str = MEMBER_EVENTS) -> asyncio.Queue[dict[str, Any] | None]:
        """Subscribe to events (`member-join,...`); a queue of event records, None when lost."""
        seq = next(self._seq)
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._streams[seq] = queue
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[seq] = (False, future)
        try:
            self._send("stream", seq, {"Type": types})
            await asyncio.wait_for(future, CALL_TIMEOUT)
        except BaseException:
            self._streams.pop(seq, None)
            raise
        finally:
            self._pending.pop(seq, None)
        return queue

    async def members(self, status: str = "", tags: dict[str, str] | None = None) -> list[Member]:
        """The members (filtered by status and tag regexps, anchored, as the agent applies them)."""
        body = await self.call(
            "members-filtered", {"Tags": tags or {}, "Status": status, "Name": ""}
        )
        return [_member(m) for m in body.get("Members") or []]

    async def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("stats")
        return result

    async def set_tags(self, tags: dict[str, str], delete: list[str] | None = None) -> None:
        """Set (and delete) tags of the agent's own node; the cluster hears of it by gossip."""
        await self.call("tags", {"Tags": tags, "DeleteTags": delete or []})

    async def join(self, addresses: list[str]) -> int:
        body = await self.call("join", {"Existing": addresses, "Replay": False})
        return int(body.get("Num", 0))

    def _send(self, command: str, seq: int, body: dict[str, Any] | None) -> None:
        if self.lost.done():
            raise SerfError("the connection to the Serf agent was lost")
        data = msgpack.packb({"Command": command, "Seq": seq})
        if body is not None:
            data += msgpack.packb(body)
        self._writer.write(data)

    async def _read(self) -> None:
        unpacker = msgpack.Unpacker(raw=False, unicode_errors="surrogateescape")
        body_for: int | None = None  # the seq whose body comes next
        error = "the Serf agent closed the connection"
        try:
            while True:
                data = await self._reader.read(65536)
                if not data:
                    break
                unpacker.feed(data)
                for obj in unpacker:
                    if body_for is not None:
                        self._deliver(body_for, obj)
                        body_for = None
                        continue
                    body_for = self._header(obj)
        except (OSError, ValueError, msgpack.UnpackException) as e:
            error = f"the connection to the Serf agent failed: {e}"
        finally:
            self._lose(error)

    def _header(self, header: Any) -> int | None:
        """Handle a response header; the seq when a body follows it."""
        if not isinstance(header, dict) or "Seq" not in header:
            raise ValueError(f"unexpected message from the Serf agent: {header!r}")
        seq = int(header["Seq"])
        err = str(header.get("Error") or "")
        pending = self._pending.get(seq)
        if pending is not None:
            with_body, future = pending
            if err:
                if not future.done():
                    future.set_exception(SerfError(f"the Serf agent refused: {err}"))
                return None
            if with_body:
                return seq
            if not future.done():
                future.set_result(None)
            return None
        if seq in self._streams:
            return seq  # an event record follows
        if seq in self._abandoned:  # a late answer to a timed-out request: skip its body
            self._abandoned.discard(seq)
            return None if err else seq
        return None

    def _deliver(self, seq: int, body: Any) -> None:
        pending = self._pending.get(seq)
        if pending is not None:
            if not pending[1].done():
                pending[1].set_result(body)
            return
        queue = self._streams.get(seq)
        if queue is not None and isinstance(body, dict):
            queue.put_nowait(body)

    def _lose(self, error: str) -> None:
        if not self.lost.done():
            self.lost.set_result(None)
        for _, future in self._pending.values():
            if not future.done():
                future.set_exception(SerfError(error))
        for queue in self._streams.values():
            queue.put_nowait(None)
        self._writer.close()

    async def close(self) -> None:
        """Close the connection (the agent ends this client's streams)."""
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._lose("the connection to the Serf agent was closed")
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()

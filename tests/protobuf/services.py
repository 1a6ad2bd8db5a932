"""The service the protobuf tests derive, serve and call: every mapped type, every stream kind."""

from __future__ import annotations

import dataclasses
import datetime
import enum
from collections.abc import AsyncIterator
from typing import Annotated

import msgspec

import lokit
from lokit.errors import InvalidArgument


class Color(enum.Enum):
    """A colour by name (numbered 1, 2 in declaration order)."""

    RED = "red"
    GREEN = "green"


class Level(enum.IntEnum):
    LOW = 0
    HIGH = 5


class Inner(msgspec.Struct):
    """A nested message."""

    label: str
    at: datetime.datetime | None = None


@dataclasses.dataclass
class Box:
    name: str
    size: float


class Everything(msgspec.Struct):
    s: str
    i: int
    f: float
    b: bool
    raw: bytes
    tags: list[str]
    scores: dict[str, int]
    inner: Inner
    inners: list[Inner]
    by_name: dict[str, Inner]
    color: Color
    level: Level
    colors: list[Color]
    at: datetime.datetime
    took: datetime.timedelta
    box: Box
    maybe: str | None = None
    count: int = 7
    pinned: Annotated[int, lokit.field(20)] = 0


class NameRequired(InvalidArgument):
    error_name = "tests.protobuf.NameRequired"
    default_message = "name is required"


class Kitchen:
    """Every shape the protobuf tests call."""

    async def echo(self, e: Everything) -> Everything:
        """Answer the message it was sent."""
        return e

    async def greet(self, name: str, excited: bool = False) -> str:
        """Say hello to `name`."""
        if not name:
            raise NameRequired()
        return f"hello, {name}" + ("!" if excited else "")

    async def countdown(self, n: int) -> AsyncIterator[int]:
        """n, n-1, ..., 1."""
        for i in range(n, 0, -1):
            yield i

    async def total(self, items: AsyncIterator[int]) -> int:
        """The sum of a client stream."""
        return sum([i async for i in items])

    async def shout(self, words: AsyncIterator[str]) -> AsyncIterator[str]:
        """Each word in upper case (bidi)."""
        async for w in words:
            yield w.upper()

    async def nothing(self) -> None:
        """Answers nothing."""

    async def maybe(self, s: str | None = None) -> str | None:
        """`s` back, None included."""
        return s


def everything() -> Everything:
    at = datetime.datetime(2026, 12, 1, 12, 30, 15, 123456, tzinfo=datetime.UTC)
    return Everything(
        s="héllo",
        i=-(2**40),
        f=2.5,
        b=True,
        raw=b"\x00\xff",
        tags=["a", "b"],
        scores={"x": 1, "y": -2},
        inner=Inner("in", at),
        inners=[Inner("one"), Inner("two", at)],
        by_name={"k": Inner("v")},
        color=Color.GREEN,
        level=Level.HIGH,
        colors=[Color.RED, Color.GREEN],
        at=at,
        took=datetime.timedelta(seconds=90, microseconds=5),
        box=Box("crate", 1.5),
        maybe=None,
        count=0,
        pinned=3,
    )

"""stringsvc's business logic and business error (Go kit examples' stringsvc).

Only `lokit.errors` is imported here: dependencies point inward.
"""

from __future__ import annotations

from typing import Protocol

from lokit.errors import InvalidArgument


class EmptyStringError(InvalidArgument):
    """Uppercase of "" is refused (Go kit's ErrEmpty)."""

    error_name = "stringsvc.EmptyString"
    default_message = "empty string"


class Service(Protocol):
    """What stringsvc does; the basic service and every service middleware implement it."""

    async def uppercase(self, s: str) -> str:
        """`s` in upper case; an empty string is refused."""
        ...

    async def count(self, s: str) -> int:
        """The number of characters in `s`."""
        ...


class StringService(Service):
    """The basic stringsvc: pure business rules, no logging or metrics."""

    async def uppercase(self, s: str) -> str:
        """`s` in upper case; an empty string is refused."""
        if not s:
            raise EmptyStringError()
        return s.upper()

    async def count(self, s: str) -> int:
        """The number of characters in `s`."""
        return len(s)

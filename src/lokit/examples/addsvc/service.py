"""addsvc's business logic and business errors (Go kit examples' addservice).

Only `lokit.errors` is imported here: dependencies point inward.
"""

from __future__ import annotations

import math
from typing import Protocol

from lokit.errors import Error, InvalidArgument, OutOfRange, Unknown

INT_MAX = 2**31 - 1
INT_MIN = -(2**31)
MAX_LEN = 10


class AddServiceError(Error):
    """Base of addsvc's business errors: the ones carried inside a gRPC reply's `err`."""

    error_name = "addsvc.AddServiceError"


class TwoZeroesError(AddServiceError, InvalidArgument):
    """Sum(0, 0) is refused (Go kit's ErrTwoZeroes)."""

    error_name = "addsvc.TwoZeroes"
    default_message = "can't sum two zeroes"


class IntOverflowError(AddServiceError, OutOfRange):
    """A Sum that does not fit a signed 32-bit integer (Go kit's ErrIntOverflow)."""

    error_name = "addsvc.IntOverflow"
    default_message = "integer overflow"


class MaxSizeExceededError(AddServiceError, InvalidArgument):
    """A Concat longer than MAX_LEN characters (Go kit's ErrMaxSizeExceeded)."""

    error_name = "addsvc.MaxSizeExceeded"
    default_message = "result exceeds maximum size"


class TeapotError(AddServiceError, InvalidArgument):
    """A Concat that spells "teapot": the workshop's HTTP 418 challenge."""

    error_name = "addsvc.Teapot"
    default_message = "I'm a teapot"
    http_status = 418


class NonFiniteError(AddServiceError, InvalidArgument):
    """A Mult whose operands or product are not finite numbers (inf, nan)."""

    error_name = "addsvc.NonFinite"
    default_message = "result is not a finite number"


BUSINESS_ERRORS: tuple[type[AddServiceError], ...] = (
    TwoZeroesError,
    IntOverflowError,
    MaxSizeExceededError,
    TeapotError,
    NonFiniteError,
)
_BY_MESSAGE: dict[str, type[AddServiceError]] = {c.default_message: c for c in BUSINESS_ERRORS}


def error_from_message(message: str) -> Error:
    """The business error a reply's `err` string names (Go kit's str2err); else `Unknown`."""
    cls = _BY_MESSAGE.get(message)
    if cls is not None:
        return cls()
    return Unknown(message)


class Service(Protocol):
    """What addsvc does; the basic service and every service middleware implement it."""

    async def sum(self, a: int, b: int) -> int:
        """Sum two integers; the result must fit a signed 32-bit integer."""
        ...

    async def concat(self, a: str, b: str) -> str:
        """Concatenate two strings; the result holds at most 10 characters."""
        ...

    async def mult(self, a: float, b: float) -> float:
        """Multiply two numbers; the product must be finite."""
        ...


class AddService(Service):
    """The basic addsvc: pure business rules, no logging or metrics."""

    async def sum(self, a: int, b: int) -> int:
        """Sum two integers; the result must fit a signed 32-bit integer.

        For 32-bit operands this is exactly Go kit's rule (`b > 0 and a > intMax-b`
        or `b < 0 and a < intMin-b`); it also refuses an out-of-range result when
        an operand is itself out of range (the wire carries int64), which Go kit lets by.
        """
        if a == 0 and b == 0:
            raise TwoZeroesError()
        v = a + b
        if not INT_MIN <= v <= INT_MAX:
            raise IntOverflowError()
        return v

    async def concat(self, a: str, b: str) -> str:
        """Concatenate two strings; at most 10 characters, and "teapot" is refused (418)."""
        if len(a) + len(b) > MAX_LEN:
            raise MaxSizeExceededError()
        v = a + b
        if v == "teapot":
            raise TeapotError()
        return v

    async def mult(self, a: float, b: float) -> float:
        """Multiply two numbers; nan or infinite operands or product are refused.

        JSON cannot carry them, and a product that overflowed to infinity is not
        an answer anyone can use.
        """
        try:
            v = float(a) * float(b)
        except OverflowError:  # an int operand too large for a float
            raise NonFiniteError() from None
        if not math.isfinite(v):
            raise NonFiniteError()
        return v

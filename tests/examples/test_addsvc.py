"""addsvc's business rules and errors, called directly on the basic service."""

from __future__ import annotations

import math

import pytest

from lokit.errors import Code, Error, InvalidArgument, OutOfRange
from lokit.examples.addsvc.service import (
    INT_MAX,
    INT_MIN,
    AddService,
    IntOverflowError,
    MaxSizeExceededError,
    NonFiniteError,
    TeapotError,
    TwoZeroesError,
)

svc = AddService()


async def test_sum() -> None:
    assert await svc.sum(1, 2) == 3
    assert await svc.sum(0, 5) == 5
    assert await svc.sum(-7, 0) == -7


async def test_sum_two_zeroes() -> None:
    with pytest.raises(TwoZeroesError) as e:
        await svc.sum(0, 0)
    assert e.value.message == "can't sum two zeroes"
    assert isinstance(e.value, InvalidArgument) and e.value.status == 400


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (INT_MAX, 0),
        (INT_MAX - 1, 1),
        (0, INT_MAX),
        (INT_MIN, 0),
        (INT_MIN + 1, -1),
        (-1, INT_MIN + 1),
    ],
)
async def test_sum_at_the_int32_boundary(a: int, b: int) -> None:
    assert await svc.sum(a, b) == a + b


@pytest.mark.parametrize(
    ("a", "b"),
    [(INT_MAX, 1), (1, INT_MAX), (INT_MIN, -1), (-1, INT_MIN), (INT_MAX, INT_MAX), (2**40, 0)],
)
async def test_sum_overflow(a: int, b: int) -> None:
    with pytest.raises(IntOverflowError) as e:
        await svc.sum(a, b)
    assert e.value.message == "integer overflow"
    assert isinstance(e.value, OutOfRange) and e.value.status == 400


async def test_concat_and_its_size_limit() -> None:
    assert await svc.concat("ab", "cd") == "abcd"
    assert await svc.concat("", "") == ""
    assert await svc.concat("12345", "67890") == "1234567890"  # exactly 10: fine
    assert await svc.concat("ééééé", "ééééé") == "é" * 10  # characters, not bytes
    with pytest.raises(MaxSizeExceededError) as e:
        await svc.concat("12345", "678901")
    assert e.value.message == "result exceeds maximum size"
    assert e.value.code == Code.INVALID_ARGUMENT and e.value.status == 400


async def test_concat_teapot_is_418() -> None:
    with pytest.raises(TeapotError) as e:
        await svc.concat("tea", "pot")
    assert e.value.message == "I'm a teapot"
    assert e.value.status == 418 and e.value.code == Code.INVALID_ARGUMENT
    assert await svc.concat("Tea", "pot") == "Teapot"  # only the exact word


async def test_mult() -> None:
    assert await svc.mult(2.5, 4) == 10.0
    assert await svc.mult(-3, 0.5) == -1.5
    assert await svc.mult(0, 0) == 0.0


@pytest.mark.parametrize(
    ("a", "b"),
    [(1e200, 1e200), (math.inf, 1), (math.nan, 2), (math.inf, 0), (10**400, 1)],
)
async def test_mult_non_finite(a: float, b: float) -> None:
    with pytest.raises(NonFiniteError) as e:
        await svc.mult(a, b)
    assert e.value.message == "result is not a finite number" and e.value.status == 400


def test_business_errors_have_stable_names() -> None:
    from lokit.errors import rebuild

    for cls in (TwoZeroesError, IntOverflowError, MaxSizeExceededError, TeapotError):
        err = rebuild(cls.code, cls.default_message, cls.error_name)
        assert type(err) is cls and isinstance(err, Error)

"""Canonical codes, HTTP statuses, and rebuilding the same class on the client."""

from __future__ import annotations

import pytest

from lokit import errors
from lokit.errors import Code, Error, InvalidArgument, Unavailable


class CoreTestTeapot(InvalidArgument):
    http_status = 418
    default_message = "I'm a teapot"


def test_canonical_classes_carry_their_codes_and_statuses() -> None:
    assert InvalidArgument("x").code is Code.INVALID_ARGUMENT
    assert InvalidArgument("x").status == 400
    assert Unavailable("down").status == 503
    assert errors.DeadlineExceeded().status == 504
    assert errors.NotFound().status == 404
    assert CoreTestTeapot().status == 418 and CoreTestTeapot().message == "I'm a teapot"
    assert str(CoreTestTeapot("custom")) == "custom"


def test_every_code_has_a_class_and_a_status() -> None:
    for code in Code:
        if code is Code.OK:
            continue
        err = errors.rebuild(code, "m")
        assert err.code is code and err.status >= 400


def test_rebuild_prefers_the_registered_class() -> None:
    err = errors.rebuild(Code.INVALID_ARGUMENT, "I'm a teapot", CoreTestTeapot.error_name)
    assert type(err) is CoreTestTeapot and err.message == "I'm a teapot"
    # a name whose code disagrees falls back to the canonical class
    assert type(errors.rebuild(Code.NOT_FOUND, "m", CoreTestTeapot.error_name)) is errors.NotFound
    # unknown names and codes degrade gracefully
    assert type(errors.rebuild(Code.UNAVAILABLE, "m", "no.such.Error")) is Unavailable
    assert type(errors.rebuild(99, "m")) is errors.Unknown


def test_rebuild_matches_a_script_registered_class_by_its_last_name() -> None:
    name = "__main__." + CoreTestTeapot.__qualname__
    assert type(errors.rebuild(Code.INVALID_ARGUMENT, "m", name)) is CoreTestTeapot


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, InvalidArgument),
        (404, errors.NotFound),
        (503, Unavailable),
        (504, errors.DeadlineExceeded),
        (500, errors.Internal),
        (418, errors.Unknown),
    ],
)
def test_from_http_status(status: int, cls: type[Error]) -> None:
    assert type(errors.from_http_status(status, "m")) is cls


def test_as_error() -> None:
    e = InvalidArgument("x")
    assert errors.as_error(e) is e
    assert type(errors.as_error(TimeoutError())) is errors.DeadlineExceeded
    internal = errors.as_error(ValueError("boom"))
    assert type(internal) is errors.Internal and "boom" in internal.message

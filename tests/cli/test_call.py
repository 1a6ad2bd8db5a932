"""`lokit call`'s typed requests from command-line words."""

from __future__ import annotations

import pytest

from lokit.cli.call import request_from_args
from lokit.derive import describe
from lokit.errors import InvalidArgument


class Calc:
    async def add(self, a: int, b: int = 1) -> int:
        return a + b

    async def name(self, s: str, loud: bool = False) -> str:
        return s.upper() if loud else s


def test_request_from_args() -> None:
    ms = {m.name: m for m in describe(Calc())}
    assert request_from_args(ms["Add"], ["1", "2"]) == ms["Add"].request_type(1, 2)
    assert request_from_args(ms["Add"], ["b=5", "1"]) == ms["Add"].request_type(1, 5)
    assert request_from_args(ms["Name"], ["x", "loud=true"]) == ms["Name"].request_type("x", True)
    with pytest.raises(InvalidArgument, match="invalid arguments for Add"):
        request_from_args(ms["Add"], ["one"])
    with pytest.raises(InvalidArgument, match="takes 2 argument"):
        request_from_args(ms["Add"], ["1", "2", "3"])

"""`JsonCodec(fold_case=True)`: request keys matched as Go's encoding/json matches them."""

from __future__ import annotations

import pytest

from lokit.codec import JsonCodec
from lokit.derive import methods_of
from lokit.errors import InvalidArgument
from lokit.examples.addsvc.contract import addsvc_contract


class Calc:
    async def add(self, a: int, b: int) -> int:
        return a + b

    async def scale(self, value: int, factor: int = 2) -> int:
        return value * factor


def _codec(name: str, fold: bool) -> JsonCodec:
    (method,) = [m for m in methods_of(Calc) if m.py_name == name]
    return JsonCodec(method, fold_case=fold)


@pytest.mark.parametrize(
    "body",
    [b'{"a":1,"b":2}', b'{"A":1,"B":2}\n', b'{"a":1,"B":2}', b'{"A":1,"b":2,"C":9}'],
)
def test_folded_keys_decode(body: bytes) -> None:
    req = _codec("add", True).decode_request(body)
    assert (req.a, req.b) == (1, 2)


def test_defaulted_field_is_not_hidden_by_a_folded_key() -> None:
    req = _codec("scale", True).decode_request(b'{"Value":3,"Factor":5}')
    assert (req.value, req.factor) == (3, 5)


def test_last_of_several_keys_wins_as_in_go() -> None:
    req = _codec("scale", True).decode_request(b'{"value":3,"VALUE":4}')
    assert req.value == 4


def test_wrong_type_is_still_one_sentence() -> None:
    with pytest.raises(InvalidArgument, match=r"Expected `int`, got `str` - at `\$.a`"):
        _codec("add", True).decode_request(b'{"A":"x","B":1}')


def test_derived_services_keep_exact_names() -> None:
    with pytest.raises(InvalidArgument, match="missing required field `a`"):
        _codec("add", False).decode_request(b'{"A":1,"B":2}')


def test_addsvc_http_routes_fold() -> None:
    route = addsvc_contract().http_route("Sum")
    assert route is not None
    req = route.codec.decode_request(b'{"A":1,"B":2}')
    assert (req.a, req.b) == (1, 2)

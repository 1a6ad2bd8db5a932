"""Client proxies: a contract's methods calling endpoints by name."""

from __future__ import annotations

from lokit.client import proxy
from lokit.contract import as_contract
from lokit.derive import describe


class Calc:
    async def add(self, a: int, b: int = 1) -> int:
        return a + b

    async def name(self, s: str, loud: bool = False) -> str:
        return s.upper() if loud else s


async def test_proxy_calls_endpoints_by_method_name() -> None:
    local = {m.name: m.endpoint for m in describe(Calc())}
    client = proxy(as_contract(Calc), local)
    assert await client.add(2, 3) == 5
    assert await client.add(a=2) == 3
    assert await client.name("x", loud=True) == "X"

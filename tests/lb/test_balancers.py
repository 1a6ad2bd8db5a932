"""Balancers: distribution, load awareness, ejection of open instances, fallbacks."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pytest

from lokit.circuitbreaker import Breaker
from lokit.errors import Unavailable
from lokit.lb import P2C, Load, RoundRobin, balancer


@dataclass(eq=False)
class Node:
    """An instance as the tests see it: a real breaker whose insides they may read."""

    address: str
    breaker: Breaker
    load: Load = field(default_factory=Load)


def instances(n: int, target: str = "svc") -> list[Node]:
    return [Node(f"unix:{i}.sock", Breaker(target, f"unix:{i}.sock")) for i in range(n)]


def trip(m: Node) -> None:
    for _ in range(m.breaker.failures):
        m.breaker.record(False)


def test_p2c_spreads_evenly_when_loads_are_equal() -> None:
    ms = instances(3)
    p2c = P2C(seed=1)
    got = Counter(p2c.pick(ms).address for _ in range(3000))
    assert set(got) == {m.address for m in ms}
    assert min(got.values()) > 700


def test_p2c_prefers_fewer_outstanding() -> None:
    ms = instances(3)
    ms[0].load.outstanding = 5
    p2c = P2C(seed=2)
    got = Counter(p2c.pick(ms).address for _ in range(1000))
    assert got[ms[0].address] == 0  # always compared with a less loaded one


def test_p2c_ties_go_to_the_lower_latency() -> None:
    ms = instances(2)
    for m, seconds in zip(ms, (0.010, 0.001), strict=True):
        m.load.start()
        m.load.done(seconds)
    assert {P2C(seed=s).pick(ms).address for s in range(20)} == {ms[1].address}


def test_a_slow_instance_is_tried_again_once_its_latency_decays() -> None:
    load = Load(tau=5.0)
    load.start()
    load.done(0.5)
    now = load.stamp
    assert load.latency(now) == 0.5
    assert load.latency(now + 60.0) < 0.0001


def test_load_measure_counts_outstanding() -> None:
    load = Load()
    with load.measure():
        assert load.outstanding == 1
    assert load.outstanding == 0
    assert load.calls == 1


@pytest.mark.parametrize("make", [P2C, RoundRobin])
def test_open_instances_get_no_traffic(make: type[P2C] | type[RoundRobin]) -> None:
    ms = instances(3)
    trip(ms[1])
    b = make()
    got = Counter(b.pick(ms).address for _ in range(300))
    assert ms[1].address not in got
    assert set(got) == {ms[0].address, ms[2].address}


@pytest.mark.parametrize("make", [P2C, RoundRobin])
def test_excluded_instances_are_skipped_then_reused(make: type[P2C] | type[RoundRobin]) -> None:
    ms = instances(3)
    b = make()
    tried = [ms[0].address, ms[1].address]
    assert {b.pick(ms, tried).address for _ in range(50)} == {ms[2].address}
    everything = [m.address for m in ms]
    assert b.pick(ms, everything) in ms  # all tried: an excluded closed one after all
    trip(ms[2])
    assert {b.pick(ms, tried).address for _ in range(50)} <= {ms[0].address, ms[1].address}


@pytest.mark.parametrize("make", [P2C, RoundRobin])
def test_all_open_or_none_raise_unavailable_naming_the_target(
    make: type[P2C] | type[RoundRobin],
) -> None:
    ms = instances(2, "stringsvc")
    for m in ms:
        trip(m)
    b = make()
    with pytest.raises(Unavailable, match=r"^circuit open for stringsvc$"):
        b.pick(ms, target="stringsvc")
    with pytest.raises(Unavailable, match=r"^no endpoints available for stringsvc$"):
        b.pick([], target="stringsvc")
    with pytest.raises(Unavailable, match=r"^circuit open for stringsvc$"):
        b.pick(ms[:1], target="stringsvc")


def test_round_robin_takes_each_in_turn() -> None:
    ms = instances(3)
    rr = RoundRobin()
    assert [rr.pick(ms).address for _ in range(6)] == [m.address for m in ms] * 2


def test_balancer_by_name() -> None:
    assert isinstance(balancer("p2c"), P2C)
    assert isinstance(balancer("round-robin"), RoundRobin)
    with pytest.raises(ValueError, match="unknown balancer 'random': use one of p2c, round-robin"):
        balancer("random")

"""TailCache: a contiguous run of the newest values, within a byte budget."""

from __future__ import annotations

from lokit.logsvc.cache import RECORD_OVERHEAD, TailCache


def test_serves_what_was_appended() -> None:
    c = TailCache(1 << 20)
    assert c.get(0, 10, 1000) is None
    c.add(5, [b"a", b"b"])
    c.add_one(7, b"c")
    assert (c.first, c.end) == (5, 8)
    assert c.get(5, 10, 1000) == [b"a", b"b", b"c"]
    assert c.get(6, 1, 1000) == [b"b"]
    assert c.get(4, 10, 1000) is None and c.get(8, 10, 1000) is None


def test_max_bytes_cuts_but_returns_at_least_one() -> None:
    c = TailCache(1 << 20)
    c.add(0, [b"x" * 10] * 5)
    assert c.get(0, 10, 25) == [b"x" * 10] * 2
    assert c.get(0, 10, 3) == [b"x" * 10]


def test_out_of_order_appends_wait_for_the_gap() -> None:
    c = TailCache(1 << 20)
    c.add(0, [b"0"])
    c.add(3, [b"3"])  # offsets 1-2 are still being appended
    assert c.end == 1 and c.get(3, 5, 100) is None
    c.add(1, [b"1", b"2"])
    assert c.get(0, 10, 100) == [b"0", b"1", b"2", b"3"]


def test_overlap_empties_the_cache() -> None:
    c = TailCache(1 << 20)
    c.add(0, [b"0", b"1"])
    c.add(1, [b"again"])
    assert c.get(0, 10, 100) is None


def test_budget_drops_the_oldest() -> None:
    per = 100 + RECORD_OVERHEAD
    c = TailCache(per * 10)
    for i in range(100):
        c.add_one(i, b"%100d" % i)
    assert c.nbytes <= per * 10
    assert c.end == 100 and c.first > 80
    assert c.get(99, 1, 1000) == [b"%100d" % 99]
    assert c.get(c.first, 100, 1 << 20) == [b"%100d" % i for i in range(c.first, 100)]


def test_disabled() -> None:
    c = TailCache(0)
    c.add(0, [b"a"])
    c.add_one(1, b"b")
    assert c.get(0, 10, 100) is None

"""TailCache: a contiguous run of the newest values, within a byte budget."""

from __future__ import annotations

from lokit.logsvc.cache import RECORD_OVERHEAD, CacheBudget, TailCache


def test_serves_what_was_appended() -> None:
    c = TailCache(1 << 20)
    assert c.get(0, 10, 1000) is None
    c.add(5, [b"a", b"b"])
    c.add_one(7, b"c")
    assert (c.first, c.end) == (5, 8)
    assert c.get(5, 10, 1000) == [b"a", b"b", b"c"]
    assert c.get(6, 1, 1000) == [b"b"]
    assert c.get(4, 10, 1000) is None and c.get(8, 10, 1000) is None
    assert (c.one(5), c.one(7), c.one(4), c.one(8)) == (b"a", b"c", None, None)


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


def test_one_budget_for_every_topic() -> None:
    per = 100 + RECORD_OVERHEAD
    budget = CacheBudget(per * 100)
    caches = [TailCache(budget) for _ in range(40)]
    for i in range(50):
        for c in caches:
            c.add_one(i, b"%100d" % i)
            assert budget.nbytes <= budget.limit
    assert budget.nbytes == sum(c.nbytes for c in caches) <= per * 100
    for c in caches:  # each kept its newest records, if any
        assert c.nbytes == 0 or c.get(49, 1, 1000) == [b"%100d" % 49]
    for i in range(50, 150):  # one busy topic takes the budget from the idle ones
        caches[-1].add_one(i, b"%100d" % i)
    assert budget.nbytes <= per * 100 and caches[0].nbytes == 0
    assert caches[0].get(49, 1, 1000) is None
    assert caches[-1].get(149, 1, 1000) == [b"%100d" % 149]


def test_a_read_keeps_a_topic_warm() -> None:
    per = 10 + RECORD_OVERHEAD
    budget = CacheBudget(per * 20)
    a, b, c = TailCache(budget), TailCache(budget), TailCache(budget)
    a.add(0, [b"a" * 10] * 8)
    b.add(0, [b"b" * 10] * 8)
    assert a.get(0, 10, 1000) is not None  # a was read after b's append
    c.add(0, [b"c" * 10] * 8)  # over the budget: b, the least recently used, gives up first
    assert a.get(0, 10, 1000) == [b"a" * 10] * 8
    assert c.get(0, 10, 1000) == [b"c" * 10] * 8
    assert budget.nbytes <= budget.limit and b.first > 0


def test_batches_and_clear_keep_the_budget_exact() -> None:
    budget = CacheBudget(1 << 20)
    a, b = TailCache(budget), TailCache(budget)
    a.add(0, [b"x" * 1000] * 10)
    b.add(0, [b"y" * 1000] * 10)
    assert budget.nbytes == a.nbytes + b.nbytes == 2 * 10 * (1000 + RECORD_OVERHEAD)
    a.add(3, [b"again"])  # an overlap empties a
    assert budget.nbytes == b.nbytes
    b.clear()
    assert budget.nbytes == 0 and not budget.caches


def test_a_single_huge_batch_is_cut_to_the_budget() -> None:
    budget = CacheBudget(10_000)
    c = TailCache(budget)
    c.add(0, [b"z" * 100] * 1000)
    assert budget.nbytes <= 10_000 and c.end == 1000
    assert c.get(999, 1, 1000) == [b"z" * 100]

"""Rates and storage URIs as users write them; mistakes in one sentence."""

from __future__ import annotations

import pytest

from lokit.ratelimit import Rate, parse_rate, parse_spec, storage_uri


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("100/second", Rate(100, 1, "second")),
        ("10/minute", Rate(10, 1, "minute")),
        ("5 per 2 seconds", Rate(5, 2, "second")),
        (" 7 / Hour ", Rate(7, 1, "hour")),
        ("1/day", Rate(1, 1, "day")),
    ],
)
def test_rates_in_limits_notation(text: str, rate: Rate) -> None:
    assert parse_rate(text) == rate
    item = rate.item()  # the same rate for the limits library
    assert (item.amount, item.multiples, item.get_expiry()) == (rate.amount, rate.per, rate.window)


def test_rate_interval_and_text() -> None:
    assert parse_rate("50/second").interval == 0.02
    assert str(parse_rate("5 per 2 seconds")) == "5/2 seconds"
    assert str(parse_rate("100/second")) == "100/second"


@pytest.mark.parametrize("text", ["abc", "100", "100/sec", "-1/second", "1/second;2/minute", ""])
def test_bad_rates(text: str) -> None:
    with pytest.raises(ValueError, match=r"is not a rate: write it as N/UNIT, such as 100/second"):
        parse_rate(text)


def test_zero_allows_nothing() -> None:
    with pytest.raises(ValueError, match="allows no call at all"):
        parse_rate("0/second")


def test_specs() -> None:
    assert parse_spec("20/second") == (None, Rate(20, 1, "second"))
    assert parse_spec("Sum=5/second") == ("Sum", Rate(5, 1, "second"))
    with pytest.raises(ValueError, match="names no method"):
        parse_spec("=5/second")
    with pytest.raises(ValueError, match="is not a rate"):
        parse_spec("Sum=lots")


@pytest.mark.parametrize(
    ("uri", "mapped"),
    [
        ("memory://", "async+memory://"),
        ("redis://127.0.0.1:6379", "async+redis://127.0.0.1:6379"),
        ("redis://:secret@localhost:6379/2", "async+redis://:secret@localhost:6379/2"),
        ("rediss://cache.example:6380", "async+rediss://cache.example:6380"),
        ("redis+unix:///run/redis/redis.sock", "async+redis+unix:///run/redis/redis.sock"),
    ],
)
def test_storage_uris(uri: str, mapped: str) -> None:
    assert storage_uri(uri) == mapped


@pytest.mark.parametrize(
    ("uri", "why"),
    [
        ("memcached://x:1", "is not a rate limit storage"),
        ("127.0.0.1:6379", "is not a rate limit storage"),
        ("redis://", "names no Redis host"),
        ("redis://host:port", "names no Redis host"),
        ("redis+unix://relative.sock", "names no socket"),
    ],
)
def test_bad_storage_uris(uri: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        storage_uri(uri)


def test_passwords_stay_out_of_logs() -> None:
    from lokit.ratelimit.rates import redacted

    assert redacted("redis://:secret@cache:6379/0") == "redis://:***@cache:6379/0"
    assert redacted("redis://cache:6379") == "redis://cache:6379"

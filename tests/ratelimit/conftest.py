"""Fixtures: a real Redis per module (flushed per test), and one per test to kill."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.ratelimit.redis import RedisServer


@pytest.fixture(scope="module")
def shared_redis() -> Iterator[RedisServer]:
    server = RedisServer()
    yield server
    server.stop()


@pytest.fixture
def redis(shared_redis: RedisServer) -> RedisServer:
    shared_redis.flush()
    return shared_redis


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A Redis of this test's own, which it may kill."""
    server = RedisServer()
    yield server
    server.stop()

"""HTTP JSON: proglog's chapter-1 routes byte for byte, the resource routes, and 400s."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from tests.logsvc.conftest import InProcess
from tests.logsvc.test_streams import open_streams, until

B64 = "TGV0J3MgR28gIzEK"  # "Let's Go #1\n"


class Http:
    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    async def __call__(
        self, verb: str, path: str, body: bytes | str | None = None
    ) -> tuple[int, bytes]:
        async with self.session.request(verb, "http://log" + path, data=body) as r:
            return r.status, await r.read()

    async def json(self, verb: str, path: str, body: Any = None) -> tuple[int, Any]:
        status, data = await self(verb, path, None if body is None else orjson.dumps(body))
        return status, orjson.loads(data)


@pytest.fixture
async def http(server: InProcess) -> AsyncIterator[Http]:
    connector = aiohttp.UnixConnector(path=str(Path(server.http.removeprefix("unix:")).resolve()))
    async with aiohttp.ClientSession(connector=connector) as session:
        yield Http(session)


def b64(v: bytes) -> str:
    return base64.b64encode(v).decode()


async def test_chapter1_produce_and_consume_byte_for_byte(http: Http) -> None:
    assert await http("POST", "/", f'{{"record":{{"value":"{B64}"}}}}') == (200, b'{"offset":0}\n')
    assert await http("GET", "/", '{"offset":0}') == (
        200,
        b'{"record":{"value":"%s","offset":0}}\n' % B64.encode(),
    )


async def test_chapter1_past_the_end_is_404(http: Http) -> None:
    status, body = await http.json("GET", "/", {"offset": 0})
    assert status == 404
    assert body == {"error": "offset out of range: 0"}


@pytest.mark.parametrize(
    ("verb", "body", "text"),
    [
        ("POST", '{"record":', "malformed JSON"),
        ("POST", '{"record":{"value":"not base64!"}}', "Invalid base64"),
        ("POST", '{"record":{"value":5}}', "Expected `bytes`, got `int`"),
        ("POST", f'{{"value":"{B64}"}}', "missing required field `record`"),
        ("POST", "", "the request body is empty"),
        ("GET", '{"offset":-1}', "Expected `int` >= 0"),
        ("GET", '{"offset":"zero"}', "Expected `int`"),
        ("GET", "[1,2]", "Expected `object`"),
    ],
)
async def test_bad_requests_are_400_with_one_sentence(
    http: Http, verb: str, body: str, text: str
) -> None:
    status, data = await http(verb, "/", body)
    assert status == 400
    message = orjson.loads(data)["error"]
    assert text in message and "Traceback" not in message and "\n" not in message


async def test_topic_routes(http: Http) -> None:
    status, body = await http.json(
        "POST", "/topics/orders/records", {"values": [b64(b"a"), b64(b"b"), b64(b"c")]}
    )
    assert (status, body) == (200, {"first_offset": 0, "count": 3})
    status, body = await http.json("GET", "/topics/orders/records/1")
    assert (status, body) == (200, {"record": {"value": b64(b"b"), "offset": 1}})
    status, body = await http.json("GET", "/topics/orders/records/3")
    assert status == 404 and body["error"] == "offset out of range: 3"
    status, body = await http.json("GET", "/topics/orders/records?from=1&max_records=1")
    assert body == {"first_offset": 1, "values": [b64(b"b")], "end_offset": 3}
    status, body = await http.json("GET", "/topics")
    (topic,) = body["topics"]
    assert topic["name"] == "orders" and topic["size_bytes"] > 0
    assert (topic["lowest_offset"], topic["next_offset"]) == (0, 3)
    status, body = await http.json("GET", "/servers")
    assert status == 200 and body["servers"][0]["is_leader"] is True


async def test_positions_routes(http: Http) -> None:
    await http.json("POST", "/topics/t/records", {"values": [b64(b"x")] * 4})
    assert await http.json("GET", "/consumers/g1/positions/t") == (
        200,
        {"offset": 0, "found": False},
    )
    assert await http.json("PUT", "/consumers/g1/positions/t", {"offset": 3}) == (200, {})
    assert await http.json("GET", "/consumers/g1/positions/t") == (
        200,
        {"offset": 3, "found": True},
    )
    status, body = await http.json("PUT", "/consumers/g1/positions/t", {"offset": 9})
    assert status == 400 and "past the end" in body["error"]


async def test_stream_ndjson_to_the_end(http: Http) -> None:
    await http.json("POST", "/topics/s/records", {"values": [b64(b"%d" % i) for i in range(5)]})
    status, data = await http("GET", "/topics/s/stream?from=2&follow=false&max_records=2")
    assert status == 200
    lines = [orjson.loads(line) for line in data.splitlines()]
    assert lines == [{"offset": i, "value": b64(b"%d" % i)} for i in range(2, 5)]


async def test_stream_ndjson_follows_new_records(http: Http, server: InProcess) -> None:
    async def first_line() -> bytes:
        async with http.session.get("http://log/topics/f/stream?from=0") as r:
            assert r.status == 200  # the headers come with the first record
            return await r.content.readline()

    before = open_streams()
    reader = asyncio.create_task(first_line())
    await until(lambda: open_streams() == before + 1, "the stream to open")
    assert not reader.done()
    assert not (server.data / "f").exists()  # following a new name creates nothing
    await http.json("POST", "/topics/f/records", {"values": [b64(b"later")]})
    line = await asyncio.wait_for(reader, 15)
    assert orjson.loads(line) == {"offset": 0, "value": b64(b"later")}


async def test_get_stream_on_a_new_name_leaves_no_directory(http: Http, server: InProcess) -> None:
    async def read() -> bytes:
        async with http.session.get("http://log/topics/nothing-here/stream") as r:
            return await r.read()

    before = open_streams()
    reader = asyncio.create_task(read())
    await until(lambda: open_streams() == before + 1, "the stream to open")
    reader.cancel()  # the client goes away
    await until(lambda: open_streams() == before, "the server to end the stream")
    assert await http("GET", "/topics/nothing-here/stream?follow=false") == (200, b"")
    status, body = await http.json("GET", "/topics/nothing-here/records?wait_ms=10")
    assert (status, body) == (200, {"first_offset": 0, "values": [], "end_offset": 0})
    assert not (server.data / "nothing-here").exists()
    assert (await http.json("GET", "/topics"))[1]["topics"] == []


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ("/topics/t/records?from=abc", "query parameter from must be a non-negative integer"),
        ("/topics/t/records?from=-1", "query parameter from must be a non-negative integer"),
        ("/topics/t/stream?follow=maybe", "query parameter follow must be true or false"),
        ("/topics/t/records/x1", "the offset in the path must be a non-negative integer"),
        ("/topics/t/records?from=%C2%B2", "query parameter from must be a non-negative integer"),
        ("/topics/t/records/%C2%B2", "the offset in the path must be a non-negative integer"),
        ("/topics/.hidden/records/0", "invalid topic name '.hidden'"),
    ],
)
async def test_bad_parameters_are_400(http: Http, path: str, text: str) -> None:
    status, body = await http.json("GET", path)
    assert status == 400 and text in body["error"]


async def test_bad_batch_bodies_are_400(http: Http) -> None:
    status, body = await http.json("POST", "/topics/t/records", {"values": ["@@"]})
    assert status == 400 and "Invalid base64" in body["error"]
    status, body = await http.json("POST", "/topics/t/records", {"values": []})
    assert status == 400 and "at least one record" in body["error"]
    status, data = await http("POST", "/topics/t/records", b"\xff")
    assert status == 400 and b"malformed JSON" in data

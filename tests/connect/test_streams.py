"""Connect streams over raw HTTP: enveloped messages in both codecs, the end-of-stream message,
an error in the middle of a stream, a client stream read half duplex; and the log's methods."""

from __future__ import annotations

import base64

import orjson
import pytest

from lokit.proto import log_pb2
from lokit.transport.http.connect import envelope
from tests.connect.conftest import Served
from tests.connect.servers import frames, json_frames

pytestmark = pytest.mark.asyncio(loop_scope="module")

STREAM_JSON = "application/connect+json"
STREAM_PROTO = "application/connect+proto"


@pytest.mark.parametrize("via", ["unix", "tcp"])
async def test_a_server_stream_ends_with_an_empty_end_message(
    probe_server: Served, via: str
) -> None:
    body = json_frames({"n": 3})
    r = await probe_server.post("/probe.v1.Probe/Count", body, STREAM_JSON, via=via)
    assert r.status == 200
    assert r.headers["content-type"] == STREAM_JSON
    got = frames(r.body)
    assert [orjson.loads(d) for f, d in got[:-1] if f == 0] == [{"v": 3}, {"v": 2}, {"v": 1}]
    assert got[-1][0] == 0x02
    assert orjson.loads(got[-1][1]) == {}


async def test_an_error_mid_stream_is_in_the_end_message(probe_server: Served) -> None:
    r = await probe_server.post(
        "/probe.v1.Probe/Count", json_frames({"n": 5, "fail_at": 3}), STREAM_JSON
    )
    assert r.status == 200  # a stream's status is always 200
    got = frames(r.body)
    assert [orjson.loads(d) for _, d in got[:-1]] == [{"v": 5}, {"v": 4}]
    flags, data = got[-1]
    assert flags == 0x02
    assert orjson.loads(data) == {
        "error": {"code": "invalid_argument", "message": "stopped at 3"},
        "metadata": {"x-lokit-error": ["lokit.INVALID_ARGUMENT"]},
    }


async def test_an_error_before_the_first_message_is_in_the_end_message(
    probe_server: Served,
) -> None:
    r = await probe_server.post("/probe.v1.Probe/Count", json_frames({"n": "x"}), STREAM_JSON)
    assert r.status == 200
    ((flags, data),) = frames(r.body)
    assert flags == 0x02
    assert orjson.loads(data)["error"]["code"] == "invalid_argument"


async def test_a_stream_deadline(probe_server: Served) -> None:
    r = await probe_server.post(
        "/probe.v1.Probe/Count",
        json_frames({"n": 2}),
        STREAM_JSON,
        headers={"connect-timeout-ms": "abc"},
    )
    assert orjson.loads(frames(r.body)[-1][1])["error"]["code"] == "invalid_argument"


async def test_a_truncated_envelope_is_invalid_argument(probe_server: Served) -> None:
    r = await probe_server.post("/probe.v1.Probe/Count", json_frames({"n": 2})[:-2], STREAM_JSON)
    assert orjson.loads(frames(r.body)[-1][1])["error"]["code"] == "invalid_argument"


async def test_a_client_stream_is_read_whole(probe_server: Served) -> None:
    r = await probe_server.post("/probe.v1.Probe/Total", json_frames(1, 2, 3, 4), STREAM_JSON)
    got = frames(r.body)
    assert orjson.loads(got[0][1]) == {"v": 10}
    assert got[-1] == (0x02, b"{}")


async def test_the_logs_proto_stream(log_server: Served) -> None:
    body = b"".join(
        envelope(
            log_pb2.ProduceRequest(record=log_pb2.Record(value=b"r%d" % i)).SerializeToString()
        )
        for i in range(3)
    )
    r = await log_server.post("/log.v1.Log/ProduceStream", body, STREAM_PROTO)
    assert r.status == 200
    assert r.headers["content-type"] == STREAM_PROTO
    got = frames(r.body)
    offsets = [log_pb2.ProduceResponse.FromString(d).offset for f, d in got[:-1]]
    assert len(offsets) == 3 and offsets == sorted(offsets)
    assert got[-1] == (0x02, b"{}")
    # and read back with Connect JSON (bytes as base64, uint64 as a string)
    r = await log_server.post("/log.v1.Log/Consume", orjson.dumps({"offset": str(offsets[1])}))
    assert r.status == 200, r.body
    record = orjson.loads(r.body)["record"]
    assert base64.b64decode(record["value"]) == b"r1"
    assert record["offset"] == str(offsets[1])


async def test_the_logs_not_found_is_connects(log_server: Served) -> None:
    r = await log_server.post("/log.v1.Log/Consume", b'{"offset":"999999"}')
    body = orjson.loads(r.body)
    assert r.status in (400, 404)
    assert body["code"] in ("out_of_range", "not_found")
    assert r.headers["x-lokit-error"]

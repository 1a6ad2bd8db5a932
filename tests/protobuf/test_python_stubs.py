"""Python stubs that grpcio-tools generates at test time from `lokit proto` call the service."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

import pytest

import lokit
from lokit.protobuf import schema_of
from tests.protobuf.conftest import Served
from tests.protobuf.services import Kitchen

pytestmark = pytest.mark.asyncio(loop_scope="module")

CLIENT = """
import sys

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from kitchen.v1 import kitchen_pb2 as pb, kitchen_pb2_grpc as rpc

with grpc.insecure_channel(sys.argv[1]) as channel:
    stub = rpc.KitchenStub(channel)
    print(stub.Greet(pb.GreetRequest(name="ada", excited=True)).v)
    print(stub.Greet(pb.GreetRequest(name="bob")).v)
    print([r.v for r in stub.Countdown(pb.CountdownRequest(n=3))])
    e = stub.Echo(pb.Everything(
        s="x", i=7, tags=["a"], scores={"k": 2}, color=pb.COLOR_GREEN, level=pb.LEVEL_HIGH,
        at=Timestamp(seconds=1700000000), inner=pb.Inner(label="in"), box=pb.Box(name="b"),
    ))
    print(e.s, e.i, list(e.tags), dict(e.scores), e.color, e.level, e.at.seconds, e.inner.label,
          e.box.name, e.HasField("maybe"), e.count)
    try:
        stub.Greet(pb.GreetRequest(name=""))
    except grpc.RpcError as err:
        print(err.code().name, err.details(), dict(err.trailing_metadata())["lokit-error"])
"""


async def test_generated_python_stubs_call_the_derived_service(
    kitchen: Served, tmp_path: Path
) -> None:
    schema = schema_of(lokit.contract("kitchen", Kitchen))
    assert schema is not None
    source = tmp_path / "kitchen" / "v1" / "kitchen.proto"
    source.parent.mkdir(parents=True)
    source.write_text(schema.proto_text())
    include = str(files("grpc_tools") / "_proto")
    gen = [
        sys.executable, "-m", "grpc_tools.protoc", f"-I{tmp_path}", f"-I{include}",
        f"--python_out={tmp_path}", f"--grpc_python_out={tmp_path}", "kitchen/v1/kitchen.proto",
    ]  # fmt: skip
    made = await asyncio.to_thread(subprocess.run, gen, capture_output=True, text=True, check=False)
    assert made.returncode == 0, made.stderr
    (tmp_path / "client.py").write_text(CLIENT)
    run = [sys.executable, "client.py", kitchen.grpc]
    done = await asyncio.to_thread(
        subprocess.run, run, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "hello, ada!",
        "hello, bob",
        "[3, 2, 1]",
        "x 7 ['a'] {'k': 2} 2 5 1700000000 in b False 7",
        "INVALID_ARGUMENT name is required tests.protobuf.NameRequired",
    ]

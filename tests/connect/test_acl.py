"""The ACL wraps endpoints, so it holds on the Connect paths too (the Unix peer is the caller)."""

from __future__ import annotations

import getpass
from pathlib import Path

import orjson

from lokit.auth import Authorizer, acl
from lokit.runtime import Extension, Listeners, Runtime
from tests.auth.acl_files import write_acl
from tests.connect.conftest import Served
from tests.connect.servers import frames, json_frames, probe


async def test_the_acl_holds_on_connect_paths(tmp_path: Path) -> None:
    model, policy = write_acl(tmp_path, "p, somebody-else, *, read\n")
    sock = f"unix:{tmp_path}/acl.sock"
    ext = Extension(middleware=acl(Authorizer(model, policy)))
    rt = Runtime(probe(), Listeners([], [sock], None, 1.0), (ext,))
    await rt.start()
    try:
        served = Served(rt, "", sock)
        r = await served.post("/probe.v1.Probe/Greet", b'{"name":"a"}')
        assert r.status == 403
        body = orjson.loads(r.body)
        assert body["code"] == "permission_denied"
        assert getpass.getuser() in body["message"]
        r = await served.post(
            "/probe.v1.Probe/Count", json_frames({"n": 1}), "application/connect+json"
        )
        assert orjson.loads(frames(r.body)[-1][1])["error"]["code"] == "permission_denied"
    finally:
        await rt.stop()

"""addsvc's expectations of stringsvc over HTTP as a pact, verified against a real stringsvc.

The workshop's step 19. Consumer side: addsvc's own `ConcatTransform` calls
Uppercase through lokit's real HTTP client (`lokit.connect(..., http=...)`)
against pact's mock server, so the pact records what lokit sends (the JSON
body, the content type, the request id and the deadline) and what it can
decode. Provider side: pact's verifier replays the pact against a real
`lokit serve stringsvc` process, and refuses a server that breaks it.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from pact import Pact, Verifier, match
from pact.interaction import HttpInteraction

import lokit
from lokit.examples.addsvc.middleware import ConcatTransform
from lokit.examples.addsvc.service import AddService
from lokit.examples.stringsvc.contract import stringsvc_contract
from lokit.examples.stringsvc.service import EmptyStringError
from tests.e2e.procs import LokitProcess

CONSUMER, PROVIDER = "addsvc", "stringsvc"
REQUEST_ID = "0123456789abcdef0123456789abcdef"  # an example; any 32 hex digits match


def _request(pact: Pact, description: str, body: dict[str, str]) -> HttpInteraction:
    """`POST /uppercase` as lokit's HTTP client sends it: JSON, a request id, a deadline.

    Every interaction states the same headers: pact's mock server (FFI 0.5.12)
    stops matching an interaction without header rules once another one has them.
    """
    return (
        pact.upon_receiving(description)
        .with_request("POST", "/uppercase")
        .with_header("Content-Type", "application/json")
        .with_header("X-Request-Id", match.regex(REQUEST_ID, regex="[0-9a-f]{32}"))
        .with_header("X-Request-Timeout-Ms", match.regex("2000", regex="[0-9]+"))
        .with_body(body, "application/json")
    )


def _expectations() -> Pact:
    """What addsvc's Concat needs from stringsvc's `POST /uppercase`."""
    pact = Pact(CONSUMER, PROVIDER)
    (
        _request(pact, "an uppercase of foo", {"s": "foo"})
        .will_respond_with(200)
        .with_header("Content-Type", "application/json")
        .with_body({"v": "FOO"}, "application/json")
    )
    (
        _request(pact, "an uppercase of the empty string", {"s": ""})
        .will_respond_with(400)
        .with_header("Content-Type", "application/json")
        .with_header("X-Lokit-Error", "stringsvc.EmptyString")
        .with_body({"error": "empty string"}, "application/json")
    )
    return pact


async def _concat_through(addr: str) -> None:
    """addsvc's Concat, uppercased by the stringsvc at `addr` (HTTP), as addsvc wires it."""
    async with lokit.connect(stringsvc_contract(), http=addr, timeout=2.0) as remote:
        concat = ConcatTransform(AddService(), remote.uppercase)
        assert await concat.concat("fo", "o") == "FOO"
        with pytest.raises(EmptyStringError, match="empty string"):
            await concat.concat("", "")


@pytest.fixture(scope="module")
def pact_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The consumer test: addsvc against the mock server, which writes the pact file."""
    pact = _expectations()
    out = tmp_path_factory.mktemp("pacts")
    with pact.serve(addr="127.0.0.1") as mock:  # raises on any unmatched or missing request
        asyncio.run(_concat_through(f"127.0.0.1:{mock.port}"))
    pact.write_file(out, overwrite=True)
    (path,) = out.glob("*.json")
    return path


def test_consumer_records_what_lokit_sends(pact_file: Path) -> None:
    recorded = json.loads(pact_file.read_text())
    assert (recorded["consumer"]["name"], recorded["provider"]["name"]) == (CONSUMER, PROVIDER)
    by_name = {i["description"]: i for i in recorded["interactions"]}
    ok = by_name["an uppercase of foo"]
    assert ok["request"]["method"] == "POST" and ok["request"]["path"] == "/uppercase"
    assert ok["request"]["body"]["content"] == {"s": "foo"}
    assert {"X-Request-Id", "X-Request-Timeout-Ms"} <= set(ok["request"]["headers"])
    assert ok["response"]["body"]["content"] == {"v": "FOO"}
    refused = by_name["an uppercase of the empty string"]
    assert refused["response"]["status"] == 400


def _verify(pact_file: Path, port: int) -> None:
    (
        Verifier(PROVIDER, host="127.0.0.1")
        .set_coloured_output(enabled=False)
        .add_transport(url=f"http://127.0.0.1:{port}")
        .add_source(pact_file)
        .verify()
    )


def _serve_http(service: str, cwd: Path) -> LokitProcess:
    return LokitProcess(["serve", service, "--http", "127.0.0.1:0"], cwd).wait_ready(1)


def test_provider_stringsvc_honours_the_pact(pact_file: Path, tmp_path: Path) -> None:
    stringsvc = _serve_http("stringsvc", tmp_path)
    try:
        _verify(pact_file, int(stringsvc.addr("http").rsplit(":", 1)[1]))
    finally:
        stringsvc.stop()


def test_provider_that_breaks_the_pact_fails_verification(pact_file: Path, tmp_path: Path) -> None:
    # addsvc has no /uppercase: 404 where the pact says 200 and 400.
    addsvc = _serve_http("addsvc", tmp_path)
    try:
        with pytest.raises(RuntimeError):
            _verify(pact_file, int(addsvc.addr("http").rsplit(":", 1)[1]))
    finally:
        addsvc.stop()

"""`srv:` discovery against a real dnsmasq on a loopback port."""

from __future__ import annotations

import asyncio
import signal

import pytest

from lokit.sd import instancer_for
from lokit.sd.srv import SrvInstancer
from lokit.transport.address import AddressError
from tests.sd.conftest import Dnsmasq
from tests.sd.helpers import Recorder, errors, eventually

NAME = "_grpc._tcp.stringsvc.test"


def _srv(
    dns: Dnsmasq, monkeypatch: pytest.MonkeyPatch, target: str = f"srv:{NAME}"
) -> SrvInstancer:
    monkeypatch.setenv("LOKIT_DNS_SERVER", dns.address)
    inst = instancer_for(target, "grpc")
    assert isinstance(inst, SrvInstancer)
    return inst


async def test_srv_resolves_target_port_and_follows_a_changed_record(
    dnsmasq: Dnsmasq, monkeypatch: pytest.MonkeyPatch
) -> None:
    dnsmasq.start(f"{NAME},a.test,9001", f"{NAME},127.0.0.1,9002,10,5")
    inst = _srv(dnsmasq, monkeypatch)
    await inst.start()
    rec = Recorder(inst)
    assert rec.sets == [("127.0.0.1:9002", "a.test:9001")]
    dnsmasq.restart(f"{NAME},b.test,9003")  # a new record, TTL 1 s
    await rec.wait(lambda s: s == ("b.test:9003",))
    assert rec.sets == [("127.0.0.1:9002", "a.test:9001"), ("b.test:9003",)]
    await inst.close()


async def test_srv_keeps_the_last_set_when_the_server_dies(
    dnsmasq: Dnsmasq, monkeypatch: pytest.MonkeyPatch
) -> None:
    dnsmasq.start(f"{NAME},a.test,9001")
    inst = _srv(dnsmasq, monkeypatch)
    await inst.start()
    rec = Recorder(inst)
    before = errors(inst.target)
    dnsmasq.stop(signal.SIGKILL)
    await eventually(lambda: errors(inst.target) > before, within=15)
    assert inst.instances == ("a.test:9001",)
    assert rec.sets == [("a.test:9001",)]
    await inst.close()


async def test_srv_unknown_name_at_start_is_an_empty_set_and_an_error(
    dnsmasq: Dnsmasq, monkeypatch: pytest.MonkeyPatch
) -> None:
    dnsmasq.start(f"{NAME},a.test,9001")
    inst = _srv(dnsmasq, monkeypatch, "srv:_nothing._tcp.test")
    before = errors(inst.target)
    await inst.start()
    assert inst.instances == ()
    assert errors(inst.target) == before + 1
    rec = Recorder(inst)
    await asyncio.sleep(0)
    assert rec.sets == []  # no set was ever resolved: nothing to send yet
    await inst.close()


def test_a_malformed_dns_server_fails_in_one_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOKIT_DNS_SERVER", "dns.example:53")
    with pytest.raises(AddressError, match="must be IP:PORT"):
        instancer_for(f"srv:{NAME}", "grpc")

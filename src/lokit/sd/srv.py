"""`srv:NAME`: the targets of NAME's DNS SRV records, as `target:port`, re-resolved at their TTL.

dnspython's `dns.asyncresolver` asks the system's resolvers, or the one server
`LOKIT_DNS_SERVER=HOST:PORT` names. The records are resolved again when their
TTL runs out, at least every 30 s (and at most every second, so a TTL of 0 is
not a hot loop). Every record counts, whatever its priority and weight (as in
Go kit's `sd/dnssrv`): the balancer spreads the load. A failed lookup (timeout,
NXDOMAIN, no answer) keeps the last known set.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import TYPE_CHECKING

from lokit.sd.backoff import Backoff
from lokit.sd.instancer import PollingInstancer
from lokit.transport.address import AddressError, parse

if TYPE_CHECKING:
    import dns.asyncresolver

MIN_INTERVAL = 1.0
MAX_INTERVAL = 30.0
LOOKUP_TIMEOUT = 2.0  # seconds for one lookup, retries to every server included


def dns_server(text: str) -> tuple[str, int]:
    """`HOST:PORT` of `LOKIT_DNS_SERVER` as (ip, port); AddressError in one sentence."""
    try:
        addr = parse(text)
        if addr.host is None or addr.port is None:
            raise AddressError("not HOST:PORT")
        ipaddress.ip_address(addr.host)
    except (AddressError, ValueError):
        raise AddressError(
            f"LOKIT_DNS_SERVER={text!r} must be IP:PORT, such as 127.0.0.1:5353"
        ) from None
    return addr.host, addr.port


class SrvInstancer(PollingInstancer):
    """`target:port` of every SRV record of `name`."""

    def __init__(self, target: str, name: str, server: str | None = None) -> None:
        super().__init__(target, Backoff(initial=0.25, cap=10.0))
        self.name = name
        self.server = dns_server(server) if server else None
        self._resolver: dns.asyncresolver.Resolver | None = None

    def _make_resolver(self) -> dns.asyncresolver.Resolver:
        import dns.asyncresolver

        if self.server is None:
            resolver = dns.asyncresolver.Resolver()
        else:
            resolver = dns.asyncresolver.Resolver(configure=False)
            resolver.nameservers = [self.server[0]]
            resolver.port = self.server[1]
        resolver.lifetime = LOOKUP_TIMEOUT
        resolver.timeout = LOOKUP_TIMEOUT / 2
        return resolver

    async def _poll(self) -> tuple[Iterable[str], float]:
        import dns.exception
        import dns.rdtypes.IN.SRV

        if self._resolver is None:
            self._resolver = self._make_resolver()
        try:
            answer = await self._resolver.resolve(self.name, "SRV")
        except dns.exception.DNSException as e:
            raise OSError(f"SRV lookup of {self.name} failed: {e}") from None
        found: list[str] = []
        for rdata in answer:
            assert isinstance(rdata, dns.rdtypes.IN.SRV.SRV)
            host = rdata.target.to_text(omit_final_dot=True)
            if host in ("", ".") or rdata.port == 0:
                continue  # "no service here" (RFC 2782) or no port
            found.append(f"[{host}]:{rdata.port}" if ":" in host else f"{host}:{rdata.port}")
        ttl = answer.rrset.ttl if answer.rrset is not None else MAX_INTERVAL
        return found, min(MAX_INTERVAL, max(MIN_INTERVAL, float(ttl)))

"""What TLS and mTLS cost a lokit call, and what an ACL decision costs.

Cases `grpc-tcp` and `http-tcp`: addsvc Sum served by `lokit serve addsvc` on
127.0.0.1, called by lokit's own client (`lokit.connect`, one kept-alive
connection, sequential calls). Systems `plain` (no TLS), `tls` (server
certificate, the client checks it against the CA) and `mtls` (`--tls-client-ca`:
the client presents `root`'s certificate too). The three servers run at once and
are called in alternating blocks, so they share whatever else the machine does.
Metric `p50_us`. Target: mtls <= 1.15 x plain on both transports. The handshake
happens once per connection (not measured: it is amortised over kept-alive
calls); what is measured is record encryption and decryption per call.

Case `acl`, systems `cached` and `uncached`, metric `us_per_call`: the ACL
middleware's decision per call, from `bench/_acl.py` (`measure_acl`) when it is
there. Target: cached <= 5 µs.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import Row, free_port, parser, percentile, report, stop

HERE = Path(__file__).resolve().parent
SYSTEMS = ("plain", "tls", "mtls")
CASES = ("grpc-tcp", "http-tcp")


def make_certs(directory: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate `root`."""
    from lokit.security.certs import init_ca, issue

    init_ca(directory)
    server = issue(directory, "server", server=True)
    root = issue(directory, "root")
    return {
        "ca": directory / "ca.pem",
        "server": server.cert,
        "server_key": server.key,
        "root": root.cert,
        "root_key": root.key,
    }


def start_server(system: str, certs: dict[str, Path], cwd: str) -> tuple[Any, str, str]:
    """`lokit serve addsvc` on two TCP ports with `system`'s TLS; (process, grpc, http)."""
    grpc_addr, http_addr = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    cmd = [sys.executable, "-m", "lokit", "serve", "addsvc", "--grpc", grpc_addr]
    cmd += ["--http", http_addr]
    if system != "plain":
        cmd += ["--tls-cert", str(certs["server"]), "--tls-key", str(certs["server_key"])]
    if system == "mtls":
        cmd += ["--tls-client-ca", str(certs["ca"])]
    env = {**os.environ, "OTEL_TRACES_EXPORTER": "none", "GRPC_VERBOSITY": "NONE"}
    proc = subprocess.Popen(
        cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
    )
    assert proc.stdout is not None
    for _ in range(2):
        if not proc.stdout.readline():
            raise SystemExit(f"{system} server did not start: {' '.join(cmd)}")
    return proc, grpc_addr, http_addr


def client_tls(system: str, certs: dict[str, Path]) -> Any:
    from lokit.security.tls import ClientTLS

    if system == "plain":
        return None
    if system == "tls":
        return ClientTLS.load(str(certs["ca"]))
    return ClientTLS.load(str(certs["ca"]), str(certs["root"]), str(certs["root_key"]))


async def calls(svc: Any, n: int) -> list[float]:
    out: list[float] = []
    for _ in range(n):
        t0 = time.perf_counter()
        v = await svc.sum(1, 2)
        out.append(time.perf_counter() - t0)
        assert v == 3
    return out


def measure(
    certs: dict[str, Path], n: int, warmup: int, blocks: int, cwd: str
) -> dict[str, list[float]]:
    """Latencies per (case, system): all servers up at once, called in alternating blocks."""
    from lokit import connect
    from lokit.examples.addsvc.contract import addsvc_contract

    servers = {s: start_server(s, certs, cwd) for s in SYSTEMS}
    per_block = max(1, n // blocks)

    async def go() -> dict[str, list[float]]:
        spec = addsvc_contract()
        conns: dict[str, Any] = {}
        for s, (_, grpc_addr, http_addr) in servers.items():
            tls = client_tls(s, certs)
            conns[f"grpc-tcp/{s}"] = connect(spec, grpc=grpc_addr, tls=tls, timeout=5.0)
            conns[f"http-tcp/{s}"] = connect(spec, http=http_addr, tls=tls, timeout=5.0)
        lat: dict[str, list[float]] = {key: [] for key in conns}
        try:
            for conn in conns.values():
                await calls(conn.service, warmup)
            for _ in range(blocks):
                for key, conn in conns.items():
                    lat[key] += await calls(conn.service, per_block)
        finally:
            for conn in conns.values():
                await conn.close()
        return lat

    try:
        import uvloop

        return uvloop.run(go())
    finally:
        for proc, _, _ in servers.values():
            stop(proc)


def acl_rows(quick: bool) -> list[Row]:
    """The `acl` case from bench/_acl.py's `measure_acl`, or no rows when it is not there."""
    sys.path.insert(0, str(HERE))
    try:
        module = importlib.import_module("_acl")
    except ImportError:
        print("acl: bench/_acl.py is not there; no acl rows", file=sys.stderr)
        return []
    figures = module.measure_acl(quick)
    return [Row("acl", s, "us_per_call", figures[s], "µs") for s in ("cached", "uncached")]


def main() -> None:
    args = parser(__doc__ or "").parse_args()
    n, warmup, blocks = (3000, 300, 12) if args.quick else (20000, 1000, 40)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as cwd:
        certs = make_certs(Path(cwd) / "certs")
        lat = measure(certs, n, warmup, blocks, cwd)
    for case in CASES:
        for system in SYSTEMS:
            us = [x * 1e6 for x in lat[f"{case}/{system}"]]
            rows.append(Row(case, system, "p50_us", percentile(us, 50), "µs"))
    rows += acl_rows(args.quick)
    report(rows, args, f"addsvc Sum over TCP, sequential, {n} calls per system; ACL decisions")
    for case in CASES:
        p50 = {r.system: r.value for r in rows if r.case == case}
        print(
            f"{case}: tls / plain {p50['tls'] / p50['plain']:.2f}x, "
            f"mtls / plain {p50['mtls'] / p50['plain']:.2f}x (target <= 1.15x)"
        )
    acl = {r.system: r.value for r in rows if r.case == "acl"}
    if acl:
        print(
            f"acl: cached {acl['cached']:.1f} µs (target <= 5 µs),"
            f" uncached {acl['uncached']:.1f} µs"
        )


if __name__ == "__main__":
    main()

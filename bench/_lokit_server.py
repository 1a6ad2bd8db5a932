"""The lokit stack around plain addsvc logic, for bench/rpc.py's `lokit` rows.

`python bench/_lokit_server.py grpc|http|both ADDR[,ADDR...] DEBUG` serves addsvc's bare
service (the same Sum as the bare servers, go-kit's pb.Add codecs on gRPC, derived JSON on
HTTP) through lokit's runtime: request context, deadline handling, the request
log line (logfmt to stderr), RED metrics, a debug server; tracing off; grpc-core's
settings as `lokit serve` sets them (`lokit.cli.grpc_env`). The
workshop's own service middlewares (a second log line and business counters per
call) are measured separately as `lokit serve addsvc`. With `both`, ADDR is a
socket stem `unix:STEM`: gRPC on `STEM.grpc.sock` and HTTP on `STEM.http.sock`,
the one-box naming `lokit.connect` picks its protocol from.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))


def main() -> None:
    from lokit.cli.grpc_env import server_defaults

    server_defaults()  # grpc-core's settings as `lokit serve` runs it
    from lokit.examples.addsvc.contract import addsvc_contract
    from lokit.examples.addsvc.service import AddService
    from lokit.observability.logs import configure_logging
    from lokit.runtime import Listeners, run, serve
    from lokit.service import define

    kind, addr, debug = sys.argv[1], sys.argv[2], sys.argv[3]
    configure_logging()
    if kind == "both":
        grpc, http = [addr + ".grpc.sock"], [addr + ".http.sock"]
    else:
        addrs = addr.split(",")
        grpc, http = (addrs, []) if kind == "grpc" else ([], addrs)
    listeners = Listeners(grpc=grpc, http=http, debug=debug)

    def ready(kind: str, addr: object) -> None:
        print(f"addsvc: {kind} listening on {addr}", flush=True)

    async def go() -> int:
        return await serve(define(addsvc_contract(), AddService()), listeners, ready)

    sys.exit(run(go))


if __name__ == "__main__":
    main()

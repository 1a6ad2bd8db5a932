"""lokit's own client in a process of its own, for bench/rpc.py's `lokit-client` rows.

`python bench/_lokit_client.py grpc|http ADDR` connects `lokit.connect(addsvc_contract(),
grpc=ADDR)` (or `http=`), makes one call and prints `ready`; then, for each line `K`
on stdin, it makes K sequential `sum(1, 2)` calls and prints their latencies in
seconds as one JSON array. A process of its own, because the gRPC settings a client
runs with are per process: here lokit's transport is what loads grpc, as in a lokit
service calling another, so it runs the I/O manager lokit chooses
(`lokit.transport.grpc.iomgr`), while the bench's bare stub keeps grpc's own.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))


def main() -> None:
    import uvloop

    import lokit
    from lokit.examples.addsvc.contract import addsvc_contract

    protocol, addr = sys.argv[1], sys.argv[2]

    async def go() -> None:
        grpc, http = (addr, None) if protocol == "grpc" else (None, addr)
        async with lokit.connect(addsvc_contract(), grpc=grpc, http=http) as svc:
            assert await svc.sum(1, 2) == 3
            print("ready", flush=True)
            for line in sys.stdin:
                out: list[float] = []
                for _ in range(int(line)):
                    t0 = time.perf_counter()
                    v = await svc.sum(1, 2)
                    out.append(time.perf_counter() - t0)
                    assert v == 3
                print(json.dumps(out), flush=True)

    uvloop.run(go())


if __name__ == "__main__":
    main()

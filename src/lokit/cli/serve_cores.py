"""`lokit serve` flags for using the machine's cores: `--cpu LIST` and `--instances N`.

One Python process serves on one core at a time (the GIL; grpc-core's own
threads add a little), so a service uses a second core by running a second
process. `--instances N` runs N of them under a supervisor (`supervisor`),
each listening where `instances` says (a socket of its own in a `dir:`
registry, or a TCP port shared with SO_REUSEPORT) and pinned to its share of
the CPUs. `--cpu LIST` pins a process (or the instances, divided among them):
a pinned process keeps its caches and its grpc-core threads on one core, which
made a gRPC call cheaper on this kind of machine (reference/per-call-cost.md).

Without `--instances` a process serves alone; a `dir:PATH` listener then takes
the first free slot in PATH (`<service>-<i>.grpc.sock`), so processes started
one by one (by hand, or a systemd template unit) register side by side.

This group runs last of `SERVE_GROUPS`, once every other flag is checked: with
`--instances` this process does not serve, it supervises, and exits with the
supervisor's status.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from lokit.cli.errors import fail

if TYPE_CHECKING:
    import socket

    from lokit.cli.instances import InstancePlan
    from lokit.runtime import Extension, Listeners

__all__ = ["ONE_PROCESS", "OPTIONS", "configure", "share_cpus"]

ONE_PROCESS: dict[str, str] = {"log": "the log keeps one writer for its data directory"}
"""Services that must run as one process, and why (one sentence's clause)."""

OPTIONS: list[Callable[[Any], Any]] = [
    click.option(
        "--cpu",
        "cpu",
        metavar="LIST",
        default=None,
        help="Pin the process to these CPUs (0, 0,1 or 0-1); with --instances, the CPUs "
        "are divided among the instances (default: each on its own CPU).",
    ),
    click.option(
        "--instances",
        type=click.IntRange(min=1),
        default=None,
        metavar="N",
        help="Run N processes of this service under a supervisor that restarts them: "
        "a dir:PATH listener gives each its own socket in PATH (clients dial dir:PATH), "
        "a HOST:PORT one is shared (SO_REUSEPORT); debug ports are PORT+i.",
    ),
]


def configure(opts: dict[str, Any], listeners: Listeners, service: str) -> list[Extension]:
    """Take --cpu/--instances out of `opts`: pin, become an instance, or supervise and exit."""
    from lokit.cli.affinity import CpuError, parse_cpus, pin
    from lokit.cli.instances import DIR_PREFIX, ENV, InstancePlan, first_free_index

    spec = opts.pop("cpu", None)
    count = opts.pop("instances", None)
    plan = os.environ.pop(ENV, None)
    if plan is not None:  # started by a supervisor: listen and run where it says
        _become_instance(InstancePlan.from_env(plan), listeners)
        return []
    try:
        cpus = parse_cpus(spec) if spec is not None else None
    except CpuError as e:
        fail(str(e), 2)
    if count is not None:
        sys.exit(_supervise(service, count, cpus, listeners))
    if cpus is not None:
        pin(cpus)
    if any(a.strip().startswith(DIR_PREFIX) for a in _all(listeners)):
        _, (listeners.grpc, listeners.http, listeners.debug) = first_free_index(
            service, listeners.grpc, listeners.http, listeners.debug
        )
    return []


def _all(listeners: Listeners) -> list[str]:
    return [*listeners.grpc, *listeners.http, *([listeners.debug] if listeners.debug else [])]


def share_cpus(cpus: list[int], count: int) -> list[list[int]]:
    """`cpus` divided among `count` instances: contiguous shares, or one each, cycling."""
    if count > len(cpus):
        return [[cpus[i % len(cpus)]] for i in range(count)]
    base, extra = divmod(len(cpus), count)
    shares, start = [], 0
    for i in range(count):
        size = base + (1 if i < extra else 0)
        shares.append(cpus[start : start + size])
        start += size
    return shares


def _become_instance(plan: InstancePlan, listeners: Listeners) -> None:
    """Listen where the plan says (sharing TCP ports), pin, and stop with the supervisor."""
    from lokit.cli.affinity import pin

    _die_with_parent()
    if os.getppid() != plan.supervisor:  # it died before we could ask to follow it
        fail("the supervisor of this instance has gone; not serving")
    if plan.cpus:
        pin(plan.cpus)
    listeners.grpc, listeners.http, listeners.debug = plan.grpc, plan.http, plan.debug
    listeners.reuse_port = True


def _die_with_parent() -> None:
    """Ask Linux to send this process SIGTERM when its parent (the supervisor) dies."""
    import ctypes

    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)


def _supervise(service: str, count: int, cpus: list[int] | None, listeners: Listeners) -> int:
    """Plan `count` instances, reserve their shared ports, and run them until stopped."""
    from lokit.cli.affinity import allowed_cpus
    from lokit.cli.instances import DIR_PREFIX, InstancePlan, instance_addresses, unix_paths
    from lokit.cli.supervisor import Supervisor
    from lokit.runtime import run
    from lokit.transport.address import (
        AddressError,
        bound_address,
        parse,
        reserve_shared_port,
        unix_socket_alive,
    )

    if service in ONE_PROCESS and count > 1:
        fail(
            f"lokit serve {service} runs as one process: {ONE_PROCESS[service]}, "
            f"so --instances {count} is refused (give --instances 1 or none)"
        )
    shares = share_cpus(cpus or allowed_cpus(), count)
    reserved: list[socket.socket] = []
    try:
        grpc: list[str] = []
        http: list[str] = []
        for addrs, out in ((listeners.grpc, grpc), (listeners.http, http)):
            for raw in addrs:
                addr = None if raw.strip().startswith(DIR_PREFIX) else parse(raw)
                if addr is None or addr.path is not None:
                    out.append(raw)
                    continue
                sock = reserve_shared_port(addr)
                reserved.append(sock)
                out.append(str(bound_address(addr, sock)))  # port 0 chosen once, for all
        plans = []
        for i in range(count):
            g, h, d = instance_addresses(service, i, count, grpc, http, listeners.debug)
            for path in unix_paths(*g, *h, d):
                if unix_socket_alive(path):
                    raise AddressError(
                        f"cannot listen on unix:{path}: another server is running there"
                    )
            plans.append(InstancePlan(i, g, h, d, shares[i], os.getpid()))
    except BaseException:
        for sock in reserved:
            sock.close()
        raise
    argv = [sys.executable, *sys.orig_argv[1:]]
    supervisor = Supervisor(service, argv, plans, listeners.grace, reserved)
    return run(supervisor.run)

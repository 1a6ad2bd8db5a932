"""The layers, checked: dependencies point inward (DESIGN.md), including imports inside functions.

core (errors, context, endpoint, derive, codec, routes, contract, service, types, protobuf,
  handoff)
  <- security (certificates, TLS material) and observability
  <- the endpoint middlewares (lb, circuitbreaker, ratelimit, auth) and discovery (sd)
  <- transport <- client (and balanced, dialing), runtime <- services (logsvc, examples) <- cli.
Business modules import only `lokit.errors` (the log's also its storage engine and
`lokit.handoff`);
the storage engine imports nothing of lokit; only the CLI, a service's own `cli`
module, `python -m lokit` and the package's lazy `main` import `lokit.cli`.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = SRC / "lokit"

CORE = {
    "lokit.errors",
    "lokit.context",
    "lokit.endpoint",
    "lokit.derive",
    "lokit.codec",
    "lokit.routes",
    "lokit.contract",
    "lokit.service",
    "lokit.types",
    "lokit.protobuf",
    "lokit.handoff",
}
# What each layer may import from lokit, by module-name prefix (besides itself).
MIDDLEWARES = {"lokit.lb", "lokit.circuitbreaker", "lokit.ratelimit", "lokit.auth"}
CLIENT = CORE | MIDDLEWARES | {"lokit.observability", "lokit.security", "lokit.sd"}
CLIENT |= {"lokit.transport", "lokit.balanced", "lokit.dialing"}
LAYERS: list[tuple[str, set[str]]] = [
    ("lokit.commitlog", set()),
    ("lokit.security", CORE),
    ("lokit.observability", CORE),
    *((m, CORE | {"lokit.observability"}) for m in sorted(MIDDLEWARES)),
    ("lokit.sd", CORE | {"lokit.observability", "lokit.transport.address"}),
    ("lokit.transport", CORE | {"lokit.observability", "lokit.security"}),
    *((m, CLIENT) for m in ("lokit.client", "lokit.balanced", "lokit.dialing")),
    ("lokit.runtime", CORE | {"lokit.observability", "lokit.security", "lokit.transport"}),
]
SERVICES = ("lokit.logsvc", "lokit.examples")
# Business logic: what a service does, with no transport, observability or runtime.
BUSINESS = {
    "lokit.examples.addsvc.service": {"lokit.errors"},
    "lokit.examples.stringsvc.service": {"lokit.errors"},
    "lokit.examples.addsvc.middleware": {"lokit.examples.addsvc.service"},
    "lokit.examples.stringsvc.middleware": {"lokit.examples.stringsvc.service"},
    "lokit.logsvc.api": {"lokit.logsvc.messages"},
    "lokit.logsvc.messages": set(),
    "lokit.logsvc.errors": {"lokit.errors"},
}
LOG_BUSINESS = ("service", "topics", "waiting", "positions", "cache")
for _name in LOG_BUSINESS:
    BUSINESS[f"lokit.logsvc.{_name}"] = {
        "lokit.errors",
        "lokit.commitlog",
        "lokit.logsvc",
        "lokit.handoff",
    }


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_module(name: str) -> bool:
    base = SRC.joinpath(*name.split("."))
    return base.with_suffix(".py").exists() or (base / "__init__.py").exists()


def _type_only(tree: ast.Module) -> set[int]:
    """The ids of import nodes under `if TYPE_CHECKING:` (no runtime edge)."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            out.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return out


def imports(path: Path, *, runtime_only: bool = False) -> set[str]:
    """Every lokit module `path` imports, anywhere in the file (also inside functions)."""
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found: set[str] = set()
    tree = ast.parse(path.read_text(), str(path))
    skip = _type_only(tree) if runtime_only else set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if is_module(sub) else base)
    return {n for n in found if n == "lokit" or n.startswith("lokit.")}


def within(name: str, prefixes: set[str] | tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


MODULES = {
    module_name(p): p
    for p in sorted(PACKAGE.rglob("*.py"))
    if "proto" not in p.relative_to(SRC).parts
}
GRAPH = {name: imports(path) - {name} for name, path in MODULES.items()}
RUNTIME_GRAPH = {name: imports(p, runtime_only=True) - {name} for name, p in MODULES.items()}


def violations() -> list[str]:
    found: list[str] = []
    for name, deps in sorted(GRAPH.items()):
        for dep in sorted(deps):
            why = _violation(name, dep)
            if why:
                found.append(f"{name} imports {dep}: {why}")
    return found


def _violation(name: str, dep: str) -> str | None:
    if dep == "lokit.proto" or dep.startswith("lokit.proto."):
        return None if within(name, SERVICES) else "generated code belongs to a service"
    if within(dep, ("lokit.cli",)):
        allowed = (
            within(name, ("lokit.cli",))
            or name in ("lokit", "lokit.__main__")
            or (within(name, SERVICES) and name.rpartition(".")[2] in ("cli", "commands"))
        )
        return None if allowed else "only the CLI and a service's cli/commands import lokit.cli"
    if name in BUSINESS:
        own = BUSINESS[name]
        return None if within(dep, own) else "business logic imports only " + ", ".join(sorted(own))
    if within(name, CORE):
        return None if within(dep, CORE) else "the core imports only the core"
    for prefix, allowed in LAYERS:
        if within(name, (prefix,)):
            ok = within(dep, (prefix,)) or within(dep, allowed)
            return (
                None
                if ok
                else f"{prefix} may import only " + (", ".join(sorted(allowed)) or "itself")
            )
    if within(name, SERVICES) or name == "lokit":
        return None if not within(dep, ("lokit.cli",)) else "services do not import the CLI"
    return None


def test_dependencies_point_inward() -> None:
    assert violations() == []


def test_the_check_sees_what_it_should() -> None:
    """A sanity check on the graph: known edges, including one inside a function."""
    assert "lokit.errors" in GRAPH["lokit.examples.addsvc.service"]
    assert "lokit.transport.grpc.client" in GRAPH["lokit.dialing"]  # inside instance_client()
    assert "lokit.cli.script" in GRAPH["lokit"]  # the lazy `main`
    assert "lokit.commitlog.errors" in GRAPH["lokit.commitlog.log"]  # a relative import
    assert _violation("lokit.derive", "lokit.transport.grpc.client")
    assert _violation("lokit.examples.addsvc.service", "lokit.contract")
    assert _violation("lokit.logsvc.client", "lokit.cli.errors")
    assert _violation("lokit.commitlog.log", "lokit.errors")


def cycles() -> list[list[str]]:
    """Import cycles at run time (function-level imports included, TYPE_CHECKING ones not)."""
    out: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> None:
        state[n] = 1
        stack.append(n)
        for d in sorted(RUNTIME_GRAPH.get(n, ())):
            if d not in RUNTIME_GRAPH:
                continue
            if state.get(d) == 1:
                out.append([*stack[stack.index(d) :], d])
            elif d not in state:
                visit(d)
        stack.pop()
        state[n] = 2

    for n in sorted(RUNTIME_GRAPH):
        if n not in state:
            visit(n)
    return out


def test_no_import_cycles() -> None:
    assert cycles() == []

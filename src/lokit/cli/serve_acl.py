"""`lokit serve` flags for casbin ACLs: `--acl-model FILE --acl-policy FILE`.

With both, every endpoint of the service asks `lokit.auth.Authorizer` first
(proglog's model and policy files work unchanged; see `lokit.auth`); the policy
is read again on SIGHUP and when either file changes. Health checks and
`/metrics` are not endpoints and stay open. A file that cannot be used stops
the start with one sentence (exit 1).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from lokit.runtime import Extension, Listeners

OPTIONS: list[Callable[[Any], Any]] = [
    click.option(
        "--acl-model",
        metavar="FILE",
        help="casbin model (request: subject, object, action), e.g. proglog's model.conf.",
    ),
    click.option(
        "--acl-policy",
        metavar="FILE",
        help="casbin policy (p, SUBJECT, OBJECT, ACTION lines; object * for all); "
        "reloaded on SIGHUP and when it changes.",
    ),
]


def _file(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"an ACL file must be a path, not {value!r}")
    return value.strip()


CONFIG_KEYS: dict[str, Callable[[Any], Any]] = {"acl_model": _file, "acl_policy": _file}
"""Config-file (and environment) keys of a service that reads one (`acl-model`, `acl-policy`)."""


def configure(opts: dict[str, Any], listeners: Listeners, service: str) -> list[Extension]:
    """Take --acl-model/--acl-policy out of `opts`; the ACL extension when both are given."""
    from lokit.cli.errors import fail

    model = opts.pop("acl_model", None)
    policy = opts.pop("acl_policy", None)
    if not model and not policy:
        return []
    if not model or not policy:
        fail("--acl-model and --acl-policy go together: give both files, or neither")
    from lokit.auth import ACLError, Authorizer, acl, watching
    from lokit.runtime import Extension

    try:
        authorizer = Authorizer(model, policy)
    except ACLError as e:
        fail(str(e))
    return [
        Extension(
            middleware=acl(authorizer),
            lifespan=lambda: watching(authorizer),
            reload=authorizer.reload,
        )
    ]

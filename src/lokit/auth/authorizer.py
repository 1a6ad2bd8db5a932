"""`Authorizer`: a casbin ACL (proglog's model and policy files) with cached decisions.

proglog authorizes with `casbin.NewEnforcer(model, policy)` and
`Enforce(subject, object, action)`; its `model.conf` and `policy.csv` work here
unchanged (pycasbin reads the same formats). Two things go beyond it:

- objects: a request names one (the log: its topic), and a rule for the object
  `*` grants every object, as proglog's rules (`p, root, *, produce`) did when
  every object was `*`; a rule for one topic grants only that topic;
- speed: pycasbin's `enforce()` costs 50-130 µs here (it evaluates the matcher
  with simpleeval), so decisions are cached per (subject, object, action), a
  dict lookup. The cache is bounded in entries and in object length (objects
  come from requests: a client could name endless or huge topics) and dropped
  whenever the files are read again:
  `reload()` (SIGHUP) and `reload_if_changed()` (their mtimes, polled by the
  serve extension).

Loading failures are one sentence naming the file and what is wrong with it,
never the file's contents.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lokit.errors import PermissionDenied

__all__ = ["WILDCARD", "ACLError", "Authorizer"]

WILDCARD = "*"
"""The object of a method that names none, and the object a rule grants every object with."""
MAX_CACHED = 65536
"""Cached decisions; past this many the cache starts over."""
MAX_CACHED_OBJECT = 256
"""Longer objects (a request can name anything) are decided every time, never cached."""


class ACLError(ValueError):
    """An ACL model or policy that cannot be used; the message is one sentence."""


class Authorizer:
    """Decides whether a subject may do an action to an object, from a casbin model and policy."""

    __slots__ = ("_cache", "_enforcer", "_stamp", "model", "policy")

    def __init__(self, model: str | os.PathLike[str], policy: str | os.PathLike[str]) -> None:
        """Load both files; raises ACLError (one sentence) when either cannot be used."""
        self.model = Path(model)
        self.policy = Path(policy)
        self._stamp = self._stamps()
        self._enforcer = _load(self.model, self.policy)
        self._cache: dict[tuple[str, str, str], bool] = {}

    def allowed(self, subject: str, obj: str, action: str) -> bool:
        """Whether a rule lets `subject` do `action` to `obj` (or to every object, `*`)."""
        key = (subject, obj, action)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        return self._decide(key)

    def authorize(self, subject: str, obj: str, action: str) -> None:
        """Raise PermissionDenied, proglog's `<subject> not permitted to <action> to <object>`."""
        key = (subject, obj, action)
        hit = self._cache.get(key)
        if hit is None:
            hit = self._decide(key)
        if not hit:
            if len(obj) > MAX_CACHED_OBJECT:  # said, not echoed whole into every log line
                obj = f"{obj[:64]}... ({len(obj)} characters)"
            raise PermissionDenied(f"{subject} not permitted to {action} to {obj}")

    def _decide(self, key: tuple[str, str, str]) -> bool:
        subject, obj, action = key
        enforce = self._enforcer.enforce
        ok = bool(enforce(subject, obj, action)) or (
            obj != WILDCARD and bool(enforce(subject, WILDCARD, action))
        )
        if len(obj) <= MAX_CACHED_OBJECT:
            cache = self._cache
            if len(cache) >= MAX_CACHED:
                cache.clear()
            cache[key] = ok
        return ok

    @property
    def cached(self) -> int:
        """How many decisions are cached."""
        return len(self._cache)

    def rules(self) -> int:
        """How many policy rules are loaded."""
        return len(self._enforcer.get_policy())

    def reload(self) -> str:
        """Read both files again and drop every cached decision; one sentence for the log.

        A file that cannot be used raises ACLError and the old policy stays.
        """
        stamp = self._stamps()
        enforcer = _load(self.model, self.policy)
        self._enforcer, self._stamp, self._cache = enforcer, stamp, {}
        n = self.rules()
        return f"ACL policy {self.policy}: {n} rule{'' if n == 1 else 's'}"

    def reload_if_changed(self) -> str | None:
        """`reload()` when either file changed since it was read (mtime, size); else None."""
        stamp = self._stamps()
        if stamp == self._stamp:
            return None
        self._stamp = stamp  # a bad new version is reported once, not every poll
        return self.reload()

    def _stamps(self) -> tuple[tuple[int, int], ...]:
        out = []
        for path in (self.model, self.policy):
            try:
                st = path.stat()
            except OSError:
                out.append((-1, -1))
            else:
                out.append((st.st_mtime_ns, st.st_size))
        return tuple(out)


def _load(model: Path, policy: Path) -> Any:
    """A casbin Enforcer for the two files, checked with a trial decision."""
    for what, path in (("model", model), ("policy", policy)):
        try:
            with path.open("rb"):
                pass
        except OSError as e:
            raise ACLError(f"cannot read ACL {what} {path}: {e.strerror or e}") from None
        if not path.is_file():
            raise ACLError(f"cannot read ACL {what} {path}: not a file")
    import casbin  # type: ignore[import-untyped]  # pycasbin, loaded only with an ACL (~0.16 s)
    from casbin.persist.adapters import FileAdapter  # type: ignore[import-untyped]

    try:
        parsed = casbin.Model()
        parsed.load_model(str(model))
    except Exception as e:
        raise ACLError(f"ACL model {model} is not a casbin model: {_reason(e)}") from None
    for key, section in _SECTIONS:
        if key not in parsed.keys():
            raise ACLError(f"ACL model {model} is not a casbin model: it has no [{section}]")
    kinds = {kind for sec in ("p", "g") if sec in parsed.keys() for kind in parsed[sec].keys()}
    _check_rules(policy, model, kinds)
    try:
        enforcer = casbin.Enforcer(parsed, FileAdapter(str(policy)))
    except Exception as e:
        raise ACLError(f"ACL policy {policy} does not fit model {model}: {_reason(e)}") from None
    try:
        enforcer.enforce("", WILDCARD, "")
    except Exception as e:
        reason = _reason(e)
        if "policy" in reason:  # casbin: "invalid policy size"
            raise ACLError(f"ACL policy {policy} does not fit model {model}: {reason}") from None
        raise ACLError(
            f"ACL model {model} does not take (subject, object, action) requests: {reason}"
        ) from None
    return enforcer


_SECTIONS = (
    ("r", "request_definition"),
    ("p", "policy_definition"),
    ("e", "policy_effect"),
    ("m", "matchers"),
)


def _check_rules(policy: Path, model: Path, kinds: set[str]) -> None:
    """Every line of the policy is a rule of a kind the model defines (`p, ...`, `g, ...`).

    casbin skips a line of an unknown kind without a word: a policy file mixed up
    with another file would deny everything, silently."""
    try:
        text = policy.read_text(encoding="utf-8")
    except UnicodeError:
        raise ACLError(f"ACL policy {policy} is not UTF-8 text") from None
    except OSError as e:
        raise ACLError(f"cannot read ACL policy {policy}: {e.strerror or e}") from None
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if line and not line.startswith("#") and line.split(",", 1)[0].strip() not in kinds:
            raise ACLError(
                f"ACL policy {policy} line {number} is not a rule of model {model} "
                f"(rules start with {' or '.join(sorted(kinds))})"
            )


def _reason(e: BaseException) -> str:
    """casbin's message without the file contents it sometimes quotes."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    text = text.split(" , ", 1)[0].rstrip(" :")  # "parse the content error : line 1 , <line>"
    return text or type(e).__name__

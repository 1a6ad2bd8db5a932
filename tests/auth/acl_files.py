"""proglog's ACL files (SecureYourServices/test/model.conf, policy.csv) for the tests."""

from __future__ import annotations

from pathlib import Path

MODEL = """[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, obj, act

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = r.sub == p.sub && r.obj == p.obj && r.act == p.act
"""
POLICY = "p, root, *, produce\np, root, *, consume\n"


def write_acl(directory: Path, policy: str = POLICY, model: str = MODEL) -> tuple[Path, Path]:
    """`model.conf` and `policy.csv` in `directory`; their paths."""
    m, p = directory / "model.conf", directory / "policy.csv"
    m.write_text(model)
    p.write_text(policy)
    return m, p

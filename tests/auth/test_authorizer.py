"""The casbin Authorizer: proglog's files, objects and the * rule, the decision cache, reloads,
and the one sentence a file that cannot be used gets."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from lokit.auth import ACLError, Authorizer, watching
from lokit.errors import PermissionDenied
from tests.auth.acl_files import MODEL, POLICY, write_acl


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    return write_acl(tmp_path)


def test_proglog_policy_root_allowed_nobody_denied(files: tuple[Path, Path]) -> None:
    acl = Authorizer(*files)
    assert acl.allowed("root", "*", "produce") and acl.allowed("root", "*", "consume")
    acl.authorize("root", "*", "produce")
    with pytest.raises(PermissionDenied, match=r"^nobody not permitted to produce to \*$"):
        acl.authorize("nobody", "*", "produce")
    assert acl.rules() == 2


def test_a_wildcard_rule_grants_every_object_a_named_one_only_itself(tmp_path: Path) -> None:
    acl = Authorizer(*write_acl(tmp_path, POLICY + "p, nobody, public, consume\n"))
    assert acl.allowed("root", "orders", "produce")  # p, root, *, produce
    assert acl.allowed("nobody", "public", "consume")
    assert not acl.allowed("nobody", "orders", "consume")
    assert not acl.allowed("nobody", "*", "consume")  # one topic is not every topic
    assert not acl.allowed("nobody", "public", "produce")
    with pytest.raises(PermissionDenied, match=r"^nobody not permitted to consume to orders$"):
        acl.authorize("nobody", "orders", "consume")


def test_decisions_are_cached_and_a_reload_drops_them(files: tuple[Path, Path]) -> None:
    model, policy = files
    acl = Authorizer(model, policy)
    assert not acl.allowed("nobody", "*", "consume")
    assert acl.allowed("root", "*", "consume")
    assert acl.cached == 2
    policy.write_text(POLICY + "p, nobody, *, consume\n")
    assert not acl.allowed("nobody", "*", "consume")  # cached until the policy is read again
    assert acl.reload() == f"ACL policy {policy}: 3 rules"
    assert acl.cached == 0
    assert acl.allowed("nobody", "*", "consume")


def test_a_huge_object_is_decided_but_not_cached(files: tuple[Path, Path]) -> None:
    acl = Authorizer(*files)
    assert acl.allowed("root", "x" * 10_000, "produce")
    assert not acl.allowed("nobody", "x" * 10_000, "produce")
    assert acl.cached == 0
    with pytest.raises(PermissionDenied) as info:
        acl.authorize("nobody", "x" * 10_000, "produce")
    assert (
        info.value.message == f"nobody not permitted to produce to {'x' * 64}... (10000 characters)"
    )


def test_reload_if_changed_reads_a_changed_policy_once(files: tuple[Path, Path]) -> None:
    model, policy = files
    acl = Authorizer(model, policy)
    assert acl.reload_if_changed() is None
    policy.write_text("p, nobody, *, produce\n")
    st = policy.stat()
    os.utime(policy, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert acl.reload_if_changed() == f"ACL policy {policy}: 1 rule"
    assert acl.allowed("nobody", "*", "produce") and not acl.allowed("root", "*", "produce")
    assert acl.reload_if_changed() is None


def test_a_bad_new_policy_keeps_the_old_one(files: tuple[Path, Path]) -> None:
    model, policy = files
    acl = Authorizer(model, policy)
    policy.write_text("p, root\n")
    with pytest.raises(ACLError, match="does not fit model"):
        acl.reload()
    assert acl.allowed("root", "*", "produce")


async def test_watching_reloads_when_the_policy_file_changes(files: tuple[Path, Path]) -> None:
    model, policy = files
    acl = Authorizer(model, policy)
    async with watching(acl, interval=0.02):
        assert not acl.allowed("nobody", "*", "produce")
        policy.write_text(POLICY + "p, nobody, *, produce\n")
        st = policy.stat()
        os.utime(policy, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
        for _ in range(250):
            await asyncio.sleep(0.02)
            if acl.allowed("nobody", "*", "produce"):
                break
        assert acl.allowed("nobody", "*", "produce")


@pytest.mark.parametrize(
    ("model", "policy", "message"),
    [
        (None, POLICY, r"^cannot read ACL model .*/missing\.conf: No such file or directory$"),
        (MODEL, None, r"^cannot read ACL policy .*/missing\.csv: No such file or directory$"),
        ("[matchers]\nm = r.sub ==\n", POLICY, r"^ACL model .* is not a casbin model: "),
        (
            MODEL.replace("r = sub, obj, act", "r = sub, act"),
            POLICY,
            r"^ACL model .* does not take \(subject, object, action\) requests: ",
        ),
        (MODEL, "p, root\n", r"^ACL policy .* does not fit model .*: invalid policy size$"),
    ],
)
def test_a_file_that_cannot_be_used_is_one_sentence(
    tmp_path: Path, model: str | None, policy: str | None, message: str
) -> None:
    m = tmp_path / ("missing.conf" if model is None else "model.conf")
    p = tmp_path / ("missing.csv" if policy is None else "policy.csv")
    if model is not None:
        m.write_text(model)
    if policy is not None:
        p.write_text(policy)
    with pytest.raises(ACLError, match=message) as info:
        Authorizer(m, p)
    text = str(info.value)
    assert "\n" not in text
    assert "r.sub" not in text and "p, root" not in text  # never the files' contents

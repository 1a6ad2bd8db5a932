"""`lokit proto`: the .proto of stringsvc and addsvc, and `--check` refusing breaking changes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

from lokit.cli.proto import read_proto
from lokit.proto import addsvc_pb2
from lokit.protobuf.compat import breaking_changes

ROOT = Path(__file__).resolve().parents[2]

STRINGSVC = """\
// stringsvc/v1/stringsvc.proto: written by `lokit proto` from the type hints (edit those, not this file).
syntax = "proto3";

package stringsvc.v1;

// What stringsvc does; the basic service and every service middleware implement it.
service StringService {
  // The number of characters in `s`.
  rpc Count(CountRequest) returns (CountResponse);

  // `s` in upper case; an empty string is refused.
  rpc Uppercase(UppercaseRequest) returns (UppercaseResponse);
}

// The parameters of Count.
message CountRequest {
  string s = 1;
}

// The result of Count, in `v`.
message CountResponse {
  int64 v = 1;
}

// The parameters of Uppercase.
message UppercaseRequest {
  string s = 1;
}

// The result of Uppercase, in `v`.
message UppercaseResponse {
  string v = 1;
}
"""  # noqa: E501


def buf_path() -> str | None:
    """buf on PATH, or the one `make test` installs under .tools/."""
    found = shutil.which("buf")
    local = ROOT / ".tools" / "node_modules" / ".bin" / "buf"
    return found or (str(local) if local.exists() else None)


def without_buf() -> dict[str, str]:
    """The environment with no directory holding `buf` on PATH."""
    dirs = os.environ.get("PATH", "").split(os.pathsep)
    keep = [d for d in dirs if d and not (Path(d) / "buf").exists()]
    return {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), *keep])}


def lokit(
    args: list[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lokit", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env=env or without_buf(),
    )


def test_stringsvc_proto_text(tmp_path: Path) -> None:
    out = lokit(["proto", "stringsvc"], tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout == STRINGSVC
    # by MODULE:OBJECT too, written to a file
    done = lokit(
        ["proto", "lokit.examples.stringsvc.contract:stringsvc_contract", "--out", "s.proto"],
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "s.proto").read_text() == STRINGSVC


def _shape(file: descriptor_pb2.FileDescriptorProto) -> dict[str, object]:
    """What the wire depends on: package, service methods, message fields' numbers and types."""
    return {
        "package": file.package,
        "service": [
            (s.name, [(m.name, m.input_type, m.output_type) for m in s.method])
            for s in file.service
        ],
        "messages": {
            m.name: [(f.name, f.number, f.type, f.label) for f in m.field]
            for m in file.message_type
        },
    }


def test_addsvc_proto_is_wire_identical_to_go_kits_pb_add(tmp_path: Path) -> None:
    out = lokit(["proto", "addsvc", "--out", "addsvc.proto"], tmp_path)
    assert out.returncode == 0, out.stderr
    emitted = read_proto(tmp_path / "addsvc.proto")
    go_kit = read_proto(ROOT / "proto" / "addsvc.proto")
    generated = descriptor_pb2.FileDescriptorProto()
    addsvc_pb2.DESCRIPTOR.CopyToProto(generated)
    assert _shape(emitted) == _shape(go_kit) == _shape(generated)
    assert (
        "// Sum two integers; the result must fit a signed 32-bit integer."
        in (tmp_path / "addsvc.proto").read_text()
    )


SHOP_V1 = '''
import msgspec


class Item(msgspec.Struct):
    name: str
    price: int


class Shop:
    """A shop."""

    async def add(self, item: Item) -> int: ...

    async def find(self, name: str, limit: int = 10) -> list[Item]: ...
'''


def _shop(tmp: Path, source: str) -> None:
    (tmp / "shop.py").write_text(source)
    for cached in (tmp / "__pycache__").glob("shop.*"):
        cached.unlink()


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    _shop(tmp_path, SHOP_V1)
    out = lokit(["proto", "shop:Shop", "--out", "shop.proto"], tmp_path)
    assert out.returncode == 0, out.stderr
    ok = lokit(["proto", "shop:Shop", "--check", "shop.proto"], tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "compatible with shop.proto (checked by lokit's own check)" in ok.stdout
    return tmp_path


RENUMBERED = SHOP_V1.replace("    name: str\n", "    name: str\n    sku: str\n")
RETYPED = SHOP_V1.replace("price: int", "price: float")
ADDED = SHOP_V1.replace("    price: int\n", "    price: int\n    note: str = ''\n")


def test_check_refuses_a_renumbered_and_a_retyped_field(shop: Path) -> None:
    _shop(shop, RENUMBERED)
    out = lokit(["proto", "shop:Shop", "--check", "shop.proto"], shop)
    assert out.returncode == 1
    assert out.stderr.splitlines() == [
        "field shop.v1.Item.price was number 2 and is now 3: "
        "old callers would read it as another field.",
        "error: shop's schema breaks shop.proto (1 problem(s), found by lokit's own check)",
    ]
    _shop(shop, RETYPED)
    out = lokit(["proto", "shop:Shop", "--check", "shop.proto"], shop)
    assert out.returncode == 1
    assert out.stderr.splitlines()[0] == (
        "field shop.v1.Item.price = 2 changed type from int64 to double."
    )
    _shop(shop, ADDED)  # a new field at the end breaks nobody
    assert lokit(["proto", "shop:Shop", "--check", "shop.proto"], shop).returncode == 0


def test_check_with_buf_breaking(shop: Path) -> None:
    buf = buf_path()
    if buf is None:
        if os.environ.get("CI") == "true":
            pytest.fail("buf is not installed (make test installs it into .tools/)")
        pytest.skip("buf is not installed")
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(buf).parent), os.environ["PATH"]])}
    _shop(shop, RETYPED)
    out = lokit(["proto", "shop:Shop", "--check", "shop.proto"], shop, env)
    assert out.returncode == 1
    lines = out.stderr.splitlines()
    assert (
        lines[0]
        == 'Field "2" with name "price" on message "Item" changed type from "int64" to "double".'
    )
    assert lines[-1].endswith("found by buf breaking)")
    _shop(shop, RENUMBERED)
    out = lokit(["proto", "shop:Shop", "--check", "shop.proto"], shop, env)
    assert out.returncode == 1 and "price" in out.stderr
    _shop(shop, ADDED)
    out = lokit(["proto", "shop:Shop", "--check", "shop.proto"], shop, env)
    assert out.returncode == 0, out.stderr
    assert "checked by buf breaking" in out.stdout


def test_mistakes_are_one_sentence(tmp_path: Path) -> None:
    (tmp_path / "jsonsvc.py").write_text(
        "import lokit\n\n\nclass J:\n    async def f(self, x: int) -> int: ...\n\n\n"
        'C = lokit.contract("j", J, codec="json")\n'
        "\n\nclass Bad:\n    async def f(self, x: tuple[int, int]) -> int: ...\n"
    )
    cases = {
        ("proto", "nosuch"): "error: no service 'nosuch' is registered",
        ("proto", "jsonsvc:C"): "error: j's gRPC side has no protobuf schema",
        ("proto", "jsonsvc:Bad"): "error: jsonsvc:Bad: Bad.f: parameter 'x' has type",
        ("proto", "stringsvc", "--check", "missing.proto"): "error: missing.proto is no file",
    }
    (tmp_path / "broken.proto").write_text("syntax = 'proto3'; message {")
    cases[("proto", "stringsvc", "--check", "broken.proto")] = (
        "error: broken.proto is not a valid .proto file"
    )
    for args, start in cases.items():
        out = lokit(list(args), tmp_path)
        assert out.returncode == 1, args
        assert out.stderr.startswith(start), (args, out.stderr)
        assert "Traceback" not in out.stderr


def _file(*fields: tuple[str, int, int]) -> descriptor_pb2.FileDescriptorProto:
    f = descriptor_pb2.FileDescriptorProto(name="t.proto", package="t", syntax="proto3")
    m = f.message_type.add(name="M")
    for name, number, kind in fields:
        m.field.add(name=name, number=number, type=kind, label=1)
    return f


def test_compat_rules() -> None:
    T = descriptor_pb2.FieldDescriptorProto
    old = _file(("a", 1, T.TYPE_INT64), ("b", 2, T.TYPE_STRING))
    assert breaking_changes(old, old) == []
    assert breaking_changes(old, _file(*[("a", 1, T.TYPE_INT64), ("b", 2, T.TYPE_STRING),
                                         ("c", 3, T.TYPE_BOOL)])) == []  # fmt: skip
    assert breaking_changes(old, _file(("a", 1, T.TYPE_INT64))) == [
        "field t.M.b = 2 (string) was removed: old callers send it."
    ]
    assert breaking_changes(old, _file(("a", 1, T.TYPE_INT64), ("c", 2, T.TYPE_STRING))) == [
        "field number 2 of t.M was b (string) and is now c (string)."
    ]
    gone = descriptor_pb2.FileDescriptorProto(name="t.proto", package="t", syntax="proto3")
    assert breaking_changes(old, gone) == ["message t.M was removed."]

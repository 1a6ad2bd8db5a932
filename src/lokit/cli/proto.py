"""`lokit proto`: a service's .proto file, and `--check` against a committed one.

The file comes from the contract: a derived service's schema (built from its
type hints), or the generated descriptor of an explicit-codec service such as
addsvc's `pb.Add` (`contract(..., grpc_file=...)`), with comments from the
docstrings. `--check FILE` refuses a change that would break a caller built
from FILE (a field renumbered, retyped or removed, ...): with `buf breaking`
(its WIRE_JSON rules) when `buf` is on PATH, else with lokit's own comparison
of the two FileDescriptorProtos (`lokit.protobuf.compat`); FILE itself is read
with protoc from grpcio-tools, or with `buf build`.
"""

from __future__ import annotations

import importlib.util
import inspect
import shutil
import subprocess
import sys
import tempfile
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lokit.cli.errors import fail
from lokit.contract import Contract

if TYPE_CHECKING:
    from google.protobuf import descriptor_pb2

__all__ = ["breaking", "proto_file", "proto_source", "read_proto"]

_BUF_RULES = '{"version":"v2","breaking":{"use":["WIRE_JSON"]}}'


def proto_file(spec: Contract[Any]) -> tuple[descriptor_pb2.FileDescriptorProto, dict[str, str]]:
    """The FileDescriptorProto of the contract's gRPC service and its comments by full name."""
    from google.protobuf import descriptor_pb2

    if spec.schema is not None:
        return spec.schema.file_proto, dict(spec.schema.docs)
    if spec.grpc_file is None:
        fail(
            f"{spec.name}'s gRPC side has no protobuf schema: it uses lokit's JSON-in-gRPC "
            '(codec="json") or codecs of its own; drop codec="json" to derive one'
        )
    file = descriptor_pb2.FileDescriptorProto()
    spec.grpc_file.CopyToProto(file)
    docs: dict[str, str] = {}
    service_doc = inspect.getdoc(spec.interface) if spec.interface is not None else None
    if service_doc:
        docs[spec.grpc_service] = service_doc
    for m in spec.methods.values():
        if m.doc:
            docs[f"{spec.grpc_service}.{m.name}"] = m.doc
    return file, docs


def proto_source(spec: Contract[Any]) -> str:
    """The .proto text of the contract's gRPC service."""
    from lokit.protobuf.text import proto_text

    if spec.schema is not None:
        return spec.schema.proto_text()
    file, docs = proto_file(spec)
    return proto_text(file, docs, f"the gRPC service of lokit's {spec.name}, by `lokit proto`")


def write(spec: Contract[Any], out: str | None) -> None:
    """`lokit proto SERVICE [--out FILE]`."""
    text = proto_source(spec)
    if out is None:
        print(text, end="")
        return
    try:
        Path(out).parent.mkdir(parents=True, exist_ok=True)  # as protoc's --*_out would need
        Path(out).write_text(text)
    except OSError as e:
        fail(f"cannot write {out}: {e.strerror or e}")


def check(spec: Contract[Any], committed: str) -> None:
    """`lokit proto SERVICE --check FILE`: exit 1 with one sentence per breaking change."""
    problems, tool = breaking(spec, committed)
    if problems:
        for line in problems:
            print(line, file=sys.stderr)
        fail(
            f"{spec.name}'s schema breaks {committed} ({len(problems)} problem(s), found by {tool})"
        )
    print(f"{spec.name}'s schema is compatible with {committed} (checked by {tool})")


def breaking(spec: Contract[Any], committed: str) -> tuple[list[str], str]:
    """The breaking changes of today's schema against `committed`, and the tool that found them."""
    file, _ = proto_file(spec)
    path = Path(committed)
    if not path.is_file():
        fail(f"{committed} is no file")
    buf = shutil.which("buf")
    if buf is not None:
        return _buf_breaking(buf, spec, file, path), "buf breaking"
    from lokit.protobuf.compat import breaking_changes

    return breaking_changes(read_proto(path), file), "lokit's own check"


def read_proto(path: Path) -> descriptor_pb2.FileDescriptorProto:
    """`path` (a .proto file) parsed, by grpcio-tools' protoc or else `buf build`."""
    from google.protobuf import descriptor_pb2

    with tempfile.TemporaryDirectory(prefix="lokit-proto-") as tmp:
        out = Path(tmp) / "set.binpb"
        if importlib.util.find_spec("grpc_tools") is not None:
            error = _protoc(path, out)
        elif (buf := shutil.which("buf")) is not None:
            error = _buf_build(buf, path, out)
        else:
            fail(
                f"cannot read {path}: neither grpcio-tools (protoc) nor buf is installed "
                "(pip install grpcio-tools, or npm install @bufbuild/buf)"
            )
        if error:
            fail(f"{path} is not a valid .proto file: {error}")
        files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file
    return [f for f in files if f.name.endswith(path.name)][-1]


def _protoc(path: Path, out: Path) -> str:
    """Run grpcio-tools' protoc on `path`; its error text ("" when it worked)."""
    include = str(files("grpc_tools") / "_proto")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{path.parent.resolve()}",
            f"-I{include}",
            f"--descriptor_set_out={out}",
            path.name,
        ],
        cwd=path.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    return "" if proc.returncode == 0 else _first_line(proc.stderr)


def _buf_build(buf: str, path: Path, out: Path) -> str:
    with tempfile.TemporaryDirectory(prefix="lokit-proto-") as tmp:
        shutil.copy(path, Path(tmp) / path.name)
        proc = subprocess.run(
            [buf, "build", tmp, "-o", str(out)], capture_output=True, text=True, check=False
        )
    return "" if proc.returncode == 0 else _first_line(proc.stderr)


def _buf_breaking(
    buf: str, spec: Contract[Any], file: descriptor_pb2.FileDescriptorProto, committed: Path
) -> list[str]:
    """`buf breaking` (WIRE_JSON) of today's schema (as an image) against the committed file."""
    from google.protobuf import descriptor_pb2

    with tempfile.TemporaryDirectory(prefix="lokit-proto-") as tmp:
        image = descriptor_pb2.FileDescriptorSet()
        if spec.schema is not None:
            for dep in spec.schema.file.dependencies:
                dep.CopyToProto(image.file.add())
        elif spec.grpc_file is not None:
            for dep in spec.grpc_file.dependencies:
                dep.CopyToProto(image.file.add())
        image.file.add().CopyFrom(file)
        today = Path(tmp) / "today.binpb"
        today.write_bytes(image.SerializeToString())
        against = Path(tmp) / "against"
        against.mkdir()
        shutil.copy(committed, against / committed.name)
        proc = subprocess.run(
            [buf, "breaking", str(today), "--against", str(against), "--config", _BUF_RULES],
            capture_output=True,
            text=True,
            check=False,
            cwd=tmp,
        )
    if proc.returncode == 0:
        return []
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    if proc.returncode != 100 or not lines:  # 100: breaking changes found
        fail(f"buf breaking failed on {committed}: {_first_line(proc.stderr or proc.stdout)}")
    return [_buf_sentence(line) for line in lines]


def _buf_sentence(line: str) -> str:
    """buf's `file:line:col:Sentence. See https://...` as the sentence alone."""
    parts = line.split(":", 3)
    text = parts[3] if len(parts) == 4 and parts[1].isdigit() else line
    return text.split(" See https://")[0].strip()


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else "no output"

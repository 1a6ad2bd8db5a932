"""Regenerate the committed protobuf code: proto/*.proto -> src/lokit/proto/.

`python scripts/gen_proto.py --check` exits 1 when the committed code is stale
(a test runs it that way).
"""

from __future__ import annotations

import filecmp
import re
import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "proto"
OUT = ROOT / "src" / "lokit" / "proto"


def generate(out: Path) -> list[Path]:
    protos = sorted(SRC.glob("*.proto"))
    include = Path(protoc.__file__).parent / "_proto"
    for proto in protos:
        args = [
            "protoc",
            f"-I{SRC}",
            f"-I{include}",
            f"--python_out={out}",
            f"--pyi_out={out}",
            f"--grpc_python_out={out}",
            str(proto),
        ]
        if protoc.main(args) != 0:
            raise SystemExit(f"protoc failed on {proto.name}")
    # Generated *_pb2_grpc.py import siblings absolutely; make them package-relative.
    for f in out.glob("*_pb2_grpc.py"):
        text = f.read_text()
        text = re.sub(r"^import (\w+_pb2) as", r"from . import \1 as", text, flags=re.M)
        f.write_text(text)
    (out / "__init__.py").write_text('"""Generated protobuf code (make proto); do not edit."""\n')
    return sorted(p for p in out.iterdir() if p.is_file())


def main() -> int:
    check = "--check" in sys.argv
    with tempfile.TemporaryDirectory() as tmp:
        files = generate(Path(tmp))
        if check:
            stale = [
                f.name
                for f in files
                if not (OUT / f.name).exists() or not filecmp.cmp(f, OUT / f.name, shallow=False)
            ]
            if stale:
                print(f"generated protobuf code is stale: {', '.join(stale)}; run 'make proto'")
                return 1
            return 0
        OUT.mkdir(parents=True, exist_ok=True)
        for f in files:
            shutil.copy(f, OUT / f.name)
    print(f"generated {len(files)} files in {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The protobuf tests' Kitchen (every mapped type, every stream kind) served by `lokit.main`.

python -m tests.polyglot.kitchen_server --grpc 127.0.0.1:0 --http 127.0.0.1:0
"""

from __future__ import annotations

import lokit
from tests.protobuf.services import Kitchen

if __name__ == "__main__":
    lokit.main(lokit.define("kitchen", Kitchen()))

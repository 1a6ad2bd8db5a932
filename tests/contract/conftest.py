"""Contract tests (pact): consumers record what they send and expect; providers replay it.

pact's FFI sends anonymous usage telemetry unless told not to; `make` exports
`PACT_DO_NOT_TRACK=true`, and this sets it for a bare pytest run too (before the
FFI loads).
"""

from __future__ import annotations

import os

os.environ["PACT_DO_NOT_TRACK"] = "true"

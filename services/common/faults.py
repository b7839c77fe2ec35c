"""Crash points for the durability tests: `WAYBILL_CRASH_AT=<point>` kills the process there.

Unset in every real deployment; a test sets it on a service subprocess to prove that
work committed before the crash is finished after a restart.
"""

from __future__ import annotations

import os
import sys


def crash_point(name: str) -> None:
    """Die at once, without cleanup, when this point is the one named in the environment."""
    if os.environ.get("WAYBILL_CRASH_AT") == name:
        sys.stderr.write(f"waybill: crashing at {name} (WAYBILL_CRASH_AT)\n")
        sys.stderr.flush()
        os._exit(86)

"""Deliberate crashes at named moments, to measure crash consistency (bench/faults.py).

NINLAB_KILL_AT=POINT:N makes the process SIGKILL itself (no handler, no cleanup: as `kill -9`)
the Nth time it reaches POINT:
  step         inside a training step, after the backward pass and before the optimizer step
  eval         as the end-of-epoch evaluation starts
  write:NAME   while writing file NAME: its new content is on disk, not yet renamed over NAME
Without the variable (always, outside that benchmark) `reached` is one comparison.
"""

from __future__ import annotations

import os
import signal

_POINT, _, _NTH = os.environ.get("NINLAB_KILL_AT", "").rpartition(":")
_count = 0


def reached(point: str) -> None:
    """Count a visit to `point`; die at the Nth if NINLAB_KILL_AT asks for it."""
    global _count
    if point != _POINT:
        return
    _count += 1
    if str(_count) == _NTH:
        os.kill(os.getpid(), signal.SIGKILL)

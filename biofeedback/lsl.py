"""The one module that imports pylsl (liblsl): clock, outlets and inlets.

Everything else asks this module for LSL; tests load ``../shared/lsl/loopback.cfg``
(via ``LSLAPICFG``) before the first call.
"""

from __future__ import annotations

import pylsl


def local_clock() -> float:
    """Seconds on liblsl's monotonic clock, the timeline of every vrex timestamp."""
    return pylsl.local_clock()

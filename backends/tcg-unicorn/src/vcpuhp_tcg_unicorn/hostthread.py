"""Host-thread settings for the threads that must wake on time (vCPUs, the timer service).

Linux lets a sleeping thread's timer expire up to its *timer slack* late
(50 us by default) so that wake-ups can be batched. A guest's timer deadline
is met by such a thread waking from a timed wait, so the backend lowers the
slack of its own threads to :data:`TIMER_SLACK_NS` (``prctl(PR_SET_TIMERSLACK)``;
a no-op where that does not exist).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys
from typing import Any, Final

PR_SET_TIMERSLACK: Final = 29
TIMER_SLACK_NS: Final = 1000
"""1 us: measured on Linux, a 2 ms timed wait overslept by ~93 us (median) with the
default slack and ~36 us with this one."""


@functools.lru_cache(maxsize=1)
def _libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    except OSError:
        return None


def reduce_timer_slack() -> bool:
    """Lower the calling thread's timer slack; ``False`` where the host cannot."""
    libc = _libc()
    if libc is None:
        return False
    return int(libc.prctl(PR_SET_TIMERSLACK, TIMER_SLACK_NS, 0, 0, 0)) == 0


__all__ = ["TIMER_SLACK_NS", "reduce_timer_slack"]

"""Child-process hygiene: every process the harness starts dies with it and is time-bounded."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def die_with_parent(max_lifetime_s: float) -> None:
    """Make this process end when its parent does, and in any case after `max_lifetime_s`.

    On Linux the kernel sends SIGTERM when the parent exits (prctl PR_SET_PDEATHSIG); if the
    parent is already gone we exit at once. SIGALRM's default action ends the process at the
    hard time limit, whatever it is doing.
    """
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    if os.getppid() != parent or parent == 1:
        os._exit(3)
    signal.alarm(max(1, int(max_lifetime_s)))


def pin_to(cpus: set[int] | None) -> None:
    """Restrict this process to `cpus` (no-op when None or unsupported)."""
    if cpus and hasattr(os, "sched_setaffinity"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, cpus)


def parse_cpus(text: str | None) -> set[int] | None:
    if not text:
        return None
    return {int(c) for c in text.split(",") if c.strip()}

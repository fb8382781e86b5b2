"""glibc malloc settings for processes that run the fp32 and fast speed modes: keep freed memory for reuse.

A TEDS-Net training step allocates and frees hundreds of tensors of a few megabytes. glibc serves blocks above its
mmap threshold with fresh pages (mapped, zeroed by the kernel on first touch, unmapped on free) and returns the top
of the heap to the system once more than the trim threshold is free, so every step pays those page faults again.
Raising both thresholds keeps the memory in the heap for reuse; the peak resident memory stays that of a step.
"""

from __future__ import annotations

import ctypes
import sys

#: ``mallopt`` parameter numbers (glibc's malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: Blocks up to this size come from the heap: glibc's largest allowed value on 64-bit systems (32 MiB), above every
#: activation of the suite's models at batch 5.
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024
#: Free memory the heap keeps before giving it back to the system.
TRIM_THRESHOLD_BYTES = 1024 * 1024 * 1024

_state: dict[str, bool] = {}


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process (once); return whether they are in effect.

    Does nothing and returns False where the C library is not glibc (macOS, Windows, musl). Process-wide: the
    speed modes ``fp32`` and ``fast`` call it (:func:`tedsnet.speed.modes.apply_speed_mode`), ``eager`` does not.
    """
    if "tuned" not in _state:
        _state["tuned"] = _set_thresholds()
    return _state["tuned"]


def _set_thresholds() -> bool:
    """Call glibc's ``mallopt`` for both thresholds; False where that is impossible or refused."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )

"""Keep freed host memory in the process (glibc ``mallopt``), applied by the ``seqjax`` executable.

XLA:CPU allocates every temporary buffer of a step with ``malloc`` and frees it at the
end of the step. With glibc's defaults large buffers are fresh ``mmap``s and the top of
the heap is trimmed back to the OS, so every step page-faults its temporaries in again.
These settings put all threads on one heap that never trims and never ``mmap``s, so the
next step reuses the same pages (the measurements are in experiments/results/bench.md).

Trade-off: memory a step freed is not returned to the OS while the process lives, so the
resident size stays at its peak plus up to 256 MB of heap padding; a long-lived process
whose peak is a one-off (a large evaluation, then small steps) keeps that peak. The same
effect as ``GLIBC_TUNABLES`` set before start-up, or as preloading jemalloc/tcmalloc.
Library imports never call this (changing a process's allocator is the program's
decision). Not glibc (macOS, musl): nothing happens.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

# mallopt parameter numbers (glibc <malloc.h>)
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD, M_MMAP_MAX, M_ARENA_MAX = -1, -2, -3, -4, -8
SETTINGS = (
    (M_ARENA_MAX, 1),  # XLA's worker threads share the main heap, which the settings below govern
    (M_MMAP_THRESHOLD, 32 << 20),
    (M_MMAP_MAX, 0),  # buffers above 32 MB (XLA's per-step temporary block can be) come from the heap too
    (M_TRIM_THRESHOLD, 2047 << 20),
    (M_TOP_PAD, 256 << 20),
)


def keep_freed_memory() -> bool:
    """Apply :data:`SETTINGS` with glibc's ``mallopt``; True when all were accepted."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return all([mallopt(param, value) == 1 for param, value in SETTINGS])

"""Keep freed host memory in the process: glibc ``mallopt`` for the CLI's CPU steps.

XLA:CPU allocates every temporary buffer of a step with ``malloc`` and frees it at the
end of the step. With glibc's defaults, buffers above the (dynamic) mmap threshold are
fresh ``mmap``s and the top of the heap is trimmed back to the OS, so the next step
touches fresh pages again: the PTB-small train step took ~13,500 minor page faults per
step (53 MB of first touches; tens of ms in a VM). One heap for all threads (XLA's worker
threads would otherwise get per-thread arenas that the settings do not govern), the mmap
threshold at glibc's maximum (32 MB), no trimming and heap growth in 256 MB strides let the
next step reuse the same memory: ~1,200-4,700 faults per step and no more peak RSS
(experiments/results/bench.md). No ``mmap`` at all (``M_MMAP_MAX`` 0) covers blocks above
32 MB too: XLA's per-step temporary block crossed that size when the fused read-out's chunk
grew (session 3), and every step page-faulted ~18,000 times again; with it, 0-1,500 (peak
RSS of ``seqjax bench``: 663 MB, glibc defaults 651 MB). The same effect as ``GLIBC_TUNABLES=glibc.malloc.mmap_threshold=...``
set before start-up, or as preloading jemalloc/tcmalloc (PyTorch's CPU tuning guide).

``seqjax`` commands call :func:`keep_freed_memory` once at start-up; library imports never
do (changing a process's allocator is the program's decision). ``SEQJAX_MALLOC_TUNING=0``
turns it off. Not glibc (macOS, musl): nothing happens.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

# mallopt parameter numbers (glibc <malloc.h>)
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD, M_MMAP_MAX, M_ARENA_MAX = -1, -2, -3, -4, -8
SETTINGS = (
    (M_ARENA_MAX, 1),  # XLA's worker threads share the main heap, which the settings below govern
    (M_MMAP_THRESHOLD, 32 << 20),
    (M_MMAP_MAX, 0),  # buffers above 32 MB (XLA's per-step temp block can be) come from the heap too
    (M_TRIM_THRESHOLD, 2047 << 20),
    (M_TOP_PAD, 256 << 20),
)


def keep_freed_memory() -> bool:
    """Apply :data:`SETTINGS` with glibc's ``mallopt``; True when all were accepted."""
    if os.environ.get("SEQJAX_MALLOC_TUNING", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return all([mallopt(param, value) == 1 for param, value in SETTINGS])

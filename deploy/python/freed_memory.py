"""Keep the memory the process frees, so Paddle Inference's next run reuses it.

Paddle Inference on CPU takes every intermediate tensor from the C allocator and frees it after
its last reader. glibc's malloc serves a block over its mmap threshold (at most 32 MB) with a
fresh mapping and unmaps it when freed, and trims the heap's top once 128 kB are free there, so
each run page-faults its large tensors in again (the kernel maps and zeroes every page): R50
Mask R-CNN at 800x1344 takes about 1.3 GB of page faults and 1 s of kernel time per image on 2
threads. `keep_freed_memory()` makes malloc take every block from its heaps (`M_MMAP_MAX` 0) and
never shrink them (`M_TRIM_THRESHOLD` out of reach): after its first runs the process reuses what
it freed, for resident memory near its peak (deploy/README.md has the figures).

The setting is the process's (every library that calls malloc shares it) and stays once made.
"""
import ctypes
import platform

M_TRIM_THRESHOLD = -1  # glibc's <malloc.h>
M_MMAP_MAX = -4
NEVER = 2 ** 31 - 1  # an int: mallopt takes one

_applied = False


def _glibc_mallopt():
    """glibc's `mallopt`, or None (another C library, or none loaded by name)."""
    if platform.libc_ver()[0] != 'glibc':
        return None
    try:
        return ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return None


def keep_freed_memory():
    """Apply the setting (once per process); True if it is in effect, False where the C library
    is not glibc (the allocator is then left as it is)."""
    global _applied
    if not _applied:
        mallopt = _glibc_mallopt()
        if mallopt is None:
            return False
        # mallopt returns 1 on success; either setting alone leaves pages to fault in again
        _applied = mallopt(M_MMAP_MAX, 0) == 1 and mallopt(M_TRIM_THRESHOLD, NEVER) == 1
    return _applied


def in_effect():
    """Whether this process's malloc keeps freed memory (set by `keep_freed_memory`)."""
    return _applied

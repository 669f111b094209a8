"""How a process that answers names uses glibc's allocator: the one place that calls it.

    keep_freed_memory()    # keep what a model call frees for the next call (every Predictor sets it)
    hand_back_freed_memory()  # give back to the system what is free now (after a one-off build)

Both do nothing where the C library is not glibc.
"""
import ctypes

KEPT_FREE_MEMORY = 256 << 20  # bytes of freed memory glibc keeps for the next call (a pool process frees 72 MB at once)
MMAP_THRESHOLD = 32 << 20  # arrays up to this size come from the heap (the most glibc allows; its default adapts up to it)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)


def _glibc():
    """The C library's functions (the process's own symbols include them), or None where they cannot be loaded."""
    try:
        return ctypes.CDLL(None)
    except OSError:
        return None


def keep_freed_memory() -> None:
    """Have glibc keep the memory a model call frees for the next call, instead of handing it back to the system.

    A call allocates and frees arrays of a few MB at every level of the GRU's trie. By default glibc gives such
    memory back and the next call takes it again page by page: about 12,000 page faults a call of the data set's
    20,050 names; a million distinct names in a table about 900,000, and 3-4 s of system time. Kept (up to
    KEPT_FREE_MEMORY at the top of the heap, arrays up to MMAP_THRESHOLD from the heap), a process faults its
    pages in about once. What is kept was in use at a call's peak, so the peak grows only by what no later call
    can reuse (docs/speed.md: up to about 50 MB over two workers); a process that answered a large call and then
    waits (serve.py) holds it until the next. Process-wide."""
    libc = _glibc()
    if hasattr(libc, "mallopt"):
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)  # set together: setting either stops glibc adjusting both
        libc.mallopt(M_TRIM_THRESHOLD, KEPT_FREE_MEMORY)


def hand_back_freed_memory() -> None:
    """Give the system the memory that is free now, however much KEPT_FREE_MEMORY would let glibc keep: after a
    one-off build (the n-gram's tables: 45 MB of the default model's 390 MB peak)."""
    libc = _glibc()
    if hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)

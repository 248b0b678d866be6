"""How a hostplug process asks for memory: full-size arrays reuse freed memory, and fresh pages come quickly."""

from __future__ import annotations

import os


def keep_freed_memory() -> None:
    """Have glibc's malloc keep the memory a stage frees for the next stage (and the next render), instead of
    handing every full-size array back to the system and taking fresh pages, to be faulted in and zeroed, for the
    next one: big arrays come from the heap (``M_MMAP_MAX`` 0), which is never trimmed (``M_TRIM_THRESHOLD``).

    The peak stays what it was; a long-lived process (the render service, the watch daemon) holds it until it
    exits. Measured on the 2-core machine: a new exposure through the service 2.9 s instead of 4.0 s (medians of
    12, load 8); a cold ``hostplug render`` of the 18 MP raw 2.82 s instead of 3.07 s (medians of 5, quiet).
    Not glibc: nothing."""
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_max = -1, -4  # glibc's malloc.h
    mallopt(m_mmap_max, 0)
    mallopt(m_trim_threshold, 2**31 - 1)


def no_huge_page_advice() -> None:
    """Ask numpy (through ``NUMPY_MADVISE_HUGEPAGE``, read when numpy is imported: call this first) not to advise
    the kernel to back big arrays with transparent huge pages, unless the user's environment says otherwise.

    With the kernel's common ``defrag=madvise`` setting, a page fault in an advised array may stop to compact
    memory for a huge page; a render touches about 0.6 GB of new arrays, and on the 2-core test machine a cold
    ``hostplug render`` of the 18 MP raw took 4.0 s with the advice and 2.5 s without (medians of 7, alternating,
    same run; LibRaw's script 1.38 s), while a warm render in one process took the same time either way."""
    os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")

"""What an entry point (the CLI, a sweep's trial process) changes for the whole process, each scoped
and put back: compute threads, SIGTERM, glibc's allocator. Library code calls none of these: it never
changes process-wide settings (`hardware` only detects what the machine has).
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from qatune.hardware import Threads


@contextmanager
def threads_scope(threads: Threads) -> Iterator[None]:
    """Compute with `threads.count` threads inside the block, as the CLI does for one command: torch (if it is
    loaded) and OMP_NUM_THREADS (read by torch when it loads later, and by child processes); both are put
    back afterwards. Only the CLI calls this: library code never changes process-wide settings."""
    saved = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = str(threads.count)
    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    if torch is not None:
        torch.set_num_threads(threads.count)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = saved
        if before is not None:
            sys.modules["torch"].set_num_threads(before)


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM (kill, a scheduler's stop) like Ctrl-C inside the block, so a training run or a sweep
    checkpoints before it stops; the previous handler comes back afterwards."""

    def handler(signum: int, frame: FrameType | None) -> None:  # noqa: ARG001
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# glibc malloc: M_TRIM_THRESHOLD (-1) and M_MMAP_THRESHOLD (-3), the latter at its 64-bit maximum.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_KEEP_FREED_BYTES, _MMAP_FROM_BYTES = 256 << 20, 32 << 20


def tune_allocator() -> bool:
    """Keep freed tensor memory in the process instead of handing it back to the OS (glibc only).

    Why: by default glibc maps each allocation over its (adaptive) threshold afresh and returns freed
    memory at the top of the heap, so a forward pass's activations (MBs each) are page-faulted in and
    zeroed again on every pass: a quarter of a bfloat16 forward pass of 8 windows on an AVX512-BF16 EPYC
    (80-90 ms against 61-65 ms with these settings, 3.5x the minor page faults). The cost: up to 256 MB
    freed memory stays mapped. Called by the CLI (not at import); False where the C library is not glibc.
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_FROM_BYTES)) and bool(mallopt(_M_TRIM_THRESHOLD, _KEEP_FREED_BYTES))

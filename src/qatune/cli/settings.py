"""The process-wide settings one `qatune` command runs under, made here and nowhere in the library.

Compute threads (`--threads`, else what `hardware.compute_threads` finds), the verbosity of the
libraries qatune calls (quiet unless asked), and glibc's allocator; each is put back when the
command ends, so calling `main()` twice in one process (tests, notebooks) leaves no trace.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from qatune.hardware import MAX_THREADS, compute_threads
from qatune.process import sigterm_as_interrupt, threads_scope, tune_allocator

logger = logging.getLogger("qatune")

# Read by transformers and huggingface_hub when they load: their info lines and download bars are noise
# under qatune's own progress bars.
QUIET_LIBRARIES = {"TRANSFORMERS_VERBOSITY": "error", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """`values` in os.environ (a user's own setting wins), restored afterwards."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update({k: v for k, v in values.items() if saved[k] is None})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Errors only from transformers (already loaded or loaded later), its level restored afterwards."""
    with _environment(QUIET_LIBRARIES):
        loaded = sys.modules.get("transformers")
        if loaded is None:
            yield
            return
        before, bars = loaded.logging.get_verbosity(), loaded.utils.logging.is_progress_bar_enabled()
        loaded.logging.set_verbosity_error()
        loaded.utils.logging.disable_progress_bar()
        try:
            yield
        finally:
            loaded.logging.set_verbosity(before)
            if bars:
                loaded.utils.logging.enable_progress_bar()


@contextmanager
def command_settings(threads: int | None, sigterm: bool = False) -> Iterator[None]:
    """What one command runs under: `threads` compute threads (None: found from this process's CPUs),
    quiet libraries, an allocator that keeps freed tensor memory (`process.tune_allocator`), and with
    `sigterm` SIGTERM as Ctrl-C (commands that checkpoint: train, sweep, run)."""
    chosen = compute_threads(threads)
    if chosen.ignored:
        logger.warning(
            "%s is not a thread count in [1, %d]; computing with %d threads (%s)",
            chosen.ignored,
            MAX_THREADS,
            chosen.count,
            chosen.source,
        )
    logger.debug("compute threads: %d (%s)", chosen.count, chosen.source)
    tune_allocator()
    with ExitStack() as stack:
        stack.enter_context(threads_scope(chosen))
        stack.enter_context(_quiet_transformers())
        if sigterm:
            stack.enter_context(sigterm_as_interrupt())
        yield

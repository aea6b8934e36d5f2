"""The process-wide settings one `qatune` command runs under, made here and nowhere in the library.

Compute threads (`--threads`, else what `hardware.compute_threads` finds), logging (qatune's own lines,
`warning: ` for warnings; third-party logging and Python warnings quiet unless `-v`), and glibc's allocator;
each is put back when the command ends, so calling `main()` twice in one process (tests, notebooks) leaves
no trace.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from qatune.hardware import MAX_THREADS, compute_threads
from qatune.process import sigterm_as_interrupt, threads_scope, tune_allocator

logger = logging.getLogger("qatune")

# Read by libraries when they load (later, inside the command): their download bars and log lines are noise
# under qatune's own progress bars and `error:`/`warning:` lines.
NO_BARS = {"HF_HUB_DISABLE_PROGRESS_BARS": "1"}
QUIET_LIBRARIES = {"TRANSFORMERS_VERBOSITY": "error", "HF_HUB_VERBOSITY": "error", "MLFLOW_LOGGING_LEVEL": "ERROR"}
# Libraries that log through handlers of their own (not the root logger's): while a command runs, what they
# log goes to the root logger, where qatune's handler takes it (transformers has its own switch).
THIRD_PARTY = ("huggingface_hub", "mlflow", "onnxruntime", "onnx", "onnxscript", "accelerate", "alembic", "datasets")


class _Format(logging.Formatter):
    """qatune's lines as they are (`warning: ` before a warning); a third party's with its logger's name."""

    def format(self, record: logging.LogRecord) -> str:
        prefix = "warning: " if record.levelno >= logging.WARNING else ""
        own = record.name in ("qatune", "root") or record.name.startswith("qatune.")
        source = "" if own else f"{record.name}: "
        return prefix + source + record.getMessage()


@contextmanager
def _logging(quiet: bool, verbose: bool) -> Iterator[None]:
    """qatune's logger on stderr (warnings only with `quiet`, debug lines with `verbose`); every other
    logger's records (the root logger's, as onnxruntime's `logging.warning`, and Python warnings) go to
    one handler on the root logger that drops them unless `verbose`. All of it put back afterwards."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Format())
    third = logging.StreamHandler(sys.stderr)  # on the root: so logging.warning() no longer calls basicConfig
    third.setFormatter(_Format())
    third.setLevel(logging.NOTSET if verbose else logging.CRITICAL + 1)
    ours, root = logging.getLogger("qatune"), logging.getLogger()
    loaded = [logging.getLogger(n) for n in THIRD_PARTY if n in logging.root.manager.loggerDict]
    saved = [(lg, lg.handlers[:], lg.level, lg.propagate) for lg in (ours, *loaded)]
    ours.handlers[:], ours.propagate = [handler], False
    ours.setLevel(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)
    for lg in loaded:
        lg.handlers[:], lg.propagate = [], True
        if not verbose:
            lg.setLevel(logging.ERROR)
    root.addHandler(third)
    showwarning = warnings.showwarning
    logging.captureWarnings(True)  # Python warnings (FutureWarning...) as records of the py.warnings logger
    try:
        yield
    finally:
        if warnings.showwarning is not showwarning:  # captured here, not by the caller already
            logging.captureWarnings(False)
            warnings.showwarning = showwarning
        root.removeHandler(third)
        for lg, handlers, level, propagate in saved:
            lg.handlers[:], lg.propagate = handlers, propagate
            lg.setLevel(level)


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
def _quiet_transformers(verbose: bool) -> Iterator[None]:
    """No progress bars from transformers and huggingface_hub, and (unless `verbose`) errors only from
    transformers and the libraries in QUIET_LIBRARIES (already loaded or loaded later), restored afterwards."""
    with _environment(NO_BARS if verbose else NO_BARS | QUIET_LIBRARIES):
        loaded = sys.modules.get("transformers")
        if loaded is None:
            yield
            return
        before, bars = loaded.logging.get_verbosity(), loaded.utils.logging.is_progress_bar_enabled()
        if not verbose:
            loaded.logging.set_verbosity_error()
        loaded.utils.logging.disable_progress_bar()
        try:
            yield
        finally:
            loaded.logging.set_verbosity(before)
            if bars:
                loaded.utils.logging.enable_progress_bar()


@contextmanager
def command_settings(
    threads: int | None, sigterm: bool = False, *, quiet: bool = False, verbose: bool = False
) -> Iterator[None]:
    """What one command runs under: qatune's logging (`quiet`: warnings and errors only; `verbose`: debug
    lines and the third-party logging otherwise dropped), `threads` compute threads (None: found from this
    process's CPUs), quiet libraries, an allocator that keeps freed tensor memory (`process.tune_allocator`),
    and with `sigterm` SIGTERM as Ctrl-C (commands that checkpoint: train, sweep, run)."""
    with ExitStack() as stack:
        stack.enter_context(_logging(quiet, verbose))
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
        stack.enter_context(threads_scope(chosen))
        stack.enter_context(_quiet_transformers(verbose))
        if sigterm:
            stack.enter_context(sigterm_as_interrupt())
        yield

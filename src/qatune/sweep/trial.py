"""One sweep trial as a child process: `python -m qatune.sweep.trial TRIAL_DIR`.

Why a process per trial: a crash, an out-of-memory kill or leaked memory ends with the trial, not
the sweep. The child is `qatune.fine_tune` on the trial's `trial.json`; it checkpoints on SIGTERM,
and also when its parent (the sweep worker) dies, so a retried trial resumes where it stopped.
A child that fails with an exception records why in `trial-error.json` (`TrialFailure`), which the
parent reads rather than the child's log.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from qatune.errors import QatuneError, TrainingInterrupted
from qatune.io import atomic_write_json, read_json, read_jsonl
from qatune.layout import HISTORY_FILE, TRIAL_CONFIG, TRIAL_FAILURE, TRIAL_LOCK, TRIAL_LOG
from qatune.training.history import HistoryRecord, history_records

if TYPE_CHECKING:
    from qatune.training.config import Settings

logger = logging.getLogger(__name__)

EXIT_INTERRUPTED = 130
EXIT_CONFIG = 2


class TrialEvent(TypedDict):
    """What a sweep worker tells its callback about a trial: it started (`running`, the note lists its
    settings) or ended (`complete`, `pruned` or `failed`, the note says why)."""

    trial: int  # Optuna's trial number
    state: str
    note: str


class TrialProcess:
    """The parent's handle on a running trial: start it, read its history, stop it."""

    def __init__(self, folder: Path, config: Settings) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(folder / TRIAL_CONFIG, config)
        (folder / TRIAL_FAILURE).unlink(missing_ok=True)  # a retry must not read an earlier attempt's
        self.log = open(folder / TRIAL_LOG, "a", encoding="utf-8")
        # Own session: a Ctrl-C in the terminal reaches the worker only, which then stops the child once.
        self.process = subprocess.Popen(
            [sys.executable, "-m", "qatune.sweep.trial", str(folder)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.began = time.time()

    def history(self) -> list[HistoryRecord]:
        """The child's metrics.jsonl records, as read (train and eval lines)."""
        return history_records(read_jsonl(self.folder / HISTORY_FILE))

    def poll(self) -> int | None:
        return self.process.poll()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 300) -> int:
        """Signal the child and wait; SIGTERM lets it checkpoint first. Escalates to SIGKILL."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        return self.process.returncode

    def close(self) -> None:
        self.log.close()

    def error(self) -> str:
        """A one-line reason for a failed child: what it recorded in trial-error.json, or its exit status."""
        code = self.process.returncode
        failure = TrialFailure.read(self.folder)
        if failure is not None:
            return failure.reason(code)
        if code is not None and code < 0:
            name = signal.Signals(-code).name
            hint = " (out of memory?)" if code == -signal.SIGKILL else ""
            return f"killed by {name}{hint}"
        text = (self.folder / TRIAL_LOG).read_text(encoding="utf-8", errors="replace").strip().splitlines()
        return f"exit code {code}: {text[-1] if text else 'no output'}"


@dataclass(frozen=True)
class TrialFailure:
    """Why a trial's child failed, as it wrote it to trial-error.json just before exiting.

    `kind`: "config" (a QatuneError: settings, data, model, a diverged run; exit 2), "interrupted"
    (a TrainingInterrupted: it checkpointed first; exit 130) or "crash" (any other exception; exit 1).
    """

    kind: str
    error: str
    type: str

    @classmethod
    def of(cls, exc: BaseException) -> TrialFailure:
        if isinstance(exc, TrainingInterrupted):
            kind = "interrupted"
        elif isinstance(exc, QatuneError):
            kind = "config"
        else:
            kind = "crash"
        return cls(kind, str(exc), type(exc).__name__)

    @classmethod
    def read(cls, folder: Path) -> TrialFailure | None:
        """The record in `folder`, or None when there is none or it is damaged."""
        try:
            raw = read_json(folder / TRIAL_FAILURE, "trial failure record")
        except QatuneError:
            return None
        fields = ("kind", "error", "type")
        if not isinstance(raw, dict) or not all(isinstance(raw.get(key), str) for key in fields):
            return None
        return cls(*(raw[key] for key in fields))

    def write(self, folder: Path) -> None:
        try:
            atomic_write_json(folder / TRIAL_FAILURE, asdict(self))
        except OSError as exc:  # the failure itself matters more: the parent falls back to the exit status
            logger.warning("cannot record the trial's failure in %s: %s", folder / TRIAL_FAILURE, exc)

    def reason(self, code: int | None) -> str:
        """The one line the sweep shows (the same words the child's last log lines say)."""
        first = self.error.strip().splitlines()[0] if self.error.strip() else ""
        if self.kind == "config":
            return f"error: {first}".strip()
        if self.kind == "interrupted":
            return f"exit code {code}: interrupted: {first}".strip()
        return f"{self.type}: {first}" if first else self.type


@contextlib.contextmanager
def _trial_lock(folder: Path) -> Iterator[None]:
    """Hold the trial folder, waiting for as long as another child holds it.

    An orphaned child of a killed worker may still be writing its checkpoint: the new child waits
    for it. An OS lock (filelock, as `paths.exclusive`): the OS releases it when a process dies. On a
    file system without locks nothing is held.
    """
    from filelock import FileLock

    lock = FileLock(folder / TRIAL_LOCK, timeout=-1, fallback_to_soft=False)
    try:
        lock.acquire()
    except (OSError, NotImplementedError) as exc:
        logger.debug("%s: not locked (%s)", folder, exc)
        yield
        return
    try:
        yield
    finally:
        lock.release()


def _watch_parent(parent: int) -> None:
    """If the worker dies (even by SIGKILL), stop like a SIGTERM: checkpoint, then exit."""

    def loop() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=loop, daemon=True).start()


def main(folder: str) -> int:
    from qatune.process import sigterm_as_interrupt
    from qatune.training.config import TrainConfig
    from qatune.training.trainer import train

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    _watch_parent(os.getppid())
    path = Path(folder)
    with _trial_lock(path):
        (path / TRIAL_FAILURE).unlink(missing_ok=True)  # an earlier attempt's: this attempt reports its own
        logging.getLogger("qatune").info("trial process %d started", os.getpid())
        try:
            config = TrainConfig.from_saved(read_json(path / TRIAL_CONFIG, "trial file"))
            with sigterm_as_interrupt():  # the worker stops a trial with SIGTERM: checkpoint first
                train(config, progress_bar=False)
        except TrainingInterrupted as exc:
            TrialFailure.of(exc).write(path)
            print(f"interrupted: {exc}", file=sys.stderr)
            return EXIT_INTERRUPTED
        except QatuneError as exc:
            TrialFailure.of(exc).write(path)
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_CONFIG
        except Exception as exc:
            TrialFailure.of(exc).write(path)
            raise  # the traceback goes to trial.log; exit status 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

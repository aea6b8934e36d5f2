"""One sweep trial as a child process: `python -m qatune.sweep.trial TRIAL_DIR`.

Why a process per trial: a crash, an out-of-memory kill or leaked memory ends with the trial, not
the sweep. The child is `qatune.fine_tune` on the trial's `trial.json`; it checkpoints on SIGTERM,
and also when its parent (the sweep worker) dies, so a retried trial resumes where it stopped.
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from qatune.io import atomic_write_json, read_json, read_jsonl
from qatune.layout import HISTORY_FILE, TRIAL_CONFIG

LOG = "trial.log"
LOCK = ".trial.lock"
EXIT_INTERRUPTED = 130
EXIT_CONFIG = 2


class TrialProcess:
    """The parent's handle on a running trial: start it, read its history, stop it."""

    def __init__(self, folder: Path, config: dict[str, Any]) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(folder / TRIAL_CONFIG, config)
        self.log = open(folder / LOG, "a", encoding="utf-8")
        # Own session: a Ctrl-C in the terminal reaches the worker only, which then stops the child once.
        self.process = subprocess.Popen(
            [sys.executable, "-m", "qatune.sweep.trial", str(folder)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.began = time.time()

    def history(self) -> list[dict[str, Any]]:
        return read_jsonl(self.folder / HISTORY_FILE)

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
        """A one-line reason for a failed child: its last `error:` line, or its exit status."""
        text = (self.folder / LOG).read_text(encoding="utf-8", errors="replace").strip().splitlines()
        code = self.process.returncode
        for line in reversed(text[-50:]):
            if line.startswith("error:") or "Error" in line.split(":")[0]:
                return line.strip()
        if code is not None and code < 0:
            name = signal.Signals(-code).name
            hint = " (out of memory?)" if code == -signal.SIGKILL else ""
            return f"killed by {name}{hint}"
        return f"exit code {code}: {text[-1] if text else 'no output'}"


def _watch_parent(parent: int) -> None:
    """If the worker dies (even by SIGKILL), stop like a SIGTERM: checkpoint, then exit."""

    def loop() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=loop, daemon=True).start()


def main(folder: str) -> int:
    from qatune.errors import QatuneError, TrainingInterrupted
    from qatune.training.config import TrainConfig
    from qatune.training.trainer import train

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    _watch_parent(os.getppid())
    path = Path(folder)
    with open(path / LOCK, "w") as lock:
        # An orphaned child of a killed worker may still be writing its checkpoint: wait for it.
        fcntl.flock(lock, fcntl.LOCK_EX)
        logging.getLogger("qatune").info("trial process %d started", os.getpid())
        try:
            config = TrainConfig.from_dict(read_json(path / TRIAL_CONFIG, "trial file"))
            train(config, progress_bar=False)
        except TrainingInterrupted as exc:
            print(f"interrupted: {exc}", file=sys.stderr)
            return EXIT_INTERRUPTED
        except QatuneError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_CONFIG
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

"""Checkpoints of a fine-tuning run: write atomically, find the latest, resume where it stopped."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from qatune.config import TrainConfig
from qatune.errors import ConfigError
from qatune.io import atomic_write_json, read_jsonl, write_jsonl

CONFIG_FILE = "qatune.json"
HISTORY_FILE = "metrics.jsonl"
CHECKPOINTS = "checkpoints"


@dataclass
class Progress:
    """Where training stands: optimizer steps done, and the position in the epoch's batches."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    windows_seen: int = 0
    completed: bool = False


def latest_checkpoint(output_dir: Path) -> Path | None:
    folder = output_dir / CHECKPOINTS
    found = [p for p in folder.glob("step-*") if (p / "progress.json").exists()] if folder.exists() else []
    return max(found, key=lambda p: int(p.name.split("-")[1]), default=None)


def save_checkpoint(accelerator, output_dir: Path, progress: Progress, keep: int = 1) -> Path:
    """Save model, optimizer, scheduler and RNG state; the folder appears only once complete."""
    final = output_dir / CHECKPOINTS / f"step-{progress.step}"
    tmp = output_dir / CHECKPOINTS / f".tmp-step-{progress.step}"
    shutil.rmtree(tmp, ignore_errors=True)
    accelerator.save_state(str(tmp))
    atomic_write_json(tmp / "progress.json", asdict(progress))
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    older = sorted((p for p in final.parent.glob("step-*") if p != final), key=lambda p: int(p.name.split("-")[1]))
    for old in older[: max(0, len(older) - keep + 1)]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_progress(checkpoint: Path) -> Progress:
    return Progress(**json.loads((checkpoint / "progress.json").read_text()))


def prepare_output(config: TrainConfig, overwrite: bool) -> Progress | None:
    """Check the output folder: a fresh start, the same run to resume, or a clash to report.

    Returns the saved progress of a finished run (nothing to do), else None.
    """
    out = Path(config.output_dir)
    saved = out / CONFIG_FILE
    if overwrite and out.exists():
        for name in (CHECKPOINTS, HISTORY_FILE, CONFIG_FILE, "progress.json"):
            target = out / name
            shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
    elif saved.exists():
        previous = TrainConfig.from_dict(json.loads(saved.read_text())["config"])
        if not previous.same_run(config):
            raise ConfigError(f"{out} holds a run with other settings; choose another --output or pass --overwrite")
        done = out / "progress.json"
        if done.exists():
            progress = Progress(**json.loads(done.read_text()))
            if progress.completed:
                return progress
    out.mkdir(parents=True, exist_ok=True)
    return None


def trim_history(output_dir: Path, step: int) -> None:
    """Drop history records written after `step` (they will be recomputed on resume)."""
    path = output_dir / HISTORY_FILE
    records = read_jsonl(path)
    write_jsonl(path, [r for r in records if r.get("step", 0) <= step])

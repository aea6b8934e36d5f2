"""Checkpoints of a fine-tuning run: write atomically, find the latest, resume where it stopped."""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from qatune.errors import ConfigError
from qatune.io import atomic_write_json, read_json, read_jsonl, write_jsonl
from qatune.layout import (
    CHECKPOINTS,
    CONFIG_FILE,
    HISTORY_FILE,
    LEGACY_CHECKPOINT_TEMPORARIES,
    LEGACY_RUN_TEMPORARIES,
    PROGRESS_FILE,
    STAGE_MARKER,
    TRIAL_CONFIG,
)
from qatune.paths import check_output_folder, holds, make_folder, remove_leftovers, staged_folder
from qatune.training.config import TrainConfig


@dataclass
class Progress:
    """Where training stands: optimizer steps done, and the position in the epoch's batches."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    windows_seen: int = 0
    completed: bool = False
    best_step: int | None = None  # the best evaluation so far (qatune.training.best), and how many came since
    best_value: float | None = None
    evals_since_best: int = 0


def latest_checkpoint(output_dir: Path) -> Path | None:
    folder = output_dir / CHECKPOINTS
    found = [p for p in folder.glob("step-*") if (p / PROGRESS_FILE).exists()] if folder.exists() else []
    return max(found, key=lambda p: int(p.name.split("-")[1]), default=None)


def save_checkpoint(accelerator: Any, output_dir: Path, progress: Progress, keep: int = 1) -> Path:
    """Save model, optimizer, scheduler and RNG state; the folder appears only once complete (written in a
    qatune temporary folder beside it, which a kill leaves for the next save to remove)."""
    final = output_dir / CHECKPOINTS / f"step-{progress.step}"
    remove_leftovers(final.parent, legacy=LEGACY_CHECKPOINT_TEMPORARIES)
    with staged_folder(final) as tmp:
        accelerator.save_state(str(tmp))
        atomic_write_json(tmp / PROGRESS_FILE, asdict(progress))
    older = sorted((p for p in final.parent.glob("step-*") if p != final), key=lambda p: int(p.name.split("-")[1]))
    for old in older[: max(0, len(older) - keep + 1)]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_progress(path: Path) -> Progress:
    """The progress saved in a checkpoint folder or a run folder; a damaged file is a ConfigError."""
    file = path / PROGRESS_FILE
    try:
        progress = Progress(**read_json(file, "progress file"))
    except TypeError:
        raise ConfigError(f"{file}: not a qatune progress file; pass --overwrite to start over") from None
    for name, value in asdict(progress).items():
        expected = bool if name == "completed" else (int, float) if name == "best_value" else int
        if not (value is None and name.startswith("best_")) and (
            not isinstance(value, expected) or (expected is not bool and (isinstance(value, bool) or value < 0))
        ):
            raise ConfigError(
                f"{file}: {name} is {value!r}, not a qatune progress value; pass --overwrite to start over"
            )
    return progress


def load_checkpoint(accelerator: Any, path: Path) -> Progress:
    """Restore model, optimizer, scheduler and RNG state from a checkpoint folder; a damaged one is a
    ConfigError naming it (they are written whole, so only a disk fault or an edit damages one)."""
    progress = load_progress(path)
    try:
        accelerator.load_state(str(path))
    except Exception as exc:  # safetensors, torch.load and pickle raise many types; all mean a damaged file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"{path}: damaged checkpoint, cannot resume from it ({first}); pass --overwrite to start over"
        ) from None
    return progress


def saved_config(folder: Path) -> TrainConfig:
    """The config of the run in `folder` (its qatune.json); a damaged file is a ConfigError naming it."""
    file = folder / CONFIG_FILE
    raw = read_json(file, "run file")
    try:
        return TrainConfig.from_saved(raw["config"])
    except (KeyError, TypeError) as exc:
        raise ConfigError(
            f"{file}: not a qatune run file ({type(exc).__name__}: {exc}); choose another --output or pass --overwrite"
        ) from None
    except ConfigError as exc:
        raise ConfigError(f"{file}: {exc}; choose another --output or pass --overwrite") from None


def check_output(config: TrainConfig, overwrite: bool) -> Progress | None:
    """Check the output folder, changing nothing: a fresh start, the same run to resume, or a clash to report.

    Returns the saved progress of a finished run (nothing to do), else None.
    """
    model = Path(config.model).resolve()
    if Path(config.model).is_dir() and (
        model == Path(config.output_dir).resolve() or Path(config.output_dir).resolve() in model.parents
    ):
        raise ConfigError(
            f"--output {config.output_dir} holds the model it starts from ({config.model}); fine-tuning further "
            f"writes a new folder: choose another --output (even --overwrite never replaces the --model)"
        )
    out = check_output_folder(
        config.output_dir, "--output", (CONFIG_FILE, STAGE_MARKER, TRIAL_CONFIG), "a qatune training run", overwrite
    )
    if not overwrite and (out / CONFIG_FILE).exists():
        if not saved_config(out).same_run(config):
            raise ConfigError(f"{out} holds a run with other settings; choose another --output or pass --overwrite")
        if (out / PROGRESS_FILE).exists():
            progress = load_progress(out)
            if progress.completed:
                return progress
    return None


def prepare_output(config: TrainConfig, overwrite: bool) -> None:
    """Make the checked output folder ready: with `overwrite`, the previous run's files go first; once this
    process holds the folder, the temporaries a killed run left there go too."""
    out = Path(config.output_dir)
    if overwrite and out.exists():
        for name in (CHECKPOINTS, HISTORY_FILE, CONFIG_FILE, PROGRESS_FILE):
            target = out / name
            shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
    make_folder(out, "--output")
    if holds(out):
        remove_run_leftovers(out)


def remove_run_leftovers(out: Path) -> None:
    """Remove the temporaries killed qatune processes left in the run folder `out` and its checkpoints
    (this process holds it, so none is being written)."""
    remove_leftovers(out, legacy=LEGACY_RUN_TEMPORARIES)
    remove_leftovers(out / CHECKPOINTS, legacy=LEGACY_CHECKPOINT_TEMPORARIES)


def trim_history(output_dir: Path, step: int) -> None:
    """Drop history records written after `step` (they will be recomputed on resume)."""
    path = output_dir / HISTORY_FILE
    records = read_jsonl(path)
    write_jsonl(path, [r for r in records if r.get("step", 0) <= step])

"""Experiment trackers (`--report-to tensorboard,mlflow,wandb`): a run's records where users watch runs.

One seam, `Tracker`, fed the records qatune writes to metrics.jsonl: training loss, learning rate and
windows/s every `logging_steps`, each evaluation's EM, F1, correct/similar/incorrect, losses and ECE
at its step, the settings as parameters, and the final scores. `train` feeds its own run; the sweep
worker feeds each trial from the trial's history (so a trial's child process opens no tracker). A
tracker's run id is kept in the run folder (`trackers.json`), so a resumed run continues its run.

- tensorboard: event files in RUN/tensorboard (`tensorboard --logdir RUN`), via torch's SummaryWriter.
- mlflow: $MLFLOW_TRACKING_URI, else MLflow's own default (./mlflow.db, SQLite: MLflow 3 no longer
  takes the ./mlruns file store); experiment `qatune` (or a sweep config's `project`).
- wandb: project `qatune` (or the sweep config's `project`); WANDB_MODE=offline works as documented.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from qatune.errors import ConfigError, QatuneError
from qatune.io import JsonObject, atomic_write_json, read_json
from qatune.layout import TENSORBOARD, TRACKER_IDS
from qatune.training.history import HistoryRecord

logger = logging.getLogger(__name__)

TRACKERS = ("tensorboard", "mlflow", "wandb")
EVAL_KEYS = ("exact_match", "f1", "correct", "similar", "incorrect", "eval_loss", "train_loss", "ece", "ece_raw")
PACKAGES = {"tensorboard": "tensorboard", "mlflow": "mlflow-skinny", "wandb": "wandb"}


def parse_report_to(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """`tensorboard,mlflow` (or a list) -> the tracker names; `none`, empty or None -> none."""
    names = [value] if isinstance(value, str) else list(value or [])
    parts = [p.strip().lower() for name in names for p in str(name).split(",") if p.strip()]
    if "none" in parts:
        if set(parts) != {"none"}:
            raise ConfigError(f"report_to: none means no tracker; it cannot be combined with others, got {value!r}")
        return ()
    unknown = [p for p in parts if p not in TRACKERS]
    if unknown:
        raise ConfigError(f"report_to: unknown tracker(s) {', '.join(unknown)}; valid: {', '.join(TRACKERS)}, none")
    return tuple(dict.fromkeys(parts))


@dataclass
class RunInfo:
    """Who a tracker run is: its name, folder (event files, ids), settings, and sweep (group)."""

    name: str
    folder: Path
    params: Mapping[str, object]  # the settings, as the trackers show them (`_flat`)
    group: str | None = None
    project: str = "qatune"


class Tracker(Protocol):
    """One tracker's run, opened as `Tracker(run, run_id)` (run_id: the run to continue, or None);
    `run_id` is then the id to keep for a resume (None for trackers that need none)."""

    run_id: str | None

    def log(self, metrics: dict[str, float], step: int) -> None: ...

    def finish(self, summary: dict[str, float], state: str) -> None: ...


@dataclass
class Feed:
    """Turns metrics.jsonl records into tracker metrics and hands them to every tracker."""

    trackers: list[Tracker]
    last_train: HistoryRecord | None = field(default=None)

    def __call__(self, record: HistoryRecord) -> None:
        metrics = self.metrics(record)
        if metrics:
            for tracker in self.trackers:
                tracker.log(metrics, int(record["step"]))

    def metrics(self, record: HistoryRecord) -> dict[str, float]:
        if record.get("type") == "eval":
            return _finite({f"eval/{k}": record.get(k) for k in EVAL_KEYS})
        if record.get("type") != "train":
            return {}
        out = {"train/loss": record.get("loss"), "train/learning_rate": record.get("learning_rate")}
        before, self.last_train = self.last_train, record
        if before and record["elapsed"] > before["elapsed"]:
            rate = (record["windows_seen"] - before["windows_seen"]) / (record["elapsed"] - before["elapsed"])
            out["train/windows_per_s"] = rate
        return _finite(out)

    def finish(self, summary: Mapping[str, object], state: str) -> None:
        """End every tracker's run in `state`, with the final evaluation's figures (an eval record; {}: none)."""
        final = _finite({f"final/{k}": summary.get(k) for k in EVAL_KEYS})
        for tracker in self.trackers:
            tracker.finish(final, state)


def _finite(values: Mapping[str, object]) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in values.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    }


def _flat(params: Mapping[str, object]) -> dict[str, str | int | float | bool]:
    """Settings as scalar parameters (lists and None as text), as every tracker takes them."""
    return {k: v if isinstance(v, (str, int, float, bool)) else json.dumps(v) for k, v in params.items()}


def require(names: Sequence[str]) -> None:
    """A ConfigError naming the install for the first tracker whose package is missing (checked before
    a sweep asks for its first trial, not in the middle of one)."""
    import importlib

    for name in names:
        try:
            importlib.import_module({"tensorboard": "torch.utils.tensorboard"}.get(name, name))
        except ImportError:
            raise ConfigError(
                f"--report-to {name} needs the {PACKAGES[name]} package: pip install {PACKAGES[name]} "
                f"(or qatune[trackers])"
            ) from None


def open_feed(names: Sequence[str], run: RunInfo) -> Feed:
    """A Feed to trackers `names` for `run`; a missing package is a ConfigError naming the install."""
    require(names)
    ids_path = run.folder / TRACKER_IDS
    ids = _saved_ids(ids_path)
    opened: list[Tracker] = []
    for name in names:
        tracker = OPENERS[name](run, ids.get(name))
        ids[name] = tracker.run_id
        opened.append(tracker)
    if names:
        run.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(ids_path, ids)
    return Feed(opened)


def _saved_ids(path: Path) -> JsonObject:
    """The tracker run ids of an earlier attempt of this run (to resume them); damaged: start new runs."""
    if not path.is_file():
        return {}
    try:
        ids = read_json(path, "tracker ids file")
        if isinstance(ids, dict):
            return ids
        why = "not a JSON object"
    except QatuneError as exc:
        why = str(exc)
    logger.warning("%s: damaged (%s); the trackers start new runs", path, why)
    return {}


class TensorBoard:
    def __init__(self, run: RunInfo, run_id: str | None = None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.run_id: str | None = None  # event files are appended in the run folder: nothing to remember
        self.writer = SummaryWriter(log_dir=str(run.folder / TENSORBOARD))
        table = "\n".join(f"| {k} | {v} |" for k, v in _flat(run.params).items())
        self.writer.add_text("settings", "| setting | value |\n|---|---|\n" + table)

    def log(self, metrics: dict[str, float], step: int) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def finish(self, summary: dict[str, float], state: str) -> None:
        self.writer.add_text("state", state)
        for key, value in summary.items():
            self.writer.add_scalar(key, value, 0)
        self.writer.close()


class MLflow:
    def __init__(self, run: RunInfo, run_id: str | None) -> None:
        import mlflow
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(mlflow.get_tracking_uri())  # $MLFLOW_TRACKING_URI or MLflow's default
        if run_id is None:
            experiment = self.client.get_experiment_by_name(run.project)
            experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(run.project)
            tags = {"qatune.group": run.group} if run.group else {}
            run_id = self.client.create_run(experiment_id, run_name=run.name, tags=tags).info.run_id
            from mlflow.entities import Param

            params = [Param(k, str(v)[:6000]) for k, v in _flat(run.params).items()]
            self.client.log_batch(run_id, params=params)
        else:
            self.client.update_run(run_id, status="RUNNING")
        self.run_id = run_id

    def log(self, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, v, now, step) for k, v in metrics.items()])

    def finish(self, summary: dict[str, float], state: str) -> None:
        if summary:
            self.log(summary, 0)
        status = {"complete": "FINISHED", "pruned": "FINISHED", "interrupted": "KILLED"}.get(state, "FAILED")
        self.client.set_terminated(self.run_id, status)


class Wandb:
    def __init__(self, run: RunInfo, run_id: str | None) -> None:
        import wandb

        self.run = wandb.init(
            project=run.project,
            group=run.group,
            name=run.name,
            id=run_id,
            resume="allow" if run_id else None,
            reinit="create_new",
            config=run.params,
            dir=str(run.folder),
            job_type="sweep-trial" if run.group else "train",
        )
        self.run_id = getattr(self.run, "id", run_id)

    def log(self, metrics: dict[str, float], step: int) -> None:
        self.run.log(metrics, step=step)

    def finish(self, summary: dict[str, float], state: str) -> None:
        self.run.summary["state"] = state
        for key, value in summary.items():
            self.run.summary[key] = value
        self.run.finish(exit_code=0 if state in ("complete", "pruned") else 1)


OPENERS: dict[str, Callable[[RunInfo, str | None], Tracker]] = {
    "tensorboard": TensorBoard,
    "mlflow": MLflow,
    "wandb": Wandb,
}

"""The record of a finished fine-tuning run: what `train` returns and what `qatune.json` holds.

`RunSummary` crosses stages (the CLI, the sweep, the study, the model card); it becomes JSON in one
place (`to_dict`) and is read back in one place (`from_dict`), which takes every `qatune.json` qatune
has written: files from before `schema` are version 1 and hold the same fields.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qatune.errors import ConfigError
from qatune.evaluation.results import Scores
from qatune.hardware import Precision
from qatune.io import JsonObject, read_json
from qatune.layout import CONFIG_FILE
from qatune.models.settings import Calibration
from qatune.training.config import TrainConfig, upgraded

SUMMARY_SCHEMA = 2  # 1: qatune.json before it carried a schema number (same fields)


def saved_config(saved: Mapping[str, Any]) -> TrainConfig:
    """The settings a finished run saved, taken as they are (not checked again: a data path may have moved
    since); settings an older qatune had and this one dropped are left out (`config.upgraded`)."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in upgraded(saved).items() if k in fields})


@dataclass(frozen=True)
class DataInfo:
    """The data a run trained or was evaluated on."""

    source: str
    questions: int
    notes: tuple[str, ...] = ()
    windows: int | None = None  # training data: windows a pass over it

    def to_dict(self) -> JsonObject:
        head: JsonObject = {"source": self.source, "questions": self.questions}
        if self.windows is not None:
            head["windows"] = self.windows
        return {**head, "notes": list(self.notes)}

    @classmethod
    def from_dict(cls, saved: Mapping[str, Any]) -> DataInfo:
        return cls(saved["source"], saved["questions"], tuple(saved.get("notes") or ()), saved.get("windows"))


@dataclass(frozen=True)
class EvalRecord:
    """One evaluation during training: an `eval` line of metrics.jsonl."""

    step: int
    epoch: float
    windows_seen: int
    elapsed: float
    train_loss: float | None
    scores: Scores

    def to_dict(self) -> JsonObject:
        scores = {k: v for k, v in self.scores.to_dict().items() if k != "questions_per_second"}
        head = {"type": "eval", "step": self.step, "epoch": self.epoch, "windows_seen": self.windows_seen}
        return {**head, "elapsed": self.elapsed, "train_loss": self.train_loss, **scores}

    @classmethod
    def from_dict(cls, saved: Mapping[str, Any]) -> EvalRecord:
        return cls(
            saved["step"],
            saved.get("epoch", 0.0),
            saved.get("windows_seen", 0),
            saved.get("elapsed", 0.0),
            saved.get("train_loss"),
            Scores.from_dict(saved),
        )


@dataclass(frozen=True)
class BestChoice:
    """The best evaluation of a run (`--metric-for-best-model`), and whether its weights were saved."""

    metric: str
    value: float
    step: int
    loaded: bool = False

    def to_dict(self) -> JsonObject:
        head = {"metric": self.metric, "value": self.value, "step": self.step}
        return {**head, "loaded": True} if self.loaded else head


@dataclass(frozen=True)
class RunSummary:
    """A finished run: its exact settings, the versions and precision it ran with, its data, how long it
    took, the evaluation of the saved weights, the best one, and the calibration fitted after it."""

    config: TrainConfig
    versions: Mapping[str, str]
    precision: Precision | None  # None: a qatune.json from before precision was recorded
    base_model_path: str
    train_data: DataInfo
    eval_data: DataInfo | None
    steps: int
    windows_seen: int
    seconds: float
    final_eval: EvalRecord | None
    best: BestChoice | None
    calibration: Calibration | None
    schema: int = SUMMARY_SCHEMA

    def to_dict(self) -> JsonObject:
        precision = None if self.precision is None else dataclasses.asdict(self.precision)
        if precision is not None:
            precision["bf16_flags"] = list(self.precision.bf16_flags)  # type: ignore[union-attr]
        return {
            "schema": self.schema,
            "config": self.config.to_dict(),
            "versions": dict(self.versions),
            "precision": precision,
            "base_model_path": self.base_model_path,
            "train_data": self.train_data.to_dict(),
            "eval_data": None if self.eval_data is None else self.eval_data.to_dict(),
            "steps": self.steps,
            "windows_seen": self.windows_seen,
            "seconds": self.seconds,
            "final_eval": None if self.final_eval is None else self.final_eval.to_dict(),
            "best": None if self.best is None else self.best.to_dict(),
            "calibration": None if self.calibration is None else dataclasses.asdict(self.calibration),
        }

    @classmethod
    def from_dict(cls, saved: Mapping[str, Any]) -> RunSummary:
        """The summary in a `qatune.json` object (any schema qatune wrote); the settings are taken as saved,
        not checked again (a data path may have moved since)."""
        schema = saved.get("schema", 1)
        if not isinstance(schema, int) or isinstance(schema, bool) or not 1 <= schema <= SUMMARY_SCHEMA:
            raise ValueError(f"schema {schema!r}: this qatune reads 1 to {SUMMARY_SCHEMA} (a newer qatune wrote it?)")
        precision, calibration, best = saved.get("precision"), saved.get("calibration"), saved.get("best")
        if calibration:  # fields a newer qatune may add are left out, not refused
            calibration = {
                f.name: calibration[f.name] for f in dataclasses.fields(Calibration) if f.name in calibration
            }
        if precision:
            precision = {**precision, "bf16_flags": tuple(precision["bf16_flags"])}
        return cls(
            config=saved_config(saved["config"]),
            versions=dict(saved.get("versions") or {}),
            precision=None
            if not precision
            else Precision(**{**precision, "bf16_flags": tuple(precision["bf16_flags"])}),
            base_model_path=saved.get("base_model_path", ""),
            train_data=DataInfo.from_dict(saved["train_data"]),
            eval_data=DataInfo.from_dict(saved["eval_data"]) if saved.get("eval_data") else None,
            steps=saved["steps"],
            windows_seen=saved.get("windows_seen", 0),
            seconds=saved.get("seconds", 0.0),
            final_eval=EvalRecord.from_dict(saved["final_eval"]) if saved.get("final_eval") else None,
            best=BestChoice(**best) if best else None,
            calibration=Calibration.from_dict(calibration) if calibration else None,  # checked: it is exported
            schema=schema,
        )

    @classmethod
    def read(cls, folder: str | Path) -> RunSummary:
        """The summary of the finished run in `folder`; a damaged or unfinished one is a ConfigError."""
        path = Path(folder) / CONFIG_FILE
        saved = read_json(path, "run file")
        try:
            return cls.from_dict(saved)
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise ConfigError(f"{path}: not the summary of a finished run ({type(exc).__name__}: {exc})") from None

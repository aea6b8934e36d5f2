"""What a model folder says about its answers besides its weights: its calibration (calibration.json).

The record every answering backend reads (the temperature, the no-answer threshold) and what it was
fitted on; fitting it is `evaluation.calibration`. The file is read strictly, as every settings file:
a key given twice, a NaN or infinity, a field of the wrong type or out of range, a missing or unknown
field is one ModelError naming the file and the field, before anything is answered or exported.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, TypeGuard

from qatune.errors import ModelError
from qatune.io import JsonObject, atomic_write_json, read_json
from qatune.layout import CALIBRATION_FILE, ONNX_META

MIN_TEMPERATURE, MAX_TEMPERATURE = 0.01, 100.0
# What a top-1 answer's probability is fitted to predict. exact_match: matching one of the question's
# answers. Data with one answer a question (a user's own, SQuAD train) under-counts what people accept
# (dev v1.1, three annotators: EM 58 against the first answer alone, 70 against any of the three), and
# token F1 against that one answer estimates the several-annotator exact match (73 on dev): auto fits
# to F1 on single-answer questions and to exact match where most questions have several answers.
TARGETS = ("auto", "exact_match", "f1")

# Each number field's range, and whether it may be null.
_RANGES: dict[str, tuple[float, float, bool]] = {
    "temperature": (MIN_TEMPERATURE, MAX_TEMPERATURE, False),
    "exact_match": (0.0, 100.0, False),
    "ece_before": (0.0, 1.0, False),
    "ece_after": (0.0, 1.0, False),
    "null_threshold": (0.0, 1.0, True),
    "null_threshold_f1": (0.0, 100.0, True),
}


@dataclass(frozen=True)
class Calibration:
    """A fitted temperature and what it was fitted on and measured to do there."""

    temperature: float
    questions: int
    data: str
    exact_match: float  # of the top-1 answers on the fitting questions, 0-100
    ece_before: float  # expected calibration error (10 bins) of the raw top-1 probability, against `target`
    ece_after: float
    null_threshold: float | None = None  # models with a null answer: answer "" over this no-answer probability
    null_threshold_f1: float | None = None  # the F1 (0-100) the threshold reached on the fitting questions;
    # None with a threshold: set by hand (`qatune calibrate --null-threshold`)
    target: str = "exact_match"  # what the probability predicts (TARGETS); files from before it: exact_match

    def to_dict(self) -> JsonObject:
        return asdict(self)

    @classmethod
    def from_dict(cls, saved: Any) -> Calibration:
        """The calibration in a saved object, every field checked; a problem is a ValueError naming the field."""
        problem = calibration_problem(saved)
        if problem:
            raise ValueError(problem)
        return cls(**saved)


def _number(value: object) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def calibration_problem(saved: object) -> str | None:
    """What is wrong with a saved calibration object ("field: expected ..., got ..."), or None."""
    if not isinstance(saved, dict):
        return f"expected a JSON object, got {type(saved).__name__}"
    names = [f.name for f in fields(Calibration)]
    unknown = sorted(set(saved) - set(names))
    if unknown:
        return f"{unknown[0]}: not a calibration field (they are {', '.join(names)})"
    optional = {"null_threshold", "null_threshold_f1", "target"}
    missing = [name for name in names if name not in saved and name not in optional]
    if missing:
        return f"{missing[0]}: missing"
    for name, (low, high, nullable) in _RANGES.items():
        value = saved.get(name)
        if value is None and nullable:
            continue
        if not _number(value) or not math.isfinite(value) or not low <= value <= high:
            extra = " or null" if nullable else ""
            return f"{name}: expected a number in [{low:g}, {high:g}]{extra}, got {value!r}"
    questions = saved["questions"]
    if not isinstance(questions, int) or isinstance(questions, bool) or questions < 1:
        return f"questions: expected a whole number of at least 1, got {questions!r}"
    if not isinstance(saved["data"], str):
        return f"data: expected a string (the questions it was fitted on), got {saved['data']!r}"
    if saved.get("target", "exact_match") not in TARGETS[1:]:
        return f"target: expected one of {', '.join(TARGETS[1:])}, got {saved['target']!r}"
    return None


def _strict_json(path: Path, remedy: str) -> Any:
    """The JSON in `path`, read by the strict rules of every settings file (`io.read_json`), with `remedy`."""
    try:
        return read_json(path, "calibration file", ModelError)
    except ModelError as exc:
        raise ModelError(f"{exc}; {remedy}") from None


def refit_remedy(folder: str | Path) -> str:
    """How to replace a folder's damaged calibration: refit it (an export: calibrate its model, export again)."""
    if (Path(folder) / ONNX_META).is_file():
        return "calibrate the model it was exported from with `qatune calibrate` and export it again"
    return f"refit it with `qatune calibrate --model {folder}` (it does not read the old one)"


def read_calibration(folder: str | Path) -> Calibration | None:
    """The calibration saved in a model folder, or None when it has none; a damaged one is one ModelError
    naming the file, the field and how to replace it."""
    path = Path(folder) / CALIBRATION_FILE
    if not path.is_file():
        return None
    saved = _strict_json(path, refit_remedy(folder))
    if isinstance(saved, Mapping) and "target" not in saved:
        saved = {**saved, "target": "exact_match"}  # written before targets existed
    try:
        return Calibration.from_dict(saved)
    except ValueError as exc:
        raise ModelError(f"{path}: damaged ({exc}); {refit_remedy(folder)}") from None


def write_calibration(folder: str | Path, calibration: Calibration) -> Path:
    """calibration.json in `folder` (alone: `training.card.save_calibration` keeps qatune.json and the card
    in step with it)."""
    problem = calibration_problem(calibration.to_dict())
    if problem:  # a fit never gives one; a record built by hand may
        raise ModelError(f"calibration to save: {problem}")
    path = Path(folder) / CALIBRATION_FILE
    atomic_write_json(path, calibration.to_dict())
    return path

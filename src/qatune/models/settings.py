"""What a model folder says about its answers besides its weights: its calibration (calibration.json).

The record every answering backend reads (the temperature, the no-answer threshold) and what it was
fitted on; fitting it is `evaluation.calibration`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from qatune.errors import ModelError
from qatune.io import atomic_write_json, read_json
from qatune.layout import CALIBRATION_FILE

MIN_TEMPERATURE, MAX_TEMPERATURE = 0.01, 100.0
# What a top-1 answer's probability is fitted to predict. exact_match: matching one of the question's
# answers. Data with one answer a question (a user's own, SQuAD train) under-counts what people accept
# (dev v1.1, three annotators: EM 58 against the first answer alone, 70 against any of the three), and
# token F1 against that one answer estimates the several-annotator exact match (73 on dev): auto fits
# to F1 on single-answer questions and to exact match where most questions have several answers.
TARGETS = ("auto", "exact_match", "f1")


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
    null_threshold_f1: float | None = None  # the F1 (0-100) the threshold reached on the fitting questions
    target: str = "exact_match"  # what the probability predicts (TARGETS); files from before it: exact_match

    def check(self, where: str) -> Calibration:
        if not (math.isfinite(self.temperature) and MIN_TEMPERATURE <= self.temperature <= MAX_TEMPERATURE):
            raise ModelError(
                f"{where}: temperature must be a number in [{MIN_TEMPERATURE}, {MAX_TEMPERATURE}], "
                f"got {self.temperature!r}; refit it with `qatune calibrate`"
            )
        if self.target not in TARGETS[1:]:
            raise ModelError(f"{where}: target must be one of {', '.join(TARGETS[1:])}, got {self.target!r}")
        t = self.null_threshold
        if t is not None and (not isinstance(t, int | float) or isinstance(t, bool) or not 0 <= t <= 1):
            raise ModelError(f"{where}: null_threshold must be a probability in [0, 1] or null, got {t!r}")
        return self


def read_calibration(folder: str | Path) -> Calibration | None:
    """The calibration saved in a model folder, or None when it has none."""
    path = Path(folder) / CALIBRATION_FILE
    if not path.is_file():
        return None
    saved: Any = read_json(path, "calibration file", ModelError)
    try:
        calibration = Calibration(**saved)  # a missing or unknown field is a TypeError
    except (KeyError, TypeError) as exc:
        raise ModelError(f"{path}: damaged ({type(exc).__name__}: {exc}); refit it with `qatune calibrate`") from None
    if not isinstance(calibration.temperature, int | float) or isinstance(calibration.temperature, bool):
        raise ModelError(f"{path}: temperature must be a number; refit it with `qatune calibrate`")
    return calibration.check(str(path))


def write_calibration(folder: str | Path, calibration: Calibration) -> Path:
    path = Path(folder) / CALIBRATION_FILE
    atomic_write_json(path, asdict(calibration))
    return path

"""Calibrated confidence: temperature scaling of the span softmax, fitted on held-out questions.

The raw probability of an answer is a softmax over every candidate span of the context; it ranks
answers well but does not say how often an answer with that number is right. Temperature scaling
divides every span score by one fitted number T before the softmax: the ranking (and so EM/F1) is
unchanged, and T is chosen so that the top-1 probability matches how often the top-1 answer is an
exact match (binary log loss, minimised over log T with scipy). It is stored in the model folder
(`calibration.json`) and applied by every answering path through `predict.Decoding`.

Numpy and scipy only; the model-running part (`inference.calibrate`) feeds it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qatune.errors import ModelError
from qatune.io import atomic_write_json, read_json
from qatune.layout import CALIBRATION_FILE
from qatune.metrics import expected_calibration_error

MIN_TEMPERATURE, MAX_TEMPERATURE = 0.01, 100.0


@dataclass(frozen=True)
class Calibration:
    """A fitted temperature and what it was fitted on and measured to do there."""

    temperature: float
    questions: int
    data: str
    exact_match: float  # of the top-1 answers on the fitting questions, 0-100
    ece_before: float  # expected calibration error (10 bins) of the raw top-1 probability
    ece_after: float
    null_threshold: float | None = None  # models with a null answer: answer "" over this no-answer probability
    null_threshold_f1: float | None = None  # the F1 (0-100) the threshold reached on the fitting questions

    def check(self, where: str) -> Calibration:
        if not (math.isfinite(self.temperature) and MIN_TEMPERATURE <= self.temperature <= MAX_TEMPERATURE):
            raise ModelError(
                f"{where}: temperature must be a number in [{MIN_TEMPERATURE}, {MAX_TEMPERATURE}], "
                f"got {self.temperature!r}; refit it with `qatune calibrate`"
            )
        t = self.null_threshold
        if t is not None and (not isinstance(t, int | float) or isinstance(t, bool) or not 0 <= t <= 1):
            raise ModelError(f"{where}: null_threshold must be a probability in [0, 1] or null, got {t!r}")
        return self


def top1_confidence(gaps: Sequence[np.ndarray], temperature: float) -> np.ndarray:
    """Top-1 probability of each question at `temperature`.

    `gaps[i]` holds every candidate score of question i minus its best one (all <= 0, the best is 0),
    so p1 = 1 / sum(exp(gap / T)) without overflow.
    """
    if not gaps:
        return np.empty(0)
    flat = np.concatenate(gaps).astype(np.float64)
    starts = np.cumsum([0] + [len(g) for g in gaps[:-1]])
    return 1.0 / np.add.reduceat(np.exp(flat / temperature), starts)


def _log_loss(gaps: Sequence[np.ndarray], correct: np.ndarray, temperature: float) -> float:
    p = np.clip(top1_confidence(gaps, temperature), 1e-12, 1 - 1e-12)
    return float(-np.mean(correct * np.log(p) + (1 - correct) * np.log1p(-p)))


def fit_temperature(gaps: Sequence[np.ndarray], correct: np.ndarray) -> float:
    """The temperature whose top-1 probabilities best predict `correct` (0/1 per question)."""
    from scipy.optimize import minimize_scalar

    if len(gaps) == 0 or len(gaps) != len(correct):
        raise ValueError(f"need one score set per question, got {len(gaps)} for {len(correct)} questions")
    correct = np.asarray(correct, dtype=np.float64)
    result = minimize_scalar(
        lambda log_t: _log_loss(gaps, correct, math.exp(log_t)),
        bounds=(math.log(MIN_TEMPERATURE), math.log(MAX_TEMPERATURE)),
        method="bounded",
        options={"xatol": 1e-4},
    )
    return float(math.exp(result.x))


def fit(gaps: Sequence[np.ndarray], correct: np.ndarray, data: str) -> Calibration:
    """Fit a temperature and measure the calibration error before and after on the same questions."""
    correct = np.asarray(correct, dtype=np.float64)
    temperature = fit_temperature(gaps, correct)
    return Calibration(
        temperature=temperature,
        questions=len(gaps),
        data=data,
        exact_match=100.0 * float(correct.mean()),
        ece_before=expected_calibration_error(top1_confidence(gaps, 1.0), correct),
        ece_after=expected_calibration_error(top1_confidence(gaps, temperature), correct),
    )


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

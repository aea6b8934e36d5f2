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
# What a top-1 answer's probability is fitted to predict. exact_match: matching one of the question's
# answers. Data with one answer a question (a user's own, SQuAD train) under-counts what people accept
# (dev v1.1, three annotators: EM 58 against the first answer alone, 70 against any of the three), and
# token F1 against that one answer estimates the several-annotator exact match (73 on dev): auto fits
# to F1 on single-answer questions and to exact match where most questions have several answers.
TARGETS = ("auto", "exact_match", "f1")
# Fewer questions than this fit noise: on 3 the temperature runs to its bound (100) and every answer
# reads as a coin toss.
MIN_CALIBRATION_QUESTIONS = 50


def resolve_target(target: str, answers: Sequence[Sequence[str]]) -> str:
    """`auto` -> exact_match when most questions have several answers, else f1; others as they are."""
    if target not in TARGETS:
        raise ValueError(f"calibration target must be one of {', '.join(TARGETS)}, got {target!r}")
    if target != "auto":
        return target
    several = sum(len(a) > 1 for a in answers)
    return "exact_match" if answers and 2 * several >= len(answers) else "f1"


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


def _group_sums(parts: Sequence[np.ndarray], temperature: float) -> np.ndarray:
    """sum(exp(part / T)) of each part, in one vectorised pass."""
    flat = np.concatenate(parts).astype(np.float64)
    starts = np.cumsum([0] + [len(p) for p in parts[:-1]])
    return np.add.reduceat(np.exp(flat / temperature), starts)


def top1_confidence(
    gaps: Sequence[np.ndarray], temperature: float, top_gaps: Sequence[np.ndarray] | None = None
) -> np.ndarray:
    """Top-1 probability of each question at `temperature`.

    `gaps[i]` holds every candidate score of question i minus its best one (all <= 0, the best is 0),
    `top_gaps[i]` those of the top-1 answer's spans (`predict.answer_groups`; default: its best span
    alone), so p1 = sum(exp(top / T)) / sum(exp(gap / T)) without overflow.
    """
    if not gaps:
        return np.empty(0)
    numerator = 1.0 if top_gaps is None else _group_sums(top_gaps, temperature)
    return np.minimum(1.0, numerator / _group_sums(gaps, temperature))


def _log_loss(
    gaps: Sequence[np.ndarray], top_gaps: Sequence[np.ndarray] | None, correct: np.ndarray, t: float
) -> float:
    p = np.clip(top1_confidence(gaps, t, top_gaps), 1e-12, 1 - 1e-12)
    return float(-np.mean(correct * np.log(p) + (1 - correct) * np.log1p(-p)))


def fit_temperature(
    gaps: Sequence[np.ndarray], correct: np.ndarray, top_gaps: Sequence[np.ndarray] | None = None
) -> float:
    """The temperature whose top-1 probabilities best predict `correct` (per question: 0/1, or a soft
    target in [0, 1]; binary log loss)."""
    from scipy.optimize import minimize_scalar

    if len(gaps) == 0 or len(gaps) != len(correct) or (top_gaps is not None and len(top_gaps) != len(gaps)):
        raise ValueError(f"need one score set per question, got {len(gaps)} for {len(correct)} questions")
    correct = np.asarray(correct, dtype=np.float64)
    result = minimize_scalar(
        lambda log_t: _log_loss(gaps, top_gaps, correct, math.exp(log_t)),
        bounds=(math.log(MIN_TEMPERATURE), math.log(MAX_TEMPERATURE)),
        method="bounded",
        options={"xatol": 1e-4},
    )
    return float(math.exp(result.x))


def fit(
    gaps: Sequence[np.ndarray],
    correct: np.ndarray,
    data: str,
    top_gaps: Sequence[np.ndarray] | None = None,
    target: str = "exact_match",
    exact_match: np.ndarray | None = None,
) -> Calibration:
    """Fit a temperature to `correct` (the `target` of each question's top-1 answer) and measure the
    calibration error before and after on the same questions; `exact_match` defaults to `correct`."""
    correct = np.asarray(correct, dtype=np.float64)
    temperature = fit_temperature(gaps, correct, top_gaps)
    return Calibration(
        temperature=temperature,
        questions=len(gaps),
        data=data,
        exact_match=100.0 * float(np.mean(correct if exact_match is None else exact_match)),
        target=target,
        ece_before=expected_calibration_error(top1_confidence(gaps, 1.0, top_gaps), correct),
        ece_after=expected_calibration_error(top1_confidence(gaps, temperature, top_gaps), correct),
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

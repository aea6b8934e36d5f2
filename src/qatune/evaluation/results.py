"""What one evaluation of a model gives: typed scores, and the per-question results behind them.

`Scores` is the record that crosses stages (training history, a study's tables, the model card,
`qatune evaluate --json`); it becomes JSON in one place, `to_dict`, with the official scripts' names
(0-100 for EM and F1), and is read back with `from_dict`, which takes every file qatune wrote so far.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from qatune.io import JsonObject

# The SQuAD v2.0 script's names, present when some questions have no answer (HasAns/NoAns splits) or the
# model can answer "no answer" (best thresholds, the threshold it used).
SPLIT_KEYS = tuple(f"{g}_{m}" for g in ("HasAns", "NoAns") for m in ("exact", "f1", "total"))
NULL_KEYS = ("best_exact_match", "best_exact_match_threshold", "best_f1", "best_f1_threshold", "null_threshold")


@dataclass(frozen=True)
class Scores:
    """One evaluation's figures: official EM/F1, the study's buckets, calibration error, loss and speed."""

    exact_match: float
    f1: float
    total: int
    correct: int
    similar: int
    incorrect: int
    ece: float  # expected calibration error (10 bins) of the calibrated top-1 probability
    ece_raw: float  # ... of the raw span softmax
    eval_loss: float | None  # cross-entropy of the gold spans; None where the backend gives logits only
    seconds: float
    questions_per_second: float
    splits: Mapping[str, float] = field(default_factory=dict)  # SPLIT_KEYS present in this evaluation
    null: Mapping[str, float | None] = field(default_factory=dict)  # NULL_KEYS, for models with a null answer

    def to_dict(self) -> JsonObject:
        """The JSON object: the same keys, in the same order, as every file qatune has written."""
        plain = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("splits", "null")}
        head = {k: plain.pop(k) for k in ("exact_match", "f1", "total", "correct", "similar", "incorrect")}
        calibration = {k: plain.pop(k) for k in ("ece", "ece_raw")}
        return {**head, **self.splits, **calibration, **self.null, **plain}

    @classmethod
    def from_dict(cls, saved: Mapping[str, Any]) -> Scores:
        """Scores from a JSON object `to_dict` (or an older qatune) wrote; extra keys (a history record's
        step, epoch, ...) are ignored, figures added since default to None."""
        names = [f.name for f in dataclasses.fields(cls) if f.name not in ("splits", "null")]
        values: JsonObject = {name: saved.get(name) for name in names}
        return cls(
            **values,
            splits={k: saved[k] for k in SPLIT_KEYS if k in saved},
            null={k: saved[k] for k in NULL_KEYS if k in saved},
        )


@dataclass
class EvalResult:
    """Predictions (id -> text), top-1 probabilities (id -> calibrated, raw) and scores of one evaluation."""

    predictions: dict[str, str]
    scores: Scores
    probabilities: dict[str, tuple[float, float]] = field(default_factory=dict)
    exact: dict[str, float] = field(default_factory=dict)  # id -> exact match (0/1) of the top answer
    # For a model with a null answer: id -> its no-answer probability, and id -> its best span ("" where it
    # has none), whatever the threshold decided; empty otherwise.
    no_answer: dict[str, float] = field(default_factory=dict)
    spans: dict[str, str] = field(default_factory=dict)

    @property
    def metrics(self) -> JsonObject:
        """The scores as JSON (`Scores.to_dict`)."""
        return self.scores.to_dict()

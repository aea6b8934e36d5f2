"""Official SQuAD metrics (v1.1 EM/F1, v2.0 HasAns/NoAns and best threshold) and the study's buckets.

Normalisation and scoring follow the official evaluation scripts exactly (lower-case, drop
punctuation and the articles a/an/the, collapse whitespace; max over gold answers). The buckets:
``correct`` = normalised exact match with any gold answer; ``similar`` = not correct, prediction
non-empty after normalisation, and token F1 >= 0.5 with some gold answer; ``incorrect`` = the rest.
An empty prediction is therefore never similar.
"""

from __future__ import annotations

import collections
from collections.abc import Mapping, Sequence
from typing import TypedDict

import numpy as np
from numpy.typing import ArrayLike

from qatune.data.text import normalize_answer

__all__ = ["normalize_answer"]  # the official normalisation, defined with the data it normalises

SIMILAR_F1 = 0.5


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1_score(prediction: str, gold: str) -> float:
    """Token-overlap F1 (v2.0 script: two empty answers score 1, one empty scores 0)."""
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)
    common = collections.Counter(pred_tokens) & collections.Counter(gold_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def best_over_golds(prediction: str, golds: Sequence[str]) -> tuple[float, float]:
    """(EM, F1) of one prediction: the max over gold answers; no gold answers means 'no answer'."""
    golds = list(golds) or [""]
    return max(exact_match(prediction, g) for g in golds), max(f1_score(prediction, g) for g in golds)


def bucket(prediction: str, golds: Sequence[str]) -> str:
    """The study's verdict for one prediction: 'correct', 'similar' or 'incorrect' (module doc)."""
    em, f1 = best_over_golds(prediction, golds)
    if em:
        return "correct"
    if normalize_answer(prediction) and f1 >= SIMILAR_F1:
        return "similar"
    return "incorrect"


def squad_scores(predictions: Mapping[str, str], references: Mapping[str, Sequence[str]]) -> dict[str, float]:
    """EM and F1 (0-100), buckets, and, when some questions have no answer, v2.0 HasAns/NoAns splits."""
    missing = [qid for qid in references if qid not in predictions]
    if missing:
        raise KeyError(f"no prediction for {len(missing)} question(s), e.g. {missing[0]!r}")
    totals: collections.Counter[str] = collections.Counter()
    groups: dict[str, collections.Counter[str]] = {"HasAns": collections.Counter(), "NoAns": collections.Counter()}
    for qid, golds in references.items():
        em, f1 = best_over_golds(predictions[qid], golds)
        verdict = bucket(predictions[qid], golds)
        totals.update({"em": em, "f1": f1, verdict: 1, "total": 1})
        groups["HasAns" if golds else "NoAns"].update({"em": em, "f1": f1, "total": 1})
    n = totals["total"]
    out: dict[str, float] = {
        "exact_match": 100.0 * totals["em"] / n if n else 0.0,
        "f1": 100.0 * totals["f1"] / n if n else 0.0,
        "total": n,
        **{name: totals[name] for name in ("correct", "similar", "incorrect")},
    }
    if groups["NoAns"]["total"]:
        for name, c in groups.items():
            if c["total"]:
                out.update(
                    {
                        f"{name}_exact": 100.0 * c["em"] / c["total"],
                        f"{name}_f1": 100.0 * c["f1"] / c["total"],
                        f"{name}_total": c["total"],
                    }
                )
    return out


def best_threshold(
    predictions: Mapping[str, str],
    na_probs: Mapping[str, float],
    references: Mapping[str, Sequence[str]],
    metric: str = "f1",
) -> tuple[float, float]:
    """Best no-answer threshold and its score (v2.0 script's find_best_thresh), in 0-100. Unlike that
    script, questions with the same no-answer probability are answered or not together, as a threshold
    decides them (answer when the probability is at most the threshold), so the best score is one that
    the threshold really gives."""
    index = 1 if metric == "f1" else 0
    raw = {qid: best_over_golds(predictions[qid], golds)[index] for qid, golds in references.items()}
    no_answer = sum(1 for golds in references.values() if not golds)
    score = best = float(no_answer)
    threshold = 0.0
    ranked = sorted((q for q in na_probs if q in references), key=lambda q: na_probs[q])
    for i, qid in enumerate(ranked):
        if references[qid]:
            diff = raw[qid]
        else:
            diff = -1.0 if predictions[qid] else 0.0
        score += diff
        tied = i + 1 < len(ranked) and na_probs[ranked[i + 1]] == na_probs[qid]
        if score > best and not tied:
            best, threshold = score, na_probs[qid]
    return threshold, 100.0 * best / len(references)


class ThresholdRow(TypedDict):
    """The scores one no-answer threshold would give (0-100); a split's figure is None without questions."""

    threshold: float
    answered: float  # share of the questions given a span rather than "no answer"
    exact_match: float
    f1: float
    HasAns_f1: float | None
    NoAns_exact: float | None


def threshold_curve(
    spans: Mapping[str, str],
    na_probs: Mapping[str, float],
    references: Mapping[str, Sequence[str]],
    thresholds: Sequence[float],
) -> list[ThresholdRow]:
    """The scores if "no answer" were given exactly when a question's no-answer probability is over each
    threshold, and its best span otherwise: how much a v2 score moves with the threshold."""
    ids = list(references)
    answered = np.array([best_over_golds(spans[q], references[q]) for q in ids]).reshape(-1, 2)
    abstained = np.array([best_over_golds("", references[q]) for q in ids]).reshape(-1, 2)
    na = np.array([na_probs[q] for q in ids], dtype=np.float64)
    has = np.array([bool(references[q]) for q in ids])
    rows: list[ThresholdRow] = []
    for t in thresholds:
        score = np.where((na > t)[:, None], abstained, answered) * 100.0
        rows.append(
            {
                "threshold": float(t),
                "answered": float(100.0 * (na <= t).mean()) if ids else 0.0,
                "exact_match": float(score[:, 0].mean()) if ids else 0.0,
                "f1": float(score[:, 1].mean()) if ids else 0.0,
                "HasAns_f1": float(score[has, 1].mean()) if has.any() else None,
                "NoAns_exact": float(score[~has, 0].mean()) if (~has).any() else None,
            }
        )
    return rows


class ReliabilityBin(TypedDict):
    """One equal-width confidence bin: its bounds, its questions, their mean confidence and accuracy."""

    low: float
    high: float
    questions: int
    confidence: float | None  # None for an empty bin: JSON has no NaN
    accuracy: float | None


Reliability = dict[str, list[ReliabilityBin]]  # curve name (calibrated, raw) -> its bins


def reliability(confidence: ArrayLike, correct: ArrayLike, bins: int = 10) -> list[ReliabilityBin]:
    """Equal-width confidence bins: questions, mean confidence and accuracy (exact match) in each
    (None for an empty bin: JSON has no NaN)."""
    conf, hit = np.asarray(confidence, dtype=np.float64), np.asarray(correct, dtype=np.float64)
    which = np.minimum((conf * bins).astype(np.int64), bins - 1)
    out: list[ReliabilityBin] = []
    for b in range(bins):
        inside = which == b
        n = int(inside.sum())
        out.append(
            {
                "low": b / bins,
                "high": (b + 1) / bins,
                "questions": n,
                "confidence": float(conf[inside].mean()) if n else None,
                "accuracy": float(hit[inside].mean()) if n else None,
            }
        )
    return out


def expected_calibration_error(confidence: ArrayLike, correct: ArrayLike, bins: int = 10) -> float:
    """ECE: the question-weighted mean gap between confidence and accuracy over equal-width bins (0-1)."""
    total = np.size(confidence)
    if total == 0:
        return float("nan")
    return float(
        sum(
            b["questions"] / total * abs((b["accuracy"] or 0.0) - (b["confidence"] or 0.0))
            for b in reliability(confidence, correct, bins)
            if b["questions"]  # a bin with questions has both figures
        )
    )

"""Calibrated confidence: temperature scaling of the span softmax, fitted on held-out questions.

The raw probability of an answer is a softmax over every candidate span of the context; it ranks
answers well but does not say how often an answer with that number is right. Temperature scaling
divides every span score by one fitted number T before the softmax: the ranking (and so EM/F1) is
unchanged, and T is chosen so that the top-1 probability matches how often the top-1 answer is an
exact match (binary log loss, minimised over log T with scipy). It is stored in the model folder
(`calibration.json`, `models.settings`) and applied by every answering path through `Decoding`.

The fitting is numpy and scipy; `calibrate` feeds it the answers of any answering backend.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from qatune.answering.answerer import SpanAnswerer
from qatune.answering.decoding import predict_examples
from qatune.data.squad import QADataset
from qatune.errors import DataError
from qatune.evaluation.metrics import best_over_golds, expected_calibration_error
from qatune.evaluation.scoring import dataset_logits, no_answer_scores
from qatune.models.settings import MAX_TEMPERATURE, MIN_TEMPERATURE, TARGETS, Calibration

# Fewer questions than this fit noise: on 3 the temperature runs to its bound (100) and every answer
# reads as a coin toss.
MIN_CALIBRATION_QUESTIONS = 50


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
    `top_gaps[i]` those of the top-1 answer's spans (`decoding.answer_groups`; default: its best span
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


def resolve_target(target: str, answers: Sequence[Sequence[str]]) -> str:
    """`auto` -> exact_match when most questions have several answers, else f1; others as they are."""
    if target not in TARGETS:
        raise ValueError(f"calibration target must be one of {', '.join(TARGETS)}, got {target!r}")
    if target != "auto":
        return target
    several = sum(len(a) > 1 for a in answers)
    return "exact_match" if answers and 2 * several >= len(answers) else "f1"


def calibrate(
    answerer: SpanAnswerer, dataset: QADataset, progress_bar: bool = False, target: str = "auto"
) -> Calibration:
    """Fit `answerer`'s temperature on `dataset` (questions it was not trained or evaluated on) to
    predict `target` (`TARGETS`), and for a model with a null answer the no-answer threshold with the
    best F1 there (at that temperature)."""
    if len(dataset) < MIN_CALIBRATION_QUESTIONS:
        raise DataError(
            f"{dataset.source}: {len(dataset)} questions are too few to calibrate on; give at least "
            f"{MIN_CALIBRATION_QUESTIONS} (a larger --limit or --sample, or another data file)"
        )
    windows, logits = dataset_logits(answerer, dataset, progress_bar)
    decoding = dataclasses.replace(answerer.decoding, temperature=1.0, null_threshold=None)
    predicted = predict_examples(dataset.examples, windows, logits, 1, decoding, keep_scores=True)
    gaps, top_gaps, scores, answers = [], [], [], []
    for example, p in zip(dataset.examples, predicted):
        if p.gaps is not None and p.top_gaps is not None and p.answers:
            gaps.append(p.gaps)
            top_gaps.append(p.top_gaps)
            scores.append(best_over_golds(p.answers[0].text, example.answers))
            answers.append(example.answers)
    if not gaps:
        raise DataError(f"{dataset.source}: no question could be answered, so there is nothing to calibrate on")
    chosen = resolve_target(target, answers)
    em, f1 = np.asarray(scores).T
    calibration = fit(gaps, f1 if chosen == "f1" else em, dataset.source, top_gaps, chosen, em)
    if not decoding.with_null:
        return calibration
    scaled = dataclasses.replace(decoding, temperature=calibration.temperature)
    best = no_answer_scores(dataset.examples, predict_examples(dataset.examples, windows, logits, 2, scaled))
    return dataclasses.replace(calibration, null_threshold=best["best_f1_threshold"], null_threshold_f1=best["best_f1"])

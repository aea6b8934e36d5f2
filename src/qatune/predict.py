"""Span decoding: from start/end logits of a context's windows to top-k answers with probabilities.

Pure numpy, no model. Definition of the probability (documented in the README): every valid
candidate span (start <= end, both inside the context part of a window, at most
``max_answer_length`` tokens) gets the score start_logit + end_logit. A character span seen in
several overlapping windows keeps its best score. The probability of a span is the softmax of
its score over *all* distinct candidate spans of the context (plus the null answer, scored by
the CLS token, when the model was trained with unanswerable questions), so it does not depend on
an n-best cut-off. The top-k answers are the k most probable spans with distinct texts.

Every prediction also carries a no-answer probability: the same softmax with the null answer
(the CLS score of the window that most expects an answer) added. For models trained with
unanswerable questions it is the probability of the empty answer; for SQuAD v1 models it is still
a useful cue, since training labels CLS in every window that does not contain the answer (on
SQuAD dev questions asked about another article's context it separates them; see README).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # for annotations only: predict stays numpy-only
    from qatune.data import Example
    from qatune.windows import Windows


@dataclass(frozen=True)
class Answer:
    """One answer: the text, its probability, and its character span in the context."""

    text: str
    probability: float
    start: int
    end: int
    score: float

    def to_dict(self) -> dict[str, Any]:
        """The public form (CLI JSON, API, study results): text, probability, start, end."""
        return {"text": self.text, "probability": min(1.0, self.probability), "start": self.start, "end": self.end}


def window_candidates(
    start_logits: np.ndarray, end_logits: np.ndarray, offsets: np.ndarray, max_answer_length: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Character starts, ends and scores of every valid span in one window."""
    ctx = np.flatnonzero(offsets[:, 0] >= 0)
    if ctx.size == 0:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, np.empty(0, dtype=np.float64)
    scores = start_logits[ctx][:, None].astype(np.float64) + end_logits[ctx][None, :]
    gap = ctx[None, :] - ctx[:, None]
    i, j = np.nonzero((gap >= 0) & (gap < max_answer_length))
    return offsets[ctx[i], 0].astype(np.int64), offsets[ctx[j], 1].astype(np.int64), scores[i, j]


@dataclass(frozen=True)
class Prediction:
    """The top-k answers of one question and the probability that its context holds no answer."""

    answers: list[Answer]
    no_answer_probability: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "answers": [a.to_dict() for a in self.answers],
            "no_answer_probability": min(1.0, self.no_answer_probability),
        }


def decode(
    context: str,
    start_logits: Sequence[np.ndarray],
    end_logits: Sequence[np.ndarray],
    offsets: Sequence[np.ndarray],
    top_k: int = 3,
    max_answer_length: int = 30,
    with_null: bool = False,
) -> list[Answer]:
    """Top-k distinct answers for one context from its windows' logits (see module doc)."""
    return predict(context, start_logits, end_logits, offsets, top_k, max_answer_length, with_null).answers


def predict(
    context: str,
    start_logits: Sequence[np.ndarray],
    end_logits: Sequence[np.ndarray],
    offsets: Sequence[np.ndarray],
    top_k: int = 3,
    max_answer_length: int = 30,
    with_null: bool = False,
) -> Prediction:
    """`decode` plus the no-answer probability (see module doc)."""
    parts = [window_candidates(s, e, o, max_answer_length) for s, e, o in zip(start_logits, end_logits, offsets)]
    starts = np.concatenate([p[0] for p in parts])
    ends = np.concatenate([p[1] for p in parts])
    scores = np.concatenate([p[2] for p in parts])
    # Keep the best score of each distinct character span: sort by span, then by score descending.
    order = np.lexsort((-scores, ends, starts))
    starts, ends, scores = starts[order], ends[order], scores[order]
    first = np.ones(len(starts), dtype=bool)
    first[1:] = (starts[1:] != starts[:-1]) | (ends[1:] != ends[:-1])
    starts, ends, scores = starts[first], ends[first], scores[first]
    null_score = min((float(s[0] + e[0]) for s, e in zip(start_logits, end_logits)), default=0.0)
    if with_null:
        starts, ends = np.append(starts, 0), np.append(ends, 0)
        scores = np.append(scores, null_score)
    if scores.size == 0:
        return Prediction([], 1.0)
    log_z = np.logaddexp.reduce(scores)
    no_answer = float(np.exp(null_score - (log_z if with_null else np.logaddexp(log_z, null_score))))
    answers: list[Answer] = []
    seen: set[str] = set()
    for k in np.argsort(-scores, kind="stable"):
        text = context[starts[k] : ends[k]]
        if text in seen:
            continue
        seen.add(text)
        answers.append(Answer(text, float(np.exp(scores[k] - log_z)), int(starts[k]), int(ends[k]), float(scores[k])))
        if len(answers) == top_k:
            break
    return Prediction(answers, no_answer)


def group_windows(example_index: np.ndarray) -> list[np.ndarray]:
    """Window indices of each example, in example order (windows of one example are contiguous)."""
    if len(example_index) == 0:
        return []
    bounds = np.flatnonzero(np.diff(example_index)) + 1
    return np.split(np.arange(len(example_index)), bounds)


@dataclass
class Logits:
    """Start/end logits per window (trimmed to the window's length) and the mean gold-span loss."""

    start: list[np.ndarray]
    end: list[np.ndarray]
    loss: float | None = None


def decode_examples(
    examples: Sequence[Example],
    windows: Windows,
    logits: Logits,
    top_k: int = 1,
    max_answer_length: int = 30,
    with_null: bool = False,
) -> list[list[Answer]]:
    """Top-k answers of every example."""
    return [p.answers for p in predict_examples(examples, windows, logits, top_k, max_answer_length, with_null)]


def predict_examples(
    examples: Sequence[Example],
    windows: Windows,
    logits: Logits,
    top_k: int = 1,
    max_answer_length: int = 30,
    with_null: bool = False,
) -> list[Prediction]:
    """Top-k answers and the no-answer probability of every example."""
    return [
        predict(
            example.context,
            [logits.start[i] for i in group],
            [logits.end[i] for i in group],
            [windows.offsets[i] for i in group],
            top_k,
            max_answer_length,
            with_null,
        )
        for example, group in zip(examples, group_windows(windows.example_index))
    ]

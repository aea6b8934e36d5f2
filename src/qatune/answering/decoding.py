"""Span decoding: from start/end logits of a context's windows to top-k answers with probabilities.

Pure numpy, no model. Definition of the probability (documented in the README): every valid
candidate span (start <= end, both inside the context part of a window, at most
``max_answer_length`` tokens) gets the score start_logit + end_logit. A character span seen in
several overlapping windows keeps its best score. The probability of a span is the softmax of
its score over *all* distinct candidate spans of the context (plus the null answer, scored by
the CLS token, when the model was trained with unanswerable questions), so it does not depend on
an n-best cut-off. An answer is every span with the same text after SQuAD normalisation (case,
punctuation, articles: what exact match counts as one answer), shown as its best-scoring span; its
probability is the sum of its spans' (`answer_groups`). The top-k answers are the k most probable.

Every prediction also carries a no-answer probability: the same softmax with the null answer
(the CLS score of the window that most expects an answer) added. For models trained with
unanswerable questions it is the probability of the empty answer; for SQuAD v1 models it is still
a useful cue, since training labels CLS in every window that does not contain the answer (on
SQuAD dev questions asked about another article's context it separates them; see README).

Candidate spans are whole words (`Decoding.align_to_words`, on by default, as the old HF pipeline's
`align_to_words`): a span starts and ends at a word boundary of the context, so a sub-word token
never starts or ends an answer ('irectional' of 'Bidirectional'). Words are defined on the context's
characters, not on the tokenizer, so WordPiece, byte-level BPE and both backends agree; scripts
written without spaces between words (Chinese, Japanese, Thai, ...) keep the token boundaries.

`Decoding.temperature` divides every score before the softmax (temperature scaling, fitted by
`qatune.evaluation.calibration`); the ranking of spans does not change, only how sure the probabilities are.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from qatune.data.text import normalize_answer
from qatune.io import JsonObject

if TYPE_CHECKING:  # for annotations only: decoding stays numpy-only
    from qatune.data.squad import Example
    from qatune.data.windows import Windows


@dataclass(frozen=True)
class Decoding:
    """How a model's spans are chosen and scored; one per model (saved settings), not per question."""

    max_answer_length: int = 30
    with_null: bool = False  # the model was trained with unanswerable questions: the null answer competes
    align_to_words: bool = True
    temperature: float = 1.0  # calibration: probabilities are softmax(score / temperature)
    null_threshold: float | None = None  # with_null models: answer "" when no_answer_probability is over it


@dataclass(frozen=True)
class Answer:
    """One answer: the text, its (calibrated) probability, its character span, the raw span score
    (start + end logit) and the uncalibrated softmax probability."""

    text: str
    probability: float
    start: int
    end: int
    score: float
    raw_probability: float | None = None

    def to_dict(self) -> JsonObject:
        """The public form (CLI JSON, API, study results)."""
        raw = self.probability if self.raw_probability is None else self.raw_probability
        return {
            "text": self.text,
            "probability": min(1.0, self.probability),
            "start": self.start,
            "end": self.end,
            "score": self.score,
            "raw_probability": min(1.0, raw),
        }


# Scripts written without spaces between words (Thai, Lao, Tibetan, Myanmar, Khmer, kana, CJK
# ideographs): no word boundaries can be read from the characters, so their tokens stay candidates.
_UNSPACED = "\u0e00-\u0eff\u0f00-\u0fff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_WORD = re.compile(f"[^\\W_{_UNSPACED}]+")


def word_boundaries(context: str) -> np.ndarray:
    """bool[len(context) + 1]: whether a span may start or end at each character position, i.e.
    the position is not inside a run of letters and digits of a spaced script."""
    runs = np.array([m.span() for m in _WORD.finditer(context)], dtype=np.int64).reshape(-1, 2)
    depth = np.zeros(len(context) + 2, dtype=np.int64)
    np.add.at(depth, runs[:, 0] + 1, 1)
    np.add.at(depth, runs[:, 1], -1)
    return np.cumsum(depth)[: len(context) + 1] <= 0


def window_candidates(
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    offsets: np.ndarray,
    max_answer_length: int,
    boundaries: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Character starts, ends and scores of every valid span in one window; with `boundaries`
    (`word_boundaries` of the context) only spans that start and end at word boundaries."""
    ctx = np.flatnonzero(offsets[:, 0] >= 0)
    first, last = ctx, ctx
    if boundaries is not None and ctx.size:
        first = ctx[boundaries[offsets[ctx, 0]]]
        last = ctx[boundaries[offsets[ctx, 1]]]
    if first.size == 0 or last.size == 0:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, np.empty(0, dtype=np.float64)
    scores = start_logits[first][:, None].astype(np.float64) + end_logits[last][None, :]
    gap = last[None, :] - first[:, None]
    i, j = np.nonzero((gap >= 0) & (gap < max_answer_length))
    return offsets[first[i], 0].astype(np.int64), offsets[last[j], 1].astype(np.int64), scores[i, j]


@dataclass(frozen=True)
class Prediction:
    """The top-k answers of one question and the probability that its context holds no answer."""

    answers: list[Answer]
    no_answer_probability: float
    gaps: np.ndarray | None = None  # with keep_scores: every candidate's raw score minus the best (calibration)
    top_gaps: np.ndarray | None = None  # with keep_scores: those of the top-1 answer's spans

    def to_dict(self) -> JsonObject:
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
    decoding: Decoding = Decoding(),
) -> list[Answer]:
    """Top-k distinct answers for one context from its windows' logits (see module doc)."""
    return predict(context, start_logits, end_logits, offsets, top_k, decoding).answers


def span_scores(
    context: str,
    start_logits: Sequence[np.ndarray],
    end_logits: Sequence[np.ndarray],
    offsets: Sequence[np.ndarray],
    decoding: Decoding = Decoding(),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Character starts, ends and best raw score of every distinct candidate span of a context.

    With word alignment, a context whose every word-aligned span is too long (a 40-token URL) falls
    back to token boundaries rather than giving no answer at all.
    """

    def candidates(boundaries: np.ndarray | None) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        windows = zip(start_logits, end_logits, offsets)
        return [window_candidates(s, e, o, decoding.max_answer_length, boundaries) for s, e, o in windows]

    parts = candidates(word_boundaries(context) if decoding.align_to_words else None)
    if decoding.align_to_words and not any(p[0].size for p in parts):
        parts = candidates(None)
    starts = np.concatenate([p[0] for p in parts])
    ends = np.concatenate([p[1] for p in parts])
    scores = np.concatenate([p[2] for p in parts])
    # Keep the best score of each distinct character span, in span order: one integer key per span
    # (a sort of one int64 key and a max per run cost a third of the two-key lexsort they replace).
    if starts.size == 0:
        return starts, ends, scores
    key = starts * (len(context) + 1) + ends
    order = np.argsort(key, kind="stable")
    key = key[order]
    first = np.flatnonzero(np.concatenate(([True], key[1:] != key[:-1])))
    return starts[order][first], ends[order][first], np.maximum.reduceat(scores[order], first)


def logsumexp(x: np.ndarray) -> float:
    """log(sum(exp(x))) without overflow: np.logaddexp.reduce is a sequential loop (30x slower over a
    context's ~4,000 spans), and scipy's import is too heavy for the torch-free answering path."""
    top = float(x.max())
    return top + float(np.log(np.exp(x - top).sum()))


def predict(
    context: str,
    start_logits: Sequence[np.ndarray],
    end_logits: Sequence[np.ndarray],
    offsets: Sequence[np.ndarray],
    top_k: int = 3,
    decoding: Decoding = Decoding(),
    keep_scores: bool = False,
) -> Prediction:
    """`decode` plus the no-answer probability (see module doc), and with `keep_scores` the score gaps."""
    starts, ends, scores = span_scores(context, start_logits, end_logits, offsets, decoding)
    null_score = min((float(s[0] + e[0]) for s, e in zip(start_logits, end_logits)), default=0.0)
    if decoding.with_null:
        starts, ends = np.append(starts, 0), np.append(ends, 0)
        scores = np.append(scores, null_score)
    if scores.size == 0:
        return Prediction([], 1.0)
    log_z_raw = logsumexp(scores)
    scaled, null_scaled = scores / decoding.temperature, null_score / decoding.temperature
    log_z = logsumexp(scaled)
    no_answer = float(np.exp(null_scaled - (log_z if decoding.with_null else np.logaddexp(log_z, null_scaled))))
    threshold = decoding.null_threshold if decoding.with_null else None
    null_index = len(scores) - 1 if decoding.with_null else None
    wanted = top_k + (threshold is not None)
    groups = answer_groups(context, starts, ends, scores, wanted, null_index)
    # most probable answer first, by the raw probability: the temperature never changes which answer wins
    log_p, log_p_raw = scaled - log_z, scores - log_z_raw
    mass = [np.exp(log_p_raw[g]).sum() for g in groups]
    groups = [groups[i] for i in sorted(range(len(groups)), key=lambda i: -mass[i])]
    answers = [_answer(context, starts, ends, scores, g, log_p, log_p_raw) for g in groups[:wanted]]
    if threshold is not None:  # the saved threshold decides: the empty answer first, or not at all
        null = Answer("", no_answer, 0, 0, null_score, float(np.exp(null_score - log_z_raw)))
        answers = ([null] if no_answer > threshold else []) + [a for a in answers if a.text != ""]
    gaps = top_gaps = None
    if keep_scores:
        gaps = (scores - scores.max()).astype(np.float32)
        top_gaps = gaps[groups[0]]
    return Prediction(answers[:top_k], no_answer, gaps, top_gaps)


# An answer's probability sums its spans among the GROUP_SPANS best-scoring ones (normalising every
# candidate's text would cost more than the rest of decoding; the spans after them hold almost nothing).
GROUP_SPANS = 100


def answer_groups(
    context: str, starts: np.ndarray, ends: np.ndarray, scores: np.ndarray, k: int, null_index: int | None = None
) -> list[np.ndarray]:
    """Candidate indices grouped by answer (in order of their best span), at least `k` groups where there are.

    Spans are the same answer when their texts are equal after SQuAD normalisation (case, punctuation,
    articles: 'the Denver Broncos', 'Denver Broncos.' and another occurrence of 'Denver Broncos'), so an
    answer's probability is the chance that the answer *as exact match scores it* is right. The null
    candidate (`null_index`) is an answer of its own.
    """
    groups: dict[str | None, list[int]] = {}
    for rank, i in enumerate(np.argsort(-scores, kind="stable")):
        if rank >= GROUP_SPANS and len(groups) >= k:
            break
        key = None if i == null_index else normalize_answer(context[starts[i] : ends[i]])
        groups.setdefault(key, []).append(int(i))
    return [np.asarray(g) for g in groups.values()]


def _answer(
    context: str,
    starts: np.ndarray,
    ends: np.ndarray,
    scores: np.ndarray,
    group: np.ndarray,
    log_p: np.ndarray,
    log_p_raw: np.ndarray,
) -> Answer:
    """One answer: the text and span of its best span, the summed probability of all its spans."""
    best = int(group[0])
    probability, raw = float(np.exp(log_p[group]).sum()), float(np.exp(log_p_raw[group]).sum())
    return Answer(
        context[starts[best] : ends[best]], probability, int(starts[best]), int(ends[best]), float(scores[best]), raw
    )


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
    decoding: Decoding = Decoding(),
) -> list[list[Answer]]:
    """Top-k answers of every example."""
    return [p.answers for p in predict_examples(examples, windows, logits, top_k, decoding)]


def predict_examples(
    examples: Sequence[Example],
    windows: Windows,
    logits: Logits,
    top_k: int = 1,
    decoding: Decoding = Decoding(),
    keep_scores: bool = False,
) -> list[Prediction]:
    """Top-k answers and the no-answer probability of every example."""
    return [
        predict(
            example.context,
            [logits.start[i] for i in group],
            [logits.end[i] for i in group],
            [windows.offsets[i] for i in group],
            top_k,
            decoding,
            keep_scores,
        )
        for example, group in zip(examples, group_windows(windows.example_index))
    ]

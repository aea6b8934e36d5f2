"""Where a model fails: EM/F1 by question word, answer length and context length, and its most
confident wrong answers, so a user sees what to label next (`evaluate --report`, the study report)."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from qatune.data.squad import Example, QADataset
from qatune.evaluation.metrics import best_over_golds
from qatune.evaluation.results import EvalResult
from qatune.io import JsonObject

QUESTION_WORDS = ("what", "who", "when", "where", "why", "how", "which")
ANSWER_WORDS = ((1, "1 word"), (2, "2 words"), (4, "3-4 words"), (None, "5+ words"))
CONTEXT_WORDS = ((99, "under 100 words"), (199, "100-199 words"), (399, "200-399 words"), (None, "400+ words"))
WRONG = 20  # most confident wrong answers listed
CONTEXT_SHOWN = 600  # characters of a wrong answer's context shown (around the prediction)


@dataclass(frozen=True)
class Group:
    """One group's size and scores (0-100)."""

    name: str
    questions: int
    exact_match: float
    f1: float


@dataclass(frozen=True)
class Wrong:
    """A wrong answer given with high confidence."""

    id: str
    question: str
    prediction: str
    gold: list[str]
    probability: float
    f1: float
    context: str


@dataclass(frozen=True)
class ErrorAnalysis:
    by_question_word: list[Group]
    by_answer_length: list[Group]
    by_context_length: list[Group]
    most_confident_wrong: list[Wrong]

    def to_dict(self) -> JsonObject:
        return asdict(self)

    @classmethod
    def from_dict(cls, saved: Mapping[str, Any]) -> ErrorAnalysis:
        """An analysis as `to_dict` wrote it (`errors.json`, a study's cached evaluation)."""

        def groups(key: str) -> list[Group]:
            return [Group(**g) for g in saved[key]]

        wrong = [Wrong(**w) for w in saved["most_confident_wrong"]]
        return cls(groups("by_question_word"), groups("by_answer_length"), groups("by_context_length"), wrong)


def question_word(question: str) -> str:
    """The first of QUESTION_WORDS in the question ("In what year ..." is `what`), else `other`."""
    words = re.findall(r"[a-z]+", question.lower())
    return next((w for w in words if w in QUESTION_WORDS), "other")


def _length(words: int, bands: tuple[tuple[int | None, str], ...]) -> str:
    return next(name for top, name in bands if top is None or words <= top)


def analyse(result: EvalResult, dataset: QADataset) -> ErrorAnalysis:
    """The breakdowns and the most confident wrong answers of one evaluation."""
    scores = {e.id: best_over_golds(result.predictions[e.id], e.answers) for e in dataset.examples}
    keys: dict[str, Callable[[Example], str]] = {
        "by_question_word": lambda e: question_word(e.question),
        "by_answer_length": lambda e: (
            _length(min(len(a.split()) for a in e.answers), ANSWER_WORDS) if e.answers else "no answer"
        ),
        "by_context_length": lambda e: _length(len(e.context.split()), CONTEXT_WORDS),
    }
    groups = {name: _groups(dataset.examples, key, scores) for name, key in keys.items()}
    wrong = sorted((e for e in dataset.examples if not scores[e.id][0]), key=lambda e: -result.probabilities[e.id][0])
    listed = [
        Wrong(
            e.id,
            e.question,
            result.predictions[e.id],
            list(e.answers),
            round(result.probabilities[e.id][0], 4),
            round(100 * scores[e.id][1], 1),
            _around(e.context, result.predictions[e.id]),
        )
        for e in wrong[:WRONG]
    ]
    return ErrorAnalysis(groups["by_question_word"], groups["by_answer_length"], groups["by_context_length"], listed)


def _groups(
    examples: list[Example], key: Callable[[Example], str], scores: dict[str, tuple[float, float]]
) -> list[Group]:
    members: dict[str, list[str]] = defaultdict(list)
    for e in examples:
        members[key(e)].append(e.id)
    return [
        Group(name, len(ids), _mean(scores[i][0] for i in ids), _mean(scores[i][1] for i in ids))
        for name, ids in sorted(members.items(), key=lambda m: -len(m[1]))
    ]


def _mean(values: Iterable[float]) -> float:
    found = list(values)
    return 100 * sum(found) / len(found)


def _around(context: str, prediction: str) -> str:
    """Up to CONTEXT_SHOWN characters of `context`, centred on the prediction where it occurs."""
    if len(context) <= CONTEXT_SHOWN:
        return context
    at = max(context.find(prediction), 0) if prediction else 0
    begin = max(0, min(at - CONTEXT_SHOWN // 2, len(context) - CONTEXT_SHOWN))
    return ("..." if begin else "") + context[begin : begin + CONTEXT_SHOWN] + "..."

"""Reading retrieved passages into cited answers.

The passages of one question go to the model as one joint `Query`: each passage is windowed alone (a
window never mixes two), and all are decoded as one context, so every candidate span of every passage
shares one softmax (shared normalisation, as Clark & Gardner 2018 train for; the calibrated
temperature applies as for one context), answers that exact match cannot tell apart merge across
passages as they do within one, and the no-answer probability is that no passage holds an answer.
Each answer is then cited back to its passage, file, page and character span in the file's text.

A reader trained on single paragraphs scores spans in a passage without the answer about as high as in
one with it, so the retriever's judgement is added, as BERTserini interpolates retriever and reader
scores: every span of a passage loses `retrieval_weight` times how far the passage's retrieval score
(standardised over the question's candidates) stands below the best passage's. The best passage's spans
and the null answer keep their scores. The default weight was chosen on 1,000 open-SQuAD dev questions
kept apart from those the benchmark scores (bench/retrieval_weight.py; README).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import asdict, dataclass

from qatune.answering.answerer import JOINT_SEPARATOR, Query, SpanAnswerer
from qatune.answering.decoding import Answer, Decoding, Prediction
from qatune.documents.records import RETRIEVAL_WEIGHT, Hit, Passage, PassageIndex
from qatune.errors import ConfigError, DataError, QatuneError
from qatune.io import JsonObject


@dataclass(frozen=True)
class Cited:
    """An answer with where it stands: the passage's file, page and span, and the answer's span in the
    file's extracted text (`start`, `end`) and in the passage (`passage_start`, `passage_end`)."""

    text: str
    probability: float
    raw_probability: float
    score: float
    file: str
    page: int | None
    start: int
    end: int
    passage: str
    passage_start: int
    passage_end: int
    retrieval_rank: int

    def to_dict(self) -> JsonObject:
        return asdict(self)


@dataclass(frozen=True)
class DocumentAnswers:
    """A question's cited answers, best first, and the probability that no retrieved passage answers it;
    `found` is False when the model's no-answer decision says so (or nothing was retrieved)."""

    question: str
    answers: list[Cited]
    no_answer_probability: float
    found: bool
    passages: int

    def to_dict(self) -> JsonObject:
        return {**asdict(self), "answers": [a.to_dict() for a in self.answers]}


def ask_index(
    index: PassageIndex,
    answerer: SpanAnswerer,
    questions: list[str],
    top_k: int = 3,
    passages: int = 10,
    mode: str = "fused",
    retrieval_weight: float = RETRIEVAL_WEIGHT,
) -> list[DocumentAnswers]:
    """Each question's top-k cited answers from its `passages` best retrieved passages, all questions'
    passages read in one batched pass (module doc)."""
    hits = retrieve(index, questions, passages, mode)
    queries = [joint_query(q, h, top_k, retrieval_weight) for q, h in zip(questions, hits)]
    results = answerer.predict_queries(queries)
    for result in results:
        if isinstance(result, QatuneError):
            raise result
    return [cite(q, h, r[0], answerer.decoding) for q, h, r in zip(questions, hits, results) if isinstance(r, list)]


def retrieve(index: PassageIndex, questions: list[str], passages: int, mode: str = "fused") -> list[list[Hit]]:
    """The `passages` best passages of each question; an empty question (or one with a NUL) is a DataError
    naming it."""
    for i, question in enumerate(questions):
        if not isinstance(question, str) or not question.strip():
            raise DataError(f"question {i}: empty question")
        if "\x00" in question:  # no text search (nor a database) takes one
            raise DataError(f"question {i}: holds a NUL character; remove it")
    return index.search(questions, passages, mode)


def joint_query(question: str, hits: list[Hit], top_k: int, retrieval_weight: float = RETRIEVAL_WEIGHT) -> Query:
    """The model's query for one question over its retrieved passages (read jointly), each passage's spans
    weighed by its retrieval score (module doc)."""
    if not (math.isfinite(retrieval_weight) and retrieval_weight >= 0):
        raise ConfigError(f"retrieval weight {retrieval_weight}: expected a number at least 0")
    best = max((h.score for h in hits), default=0.0)
    priors = [retrieval_weight * (h.score - best) for h in hits]
    pairs = [(h.passage.text, question) for h in hits]
    return Query(pairs, top_k, joint=True, priors=priors, titles=[h.title for h in hits])


def cite(question: str, hits: list[Hit], prediction: Prediction, decoding: Decoding) -> DocumentAnswers:
    """The joint prediction's answers cited in their passages; `found` by the model's no-answer decision."""
    found = [h.passage for h in hits]
    if not found:
        return DocumentAnswers(question, [], 1.0, False, 0)
    shifts, at = [], 0
    for passage in found:
        shifts.append(at)
        at += len(passage.text) + len(JOINT_SEPARATOR)
    cited = [_cite(a, found, shifts) for a in prediction.answers if a.text]
    threshold = decoding.null_threshold if decoding.with_null else None
    said_none = bool(prediction.answers) and prediction.answers[0].text == ""
    answered = bool(cited) and not said_none and (threshold is None or prediction.no_answer_probability <= threshold)
    return DocumentAnswers(question, cited, prediction.no_answer_probability, answered, len(found))


def _cite(answer: Answer, found: list[Passage], shifts: list[int]) -> Cited:
    number = bisect_right(shifts, answer.start) - 1
    passage, local = found[number], answer.start - shifts[number]
    length = answer.end - answer.start
    raw = answer.probability if answer.raw_probability is None else answer.raw_probability
    return Cited(
        answer.text,
        answer.probability,
        raw,
        answer.score,
        passage.file,
        passage.page,
        passage.start + local,
        passage.start + local + length,
        passage.text,
        local,
        local + length,
        number + 1,
    )

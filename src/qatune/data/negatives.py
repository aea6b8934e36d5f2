"""Unanswerable questions made from answerable ones: SQuAD v2-style data from v1.1 files.

No SQuAD v2 training set is available offline, so `--negatives FRACTION` pairs a seeded share of the
questions with another paragraph of the same article (the same `title`) that contains none of the
question's gold answers, as an unanswerable example. Same-article paragraphs share the topic and
vocabulary, so these are harder than random paragraphs, but still easier than SQuAD v2's
adversarial questions, which were written to look answerable from their own paragraph.

`--mined-negatives FRACTION` pairs a share of the questions with what a retriever would hand the reader
instead: the paragraph that BM25 ranks highest for the question, among every paragraph of the pool
(any article) except its own, that holds none of its answers. Most passages a reader of retrieved
documents sees are of this kind: on topic, sharing the question's words, and without its answer.

"Contains none of the gold answers" is checked on normalised text (lower-case, no punctuation or
articles, as the SQuAD metric): erring towards excluding paragraphs, never towards a negative that
actually holds its answer.
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict

from qatune.data.squad import Example, QADataset
from qatune.data.text import normalize_answer
from qatune.errors import ConfigError, DataError

SUFFIX = "-negative"
MINED_SUFFIX = "-mined"
MINED_DEPTH = 20  # BM25 candidates looked at for a mined negative (a question whose 20 best all hold it gets none)

logger = logging.getLogger(__name__)


def add_negatives(
    dataset: QADataset, fraction: float, seed: int = 0, pool: QADataset | None = None, *, strict: bool = True
) -> QADataset:
    """`dataset` plus about `fraction` x its answerable questions (at least one) as unanswerable ones (module doc).

    Other paragraphs are looked up in `pool` (default: `dataset` itself), so a small slice of a large
    file still finds same-article paragraphs. A question whose article has no other paragraph free of
    its answers gets no negative; the data set's notes say how many were made. With `strict` (the data
    the user asked negatives for), none made is a DataError and fewer than asked a warning with the count;
    without it (the held-out calibration questions), both are only in the notes.
    """
    rng, chosen = _choose(dataset, fraction, seed, "negatives")
    paragraphs: dict[str, dict[str, str]] = defaultdict(dict)  # title -> context -> normalised context
    for e in (pool or dataset).examples + dataset.examples:
        paragraphs[e.title].setdefault(e.context, "")
    ids = {e.id for e in dataset.examples}
    negatives = []
    for e in chosen:
        free = [c for c in paragraphs[e.title] if c != e.context and not _holds(paragraphs[e.title], c, e.answers)]
        if not free:
            continue
        qid = e.id + SUFFIX
        if qid in ids:
            raise ConfigError(f"{dataset.source}: question id {qid!r} already exists; cannot name its negative")
        negatives.append(Example(qid, e.question, rng.choice(free), (), (), e.title))
    missing = len(chosen) - len(negatives)
    note = (
        f"added {len(negatives)} unanswerable questions (another paragraph of the same article, "
        f"--negatives {fraction:g}; {missing} questions had no such paragraph)"
    )
    if strict and not negatives:
        why = (
            "it has no answerable question to pair with another paragraph"
            if not chosen
            else f"none of the {len(chosen)} questions chosen has another paragraph in its article (same title) "
            f"without its answers"
        )
        raise DataError(
            f"{dataset.source}: --negatives {fraction:g} can make no unanswerable question: {why}; use data whose "
            f"articles have two or more paragraphs, or leave out --negatives"
        )
    if strict and missing:
        logger.warning(
            "%s: --negatives %g made %d of the %d unanswerable questions asked for (for %d of the questions "
            "chosen, no other paragraph of its article is free of its answers)",
            dataset.source,
            fraction,
            len(negatives),
            len(chosen),
            missing,
        )
    return QADataset(dataset.examples + negatives, dataset.source, dataset.skipped, [*dataset.notes, note])


def add_mined_negatives(
    dataset: QADataset, fraction: float, seed: int = 0, pool: QADataset | None = None, *, strict: bool = True
) -> QADataset:
    """`dataset` plus about `fraction` x its answerable questions as unanswerable ones, each paired with its
    best BM25-ranked paragraph of `pool` (default: `dataset`) that is not its own and holds none of its
    answers (module doc); the notes, errors and warnings as `add_negatives`'s."""
    from qatune.data.lexical import Lexical

    _, chosen = _choose(dataset, fraction, seed, "mined negatives")
    titles = {e.context: e.title for e in (pool or dataset).examples + dataset.examples}
    contexts = list(titles)
    normalised = dict.fromkeys(contexts, "")
    ranked = Lexical.build(contexts).search([e.question for e in chosen], MINED_DEPTH) if chosen else []
    ids = {e.id for e in dataset.examples}
    negatives = []
    for e, (found, _) in zip(chosen, ranked):
        context = next(
            (c for c in (contexts[i] for i in found) if c != e.context and not _holds(normalised, c, e.answers)), None
        )
        if context is None:
            continue
        if e.id + MINED_SUFFIX in ids:
            raise ConfigError(
                f"{dataset.source}: question id {e.id + MINED_SUFFIX!r} already exists; cannot name its negative"
            )
        negatives.append(Example(e.id + MINED_SUFFIX, e.question, context, (), (), titles[context]))
    missing = len(chosen) - len(negatives)
    note = (
        f"added {len(negatives)} unanswerable questions (the best BM25-ranked paragraph without the answer, "
        f"--mined-negatives {fraction:g}; {missing} questions had none in their {MINED_DEPTH} best)"
    )
    if strict and not negatives:
        raise DataError(
            f"{dataset.source}: --mined-negatives {fraction:g} can make no unanswerable question: no other "
            f"paragraph without the answers shares a word with the questions; use data with more paragraphs, "
            f"or leave out --mined-negatives"
        )
    if strict and missing:
        logger.warning(
            "%s: --mined-negatives %g made %d of the %d unanswerable questions asked for (for %d of the questions "
            "chosen, no paragraph among the %d BM25 ranks best is free of its answers)",
            dataset.source,
            fraction,
            len(negatives),
            len(chosen),
            missing,
            MINED_DEPTH,
        )
    return QADataset(dataset.examples + negatives, dataset.source, dataset.skipped, [*dataset.notes, note])


def _choose(dataset: QADataset, fraction: float, seed: int, what: str) -> tuple[random.Random, list[Example]]:
    """The seeded generator and the answerable questions it picks to pair (about `fraction` of them, at
    least one); a fraction outside (0, 1] is a ConfigError naming `what`."""
    if not 0 < fraction <= 1:
        raise ConfigError(f"{what} must be a fraction in (0, 1], got {fraction}")
    rng = random.Random(seed)
    positives = [e for e in dataset.examples if e.answers]
    return rng, rng.sample(positives, max(1, round(fraction * len(positives))) if positives else 0)


def _holds(normalised: dict[str, str], context: str, answers: tuple[str, ...]) -> bool:
    """Whether `context` contains any of the answers, as typed or normalised (each context is
    normalised once, on demand)."""
    if not normalised[context]:
        normalised[context] = normalize_answer(context)
    lowered = context.lower()
    return any(a.lower() in lowered or (normalize_answer(a) or a) in normalised[context] for a in answers)


def to_squad_v2(dataset: QADataset) -> dict[str, object]:
    """The data set as a SQuAD v2.0 document (articles by title, paragraphs by context, `is_impossible`)."""
    articles: dict[str, dict[str, list[dict[str, object]]]] = defaultdict(lambda: defaultdict(list))
    for e in dataset.examples:
        answers = [{"text": t, "answer_start": s} for t, s in zip(e.answers, e.answer_starts)]
        qa = {"id": e.id, "question": e.question, "answers": answers, "is_impossible": not e.answers}
        articles[e.title][e.context].append(qa)
    data = [
        {"title": title, "paragraphs": [{"context": c, "qas": qas} for c, qas in paragraphs.items()]}
        for title, paragraphs in articles.items()
    ]
    return {"version": "v2.0", "data": data}

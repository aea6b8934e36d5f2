"""Unanswerable questions made from answerable ones: SQuAD v2-style data from v1.1 files.

No SQuAD v2 training set is available offline, so `--negatives FRACTION` turns a seeded share of the
answerable questions into unanswerable ones, each of one of the `negative_kinds`:

- `article`: the question paired with another paragraph of the same article (the same `title`) that
  contains none of its gold answers. Same-article paragraphs share the topic and vocabulary, so these
  are harder than random paragraphs, but a model learns from them to notice a change of topic only.
- `entity`, `number`, `antonym`, `negation` (`data.adversarial`): the question itself changed so that
  its own paragraph no longer answers it, as SQuAD 2.0's crowd workers wrote theirs: same topic, a
  plausible answer of the right type in the paragraph (kept as `plausible_answers`).

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
import math
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence

from qatune.data.adversarial import ENGLISH_ONLY, Perturber, english
from qatune.data.squad import Example, QADataset
from qatune.data.text import normalize_answer
from qatune.errors import ConfigError, DataError

SUFFIX = "-negative"
MINED_SUFFIX = "-mined"
KINDS = ("article", "entity", "number", "antonym", "negation")
DEFAULT_KINDS = "article,entity,number,antonym"  # measured: README, Unanswerable questions
ID_SUFFIXES = {SUFFIX: "article", MINED_SUFFIX: "mined", **{f"-{k}": k for k in KINDS if k != "article"}}
MINED_DEPTH = 20  # BM25 candidates looked at for a mined negative (a question whose 20 best all hold it gets none)

logger = logging.getLogger(__name__)


def made_from(question_id: str) -> tuple[str, str] | None:
    """The id of the question a negative was made from and its kind (`KINDS` or `mined`), read off the suffix
    `add_negatives` or `add_mined_negatives` gave its id; None for any other id."""
    return next(((question_id[: -len(s)], k) for s, k in ID_SUFFIXES.items() if question_id.endswith(s)), None)


def parse_kinds(spec: str) -> tuple[str, ...]:
    """The kinds named in a comma-separated `spec` (`negative_kinds`), each once, in the order given."""
    kinds = tuple(dict.fromkeys(k.strip() for k in spec.split(",") if k.strip()))
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        what = f"unknown kind(s) {', '.join(map(repr, unknown))}" if unknown else f"no kind named in {spec!r}"
        raise ConfigError(f"negative_kinds: {what}; known: {', '.join(KINDS)} (comma-separated)")
    return kinds


def add_negatives(
    dataset: QADataset,
    fraction: float,
    seed: int = 0,
    pool: QADataset | None = None,
    *,
    strict: bool = True,
    kinds: Sequence[str] = ("article",),
    perturber: Perturber | None = None,
) -> QADataset:
    """`dataset` plus about `fraction` x its answerable questions (at least one) as unanswerable ones of
    `kinds` (module doc), one per question, the kinds sharing them equally as far as the questions allow
    (`_balanced`).

    Other paragraphs and names are looked up in `pool` (default: `dataset` itself), so a small slice of a
    large file still finds same-article ones; the `perturber` (made on `pool` with the sentence model, so
    that `entity` finds same-type names) may be shared by several calls on the same pool. With
    `strict` (the data the user asked negatives for), fewer than half the questions asked for is a
    DataError and fewer than asked a warning with the count; without it (the held-out calibration
    questions), both are only in the notes. The notes give the count of each kind.
    """
    source = pool or dataset
    if strict and set(kinds) & set(ENGLISH_ONLY) and not english([e.question for e in dataset.examples]):
        raise DataError(
            f"{dataset.source}: the negative kinds {', '.join(k for k in kinds if k in ENGLISH_ONLY)} change English "
            f"words, and these questions do not read as English; use --negative-kinds "
            f"{','.join(k for k in kinds if k not in ENGLISH_ONLY) or 'article,entity,number'}"
        )
    rng, positives, wanted = answerable_share(dataset, fraction, seed, "negatives")
    order = rng.sample(positives, len(positives))
    paragraphs: dict[str, dict[str, str]] = defaultdict(dict)  # title -> context -> normalised context
    for e in source.examples + dataset.examples:
        paragraphs[e.title].setdefault(e.context, "")
    perturber = perturber or Perturber(source.examples + dataset.examples)

    def make(e: Example, kind: str) -> Example | None:
        return _negative(e, kind, rng, paragraphs, perturber)

    negatives, made = _balanced(order, wanted, kinds, rng, make)
    refuse_clash(dataset, negatives, "its negative")
    _report(dataset, fraction, kinds, wanted, made, strict)
    mix = ", ".join(f"{k} {made[k]}" for k in kinds)
    missing = wanted - len(negatives)
    note = (
        f"added {len(negatives)} unanswerable questions (--negatives {fraction:g}: {mix}; {missing} fewer than asked)"
    )
    return QADataset(dataset.examples + negatives, dataset.source, dataset.skipped, [*dataset.notes, note])


def _negative(
    e: Example, kind: str, rng: random.Random, paragraphs: dict[str, dict[str, str]], perturber: Perturber
) -> Example | None:
    """The unanswerable question of `kind` made from `e`, or None where this kind can make none."""
    plausible = tuple(zip(e.answers, e.answer_starts))
    if kind == "article":
        free = [c for c in paragraphs[e.title] if c != e.context and not _holds(paragraphs[e.title], c, e.answers)]
        return Example(e.id + SUFFIX, e.question, rng.choice(free), (), (), e.title) if free else None
    question = perturber.perturb(e, kind, rng)
    if question is None:
        return None
    return Example(f"{e.id}-{kind}", question, e.context, (), (), e.title, plausible)


def _balanced(
    order: Sequence[Example],
    wanted: int,
    kinds: Sequence[str],
    rng: random.Random,
    make: Callable[[Example, str], Example | None],
) -> tuple[list[Example], Counter[str]]:
    """Up to `wanted` negatives, one per question of `order`, the kinds sharing them equally as far as the
    questions allow: each question gets, of the kinds that fit it, the one with the fewest so far (ties in
    seeded order). A first pass gives no kind more than its equal share, so that the scarce kinds (a
    number or an opposite in the question: under a tenth of SQuAD's) are not crowded out by `article`
    (which fits almost every question and is the easiest to tell); a second pass fills the rest from
    the questions the first one left, with any kind."""
    share, made = math.ceil(wanted / len(kinds)), Counter[str]()
    negatives: list[Example] = []
    left: list[Example] = []
    for capped, questions in ((True, order), (False, left)):
        for e in list(questions):
            if len(negatives) == wanted:
                break
            open_kinds = [k for k in kinds if not capped or made[k] < share]
            for kind in sorted(open_kinds, key=lambda k: (made[k], rng.random())):
                negative = make(e, kind)
                if negative is not None:
                    negatives.append(negative)
                    made[kind] += 1
                    break
            else:
                left.append(e)
    return negatives, made


def _report(
    dataset: QADataset, fraction: float, kinds: Sequence[str], asked: int, made: Counter[str], strict: bool
) -> None:
    """Too few negatives made: a DataError under half of those asked, a warning under all of them (strict only)."""
    total = sum(made.values())
    if not strict or total == asked:
        return
    named = ",".join(kinds)
    if total < asked / 2:
        raise DataError(
            f"{dataset.source}: --negatives {fraction:g} (kinds {named}) can make {total} of the {asked} unanswerable "
            f"questions asked for: each kind needs something to change (article: another paragraph of the same "
            f"article without the answers; entity, number, antonym: a name, number or word of the question that its "
            f"paragraph holds); lower --negatives, add kinds (known: {', '.join(KINDS)}), or leave out --negatives"
        )
    logger.warning(
        "%s: --negatives %g made %d of the %d unanswerable questions asked for (kinds %s fit only %d of its %d "
        "answerable questions)",
        dataset.source,
        fraction,
        total,
        asked,
        named,
        total,
        sum(bool(e.answers) for e in dataset.examples),
    )


def add_mined_negatives(
    dataset: QADataset, fraction: float, seed: int = 0, pool: QADataset | None = None, *, strict: bool = True
) -> QADataset:
    """`dataset` plus about `fraction` x its answerable questions as unanswerable ones, each paired with its
    best BM25-ranked paragraph of `pool` (default: `dataset`) that is not its own and holds none of its
    answers (module doc); the notes, errors and warnings as `add_negatives`'s."""
    from qatune.data.lexical import Lexical

    rng, positives, wanted = answerable_share(dataset, fraction, seed, "mined negatives")
    chosen = rng.sample(positives, wanted)
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


def refuse_clash(dataset: QADataset, made: Sequence[Example], what: str) -> None:
    """A ConfigError where a question made from `dataset` would take the id of one it already has."""
    ids = {e.id for e in dataset.examples}
    clash = next((e.id for e in made if e.id in ids), None)
    if clash is not None:
        raise ConfigError(f"{dataset.source}: question id {clash!r} already exists; cannot name {what}")


def answerable_share(
    dataset: QADataset, fraction: float, seed: int, what: str
) -> tuple[random.Random, list[Example], int]:
    """The seeded generator, the answerable questions and how many of them to pair: about `fraction`, at
    least one; a fraction outside (0, 1] is a ConfigError naming `what`."""
    if not 0 < fraction <= 1:
        raise ConfigError(f"{what} must be a fraction in (0, 1], got {fraction}")
    positives = [e for e in dataset.examples if e.answers]
    return random.Random(seed), positives, max(1, round(fraction * len(positives))) if positives else 0


def _holds(normalised: dict[str, str], context: str, answers: tuple[str, ...]) -> bool:
    """Whether `context` contains any of the answers, as typed or normalised (each context is
    normalised once, on demand)."""
    if not normalised[context]:
        normalised[context] = normalize_answer(context)
    lowered = context.lower()
    return any(a.lower() in lowered or (normalize_answer(a) or a) in normalised[context] for a in answers)

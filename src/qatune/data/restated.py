"""Answerable questions whose paragraph leaves a name or number of the question unstated: the contrast that
keeps the `entity` and `number` negatives from teaching "a name or number the paragraph lacks: no answer".

A tenth of SQuAD's answerable questions name something their paragraph never states, mostly the article's
subject ("Super Bowl 50", "the V&A", "in 1888") that the paragraph leaves implicit. The `entity` and
`number` negatives bear the same mark, so a model trained on them abstains on many of these
(bench/abstention.py). `restate` makes more of them from answerable questions whose name or number the
paragraph states only in a phrase that can go ("In 1888, ...", "... at Super Bowl 50."): the
phrase is taken out and the answer kept, so that what tells a negative is a paragraph that says something
else (another year, another name in its place), not one that is silent.
"""

from __future__ import annotations

import logging
import random
import re

from qatune.data.adversarial import NUMBER, names
from qatune.data.negatives import answerable_share, refuse_clash
from qatune.data.squad import Example, QADataset
from qatune.errors import DataError

logger = logging.getLogger(__name__)

SUFFIX = "-restated"
_PREPOSITIONS = "in|at|during|on|of"  # not "for": "sent for Luther" is the verb's object
# lower-case words that may follow a phrase taken out: they begin the next part of the sentence
_FOLLOWERS = (
    "in|on|at|to|from|with|by|as|for|when|where|while|after|before|since|during|that|which|who|was|were|is|are|"
)
_FOLLOWERS += "had|has|have|he|she|it|they|there|but"
_YEAR = re.compile(r"(?<![\d,.])(?:1\d{3}|20\d{2})(?![\d,])")


def restate(example: Example, rng: random.Random) -> Example | None:
    """`example` (answerable) with its paragraph no longer stating one of the question's names or numbers:
    every mention of it is a phrase that can go, and none touches an answer; None where there is none such."""
    if not example.answers:
        return None
    question, context = example.question, example.context
    found = [m.group() for m in NUMBER.finditer(question)]
    found += [question[s:e] for s, e in names(question) if s > 0 or " " in question[s:e]]
    found = [t for t in found if not re.search(r"\b[A-Z]$", t)]  # "George W" is half of "George W. Bush"
    for text in rng.sample(found, len(found)):
        if any(text.lower() in a.lower() or a.lower() in text.lower() for a in example.answers):
            continue
        cut = _phrases(context, text)
        if cut is not None and (restated := _without(example, cut)) is not None:
            if text.lower() not in restated.context.lower() and not (
                _YEAR.fullmatch(text) and _YEAR.search(restated.context)  # another year: a conflict, not silence
            ):
                return restated
    return None


def _phrases(context: str, text: str) -> list[tuple[int, int]] | None:
    """The spans to take out so that `context` no longer states `text`: each mention must sit in a prepositional
    phrase that ends where a clause goes on ("In 1888,", "at Super Bowl 50 was"); None where one does not."""
    word = re.escape(text)
    mentions = list(re.finditer(rf"(?<!\w){word}(?!\w)", context))
    # the phrase ends where the clause goes on: not "in Biblical studies", "for Children in Need", "in 4:3"
    after = rf"(?!\s*\d)(?:\s+season)?(?=\s*[.,;:](?:\s|$)|\s+(?:{_FOLLOWERS})\b(?!\s+[A-Z]))"
    # "since" only before a number: "since 1932"; before a name it is mostly a conjunction ("since the Santer
    # Commission was censured")
    prepositions = f"{_PREPOSITIONS}|since" if text[0].isdigit() else _PREPOSITIONS
    # not "As of 2012" (an idiom), nor a list's head or a place's town ("groups in Iraq, Egypt", "in Toledo, Ohio")
    inner = rf"(?<!\b[Aa]s)\s+(?:{prepositions})\s+(?:the\s+)?{word}{after}"
    listed = r"(?!\s*,\s*[A-Z])"
    phrase = re.compile(
        rf"(?:^|(?<=[.!?]\s))(?:{prepositions.title()})\s+(?:the\s+)?{word}{after},?\s+(?=\w)"  # opens a sentence
        rf"|,{inner},(?=\s)"  # between commas: "Tesla, in 1881, moved" -> "Tesla moved"
        rf"|,{inner}(?=\s*[.;:])"  # ends a sentence after a comma
        rf"|{inner}{listed}"  # inside one: "Statistics, in 2011 there were" keeps its comma
    )
    spans = [(m.start(), m.end()) for m in phrase.finditer(context)]
    if not mentions or not all(any(s <= m.start() and m.end() <= e for s, e in spans) for m in mentions):
        return None
    return spans


def _without(example: Example, cut: list[tuple[int, int]]) -> Example | None:
    """`example` with the spans `cut` out of its paragraph (a sentence's new first letter capitalised), the
    answers moved along; None where a span touches an answer (its text no longer where its start moved to)."""
    context, starts = example.context, list(example.answer_starts)
    for s, e in sorted(cut, reverse=True):
        opens = s == 0 or context[max(0, s - 2) : s].rstrip().endswith((".", "!", "?"))
        rest = context[e:]
        context = context[:s] + (rest[:1].upper() + rest[1:] if opens else rest)
        starts = [a - (e - s) if a >= e else a for a in starts]
    if any(context[s : s + len(a)] != a for s, a in zip(starts, example.answers)):
        return None
    return Example(example.id + SUFFIX, example.question, context, example.answers, tuple(starts), example.title)


def add_restated(dataset: QADataset, fraction: float, seed: int = 0) -> QADataset:
    """`dataset` plus about `fraction` x its answerable questions restated (`restate`), one per question:
    fewer than half of those asked is a DataError, fewer than asked a warning."""
    rng, positives, wanted = answerable_share(dataset, fraction, seed, "restated")
    if not positives:
        raise DataError(f"{dataset.source}: --restated needs answerable questions, and it has none; leave it out")
    made: list[Example] = []
    for e in rng.sample(positives, len(positives)):
        if len(made) == wanted:
            break
        if (restated := restate(e, rng)) is not None:
            made.append(restated)
    refuse_clash(dataset, made, "the restated question")
    if len(made) < wanted / 2:
        raise DataError(
            f"{dataset.source}: --restated {fraction:g} can make {len(made)} of the {wanted} restated questions asked "
            f"for (a question needs a name or number that its paragraph states only in a phrase that can go: about "
            f"4% of SQuAD's); lower --restated, or leave it out"
        )
    if len(made) < wanted:
        logger.warning("%s: --restated %g made %d of the %d asked for", dataset.source, fraction, len(made), wanted)
    note = f"added {len(made)} restated answerable questions (--restated {fraction:g})"
    return QADataset(dataset.examples + made, dataset.source, dataset.skipped, [*dataset.notes, note])

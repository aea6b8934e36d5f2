"""Adversarial unanswerable questions: an answerable question changed so that its own paragraph no longer
answers it, while it stays on topic (as SQuAD 2.0's crowd workers wrote them).

Each kind changes one thing in the question and checks the paragraph against the change:

- `entity`: a name in the question that the paragraph contains (a capitalised span) becomes another
  name of the same article that the paragraph never mentions, of the same type: the nearest names by
  all-MiniLM-L6-v2 cosine (a person for a person, a place for a place). No offline NER exists (spaCy's
  and GLiNER's models are hub downloads), and the sentence model already ships with qatune.
- `number`: a number of the question found in the paragraph becomes one the paragraph never states
  (a year moves by 1-10 years; another number to a different value of about its size).
- `antonym`: a word of the question with an opposite (largest/smallest, first/last, before/after ...)
  that the paragraph uses becomes its opposite, which the paragraph never uses.
- `negation`: "not" after the question's first auxiliary verb (did, was, can ...), in a paragraph
  without a negation.

The paragraph keeps the original answer as the question's plausible answer (SQuAD 2.0's
`plausible_answers`). The text rules are English; `entity` and `number` hold in most languages.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from qatune.data.squad import Example

Embed = Callable[[Sequence[str]], np.ndarray]
"""Unit vectors of texts, one row each (qatune.models.embedding.Embedder)."""

ENGLISH_ONLY = ("antonym", "negation")
NAMES = 60  # the names of an article that may be swapped in (or out): its 60 most frequent (1 s to embed)
NEAREST = 3  # an entity is swapped for one of its 3 nearest same-article names ...
MIN_SCORE = 0.3  # ... whose two cosines (name, words around it) add up to this (below: unrelated, nonsense)

_CAPITAL = "A-ZÀ-ÖØ-Þ"
_WORD = rf"[{_CAPITAL}][\w&-]*(?:\.\w+)*(?:['’]\w+)?"  # a sentence's full stop ends a name, "U.S" does not
_NAME = re.compile(rf"{_WORD}(?:\s+(?:(?:of(?:\s+the)?|de|von|van|del|da|di|du|la|le|for)\s+)?{_WORD})*")
# a whole number, not part of a decimal, a range ("1994-99") or a word
NUMBER = re.compile(r"(?<![\w.,\-–])(?:\d{1,3}(?:,\d{3})+|\d+)(?![\w,\-–]|\.\d)")
_FUNCTION = frozenset(
    "a an the in on at of to for by with from as into during after before since until while when where what "
    "which who whom whose why how is was are were be been do does did has have had can could will would shall "
    "should may might must this that these those it its he she they his her their there here however although "
    "though also and or but if then than so not no many much some most more one".split()
)
_PAIRS = (  # hand-labelled (README): before/after, win/lose and early/late read as nonsense, so are left out
    "largest smallest, biggest smallest, highest lowest, first last, earliest latest, longest shortest, oldest "
    "youngest, best worst, north south, east west, northern southern, eastern western, maximum minimum, increase "
    "decrease, increased decreased, larger smaller, higher lower, major minor, top bottom, above below, inside "
    "outside, strongest weakest, fastest slowest, richest poorest, heaviest lightest, men women, male female, "
    "internal external, cheapest most_expensive"
)
ANTONYMS: dict[str, str] = {}
for _pair in _PAIRS.split(", "):
    _a, _b = (w.replace("_", " ") for w in _pair.split())
    ANTONYMS.setdefault(_a, _b)
    ANTONYMS.setdefault(_b, _a)
_AUXILIARY = re.compile(r"\b(is|was|are|were|did|does|do|can|could|has|have|had|will|would|should)\b")
_NEGATED = re.compile(r"\b(not|no|never|none|nor|without)\b|n't\b", re.IGNORECASE)


def names(text: str) -> list[tuple[int, int]]:
    """(start, end) of each capitalised name in `text`, leading function words ("In", "The") cut off."""
    out = []
    for m in _NAME.finditer(text):
        start, words = m.start(), m.group().split()
        while words and words[0].lower() in _FUNCTION:
            start = text.index(words[1], start + len(words[0])) if len(words) > 1 else m.end()
            words = words[1:]
        end = m.end() - 2 if re.search(r"['’]s$", m.group()) else m.end()  # "Luther's": the name is Luther
        while end > start and text[end - 1] in ".,'’-":
            end -= 1
        if words and end > start:
            out.append((start, end))
    return out


def unstated(example: Example) -> tuple[str, ...]:
    """The kinds whose mark `example`'s question bears as it is: `number` when a number of the question is
    nowhere in its paragraph, `entity` when a name of it is not (a lone capitalised word that begins the
    question, "Besides", is no name). On an answerable question these are the cues a model trained on
    those kinds may wrongly abstain on (bench/abstention.py counts them)."""
    question, context = example.question, example.context
    numbers = any(m.group() not in context for m in NUMBER.finditer(question))
    found = [question[s:e] for s, e in names(question) if s > 0 or " " in question[s:e]]
    entities = any(name.lower() not in context.lower() for name in found)
    return tuple(kind for kind, shown in (("number", numbers), ("entity", entities)) if shown)


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"\w+", text.lower()) if len(w) > 2 and w not in _FUNCTION}


@dataclass
class _Names:
    """An article's names, their unit vectors, and what `_entity` compares them by."""

    names: list[str]
    vectors: np.ndarray  # of the names themselves (the sentence model)
    roles: np.ndarray  # of the words around them in the article, centred: a person's "he said", a place's "in"
    the: np.ndarray  # whether the article mostly writes "the" before the name
    stems: list[set[str]] = field(init=False)
    lowered: list[str] = field(init=False)
    index: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.lowered = [n.lower() for n in self.names]
        self.stems = [_stems(n) for n in self.names]
        self.index = {n: i for i, n in enumerate(self.names)}


@dataclass
class Perturber:
    """Makes each kind's change to a question; the same-article names and their vectors are found once an
    article (`pool`: every example the names may come from). `entity` needs `embed` (the sentence model,
    for the names) and uses `roles` where given (word-piece vectors, for the words around them)."""

    pool: Sequence[Example]
    embed: Embed | None = None
    roles: Embed | None = None
    _articles: dict[str, _Names] = field(default_factory=dict)
    _texts: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        articles: dict[str, dict[str, None]] = {}
        for e in self.pool:
            articles.setdefault(e.title, {})[e.context] = None
        self._texts = {title: list(contexts) for title, contexts in articles.items()}

    def perturb(self, example: Example, kind: str, rng: random.Random) -> str | None:
        """The question changed by `kind` so that its paragraph no longer answers it; None where this kind
        finds nothing to change in it."""
        change = {"entity": self._entity, "number": _number, "antonym": _antonym, "negation": _negation}[kind]
        return change(example, rng)

    def _entity(self, example: Example, rng: random.Random) -> str | None:
        question, context = example.question, example.context
        if self.embed is None:
            return None
        article = self._article(example.title)
        mine = [
            (s, e)
            for s, e in names(question)
            if question[s:e] in context
            and question[s:e] in article.index
            and not re.match(r"\s+\d", question[e:])  # "Super Bowl 50": a series, not a name
            and not any(_overlaps(question[s:e], a) for a in example.answers)
        ]
        if not mine:
            return None
        start, end = rng.choice(mine)
        chosen, the = question[start:end], question[:start].lower().endswith("the ")
        usable = self._usable(example, chosen, article) & (article.the == the)
        if not usable.any():
            return None
        i = article.index[chosen]
        score = article.vectors @ article.vectors[i] + article.roles @ article.roles[i]
        score[~usable] = -9
        best = [j for j in np.argsort(-score)[:NEAREST] if score[j] >= MIN_SCORE]
        return question[:start] + article.names[rng.choice(best)] + question[end:] if best else None

    def _usable(self, example: Example, chosen: str, article: _Names) -> np.ndarray:
        """Which names may replace `chosen`: absent from the paragraph and the question, sharing no word
        (stem) with either or with an answer."""
        lowered, question = example.context.lower(), example.question.lower()
        taken = _stems(chosen) | _stems(question)
        answers = [(a.lower(), _stems(a)) for a in example.answers]
        return np.array(
            [
                lower not in lowered
                and lower not in question
                and not stems & taken
                and not any(lower in a or a in lower or stems & w for a, w in answers)
                for lower, stems in zip(article.lowered, article.stems)
            ],
            dtype=bool,
        )

    def _article(self, title: str) -> _Names:
        """The article's `NAMES` names found in most of its paragraphs (of more than one letter, not a
        capitalised common word) and their vectors, made on first use."""
        if title not in self._articles:
            texts = self._texts.get(title, [])
            found = _frequent_names(texts)
            around: dict[str, list[str]] = {n: [] for n in found}
            the = dict.fromkeys(found, 0)
            for t in texts:
                for s, e in names(t):
                    if t[s:e] in around:
                        around[t[s:e]] += re.findall(r"\w+", t[max(0, s - 30) : s].lower())[-2:]
                        around[t[s:e]] += re.findall(r"\w+", t[e : e + 30].lower())[:2]
                        the[t[s:e]] += 1 if t[:s].lower().endswith("the ") else -1
            assert self.embed is not None
            vectors = self.embed(found) if found else np.zeros((0, 1), dtype=np.float32)
            roles = np.zeros((len(found), 1), dtype=np.float32)
            if self.roles is not None and found:
                roles = self.roles([" ".join(around[n]) for n in found])
                roles -= roles.mean(0)
                roles /= np.linalg.norm(roles, axis=1, keepdims=True).clip(1e-6)
            self._articles[title] = _Names(found, vectors, roles, np.array([the[n] > 0 for n in found], dtype=bool))
        return self._articles[title]


def _frequent_names(texts: list[str]) -> list[str]:
    """The `NAMES` names found in most of `texts` (of more than one letter, not a capitalised common word)."""
    common = set(re.findall(r"\b[a-z]+\b", " ".join(texts)))  # words the article writes in lower case
    # a single word that is capitalised only where a sentence begins ("Examples") is no name
    common |= {w.lower() for t in texts for w in re.findall(r"(?:^|[.!?]\s+)([A-Z]\w*)", t)} - {
        w.lower() for t in texts for w in re.findall(r"(?<![.!?])\s([A-Z]\w*)", t)
    }
    # dict.fromkeys, not a set: ties in most_common keep the text's order, the same in every process
    counts = Counter(
        n
        for t in texts
        for n in dict.fromkeys(t[s:e] for s, e in names(t))
        if len(n) > 1 and (" " in n or n.lower() not in common)
    )
    return sorted(n for n, _ in counts.most_common(NAMES))


def _overlaps(a: str, b: str) -> bool:
    """Whether two texts share a word (case-insensitive) or contain one another."""
    return a.lower() in b.lower() or b.lower() in a.lower() or bool(_words(a) & _words(b))


def _stems(text: str) -> set[str]:
    """The first 5 letters of each word: Luther and Lutheran, Kenya and Kenyatta are one name to `entity`."""
    return {w[:5] for w in _words(text)}


def _number(example: Example, rng: random.Random) -> str | None:
    question, context = example.question, example.context
    stated = [m for m in NUMBER.finditer(question) if m.group() in context]
    stated = [m for m in stated if all(m.group() not in a for a in example.answers)]
    if not stated:
        return None
    m = rng.choice(stated)
    value, commas = int(m.group().replace(",", "")), "," in m.group()
    for _ in range(20):
        if 1000 <= value <= 2100 and not commas:  # a year
            other = value + rng.choice([-1, 1]) * rng.randint(1, 10)
        else:
            other = rng.randint(max(1, value // 2), max(value * 2, value + 3))
        text = f"{other:,}" if commas else str(other)
        if other != value and not re.search(rf"(?<![\d,]){re.escape(text)}(?![\d,])", context + " " + question):
            return question[: m.start()] + text + question[m.end() :]
    return None


def _antonym(example: Example, rng: random.Random) -> str | None:
    question, lowered = example.question, example.context.lower()
    found = [
        m
        for m in re.finditer(r"(?<![\w-])[A-Za-z]+(?![\w-])", question)
        if m.group().lower() in ANTONYMS
        and re.search(rf"\b{m.group().lower()}\b", lowered)
        and not re.search(rf"\b{ANTONYMS[m.group().lower()]}\b", lowered)
    ]
    if not found:
        return None
    m = rng.choice(found)
    other = ANTONYMS[m.group().lower()]
    other = other.capitalize() if m.group()[0].isupper() else other
    return question[: m.start()] + other + question[m.end() :]


def _negation(example: Example, rng: random.Random) -> str | None:
    question = example.question
    m = _AUXILIARY.search(question)
    if m is None or _NEGATED.search(question) or _NEGATED.search(example.context):
        return None
    return question[: m.end()] + " not" + question[m.end() :]


def english(questions: Sequence[str]) -> bool:
    """Whether most questions read as English (a function word in at least half of them)."""
    hits = sum(bool(set(re.findall(r"[a-z]+", q.lower())) & _FUNCTION) for q in questions)
    return hits >= len(questions) / 2

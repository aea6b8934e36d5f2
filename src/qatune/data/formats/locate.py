"""Where an answer given as text lies in its context: the rule every converter applies.

Annotation tools and spreadsheets give an answer as text, or with offsets that a tool, an export or a
hand edit broke (a context stripped of leading spaces, `answer_end` instead of `answer_start`). The rule,
in order; a converter counts each outcome and never guesses silently:

1. `exact`: the text is at the offset given.
2. `located`: no offset given (or it is wrong), and the text occurs once in the context.
3. `located`: the text occurs once ignoring case and runs of whitespace; the context's own spelling
   becomes the answer.
4. `resolved`: it occurs several times, and an offset was given: the occurrence nearest to it (a
   shifted offset keeps its order among the occurrences). Without an offset: the occurrence whose
   sentence shares most words with the question, when one shares strictly more than the others.
5. `ambiguous`: several occurrences and no rule above picks one: skipped.
6. `missing`: the text is not in the context: skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

OUTCOMES = ("exact", "located", "resolved", "ambiguous", "missing")


@dataclass(frozen=True)
class Located:
    """One answer's place in its context: `outcome` is one of OUTCOMES; `text`/`start` None when skipped."""

    outcome: str
    text: str | None = None
    start: int | None = None


def locate(context: str, text: str, question: str = "", hint: int | None = None) -> Located:
    """Where `text` lies in `context` by the module's rule (`hint`: the offset the source gave)."""
    if hint is not None and hint >= 0 and context[hint : hint + len(text)] == text:
        return Located("exact", text, hint)
    found = [(text, m.start()) for m in re.finditer(re.escape(text), context)] if text else []
    if not found and text.strip():
        pattern = r"\s+".join(re.escape(w) for w in text.split())
        found = [(m.group(), m.start()) for m in re.finditer(pattern, context, re.IGNORECASE)]
    if not found:
        return Located("missing")
    if len(found) == 1:
        return Located("located", *found[0])
    return _pick(context, found, question, hint)


def _pick(context: str, found: list[tuple[str, int]], question: str, hint: int | None) -> Located:
    """Rule 4 among several occurrences, else `ambiguous`."""
    if hint is not None:
        text, start = min(found, key=lambda f: abs(f[1] - hint))
        return Located("resolved", text, start)
    words = set(_words(question))
    shared = [len(words & set(_words(_sentence(context, start)))) for _, start in found]
    best = max(shared)
    if shared.count(best) == 1 and best > 0:
        text, start = found[shared.index(best)]
        return Located("resolved", text, start)
    return Located("ambiguous")


def _sentence(context: str, at: int) -> str:
    """The sentence of `context` around offset `at` (split at . ! ? followed by a space)."""
    begin = max(context.rfind(p, 0, at) for p in (". ", "! ", "? ", "\n"))
    ends = [e for e in (context.find(p, at) for p in (". ", "! ", "? ", "\n")) if e >= 0]
    return context[begin + 1 : min(ends) if ends else len(context)]


def _words(text: str) -> list[str]:
    return [w for w in re.findall(r"\w+", text.lower()) if len(w) > 2]

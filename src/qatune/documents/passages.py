"""Cut a document's text into passages the reader's window holds, on paragraph and sentence boundaries.

A passage is a character span of the extracted text (so an answer found in it is cited at its exact
place in the file). Paragraphs (blocks between blank lines) are kept whole up to `max_words`; a longer
one is cut at sentence ends, each piece starting with the previous piece's last sentence (the overlap
keeps an answer that straddles the cut readable); a sentence longer than that is cut between words.
A block shorter than `min_words` (a heading, a caption) joins the one after it. Size is counted in
words, each character of a script written without spaces (Chinese, Japanese, Thai) counting as one:
150 words is about 200 tokens of English, what a 256-token window holds beside a question.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_WORDS = 150
MIN_WORDS = 20
_BLOCK = re.compile(r"\S(?:.*?\S)?(?=\s*\n\s*\n|\s*$)", re.S)
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])[\"')\]]*\s+|(?<=[。！？])")
_UNSPACED = "\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af\u0e00-\u0e7f"  # kana, CJK, Hangul, Thai
_WORD = re.compile(f"[{_UNSPACED}]|[^\\s{_UNSPACED}]+")


@dataclass(frozen=True)
class Span:
    start: int
    end: int


def words(text: str) -> int:
    """The size measure: whitespace-separated words, each character of an unspaced script one word."""
    return len(_WORD.findall(text))


def split_passages(text: str, max_words: int = MAX_WORDS, min_words: int = MIN_WORDS) -> list[Span]:
    """The passages of `text` as character spans, in order (module doc)."""
    spans: list[Span] = []
    pending: int | None = None  # start of a short block waiting to join the next one
    for block in _BLOCK.finditer(text):
        start, end = block.start() if pending is None else pending, block.end()
        if words(text[start:end]) < min_words:
            pending = start
            continue
        pending = None
        spans += _pieces(text, start, end, max_words)
    if pending is not None:
        last = spans.pop() if spans and words(text[spans[-1].start : len(text.rstrip())]) <= max_words else None
        spans += _pieces(text, last.start if last else pending, len(text.rstrip()), max_words)
    return spans


def _pieces(text: str, start: int, end: int, max_words: int) -> list[Span]:
    """One span for a block that fits; else sentence-packed pieces, each starting with the last sentence
    of the one before."""
    if words(text[start:end]) <= max_words:
        return [Span(start, end)]
    units = [u for s in sentences(text, start, end) for u in _fit(text, s, max_words)]
    pieces: list[Span] = []
    first = 0
    while first < len(units):
        last = first
        while last + 1 < len(units) and words(text[units[first].start : units[last + 1].end]) <= max_words:
            last += 1
        pieces.append(Span(units[first].start, units[last].end))
        if last + 1 >= len(units):
            break
        first = last if last > first else last + 1  # the last sentence again, unless it filled the piece alone
    return pieces


def sentences(text: str, start: int, end: int) -> list[Span]:
    """The sentences of `text[start:end]` (cut after . ! ? and their CJK forms), without the space between."""
    spans, at = [], start
    for cut in _SENTENCE_END.finditer(text, start, end):
        if cut.start() > at:
            spans.append(Span(at, cut.start()))
        at = cut.end()
    if at < end:
        spans.append(Span(at, end))
    return spans


def _fit(text: str, sentence: Span, max_words: int) -> list[Span]:
    """A sentence longer than `max_words`, cut between words into pieces of at most that (overlapping by a
    fifth); others as they are."""
    found = list(_WORD.finditer(text, sentence.start, sentence.end))
    if len(found) <= max_words:
        return [sentence]
    step = max(1, max_words - max_words // 5)
    return [
        Span(found[i].start(), found[min(i + max_words, len(found)) - 1].end())
        for i in range(0, len(found) - max_words // 5, step)
    ]

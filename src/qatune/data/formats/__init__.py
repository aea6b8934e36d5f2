"""Bring your own labelled data: what annotation tools and spreadsheets export, converted to SQuAD.

`convert(path)` reads Label Studio's JSON export of a QA project, doccano's span JSONL, a CSV (or JSON
Lines) of context, question and answer text, or SQuAD JSON with broken offsets; every answer is placed
in its context by one rule (`locate`), and what cannot be used is skipped and counted by reason, never
guessed. The result is a validated `QADataset` (SQuAD v2 when some questions are unanswerable) and a
`Summary` of what was found.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from qatune.data.formats.locate import OUTCOMES, locate
from qatune.data.formats.readers import (
    Item,
    Skip,
    Source,
    doccano_rows,
    hf_rows,
    jsonl_text_rows,
    label_studio_tasks,
    squad_questions,
    table_rows,
)
from qatune.data.squad import Example, QADataset, check_text, max_context_chars, read_text
from qatune.errors import ConfigError, DataError
from qatune.io import parse_json

FORMATS = ("auto", "labelstudio", "doccano", "csv", "jsonl", "squad")


@dataclass
class Summary:
    """What a conversion found: questions written, and each answer's outcome and each skip's reason."""

    source: str
    format: str
    questions: int = 0
    contexts: int = 0
    unanswerable: int = 0
    answers: Counter[str] = field(default_factory=Counter)  # by `locate` outcome
    skipped: Counter[str] = field(default_factory=Counter)  # by reason
    examples: dict[str, str] = field(default_factory=dict)  # reason -> the first place it happened
    moved: int = 0  # answers whose offset disagreed with their text, placed where the text is (`locate`)
    first_moved: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "source": self.source,
            "format": self.format,
            "questions": self.questions,
            "contexts": self.contexts,
            "unanswerable": self.unanswerable,
            "answers": {k: self.answers[k] for k in OUTCOMES},
            "skipped": dict(self.skipped),
            "first_skipped": self.examples,
            "moved": self.moved,
            "first_moved": self.first_moved,
        }


def convert(path: str | Path, format: str = "auto") -> tuple[QADataset, Summary]:
    """The questions of `path` as a data set, and the summary; a DataError when none is usable."""
    path = Path(path)
    if format not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {format!r}")
    text = read_text(path)
    found, items = _items(path, text, format)
    summary = Summary(str(path), found)
    examples: list[Example] = []
    seen: set[tuple[str, str]] = set()
    ids: set[str] = set()
    for n, item in enumerate(items):
        example = _example(item, summary, (seen, ids), n)
        if example is not None:
            examples.append(example)
    if not examples:
        first = next(iter(summary.examples.items()), None)
        why = f"; first: {first[1]}: {first[0]}" if first else ""
        raise DataError(f"{path}: no usable question ({_counts(summary.skipped) or 'the file holds none'}){why}")
    summary.questions, summary.contexts = len(examples), len({e.context for e in examples})
    summary.unanswerable = sum(not e.answers for e in examples)
    return QADataset(examples, str(path), sum(summary.skipped.values())), summary


def _items(path: Path, text: str, format: str) -> tuple[str, Iterable[Item]]:
    """The format (detected from the name and the content for `auto`) and the file's items."""
    name = path.name.lower().removesuffix(".gz")
    if format == "auto":
        format = "csv" if name.endswith((".csv", ".tsv", ".txt")) else "jsonl" if name.endswith(".jsonl") else "json"
    if format == "csv":
        return "csv", table_rows(text, str(path))
    if format in ("jsonl", "doccano"):
        records = [(f"{path}: line {n}", parse_json(line, f"{path}: line {n}", DataError))
                   for n, line in enumerate(text.splitlines(), 1) if line.strip()]  # fmt: skip
        first = records[0][1] if records else {}
        if format == "doccano" or (isinstance(first, dict) and ("label" in first or "labels" in first)):
            return "doccano", doccano_rows(records)
        if isinstance(first, dict) and "answers" in first:
            return "jsonl", hf_rows(records)
        return "jsonl", jsonl_text_rows(records)
    doc = parse_json(text, str(path), DataError)
    if format == "squad" or (format == "json" and isinstance(doc, dict) and "data" in doc):
        return "squad", squad_questions(doc, str(path))
    if isinstance(doc, list) and (format == "labelstudio" or any(isinstance(t, dict) and "data" in t for t in doc)):
        return "labelstudio", label_studio_tasks(doc, str(path))
    raise DataError(
        f'{path}: neither SQuAD JSON ({{"data": [...]}}) nor a Label Studio export (a list of tasks with '
        f'"data"); give --format, or a .csv / .jsonl file'
    )


def _example(item: Item, summary: Summary, taken: tuple[set[tuple[str, str]], set[str]], n: int) -> Example | None:
    """The item as an example with its answers located, or None (the reason counted)."""
    if isinstance(item, Skip):
        return _skip(summary, item.where, item.reason)
    source: Source = item
    seen, ids = taken
    if not source.context.strip() or not source.question.strip():
        return _skip(summary, source.where, "empty context" if not source.context.strip() else "empty question")
    try:
        for text, what in ((source.context, "a context"), (source.question, "a question")):
            check_text(text, what, "", max_context_chars())  # no place: the reason is counted, not the row
    except DataError as exc:
        return _skip(summary, source.where, str(exc).removeprefix(": ").split(";")[0])
    if (source.context, source.question.strip()) in seen:
        return _skip(summary, source.where, "duplicate question")
    if source.id is not None and source.id in ids:
        return _skip(summary, source.where, "duplicate id")
    seen.add((source.context, source.question.strip()))
    qid = source.id or f"q{n}"
    while qid in ids:  # a generated id that a row of the file already holds
        qid += "-"
    ids.add(qid)
    texts, starts = [], []
    for text, hint in source.answers:
        place = locate(source.context, text, source.question, hint)
        summary.answers[place.outcome] += 1
        if hint is not None and place.start is not None and place.start != hint:
            summary.moved += 1
            summary.first_moved = summary.first_moved or source.where
        if place.text is not None and place.start is not None:
            texts.append(place.text)
            starts.append(place.start)
    if source.answers and not texts:
        return _skip(summary, source.where, "answer not located")
    if source.unanswerable and source.answers:
        return _skip(summary, source.where, "unanswerable but with answers")
    spans = (locate(source.context, text, source.question, hint) for text, hint in source.plausible)
    plausible = tuple((p.text, p.start) for p in spans if p.text is not None and p.start is not None)
    return Example(qid, source.question.strip(), source.context, tuple(texts), tuple(starts), source.title, plausible)


def _skip(summary: Summary, where: str, reason: str) -> Example | None:
    """Count a skipped question under its reason (None: no example)."""
    summary.skipped[reason] += 1
    summary.examples.setdefault(reason, where)
    return None


def _counts(counts: Counter[str]) -> str:
    return ", ".join(f"{n} {reason}" for reason, n in counts.most_common())

"""Readers of what annotation tools and spreadsheets export, each yielding `Source` questions.

Every reader names the file, row or task and field of what it cannot use; a question it cannot use is
skipped with its reason (`Skip`), and only a file with nothing usable is an error (`convert`).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from qatune.errors import DataError

COLUMNS = ("context", "question", "answer")  # a spreadsheet's required columns (also: id, title, answer_start)


@dataclass(frozen=True)
class Source:
    """One question as a source file holds it, before its answers are located."""

    where: str  # file and row / task, for reports
    context: str
    question: str
    answers: tuple[tuple[str, int | None], ...]  # text and the offset the file gave (None: text only)
    unanswerable: bool = False
    id: str | None = None
    title: str = ""
    plausible: tuple[tuple[str, int | None], ...] = ()  # a v2 file's plausible answers (offsets are hints too)


@dataclass(frozen=True)
class Skip:
    """A question that cannot be used, and why (one of the summary's reasons)."""

    where: str
    reason: str


Item = Source | Skip


END = "\ufdd0qatune: end of file\ufdd0"  # a noncharacter: no text holds it


def table_rows(text: str, source: str) -> Iterator[Item]:
    """CSV (the delimiter sniffed among , ; tab |) with context, question, answer columns: an empty
    answer is an unanswerable question; `answer_start`, `id` and `title` columns are used when present."""
    try:
        dialect: Any = csv.Sniffer().sniff(text[:20000], delimiters=",;\t|")
        dialect.doublequote = True  # the sniffer guesses False when its sample has no "" (quote in a quoted cell)
    except csv.Error:
        dialect = csv.excel
    # the END line tells where the file ends: inside a quote (never closed) or not
    newline = "" if text.endswith(("\n", "\r")) else "\n"  # END is the file's next line, never a blank one more
    reader = csv.reader(io.StringIO(f"{text}{newline}{END}", newline=""), dialect=dialect)
    first = next(reader, [])
    _check_closed(first, reader.line_num - 1, f"{source}: line 1", dialect.quotechar)
    header = [h.strip().lower() for h in first if h != END]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        found = ", ".join(map(repr, header)) or "none"
        raise DataError(
            f"{source}: no column {', '.join(map(repr, missing))} (columns found: {found}); a spreadsheet needs "
            f"the columns {', '.join(COLUMNS)} in its first row"
        )
    twice = sorted({h for h in header if header.count(h) > 1})
    if twice:
        raise DataError(f"{source}: column {', '.join(map(repr, twice))} given twice; keep one of each")
    start = reader.line_num + 1  # a row is named by the line it starts on: quoted newlines make it span several
    try:
        for cells in reader:
            where = f"{source}: line {start}"
            if cells == [END]:
                break
            _check_closed(cells, reader.line_num - start, where, dialect.quotechar)
            start = reader.line_num + 1
            if not cells:
                continue  # a blank line
            if len(cells) != len(header):
                reason = "more cells than columns" if len(cells) > len(header) else "fewer cells than columns"
                spans = any("\n" in c or "\r" in c for c in cells)  # a quote closed by the next quote of the file
                yield Skip(where, f"{reason}, over several lines (a quote never closed?)" if spans else reason)
                continue
            yield _text_row(dict(zip(header, cells)), where)
    except csv.Error as exc:  # a cell over the csv module's 131,072 characters
        raise DataError(
            f"{source}: line {start}: {exc}: a cell that long, or a quote opened there that is never closed; close "
            f"the quote, or split the text, or give JSON Lines"
        ) from None


def _check_closed(cells: list[str], spans: int, where: str, quote: str | None) -> None:
    """Refuse a quote that is never closed: the csv module reads every line after it as one cell, which then
    ends with the `END` line added after the file (outside any quote, it is a row of its own)."""
    if cells and cells[-1].endswith(END):
        more = f" ({spans - 1} more line{'s' if spans > 2 else ''})" if spans > 1 else ""
        raise DataError(
            f"{where}: a quote ({quote}) opened on this line is never closed, so the rest of the file{more} was "
            f"read as one cell; close it, or double a quote inside a quoted cell"
        )


def jsonl_text_rows(records: list[tuple[str, Any]]) -> Iterator[Item]:
    """JSON Lines with the spreadsheet's fields (context, question, answer as text)."""
    for where, row in records:
        if not isinstance(row, dict) or not all(isinstance(row.get(c), str) for c in COLUMNS):
            yield Skip(where, "not an object with text fields context, question, answer")
            continue
        yield _text_row({k: v if isinstance(v, str) else str(v) for k, v in row.items() if v is not None}, where)


def _text_row(row: dict[str, str], where: str) -> Item:
    hint = row.get("answer_start", "").strip()
    if hint and not (hint.isascii() and hint.isdigit() and len(hint) < 12):
        return Skip(where, "answer_start not a whole number")
    answer = row.get("answer", "")
    answers = ((answer, int(hint) if hint else None),) if answer.strip() else ()
    return Source(
        where, row["context"], row["question"], answers, not answers, row.get("id") or None, row.get("title", "")
    )


def doccano_rows(records: list[tuple[str, Any]]) -> Iterator[Item]:
    """doccano's span-labelling JSONL: `text`, `label` (or `labels`) as [[start, end, tag], ...], and the
    question as a `question` field; a row with no span is unanswerable."""
    for where, row in records:
        spans = row.get("label", row.get("labels")) if isinstance(row, dict) else None
        if not isinstance(row, dict) or not isinstance(row.get("text"), str) or not isinstance(spans, list):
            yield Skip(where, "not a doccano row (text and label: [[start, end, tag], ...])")
            continue
        if not isinstance(row.get("question"), str):
            yield Skip(where, "no question field")
            continue
        good = [s for s in spans if isinstance(s, list) and len(s) >= 2 and all(type(x) is int for x in s[:2])]
        if len(good) != len(spans) or any(not 0 <= s[0] < s[1] <= len(row["text"]) for s in good):
            yield Skip(where, "a span is not [start, end, tag] within the text")
            continue
        answers = tuple((row["text"][s[0] : s[1]], s[0]) for s in good)
        yield Source(where, row["text"], row["question"], answers, not answers, _id(row.get("id")))


def label_studio_tasks(tasks: list[Any], source: str) -> Iterator[Item]:
    """Label Studio's JSON export of a QA project: each task's `data` holds the text (`text`, `context`
    or `paragraph`) and maybe the question; its first finished annotation the answer spans (value
    start, end, text) and maybe the question (a text area). A finished annotation without a span is an
    unanswerable question; a task without one is unlabelled."""
    for n, task in enumerate(tasks):
        where = f"{source}: task {task.get('id', n) if isinstance(task, dict) else n}"
        data = task.get("data") if isinstance(task, dict) else None
        if not isinstance(data, dict):
            yield Skip(where, "not a Label Studio task (no data)")
            continue
        context = next((data[k] for k in ("text", "context", "paragraph") if isinstance(data.get(k), str)), None)
        done = [a for a in _list(task, "annotations") if isinstance(a, dict) and not a.get("was_cancelled")]
        if context is None:
            yield Skip(where, "no text in data (text, context or paragraph)")
        elif not done:
            yield Skip(where, "unlabelled")
        else:
            yield _annotation(where, context, data, done[0], _id(task.get("id")))


def _annotation(where: str, context: str, data: dict[str, Any], annotation: dict[str, Any], qid: str | None) -> Item:
    results = [r for r in _list(annotation, "result") if isinstance(r, dict) and isinstance(r.get("value"), dict)]
    spans = [r["value"] for r in results if "start" in r["value"] and "end" in r["value"]]
    typed = [r["value"].get("text") for r in results if r.get("type") == "textarea"]
    question = data.get("question") if isinstance(data.get("question"), str) else None
    if question is None and typed and isinstance(typed[0], list) and typed[0] and isinstance(typed[0][0], str):
        question = typed[0][0]
    if question is None:
        return Skip(where, "no question (data.question or a text area)")
    answers = []
    units = _utf16_index(context)
    for span in spans:
        start, end, text = span.get("start"), span.get("end"), span.get("text")
        if type(start) is not int or type(end) is not int or not 0 <= start < end <= len(units) - 1:
            return Skip(where, "a span's start/end is not within the text")
        text = text if isinstance(text, str) and text else None
        if not (text is not None and context[start:end] == text):
            # Label Studio's editor counts UTF-16 code units (an emoji is two); pre-annotations made in Python
            # count characters: whichever reading the span's text confirms, else the editor's
            start, end = units[start], units[end]
        answers.append((text or context[start:end], start))
    return Source(where, context, question, tuple(answers), not answers, qid)


def _utf16_index(text: str) -> list[int]:
    """For each UTF-16 code unit offset into `text` (0 .. its UTF-16 length), the character offset.

    Label Studio's offsets come from JavaScript strings, where a character outside the Basic Multilingual
    Plane (an emoji, many CJK extension characters) counts twice; an offset inside such a pair maps to the
    character after it.
    """
    index = []
    for i, char in enumerate(text):
        index.append(i)
        if ord(char) > 0xFFFF:
            index.append(i + 1)
    index.append(len(text))
    return index


def hf_rows(records: list[tuple[str, Any]]) -> Iterator[Item]:
    """JSON Lines in the Hugging Face SQuAD layout (`answers: {text: [...], answer_start: [...]}`)."""
    for where, row in records:
        answers = row.get("answers") if isinstance(row, dict) else None
        texts = answers.get("text") if isinstance(answers, dict) else None
        starts = answers.get("answer_start") if isinstance(answers, dict) else None
        if not isinstance(row, dict) or not isinstance(texts, list) or not isinstance(starts, list):
            yield Skip(where, "not a row of context, question, answers {text, answer_start}")
        elif not all(isinstance(row.get(k), str) for k in ("context", "question")) or not all(
            isinstance(t, str) and t for t in texts
        ):
            yield Skip(where, "context, question or an answer text is not text")
        else:
            hints = [s if type(s) is int else None for s in starts] + [None] * len(texts)
            found = tuple(zip(texts, hints))
            yield Source(where, row["context"], row["question"], found, not found, _id(row.get("id")), _title(row))


def squad_questions(doc: Any, source: str) -> Iterator[Item]:
    """SQuAD JSON whose offsets may be broken: `answer_end` instead of `answer_start`, or contexts
    stripped after the offsets were taken; each answer's offset is only a hint (`locate`)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        raise DataError(f'{source}: expected a SQuAD object {{"data": [...]}}')
    for a, article in enumerate(doc["data"]):
        title = _title(article)
        for p, para in enumerate(_list(article, "paragraphs")):
            context = para.get("context") if isinstance(para, dict) else None
            for q, qa in enumerate(_list(para, "qas")):
                where = f"{source}: article {a}, paragraph {p}, question {q}"
                if not isinstance(context, str) or not isinstance(qa, dict) or not isinstance(qa.get("question"), str):
                    yield Skip(where, "not a SQuAD question (context, question)")
                    continue
                given = [_squad_answer(x) for x in _list(qa, "answers") if isinstance(x, dict)]
                answers = tuple((t, hint) for t, hint in given if t is not None)
                impossible = qa.get("is_impossible", False)
                if len(answers) != len(given) or not isinstance(impossible, bool):
                    yield Skip(
                        where,
                        "an answer without text" if isinstance(impossible, bool) else "is_impossible not true/false",
                    )
                elif not answers and not impossible:
                    yield Skip(where, 'no answers (mark it "is_impossible": true if it has none)')
                else:
                    hints = [_squad_answer(x) for x in _list(qa, "plausible_answers") if isinstance(x, dict)]
                    plausible = tuple((t, hint) for t, hint in hints if t is not None) if impossible else ()
                    qid = _id(qa.get("id"))
                    yield Source(where, context, qa["question"], answers, impossible, qid, title, plausible)


def _squad_answer(answer: dict[str, Any]) -> tuple[str | None, int | None]:
    text = answer.get("text") if isinstance(answer.get("text"), str) and answer.get("text") else None
    start, end = answer.get("answer_start"), answer.get("answer_end")
    if type(start) is int:
        return text, start if start >= 0 else None
    return text, end - len(text) if type(end) is int and text and end >= len(text) else None


def _list(container: Any, key: str) -> list[Any]:
    """`container[key]` where it is a list, else nothing: a file may hold any value anywhere."""
    found = container.get(key) if isinstance(container, dict) else None
    return found if isinstance(found, list) else []


def _title(container: Any) -> str:
    title = container.get("title") if isinstance(container, dict) else None
    return title if isinstance(title, str) else ""


def _id(value: Any) -> str | None:
    return str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else None

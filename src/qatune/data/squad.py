"""Load and validate extractive-QA data: SQuAD v1.1/v2.0 JSON, JSON Lines (HF layout), HF datasets.

Every loader turns its input into rows in the Hugging Face `squad` layout
(``{id, title, context, question, answers: {text: [...], answer_start: [...]}}``) and one
validator checks them all, so each format gets the same checks and the same error messages.
"""

from __future__ import annotations

import gzip
import logging
import os
import random
import zlib
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qatune.errors import DataError, QatuneError
from qatune.io import JsonObject, parse_json

logger = logging.getLogger(__name__)

Row = JsonObject  # a question as the input file holds it, before `validate_rows` checks it

# The size guard: a context (or question) longer than this is refused, since its windows would
# take minutes to hours and gigabytes. SQuAD's longest context has 3,706 characters.
MAX_CHARS_ENV = "QATUNE_MAX_CONTEXT_CHARS"
DEFAULT_MAX_CHARS = 100_000


def env_count(name: str, default: int, unit: str, error: type[QatuneError] = DataError) -> int:
    """A positive count from the environment variable `name` (unset or blank: `default`); anything else
    is one `error` naming it."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise error(f"${name}: expected a positive number of {unit}, got {raw!r}")
    return int(raw)


def max_context_chars() -> int:
    """The size guard in force: $QATUNE_MAX_CONTEXT_CHARS, else 100,000 characters."""
    return env_count(MAX_CHARS_ENV, DEFAULT_MAX_CHARS, "characters")


def check_text(text: str, what: str, where: str, limit: int) -> None:
    """A context or question the tokenizer can take: at most `limit` characters, and valid Unicode (a lone
    surrogate, from a JSON escape like \\ud800 or undecodable bytes on stdin, makes the tokenizer fail)."""
    if len(text) > limit:
        raise DataError(
            f"{where}: {what} of {len(text):,} characters is over the limit of {limit:,}; split it, or "
            f"raise the limit with ${MAX_CHARS_ENV} (or --max-context-chars)"
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise DataError(
            f"{where}: {what} is not valid text at character {exc.start} (a lone surrogate or undecodable byte); "
            f"give it as UTF-8"
        ) from None


@dataclass(frozen=True)
class Example:
    """One question about one context, with its gold answers (empty for a v2 unanswerable one)."""

    id: str
    question: str
    context: str
    answers: tuple[str, ...] = ()
    answer_starts: tuple[int, ...] = ()
    title: str = ""
    plausible: tuple[tuple[str, int], ...] = ()  # an unanswerable question's plausible answers (text, start)

    @property
    def is_impossible(self) -> bool:
        return not self.answers


@dataclass
class QADataset:
    """A validated list of examples plus where they came from."""

    examples: list[Example]
    source: str
    skipped: int = 0
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.examples)

    def __iter__(self) -> Iterator[Example]:
        return iter(self.examples)

    @property
    def has_impossible(self) -> bool:
        """True for SQuAD v2-style data (some questions have no answer)."""
        return any(e.is_impossible for e in self.examples)

    def select(self, limit: int | None = None, sample: int | None = None, seed: int = 0) -> QADataset:
        """A seeded random ``sample`` of the examples (file order kept), then the first ``limit`` of those."""
        examples = self.examples
        if sample is not None and sample < len(examples):
            keep = sorted(random.Random(seed).sample(range(len(examples)), sample))
            examples = [examples[i] for i in keep]
        if limit is not None:
            examples = examples[:limit]
        if not examples:
            raise DataError(f"{self.source}: the selection is empty (limit={limit}, sample={sample})")
        return QADataset(examples, self.source, self.skipped, list(self.notes))

    def held_out(self, used: QADataset, size: int, seed: int = 0) -> QADataset | None:
        """A seeded sample of up to `size` of this set's questions that are not in `used` (None: none left)."""
        taken = {e.id for e in used.examples}
        rest = QADataset([e for e in self.examples if e.id not in taken], self.source, self.skipped)
        return rest.select(sample=size, seed=seed) if rest.examples else None


def read_text(path: Path) -> str:
    """Read a (possibly gzip-compressed) UTF-8 file, with errors that name the file."""
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder; give a data file (.json, .json.gz or .jsonl)") from None
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: cannot read it ({exc})") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not valid UTF-8 at byte {exc.start}; re-save the file as UTF-8") from None


def _expect(container: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(container, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(container).__name__}")
    if key not in container:
        raise DataError(f"{where}: missing field '{key}'")
    value = container[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise DataError(f"{where}: field '{key}' must be {names}, got {type(value).__name__}")
    return value


def squad_rows(doc: Any, source: str) -> Iterator[tuple[str, Row]]:
    """Flatten a nested SQuAD document into (location, row) pairs."""
    if not isinstance(doc, dict) or "data" not in doc:
        raise DataError(f'{source}: expected a SQuAD object {{"data": [...]}}; for one row per line use .jsonl')
    for a, article in enumerate(_expect(doc, "data", list, source)):
        where_a = f"{source}: article {a}"
        title = article.get("title", "") if isinstance(article, dict) else ""
        where_a += f" ({title!r})" if title else ""
        for p, para in enumerate(_expect(article, "paragraphs", list, where_a)):
            where_p = f"{where_a}, paragraph {p}"
            context = _expect(para, "context", str, where_p)
            for q, qa in enumerate(_expect(para, "qas", list, where_p)):
                qid = qa.get("id", f"#{q}") if isinstance(qa, dict) else f"#{q}"
                where = f"{where_p}, question id {qid!r}"
                answers = _expect(qa, "answers", list, where)
                texts = [_expect(ans, "text", str, f"{where}, answer {i}") for i, ans in enumerate(answers)]
                starts = [_expect(ans, "answer_start", int, f"{where}, answer {i}") for i, ans in enumerate(answers)]
                impossible = qa.get("is_impossible", False)
                if not isinstance(impossible, bool):
                    raise DataError(f"{where}: field 'is_impossible' must be true or false")
                if not answers and not impossible:
                    raise DataError(f'{where}: no answers; mark it "is_impossible": true (SQuAD v2) or add one')
                if answers and impossible:
                    raise DataError(
                        f'{where}: "is_impossible": true but it has answers; SQuAD v2 keeps those in '
                        f'"plausible_answers" with "answers": []'
                    )
                yield (
                    where,
                    {
                        "id": qa.get("id"),
                        "title": title,
                        "context": context,
                        "question": qa.get("question"),
                        "answers": {"text": texts, "answer_start": starts},
                        "plausible": plausible_answers(qa, context),
                    },
                )


def plausible_answers(qa: JsonObject, context: str) -> list[tuple[str, int]]:
    """A v2 question's `plausible_answers` (kept for analysis only): those whose text is at their offset."""
    found = qa.get("plausible_answers")
    return [
        (a["text"], a["answer_start"])
        for a in (found if isinstance(found, list) else ())
        if isinstance(a, dict)
        and isinstance(a.get("text"), str)
        and type(a.get("answer_start")) is int
        and a["text"]
        and context[a["answer_start"] : a["answer_start"] + len(a["text"])] == a["text"]
    ]


def jsonl_rows(text: str, source: str) -> Iterator[tuple[str, Row]]:
    """Parse JSON Lines in the HF `squad` layout into (location, row) pairs."""
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        row = parse_json(line, f"{source}: line {n}", DataError)
        where = f"{source}: line {n}"
        if isinstance(row, dict) and "id" in row:
            where += f", question id {row['id']!r}"
        answers = _expect(row, "answers", dict, where)
        texts = _expect(answers, "text", list, f"{where}, answers")
        starts = _expect(answers, "answer_start", list, f"{where}, answers")
        if len(texts) != len(starts):
            raise DataError(f"{where}: answers.text has {len(texts)} items but answers.answer_start has {len(starts)}")
        yield where, row


def validate_rows(rows: Iterable[tuple[str, Row]], source: str, skip_invalid: bool = False) -> QADataset:
    """Check every row and build the data set; bad answer offsets are counted, then reported or skipped."""
    examples: list[Example] = []
    seen: dict[str, str] = {}
    limit = max_context_chars()
    bad_offsets: list[str] = []
    for where, row in rows:
        qid = _expect(row, "id", (str, int), where)
        qid = str(qid)
        question = _expect(row, "question", str, where)
        context = _expect(row, "context", str, where)
        if not context.strip():
            raise DataError(f"{where}: empty context")
        if not question.strip():
            raise DataError(f"{where}: empty question")
        check_text(context, "a context", where, limit)
        check_text(question, "a question", where, limit)
        if qid in seen:
            raise DataError(f"{where}: duplicate question id {qid!r} (first seen at {seen[qid]})")
        seen[qid] = where
        texts = tuple(row["answers"]["text"])
        starts = tuple(row["answers"]["answer_start"])
        for text, start in zip(texts, starts):
            if not isinstance(text, str) or not isinstance(start, int) or isinstance(start, bool):
                raise DataError(f"{where}: answers must be strings with integer answer_start values")
            if not text or start < 0 or context[start : start + len(text)] != text:
                bad_offsets.append(f"{where}: answer {text!r} is not at answer_start {start}")
                break
        else:
            title = str(row.get("title") or "")
            check_text(title, "a title", where, limit)  # read by `--use-title` models: valid text
            plausible = tuple(row.get("plausible") or ()) if not texts else ()
            examples.append(Example(qid, question, context, texts, starts, title, plausible))
    if bad_offsets and not skip_invalid:
        raise DataError(
            f"{len(bad_offsets)} question(s) have an answer_start that does not match the answer text; "
            f"first: {bad_offsets[0]}. Fix them, or skip them with --skip-invalid"
        )
    if not examples:
        raise DataError(f"{source}: the data set has no questions")
    dataset = QADataset(examples, source, skipped=len(bad_offsets))
    if bad_offsets:
        dataset.notes.append(f"skipped {len(bad_offsets)} question(s) whose answer_start does not match the text")
        logger.warning("%s: %s", source, dataset.notes[-1])
    return dataset


def load_file(path: str | Path, skip_invalid: bool = False) -> QADataset:
    """Load a SQuAD JSON (.json/.json.gz) or JSON Lines (.jsonl/.jsonl.gz) file."""
    path = Path(path)
    text = read_text(path)
    if path.name.removesuffix(".gz").endswith(".jsonl"):
        return validate_rows(jsonl_rows(text, str(path)), str(path), skip_invalid)
    doc = parse_json(text, str(path), DataError)
    return validate_rows(squad_rows(doc, str(path)), str(path), skip_invalid)


def hf_rows(name: str, split: str, rows: Iterable[Row]) -> Iterator[tuple[str, Row]]:
    """Tag rows of a Hugging Face dataset with their position, for error messages."""
    for i, row in enumerate(rows):
        yield f"{name}[{split}] row {i}, question id {row.get('id')!r}", row


MAX_TITLE_CHARS = 1000  # a title is a name, not a text: read cut to a few tokens (`data.windows.TITLE_TOKENS`)


def question_examples(
    pairs: Sequence[tuple[str, str]], max_chars: int | None = None, titles: Sequence[str] | None = None
) -> list[Example]:
    """(context, question) pairs asked by a user as Examples, with the title of each context's document if
    given ("" for none); an empty or oversized one is a DataError naming it (`max_chars` defaults to the
    size guard, `max_context_chars()`)."""
    limit = max_chars or max_context_chars()
    titles = [""] * len(pairs) if titles is None else titles
    if len(titles) != len(pairs):
        raise DataError(f"{len(titles)} titles for {len(pairs)} questions: give one title a question")
    for i, ((context, question), title) in enumerate(zip(pairs, titles)):
        for name, value in (("context", context), ("question", question), ("title", title)):
            if not isinstance(value, str):
                raise DataError(f"question {i}: the {name} must be text, got {type(value).__name__}")
            if not value.strip() and name != "title":
                raise DataError(f"question {i}: empty {name}")
        check_text(context, "the context", f"question {i}", limit)
        check_text(question, "the question", f"question {i}", limit)
        if len(title) > MAX_TITLE_CHARS:
            raise DataError(
                f"question {i}: the title of {len(title):,} characters is over the limit of {MAX_TITLE_CHARS:,}; "
                "give the document's name, not its text"
            )
        check_text(title, "the title", f"question {i}", limit)
    return [Example(str(i), q, c, title=t) for i, ((c, q), t) in enumerate(zip(pairs, titles))]


def to_squad(dataset: QADataset) -> JsonObject:
    """The data set as a SQuAD document (articles by title, paragraphs by context): v2.0, with
    `is_impossible` and any `plausible_answers`, when some questions are unanswerable; else v1.1."""
    v2 = dataset.has_impossible
    articles: dict[str, dict[str, list[JsonObject]]] = defaultdict(lambda: defaultdict(list))
    for e in dataset.examples:
        qa: JsonObject = {"id": e.id, "question": e.question}
        qa["answers"] = [{"text": t, "answer_start": s} for t, s in zip(e.answers, e.answer_starts)]
        if v2:
            qa["is_impossible"] = not e.answers
        if e.plausible:
            qa["plausible_answers"] = [{"text": t, "answer_start": s} for t, s in e.plausible]
        articles[e.title][e.context].append(qa)
    data = [
        {"title": title, "paragraphs": [{"context": c, "qas": qas} for c, qas in paragraphs.items()]}
        for title, paragraphs in articles.items()
    ]
    return {"version": "v2.0" if v2 else "1.1", "data": data}

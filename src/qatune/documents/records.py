"""What every document index is made of and how it ranks, whatever stores it: the records (a passage,
an indexed file, a retrieved hit), the `PassageIndex` seam the reader and the server use, and the
retrieval that both backends share (each side's candidates, fused).

Fusion puts each side's scores on one scale (standardised over its candidates: BM25 scores and
cosines live on different scales) and ranks the union by their mean, a passage missing from one side
taking that side's lowest. Measured on the 20,963-paragraph open-SQuAD collection (bench/documents.py,
gold paragraph in the top 5, one dense vector a passage): BM25 86.6%, dense 78.4%, reciprocal rank
fusion 87.8% (k = 60) or 90.0% (k = 10), this 91.0%; with a dense vector a sentence (`documents.dense`)
dense alone 83.5%, this 92.0%; with each file's title (`documents.extract.title`) indexed with its
passages on the lexical side, BM25 87.8% and this 92.7% (on the dense side it moved nothing). A
single side's scores are standardised alike, so that a hit's score means the same whatever the mode
(the reader weighs it: `documents.reader`).

Formats: 2 embeds a passage by its sentences, 3 indexes a file's title with each of its passages. An
index of an older format is read as it is, and updated only when rebuilt whole (`older_format`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Protocol

import numpy as np

from qatune.errors import ConfigError
from qatune.io import JsonObject

FORMAT = 3  # of an index (folder or database); a newer one is refused, not misread (module doc)
OLDER = {1: "one vector a passage, not a sentence", 2: "passages indexed without their file's title"}
CANDIDATES = 100  # passages each side ranks before fusion
MODES = ("fused", "bm25", "dense")
RETRIEVAL_WEIGHT = 1.5  # how much the reader trusts the retrieval score (documents.reader's doc)

Side = tuple[np.ndarray, np.ndarray]  # one question's candidates on one side: passage ids, scores best first
Ranker = Callable[[Sequence[str], int], list[Side]]  # questions, k -> each question's side


@dataclass(frozen=True)
class Passage:
    """A passage: its file, the 1-based PDF page it starts on (None elsewhere), its character span in
    the file's extracted text, and that text."""

    file: str
    page: int | None
    start: int
    end: int
    text: str

    def to_dict(self) -> JsonObject:
        return asdict(self)

    @classmethod
    def from_dict(cls, saved: JsonObject) -> Passage:
        return cls(saved["file"], saved["page"], saved["start"], saved["end"], saved["text"])


@dataclass(frozen=True)
class FileEntry:
    """An indexed file: the SHA-256 and size of its bytes, its passages' first number and count, its
    pages (PDF) and title (`documents.extract.title`)."""

    sha256: str
    size: int
    first: int
    passages: int
    pages: int | None = None
    title: str = ""

    def to_dict(self) -> JsonObject:
        return asdict(self)


@dataclass(frozen=True)
class NewFile:
    """A file read for an index: its key (resolved path), record, passages, and their sentences' unit
    vectors (`documents.dense`), stacked in passage order, `units` of them for each passage."""

    key: str
    entry: FileEntry
    passages: list[Passage]
    vectors: np.ndarray
    units: np.ndarray

    def by_passage(self) -> list[np.ndarray]:
        """Each passage's sentence vectors."""
        return np.split(self.vectors, np.cumsum(self.units)[:-1]) if len(self.units) else []


@dataclass(frozen=True)
class Hit:
    """A retrieved passage: its id in the index, its retrieval score, itself and its file's title (read with
    it by a model trained with titles; "" where the index keeps none). The score is standardised over the
    question's candidates (`fuse`), whatever the mode, so the reader can weigh it on one scale."""

    id: int
    score: float
    passage: Passage
    title: str = ""


@dataclass(frozen=True)
class IndexInfo:
    """What an index holds, for the server's /v1/models and the CLI: where it is (a folder, or a database
    URL with its password masked), its files and passages."""

    location: str
    files: int
    passages: int


class IndexWriter(Protocol):
    """The write side of a backend, for `documents.build`: the files the index holds (`known`, by key;
    empty when it is new or rebuilt) and one update that takes `removed` out and puts `files` in,
    refused if a file counted `unchanged` is no longer in the index as it was `known`."""

    location: str
    known: dict[str, FileEntry]

    def write(self, files: Sequence[NewFile], removed: set[str], unchanged: set[str]) -> IndexInfo: ...


class PassageIndex(Protocol):
    """The seam between an index's storage and its readers (`ask --index`, `serve --index`): the
    embedded folder (`documents.index`) and PostgreSQL (`documents.postgres`)."""

    def search(self, questions: Sequence[str], k: int = 10, mode: str = "fused") -> list[list[Hit]]:
        """The `k` best passages for each question, best first, by `mode` (fused, bm25 or dense)."""
        ...

    def info(self) -> IndexInfo:
        """Where the index is and what it holds."""
        ...


def lexical_text(title: str, text: str) -> str:
    """What the lexical side indexes for a passage: its file's title, then its text. Questions name the
    topic ("When did Beyonce ...") that a document's later paragraphs only refer to ("she"). The
    PostgreSQL backend joins them alike in SQL (`documents.postgres`)."""
    return f"{title}\n{text}"


def older_format(location: str, version: int) -> ConfigError:
    """The error for updating an index of an older format, which would mix two ways of indexing."""
    return ConfigError(
        f"--output {location}: an index of format {version}, made by an older qatune ({OLDER.get(version, '')}); "
        f"--overwrite to index everything again"
    )


def rank(questions: Sequence[str], k: int, mode: str, lexical: Ranker, dense: Ranker) -> list[list[tuple[int, float]]]:
    """Each question's `k` best (passage id, score) by `mode`, from the two sides' rankers (module doc)."""
    if mode not in MODES:
        raise ConfigError(f"retrieval mode {mode!r}: expected one of {', '.join(MODES)}")
    wanted = max(k, CANDIDATES)  # one side alone is standardised over as many candidates as fusion sees
    words = lexical(questions, wanted) if mode != "dense" else None
    vectors = dense(questions, wanted) if mode != "bm25" else None
    sides = [side for side in (words, vectors) if side is not None]
    return [fuse(list(one), k) for one in zip(*sides)]


def fuse(sides: Sequence[Side], k: int) -> list[tuple[int, float]]:
    """The `k` best of the union of each side's (passages, scores), by the mean of their standardised
    scores (module doc), ties by passage id."""
    if not sides:
        return []
    ids = np.unique(np.concatenate([passages for passages, _ in sides]))
    total = np.zeros(len(ids))
    for passages, scores in sides:
        z = (scores - scores.mean()) / (scores.std() + 1e-9) if scores.size else scores
        column = np.full(len(ids), float(z.min()) if z.size else 0.0)  # missing from this side: its lowest
        column[np.searchsorted(ids, passages)] = z
        total += column
    mean = total / len(sides)
    order = np.lexsort((ids, -mean))[:k]
    return [(int(ids[i]), float(mean[i])) for i in order]

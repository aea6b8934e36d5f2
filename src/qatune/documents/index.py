"""A document index folder: its passages, the lexical (BM25) and dense (embedding) sides, and retrieval
that fuses them. Written by `documents.build`; read here.

Retrieval: each side ranks its CANDIDATES best passages; fusion puts each side's scores on one scale
(standardised over its candidates: BM25 scores and cosines live on different scales) and ranks the
union by their mean, a passage missing from one side taking that side's lowest. Measured on the
20,963-paragraph open-SQuAD collection (bench/documents.py, gold paragraph in the top 5): BM25 86.6%,
dense 78.4%, reciprocal rank fusion 87.8% (k = 60) or 90.0% (k = 10), this 91.0%.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qatune.documents.dense import EMBEDDER, Embedder, search
from qatune.documents.lexical import Lexical
from qatune.errors import ConfigError
from qatune.io import JsonObject, read_json, read_jsonl
from qatune.layout import INDEX_EMBEDDINGS, INDEX_LEXICAL, INDEX_META, INDEX_PASSAGES

FORMAT = 1  # of the index folder; an index of a newer format is refused, not misread
CANDIDATES = 100  # passages each side ranks before fusion
MODES = ("fused", "bm25", "dense")


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
    """An indexed file: the SHA-256 and size of its bytes, and its passages' first number and count."""

    sha256: str
    size: int
    first: int
    passages: int
    pages: int | None = None

    def to_dict(self) -> JsonObject:
        return asdict(self)


@dataclass(frozen=True)
class Hit:
    """A retrieved passage: its number in the index and its retrieval score (fused, BM25 or cosine)."""

    passage: int
    score: float


@dataclass
class DocumentIndex:
    """An opened index: `search` retrieves passages for questions."""

    folder: Path
    passages: list[Passage]
    files: dict[str, FileEntry]
    embeddings: np.ndarray
    lexical: Lexical
    settings: Any = None  # how its passages were cut ({"max_words": N}): an update reuses them only if equal
    _embedder: Embedder | None = field(default=None, repr=False)

    @classmethod
    def open(cls, folder: str | Path) -> DocumentIndex:
        """The index in `folder`; a folder that is not one, or of a newer format, is one ConfigError."""
        folder = Path(folder)
        meta = read_meta(folder)
        damaged = f"{folder}: a damaged qatune index"
        try:
            passages = [Passage.from_dict(p) for p in read_jsonl(folder / INDEX_PASSAGES)]
            embeddings = np.load(folder / INDEX_EMBEDDINGS, allow_pickle=False)
            files = {name: FileEntry(**entry) for name, entry in meta["files"].items()}
            lexical = Lexical.load(folder / INDEX_LEXICAL)
        except (OSError, ValueError, KeyError, TypeError, EOFError) as exc:
            raise ConfigError(f"{damaged} ({type(exc).__name__}: {exc}); run `qatune index` again") from None
        if len(passages) != meta.get("passages") or embeddings.ndim != 2 or embeddings.shape[0] != len(passages):
            raise ConfigError(f"{damaged} (its passages do not match); run `qatune index` again")
        return cls(folder, passages, files, embeddings, lexical, meta.get("settings"))

    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = Embedder()
        return self._embedder

    def search(self, questions: Sequence[str], k: int = 10, mode: str = "fused") -> list[list[Hit]]:
        """The `k` best passages for each question, best first, by `mode` (fused, bm25 or dense)."""
        if mode not in MODES:
            raise ConfigError(f"retrieval mode {mode!r}: expected one of {', '.join(MODES)}")
        if not self.passages:
            raise ConfigError(f"{self.folder}: the index holds no passages; index some documents first")
        wanted = k if mode != "fused" else max(k, CANDIDATES)
        lexical = self.lexical.search(questions, wanted) if mode != "dense" else None
        dense = search(self.embeddings, self.embedder()(questions), wanted) if mode != "bm25" else None
        if lexical is None or dense is None:
            ranked = lexical if lexical is not None else dense
            assert ranked is not None
            return [[Hit(int(i), float(s)) for i, s in zip(ids[:k], scores[:k])] for ids, scores in ranked]
        return [fuse([lex, den], k) for lex, den in zip(lexical, dense)]


def fuse(sides: Sequence[tuple[np.ndarray, np.ndarray]], k: int) -> list[Hit]:
    """The `k` best of the union of each side's (passages, scores), by the mean of their standardised
    scores (module doc)."""
    fused: dict[int, np.ndarray] = {}
    lowest = []
    for side, (passages, scores) in enumerate(sides):
        z = (scores - scores.mean()) / (scores.std() + 1e-9) if scores.size else scores
        lowest.append(float(z.min()) if z.size else 0.0)
        for passage, value in zip(passages.tolist(), z.tolist()):
            fused.setdefault(passage, np.full(len(sides), np.nan))[side] = value
    floor = np.asarray(lowest)
    mean = {p: float(np.where(np.isnan(v), floor, v).mean()) for p, v in fused.items()}
    best = sorted(mean.items(), key=lambda item: (-item[1], item[0]))[:k]
    return [Hit(passage, score) for passage, score in best]


def read_meta(folder: Path) -> Any:
    """The index's own record, checked: a qatune index of a format this qatune reads."""
    if not (folder / INDEX_META).is_file():
        what = "does not exist" if not folder.exists() else "is not a qatune index (no qatune-index.json)"
        raise ConfigError(f"--index {folder}: {what}; make one with `qatune index FILES... --output {folder}`")
    meta = read_json(folder / INDEX_META, "index file")
    version = meta.get("format") if isinstance(meta, dict) else None
    if not isinstance(version, int) or isinstance(version, bool):
        raise ConfigError(f"{folder / INDEX_META}: not a qatune index file (no format number)")
    if version > FORMAT:
        raise ConfigError(
            f"{folder}: an index of format {version}, made by a newer qatune (this one reads {FORMAT}); "
            f"upgrade qatune or index the files again"
        )
    if meta.get("embedder") != EMBEDDER or not isinstance(meta.get("files"), dict):
        raise ConfigError(f"{folder / INDEX_META}: not a qatune index file of this qatune (embedder, files)")
    return meta

"""The embedded document index: a folder holding its passages, the lexical (BM25) and dense
(embedding) sides, and its record (format, files and their hashes). Retrieval fuses the two sides as
every backend does (`documents.records`). `FolderWriter` writes a whole new folder beside the old one
and swaps it in (`paths.staged_folder`), so a server reading the old one never sees half of the new one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from qatune.data.lexical import Lexical
from qatune.documents.dense import EMBEDDER, Embedder, search
from qatune.documents.records import (
    FORMAT,
    FileEntry,
    Hit,
    IndexInfo,
    NewFile,
    Passage,
    Side,
    lexical_text,
    older_format,
    rank,
)
from qatune.errors import ConfigError
from qatune.io import atomic_write_json, read_json, read_jsonl, write_jsonl
from qatune.layout import INDEX_EMBEDDINGS, INDEX_LEXICAL, INDEX_META, INDEX_PASSAGES, INDEX_UNITS
from qatune.paths import remove_leftovers, staged_folder


@dataclass
class DocumentIndex:
    """An opened index: `search` retrieves passages for questions."""

    folder: Path
    passages: list[Passage]
    files: dict[str, FileEntry]
    embeddings: np.ndarray  # every passage's sentence vectors, stacked (float32 in memory)
    units: np.ndarray  # how many of them each passage has (one, in an index of format 1)
    lexical: Lexical
    settings: Any = None  # how its passages were cut ({"max_words": N}): an update reuses them only if equal
    format: int = FORMAT
    _embedder: Embedder | None = field(default=None, repr=False)

    @classmethod
    def open(cls, folder: str | Path) -> DocumentIndex:
        """The index in `folder`; a folder that is not one, or of a newer format, is one ConfigError."""
        folder = Path(folder)
        meta = read_meta(folder)
        damaged = f"{folder}: a damaged qatune index"
        try:
            passages = [Passage.from_dict(p) for p in read_jsonl(folder / INDEX_PASSAGES)]
            embeddings = np.load(folder / INDEX_EMBEDDINGS, allow_pickle=False).astype(np.float32)
            one_each = meta["format"] == 1  # format 1 held one vector a passage, no counts
            units = np.ones(len(passages), np.int32) if one_each else np.load(folder / INDEX_UNITS, allow_pickle=False)
            files = {name: FileEntry(**entry) for name, entry in meta["files"].items()}
            lexical = Lexical.load(folder / INDEX_LEXICAL)
        except (OSError, ValueError, KeyError, TypeError, EOFError) as exc:
            raise ConfigError(f"{damaged} ({type(exc).__name__}: {exc}); run `qatune index` again") from None
        matching = units.shape == (len(passages),) and (units >= 1).all() and embeddings.ndim == 2
        if len(passages) != meta.get("passages") or not matching or embeddings.shape[0] != units.sum():
            raise ConfigError(f"{damaged} (its passages do not match); run `qatune index` again")
        return cls(folder, passages, files, embeddings, units, lexical, meta.get("settings"), meta["format"])

    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = Embedder()
        return self._embedder

    def search(self, questions: Sequence[str], k: int = 10, mode: str = "fused") -> list[list[Hit]]:
        """The `k` best passages for each question, best first, by `mode` (fused, bm25 or dense)."""
        if not self.passages:
            raise ConfigError(f"{self.folder}: the index holds no passages; index some documents first")
        ranked = rank(questions, k, mode, self.lexical.search, self._dense)
        return [[self._hit(i, s) for i, s in found] for found in ranked]

    def _hit(self, i: int, score: float) -> Hit:
        """Passage `i` found with `score`, with its file's title."""
        passage = self.passages[i]
        entry = self.files.get(passage.file)
        return Hit(i, score, passage, entry.title if entry else "")

    def _dense(self, questions: Sequence[str], k: int) -> list[Side]:
        return search(self.embeddings, self.units, self.embedder()(questions), k)

    def info(self) -> IndexInfo:
        return IndexInfo(str(self.folder), len(self.files), len(self.passages))


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


class FolderWriter:
    """The write side of a folder index, for `documents.build` (module doc). An index whose passages were
    cut with other settings is refused (files indexed from other paths would be lost): --overwrite
    rebuilds it whole."""

    def __init__(self, out: Path, max_words: int, overwrite: bool) -> None:
        self.out, self.location, self.max_words = out, str(out), max_words
        self.old = DocumentIndex.open(out) if (out / INDEX_META).is_file() and not overwrite else None
        if self.old is not None and self.old.format < FORMAT:
            raise older_format(str(out), self.old.format)
        if self.old is not None and self.old.settings != {"max_words": max_words}:
            raise ConfigError(
                f"--output {out}: its passages were cut with --max-words {(self.old.settings or {}).get('max_words')}; "
                f"give the same, or --overwrite to index everything again with {max_words}"
            )
        self.known: dict[str, FileEntry] = dict(self.old.files) if self.old else {}

    def write(self, files: Sequence[NewFile], removed: set[str], unchanged: set[str]) -> IndexInfo:
        """The new folder: the old index's files not `removed` nor written again, then `files` (no other
        writer can have changed the folder meanwhile: `build_index` holds it)."""
        written = {f.key for f in files}
        starts = np.concatenate([[0], np.cumsum(self.old.units)]) if self.old else np.zeros(1, np.int64)
        kept = [self._kept(k, e, starts) for k, e in self.known.items() if k not in removed and k not in written]
        every = [*kept, *files]
        passages = [p for f in every for p in f.passages]
        entries, first = {}, 0
        for f in every:
            entries[f.key] = replace(f.entry, first=first, passages=len(f.passages)).to_dict()
            first += len(f.passages)
        vectors = np.concatenate([f.vectors for f in every if len(f.vectors)])
        units = np.concatenate([f.units for f in every]).astype(np.int32)
        lexical = Lexical.build([lexical_text(f.entry.title, p.text) for f in every for p in f.passages])
        real = self.out.resolve()
        remove_leftovers(real.parent, target=real.name)  # an earlier index build to it that was killed
        with staged_folder(real) as new:
            write_jsonl(new / INDEX_PASSAGES, [p.to_dict() for p in passages])
            np.save(new / INDEX_EMBEDDINGS, vectors.astype(np.float16), allow_pickle=False)
            np.save(new / INDEX_UNITS, units, allow_pickle=False)
            lexical.save(new / INDEX_LEXICAL)
            meta = {
                "format": FORMAT,
                "embedder": EMBEDDER,
                "settings": {"max_words": self.max_words},
                "passages": len(passages),
                "files": entries,
            }
            atomic_write_json(new / INDEX_META, meta)
        return IndexInfo(self.location, len(every), len(passages))

    def _kept(self, key: str, entry: FileEntry, starts: np.ndarray) -> NewFile:
        """A file the old index holds, as it is (`starts`: where each old passage's vectors begin)."""
        assert self.old is not None
        span = slice(entry.first, entry.first + entry.passages)
        vectors = self.old.embeddings[starts[entry.first] : starts[entry.first + entry.passages]]
        return NewFile(key, entry, self.old.passages[span], vectors, self.old.units[span])

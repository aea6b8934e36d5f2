"""`qatune index`: build or update a document index folder.

Files are found recursively, read, hashed (SHA-256 of their bytes), extracted and cut into passages; a
file whose hash (and the passage settings) match the index being updated keeps its passages and their
embeddings, so re-running on the same paths embeds only what changed, and files no longer found drop
out. The new index is written beside the old one and swapped in whole (`paths.staged_folder`), so a
server reading the old one never sees half of the new one. A file that cannot be read is skipped with
its reason (`IndexSummary.skipped`); nothing indexable at all is an error. A second `qatune index` to
the same index while one runs is refused (`paths.exclusive`), as one of the two updates would be lost.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import stat
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from qatune.documents.dense import EMBEDDER, Embedder
from qatune.documents.extract import MAX_FILE_BYTES, Unreadable, extract, find_files
from qatune.documents.index import FORMAT, DocumentIndex, FileEntry, Passage
from qatune.documents.lexical import Lexical
from qatune.documents.passages import MAX_WORDS, split_passages
from qatune.errors import ConfigError, DataError
from qatune.io import JsonObject, atomic_write_json, write_jsonl
from qatune.layout import INDEX_EMBEDDINGS, INDEX_LEXICAL, INDEX_META, INDEX_PASSAGES
from qatune.paths import check_output_folder, exclusive, remove_leftovers, staged_folder

logger = logging.getLogger(__name__)


@dataclass
class IndexSummary:
    """What `build_index` did: files by fate, pages, passages, the skipped files and why, and the time."""

    output: str
    files: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    pages: int = 0
    passages: int = 0
    embedded: int = 0
    seconds: float = 0.0
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> JsonObject:
        out: JsonObject = {k: v for k, v in vars(self).items() if k != "skipped"}
        out["skipped"] = [{"file": f, "why": why} for f, why in self.skipped]
        return out


@dataclass
class _File:
    key: str
    entry: FileEntry
    passages: list[Passage]
    vectors: np.ndarray | None  # None: to embed


def build_index(
    paths: Sequence[str | Path],
    output: str | Path,
    *,
    max_words: int = MAX_WORDS,
    overwrite: bool = False,
    progress_bar: bool = True,
    embedder: Embedder | None = None,
) -> IndexSummary:
    """Index the documents under `paths` into the folder `output` (updated in place when it is an index)."""
    out = check_output_folder(output, "--output", (INDEX_META,), "a qatune index", overwrite)
    roots = [Path(p) for p in paths]
    for root in roots:
        if not root.exists():
            raise ConfigError(f"{root}: no such file or folder; give the documents to index")
    with contextlib.ExitStack() as held:
        if out.is_dir():  # a second writer of the same index is refused, not raced (last swap would win)
            held.enter_context(exclusive(out, "this index"))
        return _build(roots, out, max_words, overwrite, progress_bar, embedder)


def _build(
    roots: list[Path],
    out: Path,
    max_words: int,
    overwrite: bool,
    progress_bar: bool,
    embedder: Embedder | None,
) -> IndexSummary:
    began = time.perf_counter()
    old = DocumentIndex.open(out) if (out / INDEX_META).is_file() and not overwrite else None
    reuse = old is not None and old.settings == {"max_words": max_words}
    summary = IndexSummary(str(out))
    found = [p for p in find_files(roots) if not _inside(p, out)]
    files = [
        f
        for f in (
            _read(p, old if reuse else None, max_words, summary)
            for p in tqdm(found, desc="reading", unit="file", disable=not progress_bar)
        )
        if f
    ]
    if not any(f.passages for f in files):
        why = (
            "; ".join(f"{name}: {reason}" for name, reason in summary.skipped[:3])
            or "no .txt, .md, .html or .pdf files"
        )
        raise DataError(f"nothing to index under {', '.join(map(str, roots))} ({why})")
    summary.removed = len(set(old.files) - {f.key for f in files}) if old else 0
    _embed(files, embedder or Embedder(), progress_bar, summary)
    _write(out, files, max_words)
    summary.files, summary.passages = len(files), sum(len(f.passages) for f in files)
    summary.pages = sum(f.entry.pages or 0 for f in files)
    summary.seconds = round(time.perf_counter() - began, 2)
    return summary


def _inside(path: Path, folder: Path) -> bool:
    return folder.resolve() in path.resolve().parents


def _read(path: Path, old: DocumentIndex | None, max_words: int, summary: IndexSummary) -> _File | None:
    """The file's passages: the old index's where its bytes are unchanged, else extracted anew."""
    key = str(path.resolve())
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):  # a named pipe would block the read forever, a device never end
            return _skip(summary, path, "not a regular file")
        if info.st_size > MAX_FILE_BYTES:
            return _skip(summary, path, f"over {MAX_FILE_BYTES // 1_000_000} MB")
        data = path.read_bytes()
    except OSError as exc:
        return _skip(summary, path, f"cannot read it ({exc.strerror or exc})")
    sha = hashlib.sha256(data).hexdigest()
    before = old.files.get(key) if old else None
    if old and before and before.sha256 == sha:
        summary.unchanged += 1
        span = slice(before.first, before.first + before.passages)
        return _File(key, before, old.passages[span], old.embeddings[span])
    try:
        extracted = extract(path, data)
    except Unreadable as exc:
        return _skip(summary, path, str(exc))
    spans = split_passages(extracted.text, max_words)
    passages = [
        Passage(key, extracted.page_of(s.start), s.start, s.end, extracted.text[s.start : s.end]) for s in spans
    ]
    if not passages:
        return _skip(summary, path, "no text in it")
    summary.updated += before is not None
    summary.added += before is None
    pages = len(extracted.page_starts) or None
    return _File(key, FileEntry(sha, len(data), 0, len(passages), pages), passages, None)


def _skip(summary: IndexSummary, path: Path, why: str) -> _File | None:
    """None, the file counted and named as skipped (a warning, and in the summary)."""
    logger.warning("skipped %s: %s", path, why)
    summary.skipped.append((str(path), why))
    return None


def _embed(files: list[_File], embedder: Embedder, progress_bar: bool, summary: IndexSummary) -> None:
    todo = [f for f in files if f.vectors is None]
    texts = [p.text for f in todo for p in f.passages]
    summary.embedded = len(texts)
    with tqdm(total=len(texts), desc="embedding", unit="passage", disable=not progress_bar or not texts) as bar:
        vectors = embedder(texts, bar.update) if texts else np.zeros((0, 0), dtype=np.float32)
    first = 0
    for f in todo:
        f.vectors = vectors[first : first + len(f.passages)]
        first += len(f.passages)


def _write(out: Path, files: list[_File], max_words: int) -> None:
    """The index folder, written whole beside `out` and swapped in."""
    passages = [p for f in files for p in f.passages]
    entries, first = {}, 0
    for f in files:
        entries[f.key] = FileEntry(f.entry.sha256, f.entry.size, first, len(f.passages), f.entry.pages).to_dict()
        first += len(f.passages)
    vectors = np.concatenate([f.vectors for f in files if f.vectors is not None and len(f.vectors)])
    lexical = Lexical.build([p.text for p in passages])
    real = out.resolve()
    remove_leftovers(real.parent, target=real.name)  # an earlier index build to it that was killed
    with staged_folder(real) as new:
        write_jsonl(new / INDEX_PASSAGES, [p.to_dict() for p in passages])
        np.save(new / INDEX_EMBEDDINGS, vectors.astype(np.float32), allow_pickle=False)
        lexical.save(new / INDEX_LEXICAL)
        meta = {
            "format": FORMAT,
            "embedder": EMBEDDER,
            "settings": {"max_words": max_words},
            "passages": len(passages),
            "files": entries,
        }
        atomic_write_json(new / INDEX_META, meta)

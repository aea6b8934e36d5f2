"""`qatune index`: build or update a document index (a folder, or a PostgreSQL database).

Files are found recursively, read, hashed (SHA-256 of their bytes), extracted and cut into passages; a
file whose hash matches the index being updated is left as it is, so re-running on the same paths
embeds only what changed, and files under the given paths that are no longer found drop out (files
the index holds from other paths stay: several writers may share one index). The backend writes the
update whole (`documents.records.IndexWriter`): readers never see half of it. A file that cannot be
read is skipped with its reason (`IndexSummary.skipped`); nothing indexable at all is an error. A
second `qatune index` to the same folder while one runs is refused (`paths.exclusive`), as one of the
two updates would be lost; writers of one database queue for its lock instead.
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

from tqdm.auto import tqdm

from qatune.documents.backends import open_writer
from qatune.documents.dense import Embedder, embed_passages, units
from qatune.documents.extract import MAX_FILE_BYTES, Unreadable, extract, find_files, title
from qatune.documents.passages import MAX_WORDS, split_passages
from qatune.documents.postgres import is_database_url
from qatune.documents.records import FileEntry, IndexWriter, NewFile, Passage
from qatune.errors import ConfigError, DataError
from qatune.io import JsonObject
from qatune.layout import INDEX_META
from qatune.paths import check_output_folder, exclusive

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


def build_index(
    paths: Sequence[str | Path],
    output: str | Path,
    *,
    max_words: int = MAX_WORDS,
    overwrite: bool = False,
    progress_bar: bool = True,
    embedder: Embedder | None = None,
) -> IndexSummary:
    """Index the documents under `paths` into `output`, a folder or a PostgreSQL URL (updated in place
    when it holds an index)."""
    database = is_database_url(output)
    out = None if database else check_output_folder(output, "--output", (INDEX_META,), "a qatune index", overwrite)
    roots = [Path(p) for p in paths]
    for root in roots:
        if not root.exists():
            raise ConfigError(f"{root}: no such file or folder; give the documents to index")
    with contextlib.ExitStack() as held:
        if out is not None and out.is_dir():  # a second writer of the same folder is refused, not raced
            held.enter_context(exclusive(out, "this index"))
        writer = open_writer(out or output, max_words, overwrite)
        return _build(roots, writer, out, max_words, progress_bar, embedder)


def _build(
    roots: list[Path],
    writer: IndexWriter,
    out: Path | None,
    max_words: int,
    progress_bar: bool,
    embedder: Embedder | None,
) -> IndexSummary:
    began = time.perf_counter()
    summary = IndexSummary(writer.location)
    found = [p for p in find_files(roots) if out is None or not _inside(p, out)]
    read = [
        _read(p, writer.known, max_words, summary)
        for p in tqdm(found, desc="reading", unit="file", disable=not progress_bar)
    ]
    fresh = [f for f in read if isinstance(f, _File)]
    unchanged = {f for f in read if isinstance(f, str)}
    if not fresh and not unchanged:
        why = (
            "; ".join(f"{name}: {reason}" for name, reason in summary.skipped[:3])
            or "no .txt, .md, .html or .pdf files"
        )
        raise DataError(f"nothing to index under {', '.join(map(str, roots))} ({why})")
    still = unchanged | {f.key for f in fresh}
    removed = {key for key in writer.known if key not in still and _under(key, roots)}
    info = writer.write(_embed(fresh, embedder or Embedder(), progress_bar, summary), removed, unchanged)
    summary.removed, summary.files, summary.passages = len(removed), info.files, info.passages
    summary.pages = sum(writer.known[k].pages or 0 for k in unchanged) + sum(f.entry.pages or 0 for f in fresh)
    summary.seconds = round(time.perf_counter() - began, 2)
    return summary


def _under(key: str, roots: list[Path]) -> bool:
    """Whether the indexed file `key` lies under one of this run's paths (only those may drop out)."""
    path = Path(key)
    return any(path == r or r in path.parents for r in (root.resolve() for root in roots))


def _inside(path: Path, folder: Path) -> bool:
    return folder.resolve() in path.resolve().parents


def _read(path: Path, known: dict[str, FileEntry], max_words: int, summary: IndexSummary) -> _File | str | None:
    """The file's passages extracted anew; its key alone when the index holds its bytes unchanged; None
    when it is skipped."""
    key = str(path.resolve())
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:  # bytes no answer or citation could be shown as (nor a database store)
        return _skip(summary, path, "its name is not valid UTF-8; rename it")
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
    before = known.get(key)
    if before and before.sha256 == sha:
        summary.unchanged += 1
        return key
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
    return _File(key, FileEntry(sha, len(data), 0, len(passages), pages, title(path, extracted)), passages)


def _skip(summary: IndexSummary, path: Path, why: str) -> _File | None:
    """None, the file counted and named as skipped (a warning, and in the summary)."""
    logger.warning("skipped %s: %s", path, why)
    summary.skipped.append((str(path), why))
    return None


def _embed(files: list[_File], embedder: Embedder, progress_bar: bool, summary: IndexSummary) -> list[NewFile]:
    """The files with their passages' sentence vectors (one batched pass over every new passage)."""
    texts = [p.text for f in files for p in f.passages]
    summary.embedded = len(texts)
    total = sum(len(units(t)) for t in texts)
    with tqdm(total=total, desc="embedding", unit="sentence", disable=not progress_bar or not texts) as bar:
        vectors, counts = embed_passages(embedder, texts, bar.update)
    out, first, at = [], 0, 0
    for f in files:
        mine = counts[first : first + len(f.passages)]
        out.append(NewFile(f.key, f.entry, f.passages, vectors[at : at + int(mine.sum())], mine))
        first, at = first + len(f.passages), at + int(mine.sum())
    return out

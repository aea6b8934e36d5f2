"""Which backend a user's --index or --output names: a PostgreSQL URL (`documents.postgres`, shared by
servers and writers) or a folder (`documents.index`, embedded: the default)."""

from __future__ import annotations

from pathlib import Path

from qatune.documents.index import DocumentIndex, FolderWriter
from qatune.documents.postgres import PostgresIndex, PostgresWriter, is_database_url
from qatune.documents.records import IndexWriter, PassageIndex


def open_index(location: str | Path) -> PassageIndex:
    """The index at `location` opened for reading; not an index, or of a newer format: one ConfigError."""
    if is_database_url(location):
        return PostgresIndex.open(str(location))
    return DocumentIndex.open(location)


def open_writer(location: str | Path, max_words: int, overwrite: bool) -> IndexWriter:
    """The index at `location` opened for one update (a folder already checked by the output rules)."""
    if is_database_url(location):
        return PostgresWriter(str(location), max_words, overwrite)
    return FolderWriter(Path(location), max_words, overwrite)

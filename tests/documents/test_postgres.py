"""qatune.documents.postgres: the shared index in PostgreSQL ranks as the folder index does, many writers
update it without losing each other's files, and what is not an index is refused (see also the tests of
test_index.py that run on both backends)."""

from __future__ import annotations

import subprocess
import sys

import psycopg
import pytest

from qatune.documents.backends import open_index
from qatune.documents.build import build_index
from qatune.documents.records import FORMAT
from qatune.errors import ConfigError, Unavailable

QUESTIONS = [
    "How long does the battery last?",
    "What does the warranty not cover?",
    "Who pays extra for delivery?",
    "How bright is the screen?",
    "How far do the keys travel?",
]


def test_it_ranks_as_the_folder_index_does(docs, tmp_path, pg_index, embedder, opened):
    for location in (tmp_path / "idx", pg_index):
        build_index([docs], location, progress_bar=False, embedder=embedder)
    folder, database = opened(tmp_path / "idx"), opened(pg_index)
    assert folder.info().files == database.info().files and folder.info().passages == database.info().passages
    for mode in ("dense", "bm25", "fused"):
        ours, theirs = database.search(QUESTIONS, k=3, mode=mode), folder.search(QUESTIONS, k=3, mode=mode)
        # the same best passage for every question; dense scores equal (the same vectors, stored as float32)
        assert [h[0].passage for h in ours] == [h[0].passage for h in theirs], mode
        if mode == "dense":
            assert [[(h.passage, round(h.score, 5)) for h in q] for q in ours] == [
                [(h.passage, round(h.score, 5)) for h in q] for q in theirs
            ]


def test_writers_at_once_on_a_new_index_all_land_and_a_reader_sees_later_ones(docs, pg_index, embedder, opened):
    # two `qatune index` processes started together on an empty database: both create, both add their file
    writers = [
        subprocess.Popen(
            [sys.executable, "-m", "qatune.cli", "index", str(docs / "manuals" / name), "--output", pg_index, "-q"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("battery.md", "shipping.html")
    ]
    for w in writers:
        _, err = w.communicate(timeout=300)
        assert w.returncode == 0, err
    reader = opened(pg_index)
    assert reader.info().files == 2
    question = ["What does the warranty not cover?"]
    assert not reader.search(question, k=1, mode="dense")[0][0].passage.file.endswith("warranty.txt")
    build_index([docs / "warranty.txt"], pg_index, progress_bar=False, embedder=embedder)
    # the open reader sees the new file (its vectors loaded again for the new generation)
    assert reader.search(question, k=1, mode="dense")[0][0].passage.file.endswith("warranty.txt")


def test_an_update_whose_unchanged_files_another_writer_removed_is_refused(docs, pg_index, embedder, opened):
    from qatune.documents.postgres import PostgresWriter

    build_index([docs], pg_index, progress_bar=False, embedder=embedder)
    late = PostgresWriter(pg_index, 150, overwrite=False)  # reads what the index holds now
    build_index([docs / "warranty.txt"], pg_index, overwrite=True, progress_bar=False, embedder=embedder)
    with pytest.raises(ConfigError, match="another writer changed this index"):
        late.write([], set(), set(late.known))
    assert opened(pg_index).info().files == 1  # the refused update wrote nothing


def test_what_is_not_an_index_or_is_newer_is_refused(docs, pg_index, embedder):
    with pytest.raises(ConfigError, match="is not a qatune index"):
        open_index(pg_index)
    build_index([docs], pg_index, progress_bar=False, embedder=embedder)
    with psycopg.connect(pg_index, autocommit=True) as conn:
        conn.execute("UPDATE qatune_index_meta SET value = %s WHERE name = 'format'", (str(FORMAT + 1),))
    with pytest.raises(ConfigError, match="newer qatune"):
        open_index(pg_index)
    with pytest.raises(ConfigError, match="newer qatune"):
        build_index([docs], pg_index, progress_bar=False, embedder=embedder)


def test_other_passage_settings_are_refused_and_overwrite_touches_only_its_tables(docs, pg_index, embedder):
    with psycopg.connect(pg_index, autocommit=True) as conn:
        conn.execute("CREATE TABLE notes (body text)")
        conn.execute("INSERT INTO notes VALUES ('precious')")
    build_index([docs], pg_index, progress_bar=False, embedder=embedder)
    with pytest.raises(ConfigError, match="--max-words 150; give the same, or --overwrite"):
        build_index([docs], pg_index, max_words=60, progress_bar=False, embedder=embedder)
    summary = build_index([docs / "warranty.txt"], pg_index, max_words=60, overwrite=True, embedder=embedder)
    assert (summary.files, summary.added) == (1, 1)
    with psycopg.connect(pg_index) as conn:
        assert conn.execute("SELECT body FROM notes").fetchall() == [("precious",)]


def test_an_unreachable_server_is_one_error_without_the_password(docs):
    url = "postgresql://someone:s3cret@127.0.0.1:1/nowhere"
    with pytest.raises(Unavailable, match="cannot connect") as caught:
        open_index(url)
    assert "s3cret" not in str(caught.value) and "***" in str(caught.value)
    with pytest.raises(Unavailable, match="cannot connect") as caught:
        build_index([docs], url, progress_bar=False)
    assert "s3cret" not in str(caught.value)

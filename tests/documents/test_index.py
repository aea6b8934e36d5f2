"""qatune.documents: building, updating and opening an index; retrieval by each side and fused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qatune.documents.build import build_index
from qatune.documents.index import DocumentIndex
from qatune.documents.records import FORMAT
from qatune.errors import ConfigError, DataError
from qatune.layout import INDEX_META


def _all(index) -> list:
    """Every passage of the index, by way of its public search (dense ranks every passage)."""
    return [h.passage for h in index.search(["anything"], k=index.info().passages, mode="dense")[0]]


def test_a_folder_is_indexed_and_what_cannot_be_read_is_named(docs, tmp_path, embedder, opened):
    summary = build_index([docs], tmp_path / "idx", progress_bar=False, embedder=embedder)
    assert (summary.files, summary.added, summary.unchanged, summary.removed) == (4, 4, 0, 0)
    assert summary.pages == 2 and summary.passages == summary.embedded >= 5
    skipped = {name.rsplit("/", 1)[1]: why for name, why in summary.skipped}
    assert set(skipped) == {"broken.pdf", "latin1.txt", "image.md"} and "UTF-8" in skipped["latin1.txt"]
    index = opened(tmp_path / "idx")
    assert len(index.passages) == summary.passages and index.units.shape == (summary.passages,)
    assert index.embeddings.shape == (index.units.sum(), 384) and index.units.sum() > summary.passages  # sentences
    for passage in index.passages:  # every passage is an exact span of its file's text (text files as written)
        if passage.file.endswith((".txt", ".md")):
            assert open(passage.file).read()[passage.start : passage.end] == passage.text


@pytest.mark.parametrize("mode", ["fused", "bm25", "dense"])
def test_each_retrieval_finds_the_passage(docs, index_location, embedder, mode, opened):
    build_index([docs], index_location, progress_bar=False, embedder=embedder)
    index = opened(index_location)
    questions = ["How long does the battery last?", "What does the warranty not cover?", "Who pays extra for delivery?"]
    hits = index.search(questions, k=2, mode=mode)
    files = [h[0].passage.file.rsplit("/", 1)[1] for h in hits]
    assert files == ["battery.md", "warranty.txt", "shipping.html"]
    assert all(1 <= len(h) <= 2 and [x.score for x in h] == sorted((x.score for x in h), reverse=True) for h in hits)


def test_updating_reads_only_what_changed(docs, index_location, tmp_path, embedder, texts, opened):
    build_index([docs], index_location, progress_bar=False, embedder=embedder)
    (docs / "warranty.txt").write_text(f"Warranty\n\n{texts['warranty']} Batteries are covered for one year.\n")
    (docs / "manuals" / "shipping.html").unlink()
    (docs / "returns.txt").write_text("Returns are accepted within thirty days when the box is unopened and intact.")
    summary = build_index([docs], index_location, progress_bar=False, embedder=embedder)
    assert (summary.added, summary.updated, summary.unchanged, summary.removed) == (1, 1, 2, 1)
    index = opened(index_location)
    passages = _all(index)
    assert index.info().passages == summary.passages == len(passages) and index.info().files == summary.files == 4
    assert summary.embedded == sum(1 for p in passages if p.file.endswith(("warranty.txt", "returns.txt")))
    assert not any(p.file.endswith("shipping.html") for p in passages)
    (hit,) = index.search(["How long may I return an unopened box?"], k=1)[0]
    assert hit.passage.file.endswith("returns.txt")
    fresh = build_index([docs], tmp_path / "fresh", progress_bar=False, embedder=embedder)
    again = opened(tmp_path / "fresh")
    assert fresh.passages == summary.passages and sorted(_all(again), key=str) == sorted(passages, key=str)
    # the same vectors as a fresh build (up to bfloat16 rounding, which depends on the batch's padding)
    question = ["Are batteries covered by the warranty?"]
    ours, theirs = (i.search(question, k=fresh.passages, mode="dense")[0] for i in (index, again))
    assert max(abs(a.score - b.score) for a, b in zip(ours, theirs)) < 5e-3


def test_files_outside_the_paths_given_stay_and_files_deleted_under_them_go(docs, index_location, embedder, opened):
    build_index([docs / "manuals"], index_location, progress_bar=False, embedder=embedder)
    summary = build_index([docs / "warranty.txt"], index_location, progress_bar=False, embedder=embedder)
    assert (summary.added, summary.removed, summary.files) == (1, 0, 4)  # the 3 readable manuals stay
    (docs / "manuals" / "battery.md").unlink()
    summary = build_index([docs], index_location, progress_bar=False, embedder=embedder)
    assert (summary.added, summary.unchanged, summary.removed, summary.files) == (0, 3, 1, 3)
    files = {p.file.rsplit("/", 1)[1] for p in _all(opened(index_location))}
    assert files == {"warranty.txt", "specs.pdf", "shipping.html"}


def test_output_folders_follow_the_rules(docs, tmp_path, embedder):
    work = tmp_path / "work"
    work.mkdir()
    (work / "notes.txt").write_text("precious")
    with pytest.raises(ConfigError, match="not empty and is not a qatune index"):
        build_index([docs], work, progress_bar=False, embedder=embedder)
    with pytest.raises(ConfigError, match="is a file"):
        build_index([docs], work / "notes.txt", progress_bar=False, embedder=embedder)
    assert (work / "notes.txt").read_text() == "precious" and sorted(p.name for p in work.iterdir()) == ["notes.txt"]


def test_a_second_writer_of_one_index_is_refused_and_changes_nothing(docs, tmp_path, embedder):
    from qatune.paths import exclusive

    build_index([docs], tmp_path / "idx", progress_bar=False, embedder=embedder)
    before = sorted((p.name, p.stat().st_mtime_ns) for p in (tmp_path / "idx").iterdir())
    (docs / "new.txt").write_text("A passage that the refused writer must not add to the index. " * 3)
    with exclusive(tmp_path / "idx", "this index"):  # as a `qatune index` still running would hold it
        with pytest.raises(ConfigError, match="another qatune process is writing this index"):
            build_index([docs], tmp_path / "idx", progress_bar=False, embedder=embedder)
    assert sorted((p.name, p.stat().st_mtime_ns) for p in (tmp_path / "idx").iterdir()) == before
    assert build_index([docs], tmp_path / "idx", progress_bar=False, embedder=embedder).added == 1


def test_nothing_to_index_is_an_error_and_writes_nothing(tmp_path, embedder):
    (tmp_path / "only").mkdir()
    (tmp_path / "only" / "bad.txt").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(DataError, match="nothing to index.*bad.txt: binary"):
        build_index([tmp_path / "only"], tmp_path / "idx", progress_bar=False, embedder=embedder)
    with pytest.raises(ConfigError, match="no such file or folder"):
        build_index([tmp_path / "missing"], tmp_path / "idx", progress_bar=False, embedder=embedder)
    assert not (tmp_path / "idx").exists()


def test_an_index_from_a_newer_qatune_or_a_plain_folder_is_refused(docs, tmp_path, embedder):
    build_index([docs], tmp_path / "idx", progress_bar=False, embedder=embedder)
    meta = json.loads((tmp_path / "idx" / INDEX_META).read_text())
    (tmp_path / "idx" / INDEX_META).write_text(json.dumps({**meta, "format": FORMAT + 1}))
    with pytest.raises(ConfigError, match="newer qatune"):
        DocumentIndex.open(tmp_path / "idx")
    with pytest.raises(ConfigError, match="is not a qatune index"):
        DocumentIndex.open(docs)
    with pytest.raises(ConfigError, match="does not exist"):
        DocumentIndex.open(tmp_path / "nowhere")


def test_a_named_pipe_with_a_text_name_is_skipped_not_read(docs, tmp_path, embedder):
    import os

    os.mkfifo(docs / "pipe.txt")  # reading it would block forever
    summary = build_index([docs], tmp_path / "idx", progress_bar=False, embedder=embedder)
    assert ("pipe.txt", "not a regular file") in {(f.rsplit("/", 1)[1], why) for f, why in summary.skipped}


@pytest.mark.parametrize("name", ["embeddings.npy", "units.npy", "passages.jsonl", "bm25/params.index.json"])
def test_a_damaged_index_is_one_error(docs, tmp_path, embedder, name):
    build_index([docs], tmp_path / "idx", progress_bar=False, embedder=embedder)
    (tmp_path / "idx" / name).write_bytes(b"\x00garbage")
    with pytest.raises(ConfigError, match="damaged qatune index.*run `qatune index` again"):
        DocumentIndex.open(tmp_path / "idx")


def _as_older(location: str, version: int) -> None:
    """Rewrite an index as an older qatune's format held it: format 2 as it is (its lexical side without
    titles is not told apart here); format 1 also with one float32 vector a passage (its first sentence's)."""
    if location.startswith("postgresql"):
        import psycopg

        with psycopg.connect(location, autocommit=True) as conn:
            rows = conn.execute("SELECT id, embedding FROM qatune_index_passages").fetchall()
            for id_, stored in rows if version == 1 else []:
                first = np.frombuffer(bytes(stored), np.float16)[:384].astype(np.float32).tobytes()
                conn.execute("UPDATE qatune_index_passages SET embedding = %s WHERE id = %s", (first, id_))
            conn.execute("UPDATE qatune_index_meta SET value = %s WHERE name = 'format'", (str(version),))
        return
    folder = Path(location)
    if version == 1:
        units = np.load(folder / "units.npy")
        vectors = np.load(folder / "embeddings.npy")
        np.save(folder / "embeddings.npy", vectors[np.concatenate([[0], np.cumsum(units)[:-1]])].astype(np.float32))
        (folder / "units.npy").unlink()
    meta = json.loads((folder / INDEX_META).read_text())
    (folder / INDEX_META).write_text(json.dumps({**meta, "format": version}))


@pytest.mark.parametrize("version", [1, 2])
def test_an_index_of_an_older_format_is_read_and_updated_only_with_overwrite(
    docs, index_location, embedder, opened, version
):
    build_index([docs], index_location, progress_bar=False, embedder=embedder)
    before = opened(index_location).search(["How long does the battery last?"], k=3)[0]
    _as_older(index_location, version)
    after = opened(index_location).search(["How long does the battery last?"], k=3)[0]
    assert len(after) == 3 and {h.passage for h in after} & {h.passage for h in before}
    with pytest.raises(ConfigError, match=f"format {version}, made by an older qatune.*--overwrite"):
        build_index([docs], index_location, progress_bar=False, embedder=embedder)
    summary = build_index([docs], index_location, overwrite=True, progress_bar=False, embedder=embedder)
    again = opened(index_location)
    assert summary.files == 4 and [h.passage for h in again.search(["How long does the battery last?"], k=3)[0]] == [
        h.passage for h in before
    ]


def _animals(tmp_path: Path, files: dict[str, str]) -> Path:
    """A folder of the given files (name -> text)."""
    folder = tmp_path / "animals"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def test_a_files_title_is_indexed_with_each_of_its_passages(tmp_path, index_location, embedder, opened):
    """No passage says "quokka": its file's name does. Untitled, the wombat's passage (weigh twice) wins."""
    folder = _animals(
        tmp_path,
        {
            "Quokka.txt": "It lives on Rottnest Island near Perth. It weighs about three kilograms.",
            "Wombat.txt": "It digs burrows. Adults weigh a lot: it weighs about thirty kilograms.",
        },
    )
    build_index([folder], index_location, progress_bar=False, embedder=embedder)
    (folder / "Zebra.txt").write_text("It has stripes. It weighs about three hundred kilograms.")
    assert build_index([folder], index_location, progress_bar=False, embedder=embedder).unchanged == 2
    for mode in ("bm25", "fused"):  # the kept files' titles are indexed as before
        (hit,) = opened(index_location).search(["How much does a quokka weigh?"], k=1, mode=mode)[0]
        assert hit.passage.file.endswith("Quokka.txt") and "three kilograms" in hit.passage.text


def test_each_hit_carries_its_files_title(tmp_path, index_location, embedder, opened):
    """The title the reader reads with a passage (`train --use-title`): a file's own or its name's."""
    page = "<html><head><title>Wombat burrows</title></head><body>It digs.</body></html>"
    folder = _animals(tmp_path, {"Quokka_facts.txt": "It lives on Rottnest Island near Perth.", "page.html": page})
    build_index([folder], index_location, progress_bar=False, embedder=embedder)
    hits = opened(index_location).search(["Where does it live?"], k=2, mode="dense")[0]
    assert {h.passage.file.rsplit("/", 1)[-1]: h.title for h in hits} == {
        "Quokka_facts.txt": "Quokka facts",
        "page.html": "Wombat burrows",
    }


def test_a_postgres_index_made_before_titles_reads_untitled_and_gains_them_on_update(tmp_path, pg_index, embedder):
    import psycopg

    from qatune.documents.postgres import PostgresIndex

    folder = _animals(tmp_path, {"Quokka.txt": "It lives on Rottnest Island near Perth."})
    build_index([folder], pg_index, progress_bar=False, embedder=embedder)
    with psycopg.connect(pg_index, autocommit=True) as conn:  # as an index of the first format 3 tables
        conn.execute("ALTER TABLE qatune_index_files DROP COLUMN title")
    index = PostgresIndex(pg_index, embedder)
    assert [h.title for h in index.search(["Where?"], k=1)[0]] == [""]
    (folder / "Wombat.txt").write_text("It digs burrows.")
    build_index([folder], pg_index, progress_bar=False, embedder=embedder)
    titles = {h.passage.file.rsplit("/", 1)[-1]: h.title for h in index.search(["Where?"], k=2, mode="dense")[0]}
    assert titles == {"Quokka.txt": "", "Wombat.txt": "Wombat"}  # the kept file is untitled until indexed again


def test_other_passage_settings_are_refused_unless_overwrite(docs, index_location, embedder):
    """Cutting again with another --max-words would have to drop the files indexed from other paths."""
    build_index([docs / "manuals"], index_location, progress_bar=False, embedder=embedder)
    with pytest.raises(ConfigError, match="--max-words 150; give the same, or --overwrite"):
        build_index([docs], index_location, max_words=60, progress_bar=False, embedder=embedder)
    summary = build_index([docs], index_location, max_words=60, overwrite=True, progress_bar=False, embedder=embedder)
    assert (summary.added, summary.files) == (4, 4)

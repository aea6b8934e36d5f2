"""qatune.data.squad and qatune.data.sources: every format, every validation error, slicing and resolution."""

from __future__ import annotations

import gzip
import json

import pytest

from conftest import article, squad_file, write_squad
from qatune.data.sources import load_data
from qatune.data.squad import load_file
from qatune.errors import DataError

CTX = "Paris is the capital of France. It lies on the Seine."


def good_articles():
    return [
        article(
            CTX, [("q1", "What is the capital of France?", "Paris", None), ("q2", "Which river?", "the Seine", None)]
        )
    ]


def test_loads_squad_json_and_gz(tmp_path):
    plain = write_squad(tmp_path / "d.json", good_articles())
    packed = tmp_path / "d.json.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    for path in (plain, packed):
        ds = load_file(path)
        assert [e.id for e in ds] == ["q1", "q2"]
        assert ds.examples[1].answers == ("the Seine",)
        assert ds.examples[1].answer_starts == (CTX.find("the Seine"),)


def test_loads_jsonl_rows(tmp_path):
    rows = [
        {"id": "a", "context": CTX, "question": "Capital?", "answers": {"text": ["Paris"], "answer_start": [0]}},
        {"id": "b", "context": CTX, "question": "Nothing?", "answers": {"text": [], "answer_start": []}},
    ]
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    ds = load_file(path)
    assert len(ds) == 2 and ds.examples[1].is_impossible and ds.has_impossible


def test_squad_v2_unanswerable(tmp_path):
    art = good_articles()
    art[0]["paragraphs"][0]["qas"].append({"id": "q3", "question": "Who?", "answers": [], "is_impossible": True})
    ds = load_file(write_squad(tmp_path / "v2.json", art))
    assert ds.examples[-1].is_impossible


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda a: a[0]["paragraphs"][0].pop("context"), "missing field 'context'"),
        (lambda a: a[0]["paragraphs"][0].__setitem__("context", "  "), "empty context"),
        (lambda a: a[0]["paragraphs"][0]["qas"][0].__setitem__("question", ""), "empty question"),
        (lambda a: a[0]["paragraphs"][0]["qas"][1].__setitem__("id", "q1"), "duplicate question id 'q1'"),
        (
            lambda a: a[0]["paragraphs"][0]["qas"][0]["answers"][0].__setitem__("answer_start", "0"),
            "field 'answer_start' must be int",
        ),
        (lambda a: a[0]["paragraphs"][0]["qas"][0].__setitem__("answers", []), "no answers"),
        (
            lambda a: a[0]["paragraphs"][0]["qas"][0]["answers"][0].__setitem__("answer_start", 3),
            "1 question(s) have an answer_start",
        ),
    ],
)
def test_validation_errors_name_the_place(tmp_path, mutate, message):
    articles = good_articles()
    mutate(articles)
    with pytest.raises(DataError) as err:
        load_file(write_squad(tmp_path / "bad.json", articles))
    text = str(err.value)
    assert message in text
    assert "bad.json" in text and "\n" not in text


def test_error_names_article_and_question_id(tmp_path):
    articles = good_articles()
    articles[0]["paragraphs"][0]["qas"][1]["answers"][0]["answer_start"] = 1
    with pytest.raises(DataError, match=r"article 0 \('T'\), paragraph 0, question id 'q2'"):
        load_file(write_squad(tmp_path / "bad.json", articles))


def test_skip_invalid_counts(tmp_path):
    articles = good_articles()
    articles[0]["paragraphs"][0]["qas"][1]["answers"][0]["answer_start"] = 1
    ds = load_file(write_squad(tmp_path / "bad.json", articles), skip_invalid=True)
    assert [e.id for e in ds] == ["q1"] and ds.skipped == 1 and "skipped 1" in ds.notes[0]


@pytest.mark.parametrize(
    "content, message",
    [
        (b'{"data": [', "malformed JSON at line 1"),
        (b'{"data": []}', "has no questions"),
        (b'\xff\xfe{"data": []}', "not valid UTF-8 at byte 0"),
        (b"[1, 2]", "expected a SQuAD object"),
    ],
)
def test_file_level_errors(tmp_path, content, message):
    path = tmp_path / "f.json"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        load_file(path)


def test_jsonl_errors_name_the_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(
        '{"id": "a", "context": "x", "question": "y", "answers": {"text": ["x"], "answer_start": [0]}}\n{oops\n'
    )
    with pytest.raises(DataError, match="line 2: malformed JSON"):
        load_file(path)


def test_missing_file_and_bad_gzip(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        load_data(str(tmp_path / "nope.json"))
    bad = tmp_path / "x.json.gz"
    bad.write_bytes(b"\x1f\x8b\x08garbage")
    with pytest.raises(DataError, match="cannot read it"):
        load_file(bad)


def test_select_first_and_seeded_random(tmp_path):
    ds = load_data("sample")
    assert [e.id for e in ds.select(limit=3)] == [e.id for e in ds.examples[:3]]
    a, b = ds.select(sample=10, seed=1), ds.select(sample=10, seed=1)
    assert [e.id for e in a] == [e.id for e in b] and len(a) == 10
    assert [e.id for e in ds.select(sample=10, seed=2)] != [e.id for e in a]


def test_embedded_sample_has_train_and_dev():
    train, dev = load_data("sample"), load_data("sample:validation")
    assert len(train) + len(dev) >= 200
    assert not {e.context for e in train} & {e.context for e in dev}


def test_data_dir_resolution(monkeypatch, squad_dir):
    monkeypatch.setenv("QATUNE_DATA_DIR", str(squad_dir))
    dev = load_data("squad:validation")
    assert len(dev) == 10570 and dev.source.endswith("dev-v1.1.json.gz")
    partial = load_file(squad_file("train-v1.1-partial.json.gz"))
    assert len(partial) == 4370 and partial.examples[0].id == "5733be284776f41900661182"


def test_fallback_to_sample_is_announced(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("QATUNE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from qatune.data import sources

    sources.hub_reachable.cache_clear()
    with caplog.at_level("WARNING"):
        ds = load_data("squad:validation")
    assert "using the embedded sample set" in ds.notes[0]
    assert "embedded sample" in caplog.text
    with pytest.raises(DataError, match="not found"):
        load_data("squad:validation", allow_sample=False)


def test_a_data_dir_that_is_not_a_folder_is_an_error_not_the_sample(monkeypatch, tmp_path):
    monkeypatch.setenv("QATUNE_DATA_DIR", str(tmp_path / "typo"))
    with pytest.raises(DataError, match="QATUNE_DATA_DIR=.*typo is not a folder"):
        load_data("squad:validation")
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="data_dir=.*file is not a folder"):
        load_data("squad", data_dir=str(tmp_path / "file"))

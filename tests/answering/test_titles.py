"""Titles (`train --use-title`): saved with the model and read by every way of asking it."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from qatune.answering.answerer import Query
from qatune.data.squad import MAX_TITLE_CHARS, question_examples
from qatune.data.windows import saved_window
from qatune.errors import DataError

CONTEXT = "She was born in Houston, Texas, and began singing as a child."


@pytest.fixture(scope="module")
def titled(tiny_bert, tmp_path_factory):
    """A tiny model trained with titles."""
    from conftest import tiny_config
    from qatune.training.trainer import train

    out = tmp_path_factory.mktemp("titled") / "run"
    train(tiny_config(tiny_bert, out, use_title=True, max_steps=2, eval_data=None), progress_bar=False)
    return out


def test_the_setting_is_saved_and_the_answerer_reads_titles(titled):
    from qatune.answering.torch_backend import Answerer

    assert saved_window(titled).use_title
    answerer = Answerer(str(titled))
    assert answerer.window.use_title
    pairs = [(CONTEXT, "Where was Beyonce born?")] * 2
    with_title, without = answerer.predict_queries([Query(pairs, titles=["Beyoncé", ""])])[0]  # type: ignore[misc]
    assert with_title.answers and without.answers
    windows = [answerer.windows_of(question_examples(pairs[:1], titles=[t])) for t in ("Beyoncé", "")]
    assert len(windows[0].input_ids[0]) > len(windows[1].input_ids[0])  # the title is read
    assert not np.isclose(with_title.no_answer_probability, without.no_answer_probability, rtol=0, atol=1e-9)
    assert [a.text for a in answerer.ask(CONTEXT, "Where was she born?", title="Beyoncé")]


@pytest.mark.parametrize(
    ("titles", "words"),
    [
        ([5], "the title must be text"),
        (["x" * (MAX_TITLE_CHARS + 1)], "the title of 1,001 characters"),
        ([], "0 titles"),
    ],
)
def test_bad_titles_are_one_data_error(titles, words):
    with pytest.raises(DataError, match=words):
        question_examples([(CONTEXT, "Where?")], titles=titles)


def test_a_query_takes_one_title_a_context():
    from qatune.errors import ConfigError

    for titles in ("ab", ["a"]):  # a string would be read a character a context
        with pytest.raises(ConfigError, match="a query's titles"):
            Query([(CONTEXT, "Where?"), (CONTEXT, "Who?")], titles=titles)


def test_titles_in_a_data_file_are_checked(tmp_path):
    from qatune.data.sources import load_data

    bad = tmp_path / "bad.json"
    qa = {"id": "q", "question": "Where?", "answers": [{"text": "Houston", "answer_start": 16}]}
    bad.write_text(json.dumps({"data": [{"title": "\ud800", "paragraphs": [{"context": CONTEXT, "qas": [qa]}]}]}))
    with pytest.raises(DataError, match="a title is not valid text"):
        load_data(str(bad), "validation")


def _ask(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "qatune.cli", "ask", *args], capture_output=True, text=True, timeout=600
    )


def test_ask_takes_a_title_and_a_questions_files_titles(titled, tmp_path):
    one = _ask("--model", str(titled), "--context", CONTEXT, "--question", "Where?", "--title", "Beyoncé", "--json")
    assert one.returncode == 0, one.stderr
    assert json.loads(one.stdout)["answers"]
    questions = tmp_path / "questions.json"
    questions.write_text(json.dumps([{"context": CONTEXT, "question": "Where?", "title": "Beyoncé"}]))
    many = _ask("--model", str(titled), "--questions", str(questions), "--json")
    assert many.returncode == 0 and json.loads(many.stdout)[0]["answers"], many.stderr
    questions.write_text(json.dumps([{"context": CONTEXT, "question": "Where?", "title": ["B"]}]))
    bad = _ask("--model", str(titled), "--questions", str(questions))
    assert bad.returncode == 2 and bad.stderr.startswith("error:") and "title must be text" in bad.stderr
    assert "Traceback" not in bad.stderr
    both = _ask("--model", str(titled), "--questions", str(questions), "--title", "B")
    assert both.returncode == 2 and "--title is for one --question" in both.stderr


def test_a_title_for_a_model_that_does_not_read_titles_is_a_warning(tiny_bert):
    asked = _ask("--model", str(tiny_bert), "--context", CONTEXT, "--question", "Where?", "--title", "B", "--json")
    assert asked.returncode == 0 and json.loads(asked.stdout)["answers"]
    assert asked.stderr.startswith("warning: titles are read only by models trained with --use-title")


def test_a_titled_model_asked_without_a_title_is_a_warning(titled, tiny_bert):
    asked = _ask("--model", str(titled), "--context", CONTEXT, "--question", "Where?", "--json")
    assert asked.returncode == 0 and json.loads(asked.stdout)["answers"]
    assert "was trained with --use-title" in asked.stderr and "1 of 1 questions have none" in asked.stderr
    titled_ask = _ask("--model", str(titled), "--context", CONTEXT, "--question", "Where?", "--title", "B")
    assert titled_ask.returncode == 0 and "warning" not in titled_ask.stderr
    untitled = _ask("--model", str(tiny_bert), "--context", CONTEXT, "--question", "Where?")
    assert untitled.returncode == 0 and "--use-title" not in untitled.stderr


def test_an_onnx_export_reads_titles_as_the_model_does(titled, tmp_path):
    from qatune.answering.onnx_backend import OnnxAnswerer
    from qatune.answering.torch_backend import Answerer
    from qatune.publishing.export import export_onnx

    export_onnx(str(titled), tmp_path / "onnx")
    onnx = OnnxAnswerer(tmp_path / "onnx")
    assert onnx.window.use_title
    pairs, titles = [(CONTEXT, "Where was she born?")] * 2, ["Beyoncé", ""]
    exported = onnx.predict_queries([Query(pairs, titles=titles)])[0]
    torch_side = Answerer(str(titled)).predict_queries([Query(pairs, titles=titles)])[0]
    assert isinstance(exported, list) and isinstance(torch_side, list)
    for a, b in zip(exported, torch_side):
        assert a.no_answer_probability == pytest.approx(b.no_answer_probability, abs=1e-3)

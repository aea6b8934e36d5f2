"""qatune.data.windows: labels, overlap and truncation for BERT-style and RoBERTa-style tokenizers."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from transformers import AutoTokenizer

from qatune.data.sources import load_data
from qatune.data.squad import Example
from qatune.data.windows import TITLE_TOKENS, WindowConfig, saved_window, title_text, tokenize_windows
from qatune.errors import ConfigError


@pytest.fixture(scope="module", params=["bert", "roberta"])
def tokenizer(request, tiny_bert, tiny_roberta):
    return AutoTokenizer.from_pretrained(tiny_bert if request.param == "bert" else tiny_roberta)


def labelled_text(example: Example, windows, i: int) -> str:
    offsets = windows.offsets[i]
    s, e = windows.start_positions[i], windows.end_positions[i]
    return example.context[offsets[s, 0] : offsets[e, 1]]


def test_labels_recover_the_answer(tokenizer):
    examples = load_data("sample").examples
    windows = tokenize_windows(examples, tokenizer, WindowConfig(128, 48, 24))
    assert len(windows) > len(examples)  # short windows: long contexts are split
    hits = 0
    for i, idx in enumerate(windows.example_index):
        ex = examples[idx]
        if windows.start_positions[i] == 0:
            assert windows.end_positions[i] == 0
            continue
        hits += 1
        assert labelled_text(ex, windows, i).lower() == ex.answers[0].lower()
    # every answer is inside at least one window
    found = {windows.example_index[i] for i in range(len(windows)) if windows.start_positions[i] > 0}
    assert found == set(range(len(examples))) and hits >= len(examples)


def test_token_type_ids_only_for_bert(tokenizer):
    windows = tokenize_windows(load_data("sample").examples[:3], tokenizer)
    has_types = "token_type_ids" in tokenizer.model_input_names
    assert (windows.token_type_ids is not None) == has_types
    if has_types:
        assert set(windows.token_type_ids[0]) == {0, 1}


def test_stride_is_the_overlap(tokenizer):
    context = " ".join(f"word{i}" for i in range(300))
    ex = Example("x", "Which word?", context, ("word250",), (context.find("word250"),))
    windows = tokenize_windows([ex], tokenizer, WindowConfig(max_seq_length=64, doc_stride=20, max_query_length=16))
    first, second = windows.offsets[0], windows.offsets[1]
    ctx1 = [tuple(o) for o in first if o[0] >= 0]
    ctx2 = [tuple(o) for o in second if o[0] >= 0]
    assert ctx1[-20:] == ctx2[:20]
    assert max(windows.start_positions) > 0


def test_long_questions_are_truncated(tokenizer):
    ex = Example("x", "why " * 200 + "?", "Because it is.", ("it is",), (8,))
    windows = tokenize_windows([ex], tokenizer, WindowConfig(64, 16, 10))
    assert len(windows) == 1 and len(windows.input_ids[0]) <= 64
    assert labelled_text(ex, windows, 0) == "it is"


def test_unanswerable_points_at_cls(tokenizer):
    ex = Example("x", "Who?", "Nobody knows.")
    windows = tokenize_windows([ex], tokenizer)
    assert windows.start_positions.tolist() == [0] and windows.end_positions.tolist() == [0]
    assert np.all(windows.offsets[0][0] == -1)


def question_segment(windows, tokenizer, i: int = 0) -> str:
    """The decoded tokens before the context of window `i` (its CLS and question segment)."""
    first = int(np.flatnonzero(windows.offsets[i][:, 0] >= 0)[0])
    return tokenizer.decode(windows.input_ids[i][:first], skip_special_tokens=True)


def test_use_title_reads_the_title_in_front_of_the_question(tokenizer):
    ex = Example(
        "x", "Where was she born?", "She was born in Houston, Texas.", ("Houston",), (16,), "Saint_Barth%C3%A9lemy"
    )
    plain = tokenize_windows([ex], tokenizer, WindowConfig())
    titled = tokenize_windows([ex], tokenizer, WindowConfig(use_title=True))
    assert "barth" not in question_segment(plain, tokenizer).lower()
    segment = "".join(question_segment(titled, tokenizer).lower().split())  # uncased BERT strips the accent
    assert segment.startswith("saintbarth") and segment.endswith("lemy:wherewassheborn?")
    # the context, its offsets and the label are the same, shifted by the title's tokens
    shift = len(titled.input_ids[0]) - len(plain.input_ids[0])
    assert shift > 0 and titled.start_positions[0] == plain.start_positions[0] + shift
    assert labelled_text(ex, titled, 0) == "Houston"
    untitled = dataclasses.replace(ex, title="  ")  # no title: the question alone, as without use_title
    assert tokenize_windows([untitled], tokenizer, WindowConfig(use_title=True)).input_ids[0].tolist() == (
        plain.input_ids[0].tolist()
    )


def test_a_long_title_is_cut_and_the_query_bound_holds(tokenizer):
    ex = Example("x", "Who wrote it?", "It was written by Ann. " * 30, ("Ann",), (18,), "word " * 300)
    config = WindowConfig(64, 8, 20, use_title=True)
    windows = tokenize_windows([ex], tokenizer, config)
    segment = question_segment(windows, tokenizer)
    assert segment.split().count("word") <= TITLE_TOKENS
    question_tokens = len(tokenizer(segment, add_special_tokens=False)["input_ids"])
    assert question_tokens <= config.max_query_length and all(len(ids) <= 64 for ids in windows.input_ids)
    assert any(labelled_text(ex, windows, i) == "Ann" for i in range(len(windows)) if windows.start_positions[i])


def test_a_short_query_length_keeps_most_of_it_for_the_question(tokenizer):
    ex = Example("x", "Who wrote it?", "It was written by Ann.", ("Ann",), (18,), "word " * 30)
    segment = question_segment(tokenize_windows([ex], tokenizer, WindowConfig(64, 8, 16, use_title=True)), tokenizer)
    assert segment.split().count("word") <= 4 and "wrote it?" in segment.lower()


@pytest.mark.parametrize(
    ("title", "words"),
    [
        ("Super_Bowl_50", "Super Bowl 50"),
        ("Bill_%26_Melinda_Gates", "Bill & Melinda Gates"),
        ("100% pure x", "100% pure x"),
    ],
)
def test_title_text_decodes_wiki_slugs_only(title, words):
    assert title_text(title) == words


def test_use_title_is_saved_with_the_model(tmp_path):
    (tmp_path / "qatune.json").write_text(
        json.dumps({"config": {"max_seq_length": 128, "doc_stride": 32, "use_title": True}})
    )
    assert saved_window(tmp_path) == WindowConfig(128, 32, use_title=True)
    (tmp_path / "qatune.json").write_text(json.dumps({"config": {"doc_stride": 32}}))  # older: no titles
    assert saved_window(tmp_path).use_title is False


@pytest.mark.parametrize(
    "config",
    [
        WindowConfig(use_title=1),  # type: ignore[arg-type]  # a hand-edited qatune.json
        WindowConfig(use_title="yes"),  # type: ignore[arg-type]
        WindowConfig(256, 200, 64),
        WindowConfig(8, 2, 2),
        WindowConfig(64, 0, 60),
        WindowConfig(256, 96, 0),  # 0 or less would not cut questions at all
        WindowConfig(256, 96, -5),
        WindowConfig(256.5, 96, 64),  # type: ignore[arg-type]  # a hand-edited qatune.json
        WindowConfig(True, 0, 1),  # type: ignore[arg-type]
    ],
)
def test_bad_window_settings(config):
    with pytest.raises(ConfigError):
        config.check()


def _long_context_data(tmp_path):
    """A data file whose second question's context makes many windows at a short window."""
    import json

    long = "The river runs to the sea past the old mill. " * 40
    paragraphs = [
        {
            "context": "Paris is in France.",
            "qas": [{"id": "short", "question": "Where?", "answers": [{"text": "France", "answer_start": 12}]}],
        },
        {
            "context": long,
            "qas": [{"id": "long-one", "question": "Where?", "answers": [{"text": "sea", "answer_start": 22}]}],
        },
    ]
    path = tmp_path / "data.json"
    path.write_text(json.dumps({"data": [{"title": "T", "paragraphs": paragraphs}]}))
    return path


@pytest.mark.parametrize("command", ["evaluate", "train"])
def test_the_data_work_bound_is_windows_a_question(command, tiny_bert, tmp_path, monkeypatch, capsys):
    """$QATUNE_MAX_WINDOWS bounds what one question of a data file may cost, counted after tokenising:
    the error names the file and the question, and training leaves no folder behind."""
    from qatune.cli.main import main

    data = _long_context_data(tmp_path)
    window = ["--max-seq-length", "48", "--doc-stride", "8", "--max-query-length", "8"]
    args = {
        "evaluate": ["evaluate", "--model", str(tiny_bert), "--data", str(data)],
        "train": ["train", "--model", str(tiny_bert), "--train-data", str(data), "--eval-data", str(data)]
        + ["--output", str(tmp_path / "out")],
    }[command]
    monkeypatch.setenv("QATUNE_MAX_WINDOWS", "8")
    assert main([*args, *window, "-q"]) == 2
    err = capsys.readouterr().err
    assert "question 'long-one'" in err and "over the limit of 8 a question" in err and str(data) in err, err
    assert not (tmp_path / "out").exists()
    monkeypatch.setenv("QATUNE_MAX_WINDOWS", "eight")
    assert main([*args, *window, "-q"]) == 2
    assert "$QATUNE_MAX_WINDOWS: expected a positive number" in capsys.readouterr().err

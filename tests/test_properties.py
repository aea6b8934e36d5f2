"""Property-based tests (Hypothesis): whatever the input, the data loader and the argument parser either
succeed or raise qatune's own error, never anything else."""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qatune.cli.main import build_parser
from qatune.data.squad import load_file
from qatune.errors import ConfigError, DataError
from qatune.training.config import TrainConfig

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10, 10**6), st.floats(allow_nan=True), st.text(max_size=30))
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=25,
)
# SQuAD-shaped documents whose every field may have the wrong type or value.
texts = st.one_of(st.text(max_size=40), scalars)
answers = st.lists(
    st.fixed_dictionaries({"text": texts, "answer_start": st.one_of(st.integers(-5, 60), scalars)}), max_size=3
)
qas = st.lists(
    st.fixed_dictionaries(
        {
            "id": st.one_of(st.text(max_size=5), st.integers(0, 3), scalars),
            "question": texts,
            "answers": st.one_of(answers, scalars),
        },
        optional={"is_impossible": st.one_of(st.booleans(), scalars)},
    ),
    max_size=3,
)
paragraphs = st.lists(st.fixed_dictionaries({"context": texts, "qas": st.one_of(qas, scalars)}), max_size=3)
squad_docs = st.fixed_dictionaries(
    {
        "data": st.lists(
            st.fixed_dictionaries({"title": texts, "paragraphs": st.one_of(paragraphs, scalars)}), max_size=3
        )
    }
)


def _load(tmp_path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    try:
        dataset = load_file(path)
    except DataError as exc:
        assert str(exc) and "\n" not in str(exc)  # one line
        return
    for example in dataset:  # what loads is valid: answers sit at their offsets
        for text, start in zip(example.answers, example.answer_starts):
            assert example.context[start : start + len(text)] == text


@SETTINGS
@given(doc=st.one_of(squad_docs, json_values))
def test_squad_loader_never_crashes(tmp_path, doc):
    _load(tmp_path, "doc.json", json.dumps(doc).encode())


@SETTINGS
@given(
    rows=st.lists(
        st.one_of(
            json_values,
            st.fixed_dictionaries(
                {
                    "id": texts,
                    "context": texts,
                    "question": texts,
                    "answers": st.fixed_dictionaries(
                        {"text": st.lists(texts, max_size=2), "answer_start": st.lists(st.integers(-2, 40), max_size=2)}
                    ),
                }
            ),
        ),
        max_size=5,
    )
)
def test_jsonl_loader_never_crashes(tmp_path, rows):
    _load(tmp_path, "rows.jsonl", "\n".join(json.dumps(r) for r in rows).encode())


@SETTINGS
@given(content=st.binary(max_size=200))
def test_loader_on_arbitrary_bytes(tmp_path, content):
    _load(tmp_path, "bytes.json", content)


def _convert(tmp_path, name, content: bytes) -> None:
    """`data convert` succeeds with answers at their offsets, or raises qatune's DataError."""
    from qatune.data.formats import convert

    path = tmp_path / name
    path.write_bytes(content)
    try:
        dataset, summary = convert(path)
    except DataError:
        return
    assert summary.questions == len(dataset.examples) > 0
    for example in dataset:
        for text, start in zip(example.answers, example.answer_starts):
            assert example.context[start : start + len(text)] == text


cells = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=25)


@SETTINGS
@given(rows=st.lists(st.tuples(cells, cells, cells), max_size=5), delimiter=st.sampled_from(",;\t|"))
def test_converting_a_spreadsheet_never_crashes(tmp_path, rows, delimiter):
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter)
    writer.writerows([("context", "question", "answer"), *rows])
    _convert(tmp_path, "rows.csv", out.getvalue().encode())


label_studio = st.lists(
    st.one_of(
        json_values,
        st.fixed_dictionaries(
            {
                "id": st.integers(0, 5),
                "data": st.fixed_dictionaries({"text": texts}, optional={"question": texts}),
                "annotations": st.lists(
                    st.fixed_dictionaries(
                        {"result": st.lists(st.fixed_dictionaries({"value": json_values}), max_size=3)},
                        optional={"was_cancelled": st.booleans()},
                    ),
                    max_size=2,
                ),
            }
        ),
    ),
    max_size=4,
)


@SETTINGS
@given(doc=st.one_of(label_studio, squad_docs, json_values), binary=st.binary(max_size=60))
def test_converting_exports_never_crashes(tmp_path, doc, binary):
    _convert(tmp_path, "export.json", json.dumps(doc).encode())
    _convert(tmp_path, "bytes.jsonl", binary)


FLAGS = [
    "--learning-rate",
    "--train-batch-size",
    "--num-train-epochs",
    "--train-sample",
    "--max-seq-length",
    "--doc-stride",
    "--weight-decay",
    "--warmup-ratio",
    "--max-grad-norm",
    "--micro-batch-size",
    "--eval-steps",
    "--max-steps",
    "--eval-at-start",
    "--no-eval-at-start",
    "--seed",
    "--bogus",
]
VALUES = st.one_of(
    st.sampled_from(
        ["0", "-1", "1", "8", "32", "1e-4", "nan", "inf", "-inf", "1e400", "0.5", "", "true", "x", "1e9", "64", "192"]
    ),
    st.text(max_size=6),
)


@SETTINGS
@given(pairs=st.lists(st.tuples(st.sampled_from(FLAGS), VALUES), max_size=6))
def test_train_arguments_parse_or_fail_cleanly(capsys, pairs):
    """`qatune train ARGS`: argparse either rejects with one `error:` line and exit 2, or the settings
    become a valid TrainConfig or a ConfigError; never another exception."""
    argv = ["train", "--output", "never-written"]
    for flag, value in pairs:
        argv += [flag] if flag.startswith(("--eval-at", "--no-")) else [flag, value]
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        err = capsys.readouterr().err
        assert exc.code == 2 and err.count("error:") == 1 and err.startswith("error:"), err
        return
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)}
    try:
        config = TrainConfig.from_dict(values)
    except ConfigError:
        return
    assert config.learning_rate > 0 and config.train_batch_size % config.micro_batch == 0


@pytest.mark.parametrize("argv", [["evaluate", "--limit"], ["ask", "--top-k", "0"], ["nonsense"], []])
def test_usage_errors_are_one_line(capsys, argv):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.startswith("error:") and len(err.strip().splitlines()) == 1

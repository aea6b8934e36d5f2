"""qatune.data.formats: annotation-tool exports and spreadsheets converted to SQuAD, every answer placed
by one rule and every skip counted."""

from __future__ import annotations

import json

import pytest

from qatune.data.formats import convert
from qatune.data.formats.locate import locate
from qatune.errors import DataError

CONTEXT = "Kraków was the capital of Poland. Warsaw became the capital in 1596. Warsaw is on the Vistula."


def test_locate_follows_the_rule_in_order():
    assert locate(CONTEXT, "Kraków", hint=0).outcome == "exact"
    assert (locate(CONTEXT, "Vistula").outcome, locate(CONTEXT, "Vistula").start) == ("located", 86)
    spaced = locate(CONTEXT, "the  VISTULA")
    assert (spaced.outcome, spaced.text) == ("located", "the Vistula")  # the context's own spelling
    assert locate(CONTEXT, "Warsaw", hint=70).start == 69  # the occurrence nearest the given offset
    by_question = locate(CONTEXT, "Warsaw", "Which city became the capital in 1596?")
    assert (by_question.outcome, by_question.start) == ("resolved", 34)
    assert locate(CONTEXT, "capital", "What?").outcome == "ambiguous"  # nothing tells the two apart
    assert locate(CONTEXT, "Gdańsk").outcome == "missing"


def test_a_spreadsheet_with_text_answers(tmp_path):
    path = tmp_path / "faq.csv"
    path.write_text(
        "\ufeffContext;Question;Answer\n"  # a BOM, another delimiter, capitalised headers
        f'"{CONTEXT}";Which city became the capital in 1596?;Warsaw\n'
        f'"{CONTEXT}";On which river is Warsaw?;vistula\n'
        f'"{CONTEXT}";What is the capital?;capital\n'  # twice in the context, the question tells nothing
        f'"{CONTEXT}";Where is Gdańsk?;Gdańsk\n'
        f'"{CONTEXT}";Who rules?;\n'  # no answer: unanswerable
        f'"{CONTEXT}";On which river is Warsaw?;Vistula\n'  # the same question again
        '"A quoted\nnewline";What is quoted?;quoted\n',
        encoding="utf-8",
    )
    dataset, summary = convert(path)
    assert summary.format == "csv" and summary.questions == 4 and summary.unanswerable == 1
    assert dict(summary.skipped) == {"answer not located": 2, "duplicate question": 1}
    assert summary.answers["resolved"] == 1 and summary.answers["ambiguous"] == summary.answers["missing"] == 1
    assert summary.examples["duplicate question"] == f"{path}: row 7"
    answers = {e.question: (e.answers, e.answer_starts) for e in dataset.examples}
    assert answers["On which river is Warsaw?"] == (("Vistula",), (86,))
    assert answers["What is quoted?"] == (("quoted",), (2,))


def test_a_label_studio_export(tmp_path):
    def task(i, spans, question="", done=True):
        question = question if question is None else question or f"Which city is case {i} about?"
        result = [
            {"type": "labels", "value": {"start": s, "end": e, "text": t, "labels": ["Answer"]}} for s, e, t in spans
        ]
        data = {"text": CONTEXT} | ({"question": question} if question else {})
        return {"id": i, "data": data, "annotations": [{"result": result, "was_cancelled": False}] if done else []}

    tasks = [
        task(1, [(34, 40, "Warsaw")]),
        task(2, [(30, 36, "Warsaw")]),  # offsets shifted by an edit: the text is found again
        task(3, []),  # annotated, no span: unanswerable
        task(4, [(34, 40, "Warsaw")], done=False),  # unlabelled
        task(5, [(34, 40, "Warsaw")], question=None),
    ]
    typed = task(6, [(86, 93, "Vistula")], question=None, done=True)
    typed["annotations"][0]["result"].append({"type": "textarea", "value": {"text": ["On which river?"]}})
    path = tmp_path / "export.json"
    path.write_text(json.dumps([*tasks, typed]))
    dataset, summary = convert(path)
    assert summary.format == "labelstudio" and summary.questions == 4 and summary.unanswerable == 1
    assert dict(summary.skipped) == {"unlabelled": 1, "no question (data.question or a text area)": 1}
    assert summary.answers["exact"] == 2 and summary.answers["resolved"] == 1
    assert {e.id: e.answer_starts for e in dataset.examples} == {"1": (34,), "2": (34,), "3": (), "6": (86,)}


def test_doccano_and_broken_squad_offsets(tmp_path):
    doccano = tmp_path / "spans.jsonl"
    doccano.write_text(
        json.dumps({"id": 7, "text": CONTEXT, "question": "Old capital?", "label": [[0, 6, "ANS"]]})
        + "\n"
        + json.dumps({"id": 8, "text": CONTEXT, "question": "Where?", "label": [[0, 999, "ANS"]]})
        + "\n"
    )
    dataset, summary = convert(doccano)
    assert summary.format == "doccano" and [e.answers for e in dataset.examples] == [("Kraków",)]
    assert dict(summary.skipped) == {"a span is not [start, end, tag] within the text": 1}
    squad = tmp_path / "broken.json"
    qas = [
        {"id": "a", "question": "Old capital?", "answers": [{"text": "Kraków", "answer_end": 6}]},
        {"id": "b", "question": "River?", "answers": [{"text": "Vistula", "answer_start": 88}]},  # before a strip
    ]
    squad.write_text(json.dumps({"data": [{"title": "T", "paragraphs": [{"context": CONTEXT, "qas": qas}]}]}))
    dataset, summary = convert(squad)
    assert [(e.answers, e.answer_starts) for e in dataset.examples] == [(("Kraków",), (0,)), (("Vistula",), (86,))]
    assert summary.answers["exact"] == 1 and summary.answers["located"] == 1


@pytest.mark.parametrize(
    "name, content, words",
    [
        (
            "no-answer-column.csv",
            "context,question\nx,y\n",
            "no column 'answer' (columns found: 'context', 'question')",
        ),
        ("all-bad.csv", "context,question,answer\nabc,,a\n", "no usable question (1 empty question); first:"),
        ("table.json", "context,question,answer\n", "malformed JSON at line 1"),
        ("list.json", "[1, 2]", "neither SQuAD JSON"),
        ("unlabelled.json", json.dumps([{"id": 1, "data": {"text": "t"}}]), "no usable question (1 unlabelled)"),
    ],
)
def test_bad_files_name_the_file_and_the_fix(tmp_path, name, content, words):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DataError) as caught:
        convert(path)
    assert str(path) in str(caught.value) and words in str(caught.value)

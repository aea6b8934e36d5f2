"""qatune.data.formats: annotation-tool exports and spreadsheets converted to SQuAD, every answer placed
by one rule and every skip counted."""

from __future__ import annotations

import csv
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
    assert summary.examples["duplicate question"] == f"{path}: line 7"
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


def test_label_studio_offsets_count_utf16_units_and_moved_spans_are_named(tmp_path):
    """JavaScript counts an emoji as two units, so every span after one is shifted by Python's count; a span
    whose offsets disagree with its text is placed by the text and named in the summary."""
    context = "Launch day 🚀 was 1969. The crew 👩‍🚀 landed on the Moon."
    units = lambda text: len(text.encode("utf-16-le")) // 2  # noqa: E731
    start = units(context[: context.index("Moon")])
    tasks = [
        {"id": 1, "data": {"text": context, "question": "Where?"},
         "annotations": [{"result": [{"value": {"start": start, "end": start + 4, "text": "Moon"}}]}]},
        {"id": 2, "data": {"text": context, "question": "When?"},
         "annotations": [{"result": [{"value": {"start": 0, "end": 4, "text": "1969"}}]}]},
    ]  # fmt: skip
    path = tmp_path / "export.json"
    path.write_text(json.dumps(tasks))
    dataset, summary = convert(path)
    assert [(e.answers, e.answer_starts) for e in dataset.examples] == [
        (("Moon",), (context.index("Moon"),)),
        (("1969",), (context.index("1969"),)),
    ]
    assert summary.answers["exact"] == 1 and summary.moved == 1 and summary.first_moved == f"{path}: task 2"
    python_made = [  # a pre-annotation written in Python counts characters: its text says which reading holds
        {"id": 3, "data": {"text": context, "question": "Where?"},
         "annotations": [{"result": [{"value": {"start": context.index("Moon"), "end": context.index("Moon") + 4,
                                                "text": "Moon"}}]}]},
    ]  # fmt: skip
    path.write_text(json.dumps(python_made))
    assert convert(path)[0].examples[0].answer_starts == (context.index("Moon"),)


def test_an_unclosed_quote_is_named_where_it_opens(tmp_path):
    path = tmp_path / "faq.csv"
    path.write_text('context,question,answer\n"a, b",q1,a\n"unclosed,q2,b\nc d,q3,c\nd e,q4,d\n')
    with pytest.raises(
        DataError,
        match=r"faq.csv: line 3: a quote .* never closed, so the rest of the file \(2 more lines\)",
    ):
        convert(path)
    path.write_text('"context,question,answer\nx a,q1,a\n')  # in the header: named, not a missing column
    with pytest.raises(DataError, match=r"faq.csv: line 1: a quote \(\"\) opened on this line is never closed"):
        convert(path)
    path.write_text('context,question,answer\n"unclosed,q1,a\n')  # on the last line: no more lines
    with pytest.raises(DataError, match=r"line 2: a quote .* never closed, so the rest of the file was"):
        convert(path)
    path.write_text("context,question,answer\n\n\nx a,q1,a,extra\n")  # blank lines before the bad row
    with pytest.raises(DataError, match="first: .*faq.csv: line 4"):
        convert(path)
    path.write_text('context,question,answer\n"a\nb, c",q1,a\nx a,q2,a')  # a quoted newline, no final newline
    assert convert(path)[1].questions == 2
    path.write_text('context,question,answer\n"unclosed,q1,a\nx a,q2,"a"\n')  # closed by the file's last quote
    with pytest.raises(DataError, match=r"line 2: fewer cells than columns, over several lines \(a quote never"):
        convert(path)
    for text in (  # lines end in CR only (old Mac); no newline at all after it
        'context,question,answer\r"unclosed,q1,a\rx a,q2,a\r',
        'context,question,answer\nx a,q1,a\n"unclosed,q2,a',
    ):
        path.write_bytes(text.encode())
        with pytest.raises(DataError, match=r"faq.csv: line [23]: a quote \(\"\) opened on this line is never closed"):
            convert(path)
    path.write_bytes(b'context,question,answer\r"a\rb",q1,a\rx a,q2,"a"')  # CR only, well quoted
    assert convert(path)[1].questions == 2
    with path.open("w", newline="") as f:  # what csv.writer (and Excel) write for a quote inside a cell
        csv.writer(f).writerows([["context", "question", "answer"], ['He said "go" at 9.', "When?", "9"]])
    dataset, summary = convert(path)
    assert dataset.examples[0].context == 'He said "go" at 9.' and not summary.skipped


def test_plausible_answers_survive_a_conversion(tmp_path):
    qas = [
        {"id": "a", "question": "Old capital?", "answers": [{"text": "Kraków", "answer_start": 0}]},
        {"id": "b", "question": "New river?", "answers": [], "is_impossible": True,
         "plausible_answers": [{"text": "Vistula", "answer_start": 86}]},
    ]  # fmt: skip
    path = tmp_path / "v2.json"
    path.write_text(json.dumps({"data": [{"title": "T", "paragraphs": [{"context": CONTEXT, "qas": qas}]}]}))
    dataset, _ = convert(path)
    assert dataset.examples[1].plausible == (("Vistula", 86),)
    qas[1]["plausible_answers"] = [{"text": "Vistula", "answer_end": 90}, {"text": "Danube", "answer_start": 3}]
    path.write_text(json.dumps({"data": [{"title": "T", "paragraphs": [{"context": CONTEXT, "qas": qas}]}]}))
    dataset, _ = convert(path)  # an offset that is off by a few (a stripped context) is repaired, as for answers
    assert dataset.examples[1].plausible == (("Vistula", 86),)


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

"""qatune.data.restated: answerable questions whose paragraph leaves a name or number unstated."""

from __future__ import annotations

import dataclasses
import random

import pytest

from qatune.cli.main import main
from qatune.data.adversarial import unstated
from qatune.data.restated import add_restated, restate
from qatune.data.squad import Example, QADataset, load_file
from qatune.errors import ConfigError, DataError

CONTEXT = "Tesla studied in Graz. In 1881, Tesla moved to Budapest to work at a telegraph company in Hungary."


def example(question: str, context: str = CONTEXT, answer: str = "Budapest") -> Example:
    return Example("q1", question, context, (answer,), (context.index(answer),), "Nikola_Tesla")


def test_a_phrase_that_states_the_number_goes_and_the_answer_stays():
    restated = restate(example("Where did Tesla move in 1881?"), random.Random(0))
    assert restated is not None and restated.id == "q1-restated"
    assert restated.context == CONTEXT.replace("In 1881, ", "")
    start = restated.answer_starts[0]
    assert restated.context[start : start + len("Budapest")] == "Budapest"
    assert unstated(restated) == ("number",)  # the mark a number negative bears, on a question still answerable


def test_a_name_inside_a_phrase_goes_too():
    restated = restate(example("Where in Hungary did Tesla move?"), random.Random(0))
    assert restated is not None and "Hungary" not in restated.context
    assert restated.context.endswith("a telegraph company.") and unstated(restated) == ("entity",)


@pytest.mark.parametrize(
    ("context", "after"),
    [
        ("Tesla, in 1881, moved to Budapest.", "Tesla moved to Budapest."),
        ("Later, in 1881 he moved to Budapest.", "Later, he moved to Budapest."),
        ("He moved to Budapest, in 1881.", "He moved to Budapest."),
        ("He moved to Budapest in 1881, and worked there.", "He moved to Budapest, and worked there."),
    ],
)
def test_the_commas_around_a_phrase_taken_out_read_as_written(context, after):
    restated = restate(example("Where did Tesla move in 1881?", context), random.Random(0))
    assert restated is not None and restated.context == after


@pytest.mark.parametrize(
    ("question", "context"),
    [
        ("Where did Tesla move?", CONTEXT),  # nothing of the question to leave unstated
        ("Where did Tesla move in 1881?", CONTEXT.replace("in Graz", "in Graz in 1875")),  # another year: a conflict
        ("Where did Tesla move in 1881?", CONTEXT.replace("In 1881, ", "In 1881. ")),  # no clause goes on
        ("Where did Tesla move in 1881?", CONTEXT + " The year 1881 was his first there."),  # not only in a phrase
        ("Where in Hungary did Tesla move?", CONTEXT.replace("in Hungary.", "in Hungary Proper.")),  # a longer name
    ],
)
def test_no_restatement_where_the_paragraph_would_say_something_else_or_still_state_it(question, context):
    assert restate(example(question, context), random.Random(0)) is None


def test_a_phrase_holding_the_answer_stays():
    context = "In 1881, Tesla moved to the city of Budapest."
    assert restate(example("Where did Tesla move in 1881?", context), random.Random(0)) is not None
    answer_holds_it = example("Where did Tesla move to in Budapest?", context, "city of Budapest")
    assert restate(answer_holds_it, random.Random(0)) is None


def test_add_restated_adds_answerable_copies_and_refuses_what_the_data_cannot_make(squad_dir):
    dev = load_file(squad_dir / "dev-v1.1.json.gz").select(sample=400, seed=1)
    made = add_restated(dev, 0.02, seed=3)
    extra = made.examples[len(dev) :]
    assert len(extra) == 8 and all(e.id.endswith("-restated") and e.answers for e in extra)
    assert "added 8 restated" in made.notes[-1]
    with pytest.raises(DataError, match="--restated 0.5 can make"):
        add_restated(dev, 0.5, seed=3)
    tiny = QADataset([example("Where did Tesla move?")], "tiny.json")
    with pytest.raises(DataError, match="lower --restated"):
        add_restated(tiny, 1.0)
    with pytest.raises(DataError, match="needs answerable questions"):
        add_restated(QADataset([dataclasses.replace(tiny.examples[0], answers=(), answer_starts=())], "t.json"), 1.0)
    twice = add_restated(QADataset([example("Where did Tesla move in 1881?")], "once.json"), 1.0)
    with pytest.raises(ConfigError, match="q1-restated' already exists"):
        add_restated(QADataset(twice.examples, "twice.json"), 1.0)


def test_data_cli_restated_needs_an_output(tmp_path, capsys, squad_dir):
    assert main(["data", str(squad_dir / "dev-v1.1.json.gz"), "--restated", "0.02"]) == 2
    assert "--restated makes a new data set" in capsys.readouterr().err


def test_data_cli_writes_the_restated_questions(tmp_path, squad_dir):
    out = tmp_path / "restated.json"
    assert main(["data", str(squad_dir / "dev-v1.1.json.gz"), "--restated", "0.02", "--output", str(out)]) == 0
    written = load_file(out)
    restated = [e for e in written.examples if e.id.endswith("-restated")]
    assert len(restated) == round(0.02 * 10570) and all(e.answers for e in restated)


def test_since_goes_only_before_a_number():
    context = "Later, since the Santer Commission was censured in Budapest, it moved."
    question = "Where was the Santer Commission censured?"
    assert restate(example(question, context, "Budapest"), random.Random(0)) is None
    restated = restate(
        example("Where has it been since 1990?", "It has been in Budapest since 1990."), random.Random(0)
    )
    assert restated is not None and restated.context == "It has been in Budapest."


@pytest.mark.parametrize(
    "context",
    [
        "As of 1881, Tesla lived in Budapest.",  # an idiom: "As, Tesla lived"
        "Tesla lived in 1881, Budapest and Graz.",  # the head of a list
    ],
)
def test_a_phrase_that_cannot_go_alone_stays(context):
    assert restate(example("Where did Tesla live in 1881?", context), random.Random(0)) is None

"""--negatives says what it made: an error (and nothing written) when it can make no unanswerable
question, a warning with the count when it makes fewer than asked."""

from __future__ import annotations

import json

import pytest

from conftest import article, tiny_config, write_squad
from qatune.cli.main import main
from qatune.data.negatives import add_negatives
from qatune.data.squad import load_file
from qatune.errors import DataError

PARAGRAPHS = [
    ("The river Elbe flows through Dresden.", "Which river flows through Dresden?", "Elbe"),
    ("Hamburg has the largest port of Germany.", "Which city has the largest port?", "Hamburg"),
    ("The Zugspitze is the highest mountain of Germany.", "What is the highest mountain?", "Zugspitze"),
]


def one_paragraph_articles(path):
    """Three articles of one paragraph each: no question has another paragraph in its article."""
    return write_squad(
        path,
        [article(c, [(f"q{i}", q, a, None)], title=f"A{i}") for i, (c, q, a) in enumerate(PARAGRAPHS)],
    )


def test_no_negative_possible_is_an_error_and_writes_nothing(tmp_path, capsys):
    source, out = one_paragraph_articles(tmp_path / "v1.json"), tmp_path / "v2.json"
    args = ["data", str(source), "--negatives", "1", "--negative-kinds", "article", "--output", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err
    assert "--negatives 1 (kinds article) can make 0 of the 3 unanswerable questions asked for" in err
    assert "article: another paragraph of the same article without the answers" in err
    assert "lower --negatives, add kinds (known: article, entity, number, antonym, negation)" in err
    assert not out.exists()


def test_fewer_negatives_than_asked_is_a_warning_with_the_count(tmp_path, capsys):
    elbe, port, mountain = PARAGRAPHS
    two = {
        "title": "Two",
        "paragraphs": [
            article(c, [(f"t{i}", q, a, None)])["paragraphs"][0] for i, (c, q, a) in enumerate((elbe, port))
        ],
    }
    alone = article(mountain[0], [("m", mountain[1], mountain[2], None)], title="Alone")
    source, out = write_squad(tmp_path / "v1.json", [two, alone]), tmp_path / "v2.json"
    args = ["data", str(source), "--negatives", "1", "--negative-kinds", "article", "--output", str(out), "--json"]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert captured.err == (
        f"warning: {source}: --negatives 1 made 2 of the 3 unanswerable questions asked for (kinds article fit "
        "only 2 of its 3 answerable questions)\n"
    )
    assert json.loads(captured.out)["unanswerable"] == 2
    assert sum(e.is_impossible for e in load_file(out)) == 2


def test_a_fraction_of_a_few_questions_asks_for_at_least_one(tmp_path):
    elbe, port, _ = PARAGRAPHS
    two = {
        "title": "Two",
        "paragraphs": [
            article(c, [(f"t{i}", q, a, None)])["paragraphs"][0] for i, (c, q, a) in enumerate((elbe, port))
        ],
    }
    dataset = load_file(write_squad(tmp_path / "v1.json", [two]))
    made = add_negatives(dataset, 0.1)  # 0.1 x 2 questions rounds to none: one is made all the same
    assert sum(not e.answers for e in made) == 1


def test_the_library_raises_only_where_negatives_were_asked_for(tmp_path):
    dataset = load_file(one_paragraph_articles(tmp_path / "v1.json"))
    with pytest.raises(DataError, match="can make 0 of the 2 unanswerable questions"):
        add_negatives(dataset, 0.5)
    lenient = add_negatives(dataset, 0.5, strict=False)  # the held-out calibration questions
    assert len(lenient) == len(dataset) and "added 0 unanswerable questions" in lenient.notes[-1]


def test_training_with_negatives_that_cannot_be_made_stops_before_the_model(tmp_path, monkeypatch, tiny_bert):
    from qatune.training.trainer import train

    def never(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr("qatune.training.trainer.load_model", never)
    source, out = one_paragraph_articles(tmp_path / "v1.json"), tmp_path / "run"
    config = tiny_config(
        tiny_bert,
        out,
        train_data=str(source),
        eval_data=None,
        negatives=0.5,
        negative_kinds="article",
        train_limit=None,
    )
    with pytest.raises(DataError, match=r"--negatives 0.5 \(kinds article\) can make 0 of the 2"):
        train(config, progress_bar=False)
    assert not out.exists()


def test_mined_negatives_come_from_any_article_and_say_what_they_made(tmp_path, capsys, caplog):
    """One-paragraph articles leave --negatives nothing to pair; the retriever finds the other articles'
    paragraphs (those sharing a word with the question), and the training set loads with them."""
    from qatune.training.setup import load_train_eval

    rivers = [
        ("The river Elbe flows through Dresden.", "Which river flows through Dresden?", "Elbe"),
        ("The river Rhine flows through Cologne.", "Which river flows through Cologne?", "Rhine"),
        *PARAGRAPHS[1:],  # sharing no word with the other questions: no negative for these two
    ]
    source = write_squad(
        tmp_path / "v1.json",
        [article(c, [(f"q{i}", q, a, None)], title=f"A{i}") for i, (c, q, a) in enumerate(rivers)],
    )
    out = tmp_path / "v2.json"
    assert main(["data", str(source), "--mined-negatives", "1", "--output", str(out), "--json"]) == 0
    made = {e.question: e.context for e in load_file(out) if e.is_impossible}
    assert made == {rivers[0][1]: rivers[1][0], rivers[1][1]: rivers[0][0]}
    assert "the best BM25-ranked paragraph without the answer" in json.loads(capsys.readouterr().out)["notes"][-1]
    assert main(["data", str(source), "--mined-negatives", "0.5"]) == 2
    assert "--mined-negatives makes a new data set" in capsys.readouterr().err
    config = tiny_config(
        "m", tmp_path / "run", train_data=str(source), eval_data=None, train_limit=None, mined_negatives=1.0
    )
    train, _, _ = load_train_eval(config)
    assert sum(e.id.endswith("-mined") for e in train) == 2
    assert "--mined-negatives 1 made 2 of the 4 unanswerable questions" in caplog.text

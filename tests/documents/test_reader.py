"""qatune.documents.reader and `qatune ask --index`: cited answers, shared normalisation, "not found"."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from qatune.answering.answerer import Query
from qatune.answering.factory import open_answerer
from qatune.cli.main import main
from qatune.documents.backends import open_index
from qatune.documents.build import build_index
from qatune.documents.reader import ask_index
from qatune.errors import ConfigError, DataError


@pytest.fixture
def index(docs, index_location, embedder):
    """The documents indexed, in each backend (a folder, a PostgreSQL database)."""
    build_index([docs], index_location, progress_bar=False, embedder=embedder)
    opened = open_index(index_location)
    opened._embedder = embedder
    return opened


@pytest.fixture(scope="module")
def answerer(tiny_bert):
    return open_answerer(str(tiny_bert))[0]


def test_answers_are_cited_at_their_place_in_the_file(index, answerer):
    (result,) = ask_index(index, answerer, ["How long does the battery last?"], top_k=3, passages=4)
    assert result.found and result.passages == 4 and 1 <= len(result.answers) <= 3
    for answer in result.answers:
        assert answer.passage[answer.passage_start : answer.passage_end] == answer.text
        if answer.file.endswith((".txt", ".md")):
            assert Path(answer.file).read_text()[answer.start : answer.end] == answer.text
        assert 1 <= answer.retrieval_rank <= 4
    probabilities = [a.probability for a in result.answers]
    assert probabilities == sorted(probabilities, reverse=True) and sum(probabilities) <= 1 + 1e-6


def test_one_passage_reads_as_the_same_context_asked_directly(index, answerer):
    """Shared normalisation over one passage is the plain answer over that context."""
    question = "What does the warranty not cover?"
    (result,) = ask_index(index, answerer, [question], top_k=3, passages=1)
    passage = index.search([question], 1)[0][0].passage
    direct = answerer.predict_many([(passage.text, question)], 3)[0]
    assert [a.text for a in result.answers] == [a.text for a in direct.answers]
    assert result.answers[0].probability == pytest.approx(direct.answers[0].probability, abs=1e-6)
    assert result.no_answer_probability == pytest.approx(direct.no_answer_probability, abs=1e-6)


def test_the_retrieval_weight_moves_answers_to_the_better_ranked_passages(index, answerer):
    question = "How long does the battery last?"
    hits = index.search([question], 4)[0]
    assert len({round(h.score, 3) for h in hits}) == 4  # distinct scores, so a weight tells them apart
    (alone,) = ask_index(index, answerer, [question], top_k=3, passages=4, retrieval_weight=0)
    (trusting,) = ask_index(index, answerer, [question], top_k=3, passages=4, retrieval_weight=1000)
    direct = answerer.predict_many([(hits[0].passage.text, question)], 3)[0]
    assert any(a.retrieval_rank > 1 for a in alone.answers)  # the untrained reader's spans come from anywhere
    assert [a.retrieval_rank for a in trusting.answers] == [1] * len(trusting.answers)
    assert [a.text for a in trusting.answers] == [a.text for a in direct.answers]
    # the best passage's spans and the null answer keep their scores: only the others' count for less
    assert trusting.answers[0].score == pytest.approx(direct.answers[0].score, abs=1e-4)
    with pytest.raises(ConfigError, match="retrieval weight"):
        ask_index(index, answerer, [question], retrieval_weight=float("nan"))


def test_each_passage_is_read_with_its_files_title(index):
    from qatune.documents.reader import joint_query

    hits = index.search(["How long does the battery last?"], 3)[0]
    query = joint_query("How long does the battery last?", hits, 3)
    assert query.titles == [h.title for h in hits] and "battery" in query.titles


def test_a_query_s_priors_are_one_finite_number_a_context():
    with pytest.raises(ConfigError, match="2 finite numbers"):
        Query([("a b", "q"), ("c d", "q")], joint=True, priors=[0.0])
    with pytest.raises(ConfigError, match="finite"):
        Query([("a b", "q")], joint=True, priors=[float("inf")])


def test_a_model_s_no_answer_decision_says_not_found(index, answerer):
    saved = answerer.decoding
    try:
        answerer.decoding = dataclasses.replace(saved, with_null=True, null_threshold=0.0)
        (refused,) = ask_index(index, answerer, ["Who won the cup in 1966?"], passages=3)
        answerer.decoding = dataclasses.replace(saved, with_null=True, null_threshold=1.0)
        (answered,) = ask_index(index, answerer, ["Who won the cup in 1966?"], passages=3)
    finally:
        answerer.decoding = saved
    assert not refused.found and answered.found and answered.answers
    with pytest.raises(DataError, match="empty question"):
        ask_index(index, answerer, ["  "])
    with pytest.raises(DataError, match="NUL"):
        ask_index(index, answerer, ["Who\x00?"])


def test_ask_index_from_the_command_line(index, index_location, tiny_bert, capsys):
    args = ["ask", "--index", index_location, "--model", str(tiny_bert), "--question", "Who pays extra?", "-q"]
    assert main([*args, "--passages", "3", "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["passages"] == 3 and body["index"] == index.info().location and body["answers"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.startswith("Q: Who pays extra?") and "[[" in out and "]]" in out


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--context", "x"], "drop --context"),
        (["--compare-with", "default"], "drop --compare-with"),
        (["--passages", "0"], "--passages"),
        (["--retrieval-weight", "-1"], "--retrieval-weight"),
        (["--retrieval-weight", "nan"], "--retrieval-weight"),
    ],
)
def test_ask_index_refuses_what_it_cannot_use(index, index_location, tiny_bert, capsys, extra, words):
    args = ["ask", "--index", index_location, "--model", str(tiny_bert), "--question", "Who?", *extra]
    try:
        code = main(args)
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and words in err and "Traceback" not in err

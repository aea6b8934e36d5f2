"""qatune.evaluation.metrics: official normalisation and scores, buckets, v2.0, and a cross-check with torchmetrics."""

from __future__ import annotations

import gzip
import json
import random

import pytest

from conftest import squad_file
from qatune.evaluation.metrics import (
    best_threshold,
    bucket,
    exact_match,
    f1_score,
    normalize_answer,
    squad_scores,
    threshold_curve,
)


def test_normalisation_follows_the_official_script():
    assert normalize_answer("The  Eiffel-Tower!") == "eiffeltower"
    assert normalize_answer("an apple, a pear and THE plum") == "apple pear and plum"
    assert exact_match("the Seine", "Seine.") == 1.0


def test_f1_token_overlap():
    assert f1_score("the third planet", "third planet from the Sun") == pytest.approx(2 * 1 * 0.5 / 1.5)
    assert f1_score("", "") == 1.0 and f1_score("x", "") == 0.0 and f1_score("cat", "dog") == 0.0


@pytest.mark.parametrize(
    "prediction, golds, verdict",
    [
        ("2018", ["2018", "in 2018"], "correct"),
        ("in 2018 by Google", ["2018"], "incorrect"),  # F1 0.4
        ("the third planet from the Sun", ["third planet"], "similar"),  # F1 0.67
        ("", ["Earth"], "incorrect"),  # an empty answer is never similar
        ("the", ["a"], "correct"),  # both normalise to empty: the official EM counts that as a match
        ("Mistborn", ["Paris"], "incorrect"),
    ],
)
def test_buckets(prediction, golds, verdict):
    assert bucket(prediction, golds) == verdict


def test_scores_with_counts():
    scores = squad_scores(
        {"a": "Paris", "b": "near Paris", "c": ""}, {"a": ["Paris"], "b": ["Paris France"], "c": ["Lyon"]}
    )
    assert scores["exact_match"] == pytest.approx(100 / 3)
    assert (scores["correct"], scores["similar"], scores["incorrect"], scores["total"]) == (1, 1, 1, 3)
    with pytest.raises(KeyError, match="no prediction"):
        squad_scores({}, {"a": ["x"]})


def test_v2_has_and_no_answer_and_threshold():
    refs = {"a": ["Paris"], "b": [], "c": []}
    preds = {"a": "Paris", "b": "", "c": "Lyon"}
    scores = squad_scores(preds, refs)
    assert scores["HasAns_exact"] == 100 and scores["NoAns_exact"] == 50 and scores["NoAns_total"] == 2
    threshold, best = best_threshold(preds, {"a": 0.1, "b": 0.9, "c": 0.8}, refs)
    assert best == pytest.approx(100.0) and threshold == pytest.approx(0.1)


def test_best_threshold_answers_tied_questions_together():
    refs = {"a": ["Paris"], "b": []}
    preds = {"a": "Paris", "b": "Lyon"}
    # the official script would claim F1 100 at 0.5 by answering a and not b, which no threshold does
    threshold, best = best_threshold(preds, {"a": 0.5, "b": 0.5}, refs)
    assert (
        best == pytest.approx(50.0) and threshold_curve(preds, {"a": 0.5, "b": 0.5}, refs, [threshold])[0]["f1"] == best
    )
    assert best_threshold(preds, {"a": 0.4, "b": 0.5}, refs) == (0.4, 100.0)


def test_threshold_curve_scores_each_threshold_as_the_official_script_would():
    refs = {"a": ["Paris"], "b": [], "c": [], "d": ["Lyon"]}
    spans = {"a": "Paris", "b": "Nice", "c": "Lyon", "d": "in Lyon city"}  # best spans, whatever the threshold
    na = {"a": 0.1, "b": 0.9, "c": 0.5, "d": 0.6}
    low, saved, best, never = threshold_curve(spans, na, refs, [0.0, 0.55, 0.1, 1.0])
    assert low == {
        "threshold": 0.0,
        "answered": 0.0,
        "exact_match": 50.0,
        "f1": 50.0,
        "HasAns_f1": 0.0,
        "NoAns_exact": 100.0,
    }
    d_f1 = f1_score("in Lyon city", "Lyon")
    for row, abstained in ((saved, {"b", "d"}), (best, {"b", "c", "d"}), (never, set())):
        preds = {q: "" if q in abstained else spans[q] for q in refs}
        official = squad_scores(preds, refs)
        assert row["exact_match"] == pytest.approx(official["exact_match"]) and row["f1"] == pytest.approx(
            official["f1"]
        )
        assert row["HasAns_f1"] == pytest.approx(official["HasAns_f1"])
        assert row["NoAns_exact"] == pytest.approx(official["NoAns_exact"])
        assert row["answered"] == 100.0 * (4 - len(abstained)) / 4
    assert never["HasAns_f1"] == pytest.approx(100 * (1 + d_f1) / 2) and never["NoAns_exact"] == 0.0
    threshold, top = best_threshold(spans, na, refs)
    assert threshold_curve(spans, na, refs, [threshold])[0]["f1"] == pytest.approx(top)
    only_answerable = threshold_curve({"a": "Paris"}, {"a": 0.3}, {"a": ["Paris"]}, [0.5])[0]
    assert only_answerable["NoAns_exact"] is None and only_answerable["HasAns_f1"] == 100.0


def _dev_predictions(seed: int = 0):
    """Realistic, varied predictions for every dev question: gold, trimmed, padded, wrong, empty."""
    doc = json.load(gzip.open(squad_file("dev-v1.1.json.gz"), "rt", encoding="utf-8"))
    rng = random.Random(seed)
    preds, refs = {}, {}
    for art in doc["data"]:
        for para in art["paragraphs"]:
            ctx = para["context"]
            for qa in para["qas"]:
                gold = qa["answers"][rng.randrange(len(qa["answers"]))]
                s, e = gold["answer_start"], gold["answer_start"] + len(gold["text"])
                kind = rng.randrange(5)
                if kind == 0:
                    pred = gold["text"]
                elif kind == 1:
                    pred = ctx[s : max(s + 1, e - rng.randrange(1, 8))]
                elif kind == 2:
                    pred = ctx[max(0, s - rng.randrange(1, 20)) : e + rng.randrange(0, 20)]
                elif kind == 3:
                    j = rng.randrange(len(ctx) - 10)
                    pred = ctx[j : j + rng.randrange(1, 30)]
                else:
                    pred = ""
                preds[qa["id"]] = pred
                refs[qa["id"]] = [a["text"] for a in qa["answers"]]
    return preds, refs


def test_matches_torchmetrics_on_real_dev_predictions():
    from torchmetrics.text import SQuAD

    preds, refs = _dev_predictions()
    ours = squad_scores(preds, refs)
    metric = SQuAD()
    theirs = metric(
        [{"prediction_text": p, "id": q} for q, p in preds.items()],
        [{"answers": {"answer_start": [0] * len(refs[q]), "text": refs[q]}, "id": q} for q in preds],
    )
    assert ours["total"] == 10570
    assert ours["exact_match"] == pytest.approx(float(theirs["exact_match"]), abs=1e-3)
    assert ours["f1"] == pytest.approx(float(theirs["f1"]), abs=1e-3)
    assert 20 < ours["exact_match"] < 80  # the predictions really are mixed

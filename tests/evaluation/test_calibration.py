"""qatune.evaluation.calibration: temperature fitting on synthetic scores, ECE, the saved file."""

from __future__ import annotations

import json

import numpy as np
import pytest

from qatune.errors import ModelError
from qatune.evaluation.calibration import fit, fit_temperature, resolve_target, top1_confidence
from qatune.evaluation.metrics import expected_calibration_error, reliability
from qatune.models.settings import MAX_TEMPERATURE, MIN_TEMPERATURE, Calibration, read_calibration, write_calibration


def synthetic(true_temperature: float, questions: int = 3000, seed: int = 0):
    """Questions whose top-1 answer is right with probability softmax(scores / T)[top]."""
    rng = np.random.default_rng(seed)
    gaps, correct = [], []
    for _ in range(questions):
        scores = rng.normal(scale=rng.uniform(0.5, 4.0), size=rng.integers(2, 60))
        gap = scores - scores.max()
        p = 1 / np.exp(gap / true_temperature).sum()
        gaps.append(gap)
        correct.append(float(rng.random() < p))
    return gaps, np.array(correct)


@pytest.mark.parametrize("true_temperature", [0.5, 1.0, 3.0])
def test_fit_recovers_a_known_temperature(true_temperature):
    gaps, correct = synthetic(true_temperature)
    assert fit_temperature(gaps, correct) == pytest.approx(true_temperature, rel=0.15)


def test_fitting_lowers_the_calibration_error():
    gaps, correct = synthetic(3.0)
    calibration = fit(gaps, correct, "synthetic")
    assert calibration.ece_before > 0.1 > 0.05 > calibration.ece_after
    assert calibration.questions == 3000 and 0 < calibration.exact_match < 100


def test_top1_confidence_by_hand():
    gaps = [np.array([0.0, -1.0]), np.array([0.0])]
    assert np.allclose(top1_confidence(gaps, 1.0), [1 / (1 + np.exp(-1)), 1.0])
    assert np.allclose(top1_confidence(gaps, 0.5), [1 / (1 + np.exp(-2)), 1.0])


def test_top1_confidence_sums_the_top_answers_spans():
    gaps = [np.array([0.0, -1.0, -2.0])]
    top = [np.array([0.0, -2.0])]  # two spans that are one answer ('Denver Broncos', 'the Denver Broncos')
    z = 1 + np.exp(-1) + np.exp(-2)
    assert np.allclose(top1_confidence(gaps, 1.0, top), [(1 + np.exp(-2)) / z])
    assert top1_confidence(gaps, 1.0, top)[0] > top1_confidence(gaps, 1.0)[0]


def test_fit_recovers_a_known_temperature_with_answer_groups():
    rng = np.random.default_rng(1)
    gaps, tops, correct = [], [], []
    for _ in range(3000):
        gap = rng.normal(scale=rng.uniform(0.5, 4.0), size=rng.integers(3, 60))
        gap -= gap.max()
        top = np.concatenate([[0.0], rng.choice(gap[gap < 0], size=rng.integers(0, 3), replace=False)])
        gaps.append(gap)
        tops.append(top)
        correct.append(float(rng.random() < np.exp(top / 2.0).sum() / np.exp(gap / 2.0).sum()))
    assert fit_temperature(gaps, np.array(correct), tops) == pytest.approx(2.0, rel=0.15)


def test_soft_targets_are_accepted():
    gaps, correct = synthetic(1.0)
    soft = np.clip(correct * 0.8 + 0.1, 0, 1)  # a soft label per question (token F1, say)
    assert MIN_TEMPERATURE < fit_temperature(gaps, soft) < MAX_TEMPERATURE


def test_the_target_auto_follows_how_many_answers_questions_have():
    assert resolve_target("auto", [["Paris"], ["1850"], ["red", "Red"]]) == "f1"
    assert resolve_target("auto", [["Paris", "Paris", "paris"], ["1850", "in 1850"], ["red"]]) == "exact_match"
    assert resolve_target("exact_match", [["Paris"]]) == "exact_match"
    with pytest.raises(ValueError, match="target"):
        resolve_target("accuracy", [["Paris"]])


def test_expected_calibration_error_by_hand():
    # bin [0.9, 1.0): 4 questions at 0.95, 2 right -> gap 0.45; bin [0.2, 0.3): 1 at 0.25, right -> gap 0.75
    confidence = [0.95, 0.95, 0.95, 0.95, 0.25]
    correct = [1, 1, 0, 0, 1]
    assert expected_calibration_error(confidence, correct) == pytest.approx(4 / 5 * 0.45 + 1 / 5 * 0.75)
    bins = reliability(confidence, correct)
    assert [b["questions"] for b in bins] == [0, 0, 1, 0, 0, 0, 0, 0, 0, 4]
    assert expected_calibration_error([1.0], [1]) == 0.0  # confidence 1.0 falls in the last bin


def test_saved_calibration_round_trip_and_damage(tmp_path):
    assert read_calibration(tmp_path) is None
    calibration = Calibration(1.7, 100, "train.json", 55.0, 0.2, 0.03)
    write_calibration(tmp_path, calibration)
    assert read_calibration(tmp_path) == calibration
    old = {k: v for k, v in calibration.__dict__.items() if k != "target"}  # written before targets existed
    (tmp_path / "calibration.json").write_text(json.dumps(old))
    assert read_calibration(tmp_path) == calibration and calibration.target == "exact_match"
    for bad in ({"temperature": 0}, {"temperature": "hot"}, {"temperature": float("nan")}, {"target": "auto"}, {}):
        (tmp_path / "calibration.json").write_text(json.dumps({**calibration.__dict__, **bad} if bad else {}))
        with pytest.raises(ModelError, match="calibration"):
            read_calibration(tmp_path)

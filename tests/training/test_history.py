"""The history record's type lists every key an eval line carries: the Scores keys, spelled twice by
necessity (a TypedDict names its keys), are kept from drifting apart here."""

from __future__ import annotations

from qatune.evaluation.results import NULL_KEYS, SPLIT_KEYS, Scores
from qatune.training.history import HistoryValues


def test_history_values_name_every_scores_key():
    scores = Scores(
        1.0, 2.0, 3, 1, 1, 1, 0.1, 0.2, 0.5, 1.0, 3.0, dict.fromkeys(SPLIT_KEYS, 0.0), dict.fromkeys(NULL_KEYS)
    )
    written = set(scores.to_dict()) - {"questions_per_second"}
    assert written <= set(HistoryValues.__annotations__), written - set(HistoryValues.__annotations__)

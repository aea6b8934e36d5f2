"""The records of a run's history, the lines of metrics.jsonl: one per logging step, per evaluation, and one
for an early stop or a divergence.

The trainer writes them and hands each to its callback and the trackers; the sweep worker reads a trial's
back while it runs. They go to JSON Lines unchanged, so a `TypedDict` types them, not a class: every key
written is listed here, with the kind of record that carries it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal, TypedDict, cast

from qatune.evaluation.results import Scores

Kind = Literal["train", "eval", "early_stop", "diverged"]


class HistoryValues(TypedDict, total=False):
    """What a record holds besides its kind and where training stood; which keys depends on the kind."""

    # "train", every logging_steps: the mean loss since the last one, and the learning rate
    loss: float
    learning_rate: float
    # "eval": the mean training loss since the last evaluation (None before any step), then the
    # evaluation's Scores as `Scores.to_dict` names them, in its order, less questions_per_second
    train_loss: float | None
    exact_match: float
    f1: float
    total: int
    correct: int
    similar: int
    incorrect: int
    HasAns_exact: float  # the SPLIT_KEYS, where some questions have no answer
    HasAns_f1: float
    HasAns_total: float
    NoAns_exact: float
    NoAns_f1: float
    NoAns_total: float
    ece: float
    ece_raw: float
    best_exact_match: float | None  # the NULL_KEYS, for a model that can answer "no answer"
    best_exact_match_threshold: float | None
    best_f1: float | None
    best_f1_threshold: float | None
    null_threshold: float | None
    eval_loss: float | None
    seconds: float
    # "early_stop": the best evaluation so far (qatune.training.best)
    best_step: int | None
    best_value: float | None
    # "diverged": what was not finite (loss, gradient norm, the model's output) and its value as text
    what: str
    value: str


class HistoryRecord(HistoryValues):
    """One line of metrics.jsonl: its kind and where training stood, then the values of that kind."""

    type: Kind
    step: int
    epoch: float
    windows_seen: int
    elapsed: float


def eval_values(train_loss: float | None, scores: Scores) -> HistoryValues:
    """The values of an "eval" record: the training loss since the last evaluation, then the scores."""
    metrics = {k: v for k, v in scores.to_dict().items() if k != "questions_per_second"}
    return cast(HistoryValues, {"train_loss": train_loss, **metrics})  # Scores.to_dict: its keys, listed above


def history_records(read: Iterable[Mapping[str, object]]) -> list[HistoryRecord]:
    """The records of a metrics.jsonl as read back (`read_jsonl`): the trainer wrote them as HistoryRecords."""
    return [cast(HistoryRecord, record) for record in read]


def metric_value(record: HistoryRecord, name: str) -> float | None:
    """The record's figure `name` (a sweep's metric: exact_match, f1, eval_loss, ...); None where it has none."""
    value = record.get(name)
    return float(value) if isinstance(value, (int, float)) else None

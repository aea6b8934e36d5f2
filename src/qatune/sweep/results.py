"""A sweep's results from its storage: the trial table, the top runs, and the study's picks.

Pure functions from Optuna's frozen trials to typed rows (`TrialRow`, `SweepReport`), so `qatune sweep show`, the study
report and the tests all read the same numbers.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from qatune.fmt import cell
from qatune.io import JsonObject, atomic_write_json, atomic_write_text
from qatune.layout import EVAL_SCORES, RESULTS_SUMMARY, RESULTS_TABLE, RESULTS_TRIALS
from qatune.sweep.spec import SweepSpec
from qatune.sweep.storage import counted
from qatune.training.config import Settings

METRIC_COLUMNS = EVAL_SCORES
# The study's Table 1: the extreme explorations it fine-tuned again.
PICKS = {
    "lowest_train_loss": ("train_loss", min),
    "most_correct": ("correct", max),
    "best_f1": ("f1", max),
    "lowest_eval_loss": ("eval_loss", min),
}


@dataclass(frozen=True)
class TrialRow:
    """One trial that counts, as `sweep show`, trials.csv/json and the study's picks see it."""

    trial: int
    name: str
    state: str  # complete, pruned, fail, running, waiting
    params: Mapping[str, Any]  # the searched settings' values, by parameter
    metrics: Mapping[str, float | None]  # METRIC_COLUMNS of its last evaluation
    value: float | None  # the sweep's metric, as Optuna was told
    evaluations: int
    seconds: float | None
    resumed_from: int | None  # the attempt a retry resumed from
    worker: str | None
    error: str | None
    history: Sequence[Mapping[str, Any]] = ()  # its evaluations (EVAL_POSITION + EVAL_SCORES each)

    def to_dict(self) -> JsonObject:
        """The JSON row (trials.json, `sweep show --json`): settings and metrics flat, as always."""
        head = {"trial": self.trial, "name": self.name, "state": self.state, **self.params, **self.metrics}
        tail = {k: getattr(self, k) for k in ("value", "evaluations", "seconds", "resumed_from", "worker", "error")}
        return {**head, **tail, "history": list(self.history)}

    @classmethod
    def from_dict(cls, saved: Mapping[str, Any], params: Sequence[str] = ()) -> TrialRow:
        """A row `to_dict` wrote (a study's cached sweep stage); `params` names the searched settings."""
        return cls(
            saved.get("trial", 0),
            saved["name"],
            saved.get("state", "complete"),
            {name: saved.get(name) for name in params},
            {column: saved.get(column) for column in METRIC_COLUMNS},
            saved.get("value"),
            saved.get("evaluations", 0),
            saved.get("seconds"),
            saved.get("resumed_from"),
            saved.get("worker"),
            saved.get("error"),
            saved.get("history") or (),
        )


def _values(t: FrozenTrial, spec: SweepSpec) -> Settings:
    """A trial's settings: as it saved them, else from its draws; none while another worker (sharing the
    storage) is still drawing them, one parameter at a time."""
    saved: Settings | None = t.user_attrs.get("values")
    if saved:
        return saved
    return spec.values(t.params) if t.params and set(spec.params) <= set(t.params) else {}


def _row(t: FrozenTrial, spec: SweepSpec) -> TrialRow:
    values = _values(t, spec)
    metrics = t.user_attrs.get("metrics") or {}
    retried = t.system_attrs.get("retry_history") or []
    history = t.user_attrs.get("history") or []
    return TrialRow(
        trial=t.number,
        name=f"trial-{t.number}",
        state=t.state.name.lower(),
        params={name: values.get(name) for name in spec.params},
        metrics={column: metrics.get(column) for column in METRIC_COLUMNS},
        value=t.value,
        evaluations=len(history),
        seconds=t.user_attrs.get("seconds"),
        resumed_from=retried[0] if retried else None,
        worker=t.user_attrs.get("worker"),
        error=t.user_attrs.get("error"),
        history=history,
    )


def trial_rows(trials: list[FrozenTrial], spec: SweepSpec) -> list[TrialRow]:
    """One row per trial that counts (retried attempts fold into their retry), in trial order."""
    return [_row(t, spec) for t in sorted(counted(trials), key=lambda t: t.number)]


def top(rows: Sequence[TrialRow], spec: SweepSpec, n: int = 10) -> list[TrialRow]:
    """The n best finished trials by the sweep's metric."""
    done = [r for r in rows if r.state == "complete" and r.value is not None]
    return sorted(done, key=lambda r: r.value or 0.0, reverse=spec.metric.goal == "maximize")[:n]


def picks(rows: Sequence[TrialRow]) -> dict[str, TrialRow]:
    """The extreme explorations: lowest train loss, most correct answers, best F1, lowest eval loss."""
    done = [r for r in rows if r.state == "complete"]
    out = {}
    for pick, (column, choose) in PICKS.items():
        scored = [r for r in done if r.metrics.get(column) is not None]
        if scored:  # ties (say, equal correct counts) go to the higher F1
            sign = 1 if choose is max else -1
            out[pick] = choose(scored, key=lambda r: (r.metrics[column], sign * (r.metrics.get("f1") or 0.0)))
    return out


def counts(trials: list[FrozenTrial]) -> dict[str, int]:
    states = Counter(t.state for t in counted(trials))
    return {
        "complete": states[TrialState.COMPLETE],
        "running": states[TrialState.RUNNING],
        "pruned": states[TrialState.PRUNED],
        "failed": states[TrialState.FAIL],
        "waiting": states[TrialState.WAITING],
    }


def table_columns(spec: SweepSpec) -> list[str]:
    return [
        "name",
        "state",
        *spec.params,
        "train_loss",
        "eval_loss",
        "exact_match",
        "f1",
        "correct",
        "similar",
        "incorrect",
        "evaluations",
        "seconds",
    ]


def format_table(rows: Sequence[Mapping[str, Any]], columns: list[str]) -> str:
    """A plain aligned text table (the terminal view; CSV and JSON carry the same rows)."""
    cells = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def to_csv(rows: Sequence[Mapping[str, Any]], columns: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


@dataclass(frozen=True)
class SweepReport:
    """Everything `sweep show` prints and writes: the trials, the best, the top runs and the picks."""

    name: str
    method: str
    metric: Mapping[str, str]  # name, goal
    counts: Mapping[str, int]
    best: TrialRow | None
    top: list[str]  # trial names, best first
    picks: dict[str, str]  # pick -> trial name
    trials: list[TrialRow]
    files: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)  # the table's columns
    params: list[str] = field(default_factory=list)  # the searched settings

    def to_dict(self) -> JsonObject:
        """The JSON object (`sweep show --json`, a study's sweep stage), in the order it always had."""
        head = {"name": self.name, "method": self.method, "metric": dict(self.metric), "counts": dict(self.counts)}
        best = self.best.to_dict() if self.best else None
        rows = [r.to_dict() for r in self.trials]
        tail = {"files": self.files, "columns": self.columns, "params": self.params}
        return {**head, "best": best, "top": self.top, "picks": self.picks, "trials": rows, **tail}

    @classmethod
    def from_dict(cls, saved: Mapping[str, Any]) -> SweepReport:
        """A report `to_dict` wrote (a study's cached sweep stage, its results.json)."""
        params = list(saved.get("params") or ())
        best = saved.get("best")
        return cls(
            saved["name"],
            saved["method"],
            dict(saved["metric"]),
            dict(saved["counts"]),
            TrialRow.from_dict(best, params) if best else None,
            list(saved.get("top") or ()),
            dict(saved.get("picks") or {}),
            [TrialRow.from_dict(r, params) for r in saved.get("trials") or ()],
            list(saved.get("files") or ()),
            list(saved.get("columns") or ()),
            params,
        )


def summary(trials: list[FrozenTrial], spec: SweepSpec, name: str, n_top: int = 10) -> SweepReport:
    """The report of a sweep's trials (files, columns and params are filled in by `show_sweep`)."""
    rows = trial_rows(trials, spec)
    best = top(rows, spec, 1)
    return SweepReport(
        name=name,
        method=spec.method,
        metric={"name": spec.metric.name, "goal": spec.metric.goal},
        counts=counts(trials),
        best=best[0] if best else None,
        top=[r.name for r in top(rows, spec, n_top)],
        picks={k: r.name for k, r in picks(rows).items()},
        trials=rows,
    )


def write_results(report: SweepReport, spec: SweepSpec, out: Path) -> list[Path]:
    """trials.csv (the table), trials.json (rows with their histories) and summary.json, atomically."""
    columns = ["trial", *table_columns(spec), "total", "value", "resumed_from", "worker", "error"]
    written = [out / RESULTS_TABLE, out / RESULTS_TRIALS, out / RESULTS_SUMMARY]
    rows = [r.to_dict() for r in report.trials]
    atomic_write_text(written[0], to_csv(rows, columns))
    atomic_write_json(written[1], rows)
    kept = {k: v for k, v in report.to_dict().items() if k not in ("trials", "files", "columns", "params")}
    atomic_write_json(written[2], kept)
    return written

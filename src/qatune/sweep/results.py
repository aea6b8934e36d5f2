"""A sweep's results from its storage: the trial table, the top runs, and the study's picks.

Pure functions from Optuna's frozen trials to rows (dicts), so `qatune sweep show`, the study
report and the tests all read the same numbers.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from qatune.fmt import cell
from qatune.io import atomic_write_json, atomic_write_text
from qatune.layout import EVAL_SCORES, RESULTS_SUMMARY, RESULTS_TABLE, RESULTS_TRIALS
from qatune.sweep.spec import SweepSpec
from qatune.sweep.storage import counted

METRIC_COLUMNS = EVAL_SCORES
# The study's Table 1: the extreme explorations it fine-tuned again.
PICKS = {
    "lowest_train_loss": ("train_loss", min),
    "most_correct": ("correct", max),
    "best_f1": ("f1", max),
    "lowest_eval_loss": ("eval_loss", min),
}


def trial_rows(trials: list[FrozenTrial], spec: SweepSpec) -> list[dict[str, Any]]:
    """One row per trial that counts (retried attempts fold into their retry), in trial order."""
    rows = []
    for t in sorted(counted(trials), key=lambda t: t.number):
        values = t.user_attrs.get("values") or (spec.values(t.params) if t.params else {})
        metrics = t.user_attrs.get("metrics") or {}
        history = t.user_attrs.get("history") or []
        retried = t.system_attrs.get("retry_history") or []
        row: dict[str, Any] = {
            "trial": t.number,
            "name": f"trial-{t.number}",
            "state": t.state.name.lower(),
            **{name: values.get(name) for name in spec.params},
        }
        for column in METRIC_COLUMNS:
            row[column] = metrics.get(column)
        row.update(
            {
                "value": t.value,
                "evaluations": len(history),
                "seconds": t.user_attrs.get("seconds"),
                "resumed_from": retried[0] if retried else None,
                "worker": t.user_attrs.get("worker"),
                "error": t.user_attrs.get("error"),
                "history": history,
            }
        )
        rows.append(row)
    return rows


def top(rows: list[dict[str, Any]], spec: SweepSpec, n: int = 10) -> list[dict[str, Any]]:
    """The n best finished trials by the sweep's metric."""
    done = [r for r in rows if r["state"] == "complete" and r["value"] is not None]
    return sorted(done, key=lambda r: r["value"], reverse=spec.metric.goal == "maximize")[:n]


def picks(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The extreme explorations: lowest train loss, most correct answers, best F1, lowest eval loss."""
    done = [r for r in rows if r["state"] == "complete"]
    out = {}
    for pick, (column, choose) in PICKS.items():
        scored = [r for r in done if r.get(column) is not None]
        if scored:  # ties (say, equal correct counts) go to the higher F1
            sign = 1 if choose is max else -1
            out[pick] = choose(scored, key=lambda r: (r[column], sign * (r.get("f1") or 0.0)))
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


def format_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A plain aligned text table (the terminal view; CSV and JSON carry the same rows)."""
    cells = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def to_csv(rows: list[dict[str, Any]], columns: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def summary(trials: list[FrozenTrial], spec: SweepSpec, name: str, n_top: int = 10) -> dict[str, Any]:
    """Everything `sweep show` prints, as one JSON-ready object."""
    rows = trial_rows(trials, spec)
    best = top(rows, spec, 1)
    return {
        "name": name,
        "method": spec.method,
        "metric": {"name": spec.metric.name, "goal": spec.metric.goal},
        "counts": counts(trials),
        "best": best[0] if best else None,
        "top": [r["name"] for r in top(rows, spec, n_top)],
        "picks": {k: r["name"] for k, r in picks(rows).items()},
        "trials": rows,
    }


def write_results(report: dict[str, Any], spec: SweepSpec, out: Path) -> list[Path]:
    """trials.csv (the table), trials.json (rows with their histories) and summary.json, atomically."""
    columns = ["trial", *table_columns(spec), "total", "value", "resumed_from", "worker", "error"]
    written = [out / RESULTS_TABLE, out / RESULTS_TRIALS, out / RESULTS_SUMMARY]
    atomic_write_text(written[0], to_csv(report["trials"], columns))
    atomic_write_json(written[1], report["trials"])
    atomic_write_json(written[2], {k: v for k, v in report.items() if k != "trials"})
    return written

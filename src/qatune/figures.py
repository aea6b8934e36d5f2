"""PNG figures of runs and sweeps (matplotlib, no display needed).

Line charts of a metric over training for several runs (the study's Figures 1-4), and Optuna's
own optimisation-history and parameter-importance plots for a sweep.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qatune.layout import HISTORY_FIGURE, IMPORTANCE_FIGURE

if TYPE_CHECKING:
    from qatune.evaluation.metrics import Reliability

logger = logging.getLogger(__name__)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    """Write a figure atomically (temp file + rename), then free it."""
    from qatune.io import new_temp_file, replace_file

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = new_temp_file(path)  # qatune's own temporary name: found and removed after a kill -9
    os.close(fd)
    try:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
        replace_file(tmp, path)  # by the rule of every write: through a symlink, never replacing it
    finally:
        tmp.unlink(missing_ok=True)
        _pyplot().close(fig)
    return path


def metric_lines(
    runs: Mapping[str, Sequence[Mapping[str, Any]]],
    metric: str,
    path: Path,
    *,
    title: str,
    ylabel: str,
    x: str = "step",
) -> Path | None:
    """One line per run: `metric` of each history record against `x` (optimizer steps by default)."""
    plt = _pyplot()
    with plt.style.context("default"):  # Optuna's plots switch styles; ours stay plain
        fig, ax = plt.subplots(figsize=(7.5, 4.5))
        drawn = 0
        for label, history in runs.items():
            points = [(r[x], r[metric]) for r in history if r.get(metric) is not None and r.get(x) is not None]
            if points:
                xs, ys = zip(*points)
                ax.plot(xs, ys, marker="o", markersize=3, linewidth=1.5, label=label)
                drawn += 1
        if not drawn:
            plt.close(fig)
            return None
        ax.set_title(title)
        ax.set_xlabel({"step": "optimizer step", "windows_seen": "training windows seen", "epoch": "epoch"}.get(x, x))
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, ncol=2 if drawn > 5 else 1)
        return _save(fig, path)


def optuna_figures(study: Any, folder: Path) -> list[Path]:
    """Optuna's optimisation history and (with enough finished trials) parameter importances."""
    from optuna.importance import PedAnovaImportanceEvaluator
    from optuna.trial import TrialState
    from optuna.visualization import matplotlib as ovm

    written = []
    finished = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
        if finished:
            ax = ovm.plot_optimization_history(study)
            written.append(_save(ax.figure, folder / HISTORY_FIGURE))
        if len(finished) >= 3 and len(study.best_trial.params) >= 1:
            try:
                ax = ovm.plot_param_importances(study, evaluator=PedAnovaImportanceEvaluator())
                written.append(_save(ax.figure, folder / IMPORTANCE_FIGURE))
            except (ValueError, RuntimeError, ZeroDivisionError) as exc:
                logger.warning("no parameter-importance figure: %s", exc)
    return written


def reliability_diagram(curves: Reliability, path: Path, *, title: str) -> Path:
    """Accuracy (exact match) against confidence per bin (`evaluation.metrics.reliability`), one line per curve, with
    the diagonal a calibrated model follows and the share of questions per bin as bars."""
    plt = _pyplot()
    with plt.style.context("default"):
        fig, (ax, counts) = plt.subplots(2, 1, figsize=(6, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfect calibration")
        for n, (label, bins) in enumerate(curves.items()):
            filled = [b for b in bins if b["questions"]]
            ax.plot([b["confidence"] for b in filled], [b["accuracy"] for b in filled], marker="o", label=label)
            total = sum(b["questions"] for b in bins) or 1
            width = 0.1 / max(1, len(curves))
            counts.bar(
                [b["low"] + width * (n + 0.5) for b in bins],
                [b["questions"] / total for b in bins],
                width=width,
                label=label,
            )
        ax.set(title=title, ylabel="exact match in the bin", xlim=(0, 1), ylim=(0, 1))
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        counts.set(xlabel="top-1 probability", ylabel="share of questions")
        counts.grid(True, alpha=0.3)
        return _save(fig, path)

"""The sweep's two entry points: run (or join, or resume) a sweep, and show its results."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, TypedDict

import optuna
from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from qatune.errors import ConfigError
from qatune.io import JsonObject, atomic_write_text
from qatune.layout import (
    FIGURES,
    RESULTS_SUMMARY,
    STAGE_MARKER,
    SWEEP_CONFIG,
    SWEEP_DB,
    SWEEP_RESULTS,
    TRIAL_FIGURES,
)
from qatune.paths import check_output_folder
from qatune.sweep.results import SweepReport, TrialRow, counts, summary, table_columns, top, trial_rows, write_results
from qatune.sweep.spec import SweepSpec, load_sweep, parse_sweep
from qatune.sweep.storage import (
    Callback,
    SweepOptions,
    open_existing_storage,
    open_study,
    quiet_optuna,
    stored_spec,
)
from qatune.sweep.trial import TrialEvent
from qatune.sweep.worker import Worker
from qatune.training.trackers import check_trackers

logger = logging.getLogger(__name__)


class SweepRun(TypedDict):
    """What `run_sweep` returns (`qatune sweep --json` prints it): the sweep, why this worker stopped, how
    many trials it ran, the trial counts by state, the best trial's row (as trials.json has it) and the picks."""

    name: str
    storage: str  # the URL with its password masked
    metric: str
    stopped: str
    ran_here: int
    counts: dict[str, int]
    best: JsonObject | None
    picks: dict[str, str]  # pick -> trial name


def _spec(config: SweepSpec | JsonObject | str | Path | None) -> SweepSpec | None:
    if config is None or isinstance(config, SweepSpec):
        return config
    if isinstance(config, dict):
        return parse_sweep(config)
    return load_sweep(config)


@quiet_optuna()
def run_sweep(
    config: SweepSpec | JsonObject | str | Path | None,
    options: SweepOptions,
    *,
    progress_bar: bool = True,
    callback: Callback | None = None,
) -> SweepRun:
    """Run trials of a sweep until its run cap, grid, target or `options.count`; resumable.

    `config` is a W&B sweep dict, a YAML/JSON path, a parsed spec, or None to join an existing
    sweep whose config is read from `options.storage`. Returns counts, the stop reason and the best trial.
    """
    check_trackers(options.report_to)  # before the sweep's folder or database: a tracker that cannot take runs
    check_output_folder(options.directory, "sweep folder", (SWEEP_CONFIG, SWEEP_DB, STAGE_MARKER), "a qatune sweep")
    study, spec = open_study(_spec(config), options)
    import yaml

    saved = options.directory / SWEEP_CONFIG
    if not saved.exists():
        atomic_write_text(saved, yaml.safe_dump(spec.raw, sort_keys=False))
    total = spec.run_cap or spec.grid_size or options.count
    bar = tqdm(total=total, desc=f"sweep {options.name}", unit="trial", disable=not progress_bar, dynamic_ncols=True)
    bar.update(sum(v for k, v in counts(study.get_trials(deepcopy=False)).items() if k not in ("running", "waiting")))

    def on_event(event: TrialEvent) -> None:
        if event["state"] == "running":
            logger.info("trial %d: %s", event["trial"], event["note"])
        else:
            bar.update(1)
            logger.info("trial %d %s: %s", event["trial"], event["state"], event["note"])
        trials = study.get_trials(deepcopy=False)  # one read of the storage per event
        state, best = counts(trials), top(trial_rows(trials, spec), spec, 1)
        bar.set_postfix(
            done=state["complete"],
            running=state["running"],
            pruned=state["pruned"],
            failed=state["failed"],
            best=f"{best[0].value:.4g}" if best else "-",
        )
        if callback:
            callback(event)

    worker = Worker(study, spec, options, on_event)
    try:
        with logging_redirect_tqdm(loggers=[logging.getLogger("qatune")]):
            reason = worker.run()
    finally:
        bar.close()
    report = summary(study.get_trials(deepcopy=False), spec, options.name)
    return SweepRun(
        name=options.name,
        storage=options.shown_url,
        metric=spec.metric.name,
        stopped=reason,
        ran_here=worker.ran,
        counts=dict(report.counts),
        best=report.best.to_dict() if report.best else None,
        picks=report.picks,
    )


@quiet_optuna()
def open_existing(options: SweepOptions) -> tuple[optuna.Study, SweepSpec]:
    """The study and config of a sweep that must already exist (show, dashboard), opened read-only: a
    storage that does not hold it is a ConfigError, and nothing is written to it (`open_existing_storage`)."""
    if options.storage is None and not (options.directory / SWEEP_DB).exists():
        raise ConfigError(
            f"no sweep {options.name!r} in {options.directory} (no sweep.db there); run "
            f"`qatune sweep CONFIG --name {options.name}` first, or pass --dir / --storage"
        )
    study = optuna.load_study(study_name=options.name, storage=open_existing_storage(options))
    return study, stored_spec(study, options)


def dashboard_app(options: SweepOptions) -> Any:
    """optuna-dashboard's WSGI app on the sweep's storage: every trial with its settings, values,
    intermediate values and qatune's attributes (metrics, history, errors). The sweep is checked first,
    read-only; the dashboard then writes only what its user does in it (notes, deleting a study)."""
    open_existing(options)  # a missing sweep is a ConfigError here, not an empty dashboard
    try:
        from optuna_dashboard import wsgi
    except ImportError:
        raise ConfigError(
            "sweep dashboard needs optuna-dashboard: pip install optuna-dashboard (or qatune[dashboard])"
        ) from None
    return wsgi(open_existing_storage(options, read_only=False))  # its tables exist: none are created


def show_sweep(options: SweepOptions, out: Path | None = None, *, n_top: int = 10, figures: bool = True) -> SweepReport:
    """The trial table, top runs and picks of a sweep, written as CSV/JSON (and PNG figures) to `out`."""
    study, spec = open_existing(options)
    report = summary(study.get_trials(deepcopy=False), spec, options.name, n_top)
    out = check_output_folder(
        out or options.directory / SWEEP_RESULTS, "--out", (RESULTS_SUMMARY,), "a folder of sweep results"
    )
    files = write_results(report, spec, out)
    if figures:
        files += sweep_figures(report, spec, study, out / FIGURES, n_top)
    return dataclasses.replace(
        report, files=[str(f) for f in files], columns=table_columns(spec), params=list(spec.params)
    )


def sweep_figures(
    report: SweepReport, spec: SweepSpec, study: optuna.Study, folder: Path, n_top: int = 10
) -> list[Path]:
    """Figures 1-3 of the study (train loss, eval loss, correct answers of the top runs) + Optuna's."""
    from qatune.figures import metric_lines, optuna_figures

    best = top(report.trials, spec, n_top)
    runs = {_label(r, spec): list(r.history) for r in best}
    charts = [
        ("train_loss", "Training loss", TRIAL_FIGURES["train_loss"]),
        ("eval_loss", "Evaluation loss", TRIAL_FIGURES["eval_loss"]),
        ("correct", "Correct answers", TRIAL_FIGURES["correct"]),
    ]
    written = []
    for metric, title, name in charts:
        path = metric_lines(
            runs,
            metric,
            folder / name,
            title=f"{title}, top {len(runs)} trials by {spec.metric.name}",
            ylabel=title.lower(),
            x="epoch",
        )  # epochs compare runs of any batch size
        if path:
            written.append(path)
    return written + optuna_figures(study, folder)


def _label(row: TrialRow, spec: SweepSpec) -> str:
    values = row.params
    settings = ", ".join(
        f"{_short(k)}={values[k]:.3g}" if isinstance(values[k], float) else f"{_short(k)}={values[k]}"
        for k in spec.params
    )
    return f"{row.name} ({settings})"


def _short(name: str) -> str:
    return {
        "learning_rate": "lr",
        "train_batch_size": "batch",
        "num_train_epochs": "epochs",
        "warmup_ratio": "warmup",
        "weight_decay": "wd",
    }.get(name, name)

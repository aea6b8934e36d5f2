"""W&B sweep configs (method, metric, parameters, early_terminate, run_cap), checked up front.

A config is the dict W&B documents, plus one qatune section, `base`: the fine-tuning settings
every trial shares (model, data, slice sizes, epochs). Parameters are parsed in `params.py`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from optuna.distributions import BaseDistribution

from qatune.errors import ConfigError
from qatune.io import JsonObject
from qatune.sweep.params import NOT_TUNABLE, Param, coerce, number, parse_param
from qatune.training.config import BEST_MODEL_METRICS, Settings, SettingValue, TrainConfig
from qatune.yamlfile import load_yaml

METHODS = ("grid", "random", "bayes")
# Metrics a trial reports at every evaluation; the study's choice, train_loss, rewards over-fitting.
METRICS = {
    "train_loss": "minimize",
    "eval_loss": "minimize",
    "exact_match": "maximize",
    "f1": "maximize",
    "correct": "maximize",
}
TOP_KEYS = (
    "method",
    "metric",
    "parameters",
    "early_terminate",
    "run_cap",
    "name",
    "description",
    "project",
    "entity",
    "program",
    "command",
    "base",
)
# Settings a sweep trial uses unless `base` says otherwise: the untuned baseline is the same for
# every trial, so evaluating it once per trial would only cost time.
# Trials skip the calibration fit: their models are dropped unless --keep-models (set it in `base` to fit).
SWEEP_DEFAULTS: Settings = {"eval_at_start": False, "calibration_questions": 0}
# An evaluation record as a trial's metrics.jsonl holds it (`type`, EVAL_POSITION, EVAL_SCORES), however it is typed.
Evaluation = TypeVar("Evaluation", bound=Mapping[str, object])


@dataclass(frozen=True)
class Metric:
    name: str
    goal: str
    target: float | None = None
    summary: str = "last"  # which evaluation scores a trial: the last (W&B's default) or the best

    def score(self, evals: Sequence[Evaluation]) -> Evaluation | None:
        """The evaluation that scores a trial (one of `evals`, as given): the last one, or with `summary: best`
        the best one after training began (the untuned model's step-0 evaluation is a baseline, not a candidate)."""
        if self.summary == "last":
            return evals[-1] if evals else None
        usable = [e for e in evals if _after_start(e) and _finite(e.get(self.name))]
        pick = min if self.goal == "minimize" else max
        return pick(usable, key=lambda e: _number(e[self.name])) if usable else None

    def reached(self, value: float) -> bool:
        """Whether `value` meets the target (W&B finishes the sweep when any run does)."""
        if self.target is None:
            return False
        return value <= self.target if self.goal == "minimize" else value >= self.target


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _number(value: object) -> float:
    return float(value) if isinstance(value, (int, float)) else math.nan


def _after_start(evaluation: Mapping[str, object]) -> bool:
    step = evaluation.get("step", 1)
    return isinstance(step, (int, float)) and step > 0


@dataclass(frozen=True)
class Hyperband:
    min_resource: int
    max_resource: int | str
    eta: int


@dataclass
class SweepSpec:
    """A validated sweep: everything the engine needs, and the raw dict it came from."""

    method: str
    metric: Metric
    params: dict[str, Param]
    fixed: Settings  # the parameters given one `value`
    base: Settings
    early_terminate: Hyperband | None = None
    run_cap: int | None = None
    name: str | None = None
    project: str | None = None
    raw: JsonObject = field(default_factory=dict)  # the sweep config as written (with --base overrides merged)

    @property
    def grid_size(self) -> int | None:
        if self.method != "grid":
            return None
        return math.prod(len(p.grid or ()) for p in self.params.values())

    @property
    def distributions(self) -> dict[str, BaseDistribution]:
        return {name: p.distribution for name, p in self.params.items()}

    def values(self, sampled: Mapping[str, SettingValue]) -> Settings:
        """The settings of one trial: fixed values, plus each sampled draw transformed and typed."""
        out = dict(self.fixed)
        for name, param in self.params.items():
            out[name] = coerce(name, param.transform(sampled[name]))
        return out

    def config(self, values: Settings, output_dir: str) -> TrainConfig:
        """The TrainConfig of a trial with these settings; with `summary: best` the trial keeps the
        weights of the evaluation that scores it (load_best_model_at_end on the sweep's metric)."""
        best: Settings = {"load_best_model_at_end": True, "metric_for_best_model": self.metric.name}
        keep: Settings = best if self.metric.summary == "best" else {}
        merged = {**SWEEP_DEFAULTS, **keep, **self.base, **values, "output_dir": output_dir}
        return TrainConfig.from_dict(merged)


def _metric(raw: Any) -> Metric:
    if raw is None:
        raise ConfigError(f"metric: missing; give {{name: one of {', '.join(METRICS)}, goal: minimize|maximize}}")
    if not isinstance(raw, dict):
        raise ConfigError(f"metric: expected a mapping with name and goal, got {raw!r}")
    unknown = sorted(set(raw) - {"name", "goal", "target", "summary"})
    if unknown:
        raise ConfigError(f"metric: unknown key(s) {', '.join(unknown)}; valid: name, goal, target, summary")
    name, goal = raw.get("name"), raw.get("goal", "minimize")  # W&B's default goal
    if name not in METRICS:
        raise ConfigError(f"metric.name: {name!r} is not a metric qatune reports; valid: {', '.join(METRICS)}")
    if goal not in ("minimize", "maximize"):
        raise ConfigError(f"metric.goal: expected minimize or maximize, got {goal!r}")
    target = raw.get("target")
    if target is not None:
        target = number("metric", raw, "target")
    summary = raw.get("summary", "last")
    if summary not in ("last", "best"):
        raise ConfigError(f"metric.summary: expected last (W&B's default) or best, got {summary!r}")
    if summary == "best" and name not in BEST_MODEL_METRICS:
        raise ConfigError(
            f"metric.summary: best needs a metric of the held-out evaluation ({', '.join(BEST_MODEL_METRICS)}); "
            f"{name} is not one: use summary: last, or another metric.name"
        )
    return Metric(name, goal, target, summary)


def _hyperband(raw: Any) -> Hyperband | None:
    if raw is None:
        return None
    where = "early_terminate"
    valid = {"type", "min_iter", "max_iter", "s", "eta", "strict"}
    if not isinstance(raw, dict) or raw.get("type") != "hyperband":
        raise ConfigError(f"{where}.type: only hyperband is supported, got {raw!r}")
    unknown = sorted(set(raw) - valid)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(sorted(valid))}")
    eta = raw.get("eta", 3)
    for key in ("min_iter", "max_iter", "s", "eta"):
        if key in raw and (not isinstance(raw[key], int) or isinstance(raw[key], bool) or raw[key] < 1):
            raise ConfigError(f"{where}.{key}: expected a positive integer, got {raw[key]!r}")
    if eta < 2:
        raise ConfigError(f"{where}.eta: must be >= 2, got {eta}")
    if "min_iter" in raw:
        return Hyperband(raw["min_iter"], raw.get("max_iter", "auto"), eta)
    if "max_iter" in raw and "s" in raw:
        return Hyperband(max(1, raw["max_iter"] // eta ** raw["s"]), raw["max_iter"], eta)
    raise ConfigError(f"{where}: give min_iter, or max_iter and s")


def parse_sweep(raw: Any, base_overrides: Settings | None = None) -> SweepSpec:
    """Validate a W&B sweep dict (plus `base`); every error names the key and the fix."""
    if not isinstance(raw, dict):
        raise ConfigError(f"a sweep config is a mapping with method, metric and parameters, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(TOP_KEYS))
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(unknown)}; valid: {', '.join(TOP_KEYS)}")
    method = raw.get("method")
    if method not in METHODS:
        raise ConfigError(f"method: expected one of {', '.join(METHODS)}, got {method!r}")
    parameters = raw.get("parameters")
    if not isinstance(parameters, dict) or not parameters:
        raise ConfigError("parameters: expected a mapping of setting -> {values|min/max|distribution}")
    params: dict[str, Param] = {}
    fixed: Settings = {}
    for name, body in parameters.items():
        param, constant = parse_param(str(name), body, method)
        if param is None:
            fixed[name] = constant
        else:
            params[name] = param
    if not params:
        raise ConfigError("parameters: nothing to search (every parameter is a constant)")
    run_cap = raw.get("run_cap")
    if run_cap is not None and (not isinstance(run_cap, int) or isinstance(run_cap, bool) or run_cap < 1):
        raise ConfigError(f"run_cap: expected a positive integer, got {run_cap!r}")
    base = _base(raw.get("base"), base_overrides, set(parameters))
    if base_overrides:  # the stored config is the effective one, so joining workers train the same way
        raw = {**raw, "base": base}
    spec = SweepSpec(
        method,
        _metric(raw.get("metric")),
        params,
        fixed,
        base,
        _hyperband(raw.get("early_terminate")),
        run_cap,
        raw.get("name"),
        raw.get("project"),
        raw,
    )
    _check_corners(spec)
    return spec


def _base(raw: Any, overrides: Settings | None, searched: set[str]) -> Settings:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"base: expected a mapping of training settings, got {raw!r}")
    base = {**raw, **(overrides or {})}
    clash = sorted(set(base) & searched)
    if clash:
        raise ConfigError(f"base.{clash[0]}: also in parameters; a setting is either fixed (base) or searched")
    bad = sorted(set(base) & set(NOT_TUNABLE))
    if bad:
        how = "use `qatune sweep --report-to`" if bad[0] == "report_to" else "each trial gets its own folder"
        raise ConfigError(f"base.{bad[0]}: set by the sweep itself ({how})")
    try:
        TrainConfig.from_dict({**SWEEP_DEFAULTS, **base})
    except ConfigError as exc:
        raise ConfigError(f"base: {exc}") from None
    if base.get("eval_data", "squad:validation") in (None, "none", ""):
        raise ConfigError("base.eval_data: a sweep needs evaluation data (its metrics come from it)")
    return base


def _check_corners(spec: SweepSpec) -> None:
    """Build the TrainConfig of each extreme setting now, so a bad range fails before any trial runs."""
    for name, param in spec.params.items():
        try:
            # Each categorical value, else the ends of the box: the normal family is drawn through a clipped
            # uniform, so its corners (about mu +- 4.75 sigma) bound every draw, and a normal that can go
            # negative on a positive setting is refused here.
            corners = (
                list(param.grid or ())
                if param.kind.startswith("categorical")
                else [param.transform(bound) for bound in param.bounds]
            )
        except OverflowError:
            raise ConfigError(
                f"parameters.{name}: the distribution's values overflow a float; lower mu/sigma or the bounds"
            ) from None
        for value in corners:
            try:
                spec.config({**spec.fixed, name: coerce(name, value)}, "check")
            except ConfigError as exc:
                hint = (
                    " (an unbounded normal can draw this; use log_normal or a bounded distribution)"
                    if "normal" in param.kind
                    else ""
                )
                raise ConfigError(f"parameters.{name}: value {value!r} gives an invalid run{hint}: {exc}") from None


def load_sweep(path: str | Path, base_overrides: Settings | None = None) -> SweepSpec:
    """Read a sweep config from YAML or JSON (JSON is YAML) and validate it."""
    path = Path(path)
    raw = load_yaml(path, "sweep config")
    try:
        return parse_sweep(raw, base_overrides)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None

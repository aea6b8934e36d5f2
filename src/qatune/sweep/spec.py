"""W&B sweep configs (method, metric, parameters, early_terminate, run_cap), checked up front.

A config is the dict W&B documents, plus one qatune section, `base`: the fine-tuning settings
every trial shares (model, data, slice sizes, epochs). Each parameter becomes an Optuna
distribution and, where W&B's distribution has no Optuna twin (normal, q_*, weighted values), a
transform of a uniform draw (inverse CDF or rounding), so every sampler sees a box it can model.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist
from typing import Any

from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from qatune.config import TrainConfig
from qatune.errors import ConfigError
from qatune.io import load_yaml

METHODS = ("grid", "random", "bayes")
# Metrics a trial reports at every evaluation; the study's choice, train_loss, rewards over-fitting.
METRICS = {"train_loss": "minimize", "eval_loss": "minimize", "exact_match": "maximize", "f1": "maximize",
           "correct": "maximize"}
TOP_KEYS = ("method", "metric", "parameters", "early_terminate", "run_cap", "name", "description", "project",
            "entity", "program", "command", "base")
PARAM_KEYS = ("value", "values", "probabilities", "distribution", "min", "max", "q", "mu", "sigma")
DISTRIBUTIONS = ("constant", "categorical", "int_uniform", "uniform", "q_uniform", "log_uniform_values",
                 "q_log_uniform_values", "log_uniform", "q_log_uniform", "normal", "q_normal", "log_normal",
                 "q_log_normal")
UNSUPPORTED = {"inv_log_uniform": "log_uniform_values", "inv_log_uniform_values": "log_uniform_values",
               "beta": "uniform", "q_beta": "q_uniform"}
NOT_TUNABLE = ("output_dir", "data_dir")
# Settings a sweep trial uses unless `base` says otherwise: the untuned baseline is the same for
# every trial, so evaluating it once per trial would only cost time.
SWEEP_DEFAULTS: dict[str, Any] = {"eval_at_start": False}
_EPS = 1e-6  # keeps inverse CDFs finite at the ends of the unit interval


@dataclass(frozen=True)
class Param:
    """One searched hyperparameter: what Optuna samples, and how a draw becomes the setting."""

    name: str
    kind: str
    distribution: BaseDistribution
    transform: Callable[[Any], Any] = lambda x: x
    grid: tuple[Any, ...] | None = None  # the values a grid search walks, when the parameter is discrete


@dataclass(frozen=True)
class Metric:
    name: str
    goal: str
    target: float | None = None

    @property
    def direction(self) -> str:
        return self.goal

    def reached(self, value: float) -> bool:
        """Whether `value` meets the target (W&B finishes the sweep when any run does)."""
        if self.target is None:
            return False
        return value <= self.target if self.goal == "minimize" else value >= self.target


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
    fixed: dict[str, Any]
    base: dict[str, Any]
    early_terminate: Hyperband | None = None
    run_cap: int | None = None
    name: str | None = None
    project: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def grid_size(self) -> int | None:
        if self.method != "grid":
            return None
        return math.prod(len(p.grid or ()) for p in self.params.values())

    @property
    def distributions(self) -> dict[str, BaseDistribution]:
        return {name: p.distribution for name, p in self.params.items()}

    def values(self, sampled: dict[str, Any]) -> dict[str, Any]:
        """The settings of one trial: fixed values, plus each sampled draw transformed and typed."""
        out = dict(self.fixed)
        for name, param in self.params.items():
            out[name] = _coerce(name, param.transform(sampled[name]))
        return out

    def config(self, values: dict[str, Any], output_dir: str) -> TrainConfig:
        """The TrainConfig of a trial with these settings."""
        merged = {**SWEEP_DEFAULTS, **self.base, **values, "output_dir": output_dir}
        return TrainConfig.from_dict(merged)


def _hints() -> dict[str, Any]:
    hints = typing.get_type_hints(TrainConfig)
    return {f.name: next((a for a in typing.get_args(hints[f.name]) if a is not type(None)), hints[f.name])
            for f in dataclasses.fields(TrainConfig)}


def _coerce(name: str, value: Any) -> Any:
    """Give a value the type of its TrainConfig field (a q_uniform batch size 64.0 -> 64)."""
    kind = _hints()[name]
    if value is None or isinstance(value, kind) and not isinstance(value, bool) or kind is bool:
        return value
    if kind is int and isinstance(value, float):
        return int(round(value))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _number(where: str, body: dict[str, Any], key: str, default: float | None = None) -> float:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}.{key}: expected a number, got {value!r}")
    return value


def _rounder(q: float) -> Callable[[float], float]:
    return lambda x: round(round(x / q) * q, 12)


def _infer_kind(where: str, body: dict[str, Any]) -> str:
    """W&B's rules for a parameter without `distribution`."""
    if "distribution" in body:
        kind = body["distribution"]
        if kind in UNSUPPORTED:
            raise ConfigError(f"{where}.distribution: {kind!r} is not supported by qatune; "
                              f"use {UNSUPPORTED[kind]!r} instead")
        if kind not in DISTRIBUTIONS:
            raise ConfigError(f"{where}.distribution: unknown {kind!r}; valid: {', '.join(DISTRIBUTIONS)}")
        return kind
    if "value" in body:
        return "constant"
    if "values" in body:
        return "categorical"
    if "min" in body and "max" in body:
        ints = all(isinstance(body[k], int) and not isinstance(body[k], bool) for k in ("min", "max"))
        return "int_uniform" if ints else "uniform"
    if "mu" in body or "sigma" in body:
        return "normal"
    raise ConfigError(f"{where}: give `value`, `values`, `min` and `max`, or a `distribution`")


def _categorical(where: str, name: str, body: dict[str, Any], method: str) -> Param:
    values = body.get("values")
    if not isinstance(values, list) or not values:
        raise ConfigError(f"{where}.values: expected a non-empty list, got {values!r}")
    if any(isinstance(v, (dict, list)) for v in values):
        raise ConfigError(f"{where}.values: each value must be a number, string or boolean")
    probabilities = body.get("probabilities")
    if probabilities is None or method == "grid":
        return Param(name, "categorical", CategoricalDistribution(values), grid=tuple(values))
    if (not isinstance(probabilities, list) or len(probabilities) != len(values)
            or any(not isinstance(p, (int, float)) or p < 0 for p in probabilities)
            or abs(sum(probabilities) - 1) > 1e-6):
        raise ConfigError(f"{where}.probabilities: expected {len(values)} non-negative numbers summing to 1")
    edges = [sum(probabilities[: i + 1]) for i in range(len(values))]

    def pick(u: float) -> Any:  # inverse CDF of the weighted choice
        return values[next((i for i, edge in enumerate(edges) if u < edge), len(values) - 1)]

    return Param(name, "categorical (weighted)", FloatDistribution(0.0, 1.0), pick)


def _range_param(where: str, name: str, kind: str, body: dict[str, Any]) -> Param:
    """The continuous and integer distributions: bounds checked, Optuna box + transform."""
    if kind in ("normal", "q_normal", "log_normal", "q_log_normal"):
        mu, sigma = _number(where, body, "mu", 0.0), _number(where, body, "sigma", 1.0)
        if sigma <= 0:
            raise ConfigError(f"{where}.sigma: must be > 0, got {sigma}")
        normal = NormalDist(mu, sigma)
        exp = math.exp if "log" in kind else (lambda x: x)
        q = _rounder(_number(where, body, "q", 1.0)) if kind.startswith("q_") else (lambda x: x)
        return Param(name, kind, FloatDistribution(_EPS, 1 - _EPS), lambda u: q(exp(normal.inv_cdf(u))))
    for key in ("min", "max"):
        if key not in body:
            raise ConfigError(f"{where}: distribution {kind} needs `min` and `max`")
    low, high = _number(where, body, "min"), _number(where, body, "max")
    if not low < high and not (kind == "int_uniform" and low == high):
        raise ConfigError(f"{where}: min ({low}) must be below max ({high})")
    if kind == "int_uniform":
        if not all(isinstance(body[k], int) for k in ("min", "max")):
            raise ConfigError(f"{where}: int_uniform needs integer min and max")
        return Param(name, kind, IntDistribution(low, high), grid=tuple(range(low, high + 1)))
    if kind in ("log_uniform_values", "q_log_uniform_values") and low <= 0:
        raise ConfigError(f"{where}.min: {kind} needs min > 0 (the values themselves); for exponents use "
                          f"log_uniform")
    if kind in ("log_uniform", "q_log_uniform"):  # min/max are natural-log exponents in W&B
        low, high = math.exp(low), math.exp(high)
    log = "log" in kind
    if kind.startswith("q_"):
        q = _number(where, body, "q", 1.0)
        if q <= 0:
            raise ConfigError(f"{where}.q: must be > 0, got {q}")
        grid = None
        if not log:
            grid = tuple(_rounder(q)(low + i * q) for i in range(int(math.floor((high - low) / q + 1e-9)) + 1))
        return Param(name, kind, FloatDistribution(low, high, log=log), _rounder(q), grid=grid)
    return Param(name, kind, FloatDistribution(low, high, log=log))


def _param(name: str, body: Any, method: str) -> tuple[Param | None, Any]:
    """Parse one entry of `parameters`: (searched parameter, None) or (None, constant value)."""
    where = f"parameters.{name}"
    if name in NOT_TUNABLE or name not in _hints():
        tunable = sorted(set(_hints()) - set(NOT_TUNABLE))
        raise ConfigError(f"{where}: not a qatune training setting; valid: {', '.join(tunable)}")
    if not isinstance(body, dict):
        raise ConfigError(f"{where}: expected a mapping such as {{values: [...]}} or {{min: .., max: ..}}, "
                          f"got {body!r}")
    if "parameters" in body:
        raise ConfigError(f"{where}.parameters: nested parameters are not supported; flatten them into "
                          f"top-level keys of `parameters`")
    unknown = sorted(set(body) - set(PARAM_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(PARAM_KEYS)}")
    kind = _infer_kind(where, body)
    if kind == "constant":
        if "value" not in body:
            raise ConfigError(f"{where}: distribution constant needs `value`")
        return None, _coerce(name, body["value"])
    if kind == "categorical":
        param = _categorical(where, name, body, method)
    else:
        param = _range_param(where, name, kind, body)
    if method == "grid" and param.grid is None:
        raise ConfigError(f"{where}: method grid needs discrete values, but this is {kind}; give `values: [...]` "
                          f"(or int_uniform / q_uniform bounds)")
    return param, None


def _metric(raw: Any) -> Metric:
    if raw is None:
        raise ConfigError(f"metric: missing; give {{name: one of {', '.join(METRICS)}, goal: minimize|maximize}}")
    if not isinstance(raw, dict):
        raise ConfigError(f"metric: expected a mapping with name and goal, got {raw!r}")
    unknown = sorted(set(raw) - {"name", "goal", "target"})
    if unknown:
        raise ConfigError(f"metric: unknown key(s) {', '.join(unknown)}; valid: name, goal, target")
    name, goal = raw.get("name"), raw.get("goal", "minimize")  # W&B's default goal
    if name not in METRICS:
        raise ConfigError(f"metric.name: {name!r} is not a metric qatune reports; valid: {', '.join(METRICS)}")
    if goal not in ("minimize", "maximize"):
        raise ConfigError(f"metric.goal: expected minimize or maximize, got {goal!r}")
    target = raw.get("target")
    if target is not None:
        target = _number("metric", raw, "target")
    return Metric(name, goal, target)


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


def parse_sweep(raw: Any, base_overrides: dict[str, Any] | None = None) -> SweepSpec:
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
    params, fixed = {}, {}
    for name, body in parameters.items():
        param, constant = _param(str(name), body, method)
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
    spec = SweepSpec(method, _metric(raw.get("metric")), params, fixed, base, _hyperband(raw.get("early_terminate")),
                     run_cap, raw.get("name"), raw.get("project"), raw)
    _check_corners(spec)
    return spec


def _base(raw: Any, overrides: dict[str, Any] | None, searched: set[str]) -> dict[str, Any]:
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
        raise ConfigError(f"base.{bad[0]}: set by the sweep itself (each trial gets its own folder)")
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
        if "normal" in param.kind:  # unbounded: a rare bad draw fails only its own trial
            continue
        dist = param.distribution
        corners = list(param.grid or ())
        if not corners:
            corners = [param.transform(dist.low), param.transform(dist.high)]
        for value in corners:
            try:
                spec.config({**spec.fixed, name: _coerce(name, value)}, "check")
            except ConfigError as exc:
                raise ConfigError(f"parameters.{name}: value {value!r} gives an invalid run: {exc}") from None


def load_sweep(path: str | Path, base_overrides: dict[str, Any] | None = None) -> SweepSpec:
    """Read a sweep config from YAML or JSON (JSON is YAML) and validate it."""
    path = Path(path)
    raw = load_yaml(path, "sweep config")
    try:
        return parse_sweep(raw, base_overrides)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None

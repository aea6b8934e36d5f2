"""Sweep parameters: each W&B parameter spec becomes an Optuna distribution plus a transform.

Where W&B's distribution has no Optuna twin (normal, q_*, weighted values), the parameter is a
transform of a uniform draw (inverse CDF or rounding), so every sampler sees a box it can model.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from qatune.errors import ConfigError
from qatune.training.config import SettingValue, field_types

PARAM_KEYS = ("value", "values", "probabilities", "distribution", "min", "max", "q", "mu", "sigma")
DISTRIBUTIONS = (
    "constant",
    "categorical",
    "int_uniform",
    "uniform",
    "q_uniform",
    "log_uniform_values",
    "q_log_uniform_values",
    "log_uniform",
    "q_log_uniform",
    "normal",
    "q_normal",
    "log_normal",
    "q_log_normal",
)
UNSUPPORTED = {
    "inv_log_uniform": "log_uniform_values",
    "inv_log_uniform_values": "log_uniform_values",
    "beta": "uniform",
    "q_beta": "q_uniform",
}
NOT_TUNABLE = ("output_dir", "data_dir", "report_to")  # set per trial by the sweep
_EPS = 1e-6  # keeps inverse CDFs finite at the ends of the unit interval
MAX_GRID = 10_000  # most values a grid search walks per parameter (int_uniform / q_uniform bounds)


@dataclass(frozen=True)
class Param:
    """One searched hyperparameter: what Optuna samples, and how a draw becomes the setting."""

    name: str
    kind: str
    distribution: BaseDistribution
    transform: Callable[[Any], SettingValue] = lambda x: x  # from Optuna's draw (a number, or a category)
    grid: tuple[SettingValue, ...] | None = None  # the values a grid search walks, when the parameter is discrete

    @property
    def bounds(self) -> tuple[float, float]:
        """Low and high of the box Optuna samples (numeric distributions: every parameter without a grid)."""
        dist = self.distribution
        if not isinstance(dist, (FloatDistribution, IntDistribution)):
            raise TypeError(f"{self.name}: a {self.kind} parameter has no bounds")
        return dist.low, dist.high


@functools.cache
def _hints() -> dict[str, type]:
    return {name: kind for name, (kind, _) in field_types().items()}


def coerce(name: str, value: SettingValue) -> SettingValue:
    """Give a value the type of its TrainConfig field (a q_uniform batch size 64.0 -> 64)."""
    kind = _hints()[name]
    if value is None or isinstance(value, kind) and not isinstance(value, bool) or kind is bool:
        return value
    if kind is int and isinstance(value, float):
        return int(round(value))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def number(where: str, body: Mapping[str, object], key: str, default: float | None = None) -> float:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{where}.{key}: expected a finite number, got {value!r}")
    return value


def _rounder(q: float) -> Callable[[float], float]:
    return lambda x: round(round(x / q) * q, 12)


def _infer_kind(where: str, body: Mapping[str, object]) -> str:
    """W&B's rules for a parameter without `distribution`."""
    if "distribution" in body:
        kind = body["distribution"]
        if kind in UNSUPPORTED:
            raise ConfigError(
                f"{where}.distribution: {kind!r} is not supported by qatune; use {UNSUPPORTED[str(kind)]!r} instead"
            )
        if kind not in DISTRIBUTIONS:
            raise ConfigError(f"{where}.distribution: unknown {kind!r}; valid: {', '.join(DISTRIBUTIONS)}")
        return str(kind)
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


def _categorical(where: str, name: str, body: Mapping[str, object], method: str) -> Param:
    raw = body.get("values")
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{where}.values: expected a non-empty list, got {raw!r}")
    if any(isinstance(v, (dict, list)) for v in raw):
        raise ConfigError(f"{where}.values: each value must be a number, string or boolean")
    values: list[SettingValue] = raw  # scalars as YAML wrote them; each one's type is checked by _check_corners
    probabilities = body.get("probabilities")
    if probabilities is None or method == "grid":
        return Param(name, "categorical", CategoricalDistribution(values), grid=tuple(values))
    if (
        not isinstance(probabilities, list)
        or len(probabilities) != len(values)
        or any(not isinstance(p, (int, float)) or p < 0 for p in probabilities)
        or abs(sum(probabilities) - 1) > 1e-6
    ):
        raise ConfigError(f"{where}.probabilities: expected {len(values)} non-negative numbers summing to 1")
    edges = [sum(probabilities[: i + 1]) for i in range(len(values))]

    def pick(u: float) -> SettingValue:  # inverse CDF of the weighted choice
        return values[next((i for i, edge in enumerate(edges) if u < edge), len(values) - 1)]

    return Param(name, "categorical (weighted)", FloatDistribution(0.0, 1.0), pick, grid=tuple(values))


def _range_param(where: str, name: str, kind: str, body: Mapping[str, object]) -> Param:
    """The continuous and integer distributions: bounds checked, Optuna box + transform."""
    if kind in ("normal", "q_normal", "log_normal", "q_log_normal"):
        mu, sigma = number(where, body, "mu", 0.0), number(where, body, "sigma", 1.0)
        if sigma <= 0:
            raise ConfigError(f"{where}.sigma: must be > 0, got {sigma}")
        normal = NormalDist(mu, sigma)
        exp: Callable[[float], float] = math.exp if "log" in kind else (lambda x: x)
        rounded: Callable[[float], float] = (
            _rounder(number(where, body, "q", 1.0)) if kind.startswith("q_") else (lambda x: x)
        )
        return Param(name, kind, FloatDistribution(_EPS, 1 - _EPS), lambda u: rounded(exp(normal.inv_cdf(u))))
    for key in ("min", "max"):
        if key not in body:
            raise ConfigError(f"{where}: distribution {kind} needs `min` and `max`")
    low, high = number(where, body, "min"), number(where, body, "max")
    if not low < high and not (kind == "int_uniform" and low == high):
        raise ConfigError(f"{where}: min ({low}) must be below max ({high})")
    if kind == "int_uniform":
        if not all(isinstance(body[k], int) for k in ("min", "max")):
            raise ConfigError(f"{where}: int_uniform needs integer min and max")
        low_i, high_i = int(low), int(high)
        grid: tuple[SettingValue, ...] | None = tuple(range(low_i, high_i + 1)) if high_i - low_i < MAX_GRID else None
        return Param(name, kind, IntDistribution(low_i, high_i), grid=grid)
    if kind in ("log_uniform_values", "q_log_uniform_values") and low <= 0:
        raise ConfigError(f"{where}.min: {kind} needs min > 0 (the values themselves); for exponents use log_uniform")
    if kind in ("log_uniform", "q_log_uniform"):  # min/max are natural-log exponents in W&B
        if max(abs(low), abs(high)) > 700:  # exp(710) overflows a float
            raise ConfigError(
                f"{where}: {kind} takes natural-log exponents (min {low}, max {high} give e^{low} to "
                f"e^{high}); for the values themselves use {kind}_values"
            )
        low, high = math.exp(low), math.exp(high)
    log = "log" in kind
    if kind.startswith("q_"):
        q = number(where, body, "q", 1.0)
        if q <= 0:
            raise ConfigError(f"{where}.q: must be > 0, got {q}")
        grid, steps = None, (high - low) / q
        if not log and math.isfinite(steps) and steps < MAX_GRID:
            grid = tuple(_rounder(q)(low + i * q) for i in range(int(math.floor(steps + 1e-9)) + 1))
        return Param(name, kind, FloatDistribution(low, high, log=log), _rounder(q), grid=grid)
    return Param(name, kind, FloatDistribution(low, high, log=log))


def parse_param(name: str, body: object, method: str) -> tuple[Param | None, SettingValue]:
    """Parse one entry of `parameters`: (searched parameter, None) or (None, constant value)."""
    where = f"parameters.{name}"
    if name in NOT_TUNABLE or name not in _hints():
        tunable = sorted(set(_hints()) - set(NOT_TUNABLE))
        raise ConfigError(f"{where}: not a qatune training setting; valid: {', '.join(tunable)}")
    if not isinstance(body, dict):
        raise ConfigError(
            f"{where}: expected a mapping such as {{values: [...]}} or {{min: .., max: ..}}, got {body!r}"
        )
    if "parameters" in body:
        raise ConfigError(
            f"{where}.parameters: nested parameters are not supported; flatten them into top-level keys of `parameters`"
        )
    unknown = sorted(set(body) - set(PARAM_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(PARAM_KEYS)}")
    kind = _infer_kind(where, body)
    if kind == "constant":
        if "value" not in body:
            raise ConfigError(f"{where}: distribution constant needs `value`")
        return None, coerce(name, body["value"])  # as YAML wrote it: _check_corners checks its type
    if kind == "categorical":
        param = _categorical(where, name, body, method)
    else:
        param = _range_param(where, name, kind, body)
    if method == "grid" and param.grid is None and kind in ("int_uniform", "q_uniform"):
        raise ConfigError(f"{where}: method grid walks at most {MAX_GRID} values of a parameter; narrow the bounds")
    if method == "grid" and param.grid is None:
        raise ConfigError(
            f"{where}: method grid needs discrete values, but this is {kind}; give `values: [...]` "
            f"(or int_uniform / q_uniform bounds)"
        )
    return param, None

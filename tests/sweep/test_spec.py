"""W&B sweep configs: every supported distribution maps to Optuna; every bad key gets a named error."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from qatune.errors import ConfigError
from qatune.sweep.spec import load_sweep, parse_sweep

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
STUDY = {
    "method": "bayes",
    "metric": {"name": "train_loss", "goal": "minimize"},
    "parameters": {"train_batch_size": {"values": [64, 128]}, "learning_rate": {"min": 4e-5, "max": 4e-4}},
}


def sweep(parameters: dict, method: str = "random", **extra) -> dict:
    return {"method": method, "metric": {"name": "f1", "goal": "maximize"}, "parameters": parameters, **extra}


def test_study_config_maps_to_optuna():
    spec = parse_sweep(STUDY)
    assert spec.method == "bayes" and spec.metric.name == "train_loss" and spec.metric.goal == "minimize"
    assert spec.distributions == {
        "train_batch_size": CategoricalDistribution([64, 128]),
        "learning_rate": FloatDistribution(4e-5, 4e-4),
    }
    values = spec.values({"train_batch_size": 128, "learning_rate": 1e-4})
    config = spec.config(values, "out")
    assert config.train_batch_size == 128 and config.learning_rate == 1e-4 and config.eval_at_start is False


def test_shipped_study_config_is_the_study_verbatim():
    spec = load_sweep(EXAMPLES / "sweep_study.yaml")
    assert spec.raw == STUDY
    load_sweep(EXAMPLES / "sweep_f1.yaml")


@pytest.mark.parametrize(
    "name, body, dist",
    [
        ("max_steps", {"min": 1, "max": 4}, IntDistribution(1, 4)),
        ("max_steps", {"distribution": "int_uniform", "min": 1, "max": 4}, IntDistribution(1, 4)),
        ("warmup_ratio", {"min": 0.0, "max": 0.3}, FloatDistribution(0.0, 0.3)),
        (
            "learning_rate",
            {"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-3},
            FloatDistribution(1e-5, 1e-3, log=True),
        ),
        (
            "learning_rate",
            {"distribution": "log_uniform", "min": math.log(1e-5), "max": math.log(1e-3)},
            FloatDistribution(1e-5, 1e-3, log=True),
        ),
        ("warmup_ratio", {"values": [0.0, 0.1]}, CategoricalDistribution([0.0, 0.1])),
    ],
)
def test_distributions(name, body, dist):
    got = parse_sweep(sweep({name: body})).params[name].distribution
    assert type(got) is type(dist)
    for attr in ("low", "high", "log", "choices"):
        if hasattr(dist, attr):
            assert getattr(got, attr) == pytest.approx(getattr(dist, attr))


def test_transformed_distributions_give_values_of_their_law():
    spec = parse_sweep(
        sweep(
            {
                "learning_rate": {"distribution": "q_log_uniform_values", "min": 1e-5, "max": 1e-3, "q": 1e-5},
                "train_batch_size": {"distribution": "q_uniform", "min": 16, "max": 64, "q": 16},
                "weight_decay": {"distribution": "normal", "mu": 0.05, "sigma": 0.01},
                "warmup_ratio": {"distribution": "log_normal", "mu": math.log(0.1), "sigma": 0.2},
                "seed": {"value": 7},
            },
            base={"micro_batch_size": 16},
        )
    )
    assert spec.fixed == {"seed": 7}
    mid = spec.values({"learning_rate": 2.34e-4, "train_batch_size": 41.0, "weight_decay": 0.5, "warmup_ratio": 0.5})
    assert mid["learning_rate"] == pytest.approx(2.3e-4) and mid["train_batch_size"] == 48
    assert isinstance(mid["train_batch_size"], int)
    assert mid["weight_decay"] == pytest.approx(0.05) and mid["warmup_ratio"] == pytest.approx(0.1)
    assert spec.values({**mid, "weight_decay": 0.8413447})["weight_decay"] == pytest.approx(0.06, abs=1e-6)


def test_weighted_values_follow_their_probabilities():
    spec = parse_sweep(sweep({"train_batch_size": {"values": [16, 32], "probabilities": [0.25, 0.75]}}))
    draws = Counter(spec.values({"train_batch_size": u / 1000})["train_batch_size"] for u in range(1000))
    assert draws == {16: 250, 32: 750}
    grid = parse_sweep(sweep({"train_batch_size": {"values": [16, 32], "probabilities": [0.25, 0.75]}}, "grid"))
    assert grid.grid_size == 2


def test_grid_enumerates_discrete_parameters():
    spec = parse_sweep(
        sweep(
            {
                "train_batch_size": {"values": [16, 32]},
                "max_steps": {"min": 1, "max": 3},
                "warmup_ratio": {"distribution": "q_uniform", "min": 0, "max": 0.2, "q": 0.1},
            },
            "grid",
        )
    )
    assert spec.grid_size == 2 * 3 * 3
    assert spec.params["warmup_ratio"].grid == (0.0, 0.1, 0.2)


def test_hyperband_and_run_cap():
    spec = parse_sweep(
        sweep(
            {"learning_rate": {"min": 1e-5, "max": 1e-3}},
            run_cap=7,
            early_terminate={"type": "hyperband", "max_iter": 27, "s": 2, "eta": 3},
        )
    )
    assert spec.run_cap == 7
    assert (spec.early_terminate.min_resource, spec.early_terminate.max_resource, spec.early_terminate.eta) == (
        3,
        27,
        3,
    )


@pytest.mark.parametrize(
    "raw, message",
    [
        ({**STUDY, "metod": "x"}, "unknown key(s) metod; valid: method, metric"),
        ({**STUDY, "method": "hill"}, "method: expected one of grid, random, bayes"),
        ({**STUDY, "metric": {"name": "accuracy"}}, "metric.name: 'accuracy' is not a metric qatune reports"),
        ({**STUDY, "metric": {"name": "f1", "goal": "up"}}, "metric.goal"),
        ({**STUDY, "metric": {"name": "f1", "summary": "max"}}, "metric.summary: expected last"),
        (
            {**STUDY, "metric": {"name": "train_loss", "summary": "best"}},
            "summary: best needs a metric of the held-out",
        ),
        ({**STUDY, "parameters": {"lr": {"min": 1, "max": 2}}}, "parameters.lr: not a qatune training setting"),
        ({**STUDY, "parameters": {"learning_rate": {"min": 4e-4, "max": 4e-5}}}, "parameters.learning_rate: min"),
        (
            {**STUDY, "parameters": {"learning_rate": {"distribution": "inv_log_uniform", "min": 1, "max": 2}}},
            "parameters.learning_rate.distribution: 'inv_log_uniform' is not supported by qatune; "
            "use 'log_uniform_values'",
        ),
        (
            {**STUDY, "parameters": {"learning_rate": {"distribution": "log_uniform_values", "min": -9, "max": -3}}},
            "for exponents use log_uniform",
        ),
        (
            {**STUDY, "parameters": {"learning_rate": {"distribution": "gamma"}}},
            "parameters.learning_rate.distribution",
        ),
        ({**STUDY, "parameters": {"learning_rate": {"parameters": {"a": {"value": 1}}}}}, "nested parameters"),
        ({**STUDY, "parameters": {"learning_rate": {"values": [1e-4], "step": 2}}}, "unknown key(s) step"),
        (
            {**STUDY, "parameters": {"train_batch_size": {"values": [16, 48]}}, "base": {"micro_batch_size": 32}},
            "parameters.train_batch_size: value 48 gives an invalid run",
        ),
        ({**STUDY, "method": "grid"}, "parameters.learning_rate: method grid needs discrete values"),
        ({**STUDY, "run_cap": 0}, "run_cap: expected a positive integer"),
        ({**STUDY, "early_terminate": {"type": "median"}}, "early_terminate.type: only hyperband"),
        ({**STUDY, "early_terminate": {"type": "hyperband", "eta": 3}}, "give min_iter, or max_iter and s"),
        ({**STUDY, "base": {"learning_rate": 1e-4}}, "base.learning_rate: also in parameters"),
        ({**STUDY, "base": {"epochs": 3}}, "base: unknown setting(s) epochs"),
        ({**STUDY, "base": {"eval_data": None}}, "base.eval_data: a sweep needs evaluation data"),
        ({**STUDY, "base": {"output_dir": "x"}}, "base.output_dir: set by the sweep itself"),
        ([1, 2], "a sweep config is a mapping"),
    ],
)
def test_bad_configs_name_the_key(raw, message):
    with pytest.raises(ConfigError) as err:
        parse_sweep(raw)
    assert message in str(err.value)


def test_unreadable_file_is_named(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("method: [unclosed")
    with pytest.raises(ConfigError, match=r"bad.yaml:1:\d+: expected ','"):
        load_sweep(bad)
    with pytest.raises(ConfigError, match="no such sweep config"):
        load_sweep(tmp_path / "missing.yaml")


def test_base_overrides_become_part_of_the_stored_config():
    spec = parse_sweep(STUDY, {"train_sample": 120, "num_train_epochs": 3})
    assert spec.raw["base"] == {"train_sample": 120, "num_train_epochs": 3}
    assert parse_sweep(spec.raw).base == spec.base and "base" not in STUDY
    with pytest.raises(ConfigError, match="base.learning_rate: also in parameters"):
        parse_sweep(STUDY, {"learning_rate": 1e-4})


def test_summary_best_scores_by_the_best_evaluation_and_keeps_its_weights():
    spec = parse_sweep({**STUDY, "metric": {"name": "eval_loss", "goal": "minimize", "summary": "best"}})
    history = [
        {"step": 0, "eval_loss": 0.1},
        {"step": 2, "eval_loss": 3.0},
        {"step": 4, "eval_loss": 2.0},
        {"step": 6, "eval_loss": float("nan")},
        {"step": 8, "eval_loss": 2.5},
    ]
    assert spec.metric.score(history) == {"step": 4, "eval_loss": 2.0}  # not the untuned step 0, not NaN
    assert parse_sweep(STUDY).metric.score(history) == {"step": 8, "eval_loss": 2.5}  # W&B's default: the last
    assert spec.metric.score([{"step": 0, "eval_loss": 1.0}]) is None
    config = spec.config({"learning_rate": 1e-4, "train_batch_size": 16}, "out")
    assert config.load_best_model_at_end and config.metric_for_best_model == "eval_loss"
    assert not parse_sweep(STUDY).config({"learning_rate": 1e-4, "train_batch_size": 16}, "out").load_best_model_at_end

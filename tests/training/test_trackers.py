"""--report-to: TensorBoard event files and MLflow runs read back with their own readers; W&B through the seam."""

from __future__ import annotations

import json
import sys
import types

import pytest
import yaml

from conftest import tiny_config, write_config
from qatune.errors import ConfigError
from qatune.io import read_jsonl
from qatune.training.config import TrainConfig
from qatune.training.trackers import RunInfo, open_feed, parse_report_to
from qatune.training.trainer import train


@pytest.fixture
def mlflow_uri(tmp_path, monkeypatch) -> str:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


def scalars(folder) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder)).Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def mlflow_runs(uri: str, experiment: str = "qatune") -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    return client.search_runs([found.experiment_id], order_by=["attributes.run_name"]) if found else []


def history(uri: str, run_id: str, key: str) -> list[tuple[int, float]]:
    from mlflow.tracking import MlflowClient

    return sorted((m.step, m.value) for m in MlflowClient(uri).get_metric_history(run_id, key))


def test_report_to_is_checked():
    assert parse_report_to("none") == () and parse_report_to(None) == ()
    assert parse_report_to("TensorBoard, mlflow,tensorboard") == ("tensorboard", "mlflow")
    assert parse_report_to(["wandb", "mlflow"]) == ("wandb", "mlflow")
    with pytest.raises(ConfigError, match="unknown tracker.s. tensorbord; valid: tensorboard, mlflow, wandb, none"):
        parse_report_to("tensorbord")
    with pytest.raises(ConfigError, match="unknown tracker"):
        TrainConfig(report_to="comet").check()
    with pytest.raises(ConfigError, match="none means no tracker; it cannot be combined"):
        parse_report_to("none,mlflow")


def test_train_logs_every_record_to_tensorboard_and_mlflow(tiny_bert, tmp_path, mlflow_uri):
    out = tmp_path / "run"
    summary = train(tiny_config(tiny_bert, out, report_to="tensorboard,mlflow"), progress_bar=False).to_dict()
    records = read_jsonl(out / "metrics.jsonl")
    evals = [r for r in records if r["type"] == "eval"]
    losses = [(r["step"], r["loss"]) for r in records if r["type"] == "train"]
    board = scalars(out / "tensorboard")
    assert [s for s, _ in board["eval/f1"]] == [r["step"] for r in evals] == [0, 2, 4, 6]
    assert [v for _, v in board["eval/f1"]] == pytest.approx([r["f1"] for r in evals])
    assert board["train/loss"] == [(s, pytest.approx(v)) for s, v in losses]
    assert len(board["train/windows_per_s"]) == len(losses) - 1 and all(v > 0 for _, v in board["train/windows_per_s"])
    assert {"train/learning_rate", "eval/exact_match", "eval/correct", "eval/eval_loss"} <= set(board)

    [run] = mlflow_runs(mlflow_uri)
    assert run.info.run_name == "run" and run.info.status == "FINISHED"
    assert run.data.params["learning_rate"] == "0.001" and run.data.params["max_steps"] == "6"
    assert history(mlflow_uri, run.info.run_id, "eval/exact_match") == [
        (r["step"], pytest.approx(r["exact_match"])) for r in evals
    ]
    assert history(mlflow_uri, run.info.run_id, "train/loss") == [(s, pytest.approx(v)) for s, v in losses]
    assert run.data.metrics["final/f1"] == pytest.approx(summary["final_eval"]["f1"])


def test_a_resumed_run_continues_its_tracker_run(tmp_path, mlflow_uri):
    run = RunInfo("r", tmp_path / "r", {"learning_rate": 1e-4})
    first = open_feed(["mlflow"], run)
    first({"type": "eval", "step": 2, "f1": 10.0})
    first.finish({}, "interrupted")
    again = open_feed(["mlflow"], run)  # the id kept in trackers.json: the same MLflow run goes on
    again({"type": "eval", "step": 4, "f1": 20.0})
    again.finish({"f1": 20.0}, "complete")
    [found] = mlflow_runs(mlflow_uri)
    assert history(mlflow_uri, found.info.run_id, "eval/f1") == [(2, 10.0), (4, 20.0)]
    assert found.info.status == "FINISHED" and found.data.metrics["final/f1"] == 20.0


@pytest.mark.parametrize("content", ["{torn", "[1]"])
def test_a_damaged_ids_file_starts_new_tracker_runs(tmp_path, mlflow_uri, content, caplog):
    run = RunInfo("r", tmp_path / "r", {})
    run.folder.mkdir()
    (run.folder / "trackers.json").write_text(content)
    with caplog.at_level("WARNING"):
        feed = open_feed(["mlflow"], run)
    feed.finish({}, "complete")
    assert "trackers.json: damaged" in caplog.text and len(mlflow_runs(mlflow_uri)) == 1
    assert list(json.loads((run.folder / "trackers.json").read_text())) == ["mlflow"]


def test_sweep_logs_one_tracker_run_per_trial(tiny_bert, tmp_path, mlflow_uri):
    from qatune.sweep import SweepOptions, parse_sweep, run_sweep

    spec = parse_sweep(yaml.safe_load(write_config(tmp_path / "t.yaml", tiny_bert, run_cap=2).read_text()))
    options = SweepOptions("t", tmp_path / "t", report_to=("tensorboard", "mlflow"), poll_seconds=0.2)
    run_sweep(spec, options, progress_bar=False)
    runs = mlflow_runs(mlflow_uri)
    assert [r.info.run_name for r in runs] == ["t-trial-0", "t-trial-1"]
    for number, found in enumerate(runs):
        assert found.data.tags["qatune.group"] == "t" and found.info.status == "FINISHED"
        assert "learning_rate" in found.data.params and found.data.params["max_steps"] == "6"
        folder = tmp_path / "t" / "trials" / f"trial-{number:03d}"
        evals = [r for r in read_jsonl(folder / "metrics.jsonl") if r["type"] == "eval"]
        expected = [(r["step"], pytest.approx(r["f1"])) for r in evals]
        assert (
            history(mlflow_uri, found.info.run_id, "eval/f1") == expected == scalars(folder / "tensorboard")["eval/f1"]
        )


def test_wandb_gets_every_trial_and_evaluation(tiny_bert, tmp_path, monkeypatch):
    """--wandb (= --report-to wandb): one W&B run per trial with its settings, each record at its step.
    (A stand-in `wandb` module records the calls; the real one needs an account or WANDB_MODE=offline.)"""
    from qatune.sweep import SweepOptions, parse_sweep, run_sweep

    monkeypatch.setenv("WANDB_MODE", "offline")  # the stand-in needs no server; online W&B is checked first

    calls: list = []

    class FakeRun:
        def __init__(self, **kw) -> None:
            self.id, self.summary = kw["name"], {}
            calls.append(("init", kw))

        def log(self, metrics, step) -> None:
            calls.append(("log", self.id, step, metrics))

        def finish(self, exit_code) -> None:
            calls.append(("finish", self.id, dict(self.summary), exit_code))

    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(init=lambda **kw: FakeRun(**kw)))
    spec = parse_sweep(yaml.safe_load(write_config(tmp_path / "w.yaml", tiny_bert, run_cap=2).read_text()))
    run_sweep(spec, SweepOptions("w", tmp_path / "w", report_to=("wandb",), poll_seconds=0.2), progress_bar=False)
    inits = [c[1] for c in calls if c[0] == "init"]
    assert [i["name"] for i in inits] == ["w-trial-0", "w-trial-1"] and {i["group"] for i in inits} == {"w"}
    assert "learning_rate" in inits[0]["config"] and inits[0]["config"]["max_steps"] == 6
    evals = [(c[1], c[2]) for c in calls if c[0] == "log" and "eval/f1" in c[3]]
    assert evals == [
        ("w-trial-0", 2),
        ("w-trial-0", 4),
        ("w-trial-0", 6),
        ("w-trial-1", 2),
        ("w-trial-1", 4),
        ("w-trial-1", 6),
    ]
    finished = [c for c in calls if c[0] == "finish"]
    assert [(c[1], c[2]["state"], c[3]) for c in finished] == [
        ("w-trial-0", "complete", 0),
        ("w-trial-1", "complete", 0),
    ]
    assert "final/f1" in finished[0][2]


def test_a_missing_tracker_package_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb raises ImportError
    with pytest.raises(ConfigError, match="--report-to wandb needs the wandb package: pip install wandb"):
        open_feed(["wandb"], RunInfo("x", tmp_path / "x", {}))
    assert not (tmp_path / "x").exists()  # nothing written for a run that cannot be tracked
    from qatune.sweep import SweepOptions
    from qatune.sweep.runner import run_sweep

    spec = yaml.safe_load(write_config(tmp_path / "m.yaml", tmp_path / "no-model").read_text())
    with pytest.raises(ConfigError, match="needs the wandb package"):
        run_sweep(spec, SweepOptions("m", tmp_path / "m", report_to=("wandb",)), progress_bar=False)
    assert not (tmp_path / "m" / "trials").exists()  # refused before any trial was asked for

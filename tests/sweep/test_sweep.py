"""Sweeps end to end on a tiny model: run, show, fail a trial, prune, kill and resume."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml

from conftest import BASE, write_config
from qatune.io import read_jsonl
from qatune.sweep import SweepOptions, parse_sweep, run_sweep


def sweep_cli(*args: str, check: bool = True, **popen) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "qatune.cli", "sweep", *args], capture_output=True, text=True, timeout=600, **popen
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}: {proc.stderr[-3000:]}")
    return proc


def test_sweep_runs_and_shows(tiny_bert, tmp_path):
    config = write_config(tmp_path / "s.yaml", tiny_bert)
    out = sweep_cli(str(config), "--dir", str(tmp_path), "-q").stdout
    assert "stopped (run_cap 3 reached); 3 complete" in out
    report = json.loads(sweep_cli("show", "s", "--dir", str(tmp_path), "--json").stdout)
    rows = report["trials"]
    assert [r["state"] for r in rows] == ["complete"] * 3 and report["counts"]["complete"] == 3
    for row in rows:  # the storage's numbers are the trial's own final evaluation
        final = json.loads((Path(tmp_path / "s" / "trials" / f"trial-{row['trial']:03d}") / "qatune.json").read_text())[
            "final_eval"
        ]
        assert (row["f1"], row["correct"], row["eval_loss"]) == (final["f1"], final["correct"], final["eval_loss"])
        assert row["evaluations"] == 3 and [h["step"] for h in row["history"]] == [2, 4, 6]
        assert row["value"] == row["f1"] and 1e-4 <= row["learning_rate"] <= 1e-2
    best = max(rows, key=lambda r: r["f1"])
    assert report["best"]["name"] == best["name"] == report["picks"]["best_f1"]
    assert report["picks"]["lowest_train_loss"] == min(rows, key=lambda r: r["train_loss"])["name"]
    results = tmp_path / "s" / "results"
    with open(results / "trials.csv") as handle:
        table = list(csv.DictReader(handle))
    assert [int(r["trial"]) for r in table] == [r["trial"] for r in rows]
    for name in ("train_loss", "eval_loss", "correct", "optimization_history", "param_importances"):
        assert (results / "figures" / f"{name}.png").stat().st_size > 5000
    assert not (tmp_path / "s" / "trials" / "trial-000" / "model.safetensors").exists()  # no --keep-models
    text = sweep_cli("show", "s", "--dir", str(tmp_path), "--no-figures").stdout
    assert "top 3 by f1" in text and "lowest_train_loss" in text
    again = sweep_cli(str(config), "--dir", str(tmp_path), "-q").stdout  # finished: nothing more runs
    assert (
        "3 complete" in again
        and len(json.loads(sweep_cli("show", "s", "--dir", str(tmp_path), "--json", "--no-figures").stdout)["trials"])
        == 3
    )


def test_failed_trial_is_recorded_and_the_sweep_goes_on(tiny_bert, tmp_path):
    config = write_config(
        tmp_path / "f.yaml",
        tiny_bert,
        method="grid",
        parameters={"model": {"values": [str(tmp_path / "no-such-model"), str(tiny_bert)]}},
    )
    raw = yaml.safe_load(config.read_text())
    del raw["base"]["model"]
    config.write_text(yaml.safe_dump(raw))
    sweep_cli(str(config), "--dir", str(tmp_path), "-q")
    rows = json.loads(sweep_cli("show", "f", "--dir", str(tmp_path), "--json", "--no-figures").stdout)["trials"]
    states = {r["model"]: r for r in rows}
    assert states[str(tiny_bert)]["state"] == "complete"
    failed = states[str(tmp_path / "no-such-model")]
    assert failed["state"] == "fail" and "no-such-model" in failed["error"]


def test_summary_best_scores_and_keeps_the_best_evaluation(tiny_bert, tmp_path):
    """`metric: {summary: best}`: a trial's value is its best evaluation, and --keep-models keeps those weights."""
    config = write_config(
        tmp_path / "b.yaml",
        tiny_bert,
        metric={"name": "eval_loss", "goal": "minimize", "summary": "best"},
        parameters={"learning_rate": {"values": [3e-3, 3e-2]}},
        method="grid",
    )
    sweep_cli(str(config), "--dir", str(tmp_path), "--keep-models", "-q")
    rows = json.loads(sweep_cli("show", "b", "--dir", str(tmp_path), "--json", "--no-figures").stdout)["trials"]
    assert [r["state"] for r in rows] == ["complete"] * 2
    for row in rows:
        best = min(row["history"], key=lambda h: h["eval_loss"])
        assert row["value"] == best["eval_loss"] == row["eval_loss"]
        folder = tmp_path / "b" / "trials" / f"trial-{row['trial']:03d}"
        chosen = json.loads((folder / "qatune.json").read_text())["best"]
        assert chosen == {"metric": "eval_loss", "value": best["eval_loss"], "step": best["step"], "loaded": True}
        assert (folder / "model.safetensors").is_file()


def test_hyperband_sees_every_evaluation(tiny_bert, tmp_path):
    spec = parse_sweep(
        {
            "method": "random",
            "metric": {"name": "eval_loss", "goal": "minimize"},
            "parameters": {"learning_rate": {"distribution": "log_uniform_values", "min": 1e-9, "max": 5e-3}},
            "run_cap": 4,
            "early_terminate": {"type": "hyperband", "min_iter": 1, "eta": 2},
            "base": {**BASE, "model": str(tiny_bert)},
        }
    )
    options = SweepOptions("hb", tmp_path / "hb", poll_seconds=0.2)
    result = run_sweep(spec, options, progress_bar=False)
    assert result["counts"]["complete"] + result["counts"]["pruned"] == 4
    study = optuna.load_study(study_name="hb", storage=options.url)
    for trial in study.trials:
        history = trial.user_attrs["history"]
        assert len(trial.intermediate_values) == len(history) >= 1
        assert list(trial.intermediate_values.values()) == [h["eval_loss"] for h in history]
        if trial.state == optuna.trial.TrialState.PRUNED:
            assert history[-1]["step"] < 6


def test_bad_config_and_dry_run(tiny_bert, tmp_path):
    config = write_config(
        tmp_path / "d.yaml",
        tiny_bert,
        method="grid",
        parameters={"train_batch_size": {"values": [8, 16]}, "warmup_ratio": {"values": [0, 0.1]}},
    )
    out = sweep_cli(str(config), "--dry-run").stdout
    assert "method grid -> optuna GridSampler" in out and "grid points: 4" in out
    bad = write_config(tmp_path / "b.yaml", tiny_bert, metric={"name": "accuracy", "goal": "maximize"})
    proc = sweep_cli(str(bad), "--dir", str(tmp_path), check=False)
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and len(proc.stderr.strip().splitlines()) == 1
    assert "metric.name: 'accuracy'" in proc.stderr and not (tmp_path / "b").exists()
    proc = sweep_cli("show", "nothing-here", "--dir", str(tmp_path), check=False)
    assert proc.returncode == 2 and "no sweep 'nothing-here'" in proc.stderr
    secret = "postgresql://user:s3cret@127.0.0.1:1/db"  # nothing listens on port 1
    out = sweep_cli(str(config), "--storage", secret, "--dry-run").stdout
    assert "user:***@127.0.0.1" in out and "s3cret" not in out
    proc = sweep_cli(str(config), "--storage", secret, "--dir", str(tmp_path), check=False)
    assert proc.returncode == 2 and "cannot open" in proc.stderr and "s3cret" not in proc.stderr
    assert not (tmp_path / "d").exists()  # a storage that cannot be opened leaves nothing behind
    proc = sweep_cli(str(config), "--storage", "postgres-ish://user:s3cret@host/db", "--dry-run", check=False)
    assert proc.returncode == 2 and "not a database URL" in proc.stderr and "s3cret" not in proc.stderr


def _wait_for(path_glob: Path, pattern: str, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not list(path_glob.glob(pattern)):
        if time.time() > deadline:
            raise AssertionError(f"nothing matched {path_glob}/{pattern}")
        time.sleep(0.1)


def test_interrupt_and_kill_then_resume(tiny_bert, tmp_path):
    """Ctrl-C, then SIGKILL of the worker mid-trial; re-running finishes with nothing lost or repeated."""
    config = write_config(tmp_path / "k.yaml", tiny_bert, base={"max_steps": 30, "eval_steps": 10, "save_steps": 2})
    args = [
        sys.executable,
        "-m",
        "qatune.cli",
        "sweep",
        str(config),
        "--dir",
        str(tmp_path),
        "-q",
        "--heartbeat-interval",
        "1",
    ]
    trials = tmp_path / "k" / "trials"
    # SIGINT back to its default: a shell's background job (e.g. `pytest &`) inherits it ignored
    worker = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    _wait_for(trials, "trial-000/checkpoints/step-*")
    worker.send_signal(signal.SIGINT)
    out, err = worker.communicate(timeout=120)
    assert worker.returncode == 130 and "run the same command again" in err

    worker = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(trials, "trial-002/checkpoints/step-*")
    worker.kill()  # SIGKILL: no goodbye; its trial child checkpoints and exits, its heartbeat stops
    worker.wait()
    sweep_cli(str(config), "--dir", str(tmp_path), "-q", "--heartbeat-interval", "1")

    rows = json.loads(sweep_cli("show", "k", "--dir", str(tmp_path), "--json", "--no-figures").stdout)["trials"]
    assert [r["state"] for r in rows] == ["complete"] * 3
    folders = sorted(p.name for p in trials.iterdir())  # a retry trains in its first attempt's folder
    assert len(folders) == 3 and folders[:2] == ["trial-000", "trial-002"], folders
    starts = {}
    for folder in trials.iterdir():
        log = (folder / "trial.log").read_text()
        starts[folder.name] = log.count("trial process")
        steps = [r["step"] for r in read_jsonl(folder / "metrics.jsonl") if r["type"] == "eval"]
        assert steps == [10, 20, 30], (folder.name, steps)  # every evaluation once, none lost
        assert json.loads((folder / "progress.json").read_text())["completed"]
    assert sorted(starts.values()) == [1, 2, 2], starts  # two trials resumed once each, none started over
    assert {r["resumed_from"] for r in rows} == {0, 2, None}
    for name, count in starts.items():
        if count == 2:
            assert "resumed from" in (trials / name / "trial.log").read_text()


@pytest.fixture
def postgres_url() -> str:
    url = os.environ.get("QATUNE_TEST_POSTGRES")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("CI must start PostgreSQL and set QATUNE_TEST_POSTGRES (see .ci/run)")
        pytest.skip("set QATUNE_TEST_POSTGRES=postgresql://... to run the multi-worker test")
    return url


def _studies(url: str) -> list:
    try:
        return optuna.get_all_study_summaries(url)
    except Exception:  # noqa: BLE001 - the first worker may be creating the tables right now
        return []


def test_two_workers_share_a_postgres_sweep(tiny_bert, tmp_path, postgres_url):
    name = f"pg-{os.getpid()}-{int(time.time())}"
    config = write_config(
        tmp_path / "p.yaml",
        tiny_bert,
        method="grid",
        run_cap=5,
        parameters={"learning_rate": {"values": [1e-4, 1e-3, 1e-2]}, "train_batch_size": {"values": [8, 16]}},
    )
    common = ["--storage", postgres_url, "--dir", str(tmp_path), "-q"]
    first = subprocess.Popen(
        [sys.executable, "-m", "qatune.cli", "sweep", str(config), "--name", name, *common],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 60
    while not any(s.study_name == name for s in _studies(postgres_url)):
        assert time.time() < deadline and first.poll() is None, first.stderr.read() if first.poll() else "timeout"
        time.sleep(0.5)
    second = subprocess.Popen(
        [sys.executable, "-m", "qatune.cli", "sweep", "--join", name, *common],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    for worker in (first, second):
        out, err = worker.communicate(timeout=600)
        assert worker.returncode == 0, err[-3000:]
    report = json.loads(sweep_cli("show", name, *common, "--json", "--no-figures").stdout)
    rows = report["trials"]
    assert len(rows) == 5 and all(r["state"] == "complete" for r in rows)  # the run cap, across workers
    settings = [(r["learning_rate"], r["train_batch_size"]) for r in rows]
    assert len(set(settings)) == 5  # no grid point twice
    assert len({r["worker"] for r in rows}) == 2  # both workers ran trials
    study = optuna.load_study(study_name=name, storage=postgres_url)
    ran = [t for t in study.trials if not t.user_attrs.get("skipped")]
    assert len(ran) == 5 and len({t.number for t in ran}) == 5


def test_repeated_settings_are_explored_not_retrained(tiny_bert, tmp_path):
    """A sampler proposing settings already run (deterministic, so the same result) gets a random point
    instead; when a small discrete space is used up, the sweep stops rather than loop."""
    spec = parse_sweep(
        {
            "method": "random",
            "metric": {"name": "f1", "goal": "maximize"},
            "parameters": {"learning_rate": {"values": [1e-3, 2e-3]}},
            "run_cap": 3,
            "base": {**BASE, "model": str(tiny_bert), "max_steps": 2, "eval_steps": 2},
        }
    )
    result = run_sweep(spec, SweepOptions("rep", tmp_path / "rep", poll_seconds=0.2), progress_bar=False)
    assert result["stopped"] == "every point of the search space has been tried"
    study = optuna.load_study(study_name="rep", storage=f"sqlite:///{tmp_path / 'rep' / 'sweep.db'}")
    ran = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert sorted(t.params["learning_rate"] for t in ran) == [1e-3, 2e-3]
    assert all(t.user_attrs["skipped"].startswith("repeat of trial-") for t in study.trials if t not in ran)


def test_diverged_trial_is_failed_with_its_reason(tiny_bert, tmp_path):
    config = write_config(
        tmp_path / "d.yaml",
        tiny_bert,
        method="grid",
        run_cap=1,
        parameters={"learning_rate": {"values": [0.1]}},
        base={"weight_decay": 1e30},
    )
    sweep_cli(str(config), "--dir", str(tmp_path), "-q", check=False)
    rows = json.loads(sweep_cli("show", "d", "--dir", str(tmp_path), "--json", "--no-figures").stdout)["trials"]
    assert rows[0]["state"] == "fail" and "training diverged at step" in rows[0]["error"]


def test_dashboard_serves_the_sweeps_trials(tiny_bert, tmp_path):
    """`qatune sweep dashboard NAME` starts optuna-dashboard on the sweep's storage; its API lists the trials
    with qatune's attributes. A sweep that does not exist is one error line."""
    import socket
    import urllib.request

    spec = parse_sweep(yaml.safe_load(write_config(tmp_path / "d.yaml", tiny_bert, run_cap=2).read_text()))
    run_sweep(spec, SweepOptions("d", tmp_path / "d", poll_seconds=0.2), progress_bar=False)
    missing = sweep_cli("dashboard", "nope", "--dir", str(tmp_path), check=False)
    assert missing.returncode == 2 and missing.stderr.startswith("error: no sweep 'nope'")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [
        sys.executable,
        "-m",
        "qatune.cli",
        "sweep",
        "dashboard",
        "d",
        "--dir",
        str(tmp_path),
        "--port",
        str(port),
    ]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=5) as response:
                    studies = json.loads(response.read())["study_summaries"]
                break
            except OSError:
                assert proc.poll() is None, proc.communicate()[1][-2000:]
                assert time.time() < deadline, "the dashboard did not start"
                time.sleep(0.3)
        [study] = [s for s in studies if s["study_name"] == "d"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies/{study['study_id']}", timeout=30) as response:
            trials = json.loads(response.read())["trials"]
        assert [t["number"] for t in trials] == [0, 1] and all(t["state"] == "Complete" for t in trials)
        for trial in trials:
            attrs = {a["key"]: a["value"] for a in trial["user_attrs"]}
            assert {"f1", "exact_match", "correct", "history", "metrics", "values"} <= set(attrs)
            assert float(attrs["f1"]) == pytest.approx(trial["values"][0])
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/dashboard/", timeout=30).read().decode()
        assert "<html" in page.lower()
    finally:
        proc.terminate()
        proc.wait(30)


def test_failed_child_records_why_in_a_structured_record(tmp_path):
    """A child that fails with a QatuneError writes trial-error.json; the parent's one-line reason comes
    from it (the same words as the log's `error:` line), an earlier attempt's record never shows, and a
    kill -9 (nothing written) or a damaged record falls back to the exit status."""
    from qatune.errors import TrainingInterrupted
    from qatune.layout import TRIAL_FAILURE as FAILURE
    from qatune.layout import TRIAL_LOG as LOG
    from qatune.sweep.trial import EXIT_CONFIG, TrialFailure, TrialProcess

    folder = tmp_path / "trial-000"
    folder.mkdir()
    (folder / FAILURE).write_text('{"kind": "config", "error": "an earlier attempt", "type": "ConfigError"}')
    process = TrialProcess(folder, {"no_such_setting": 1})
    assert process.stop(signal.SIGCONT, timeout=120) == EXIT_CONFIG  # SIGCONT: just wait for it
    record = json.loads((folder / FAILURE).read_text())
    assert record["kind"] == "config" and record["type"] == "ConfigError"
    assert record["error"].startswith("unknown setting(s) no_such_setting")
    logged = [line for line in (folder / LOG).read_text().splitlines() if line.startswith("error:")]
    assert process.error() == logged[-1] == f"error: {record['error']}"
    (folder / FAILURE).write_text('{"kind": "config", "err')  # torn
    assert TrialFailure.read(folder) is None and process.error() == f"exit code 2: {logged[-1]}"

    killed = TrialProcess(folder, {"no_such_setting": 1})  # a retry: the old record is gone
    assert killed.stop(signal.SIGKILL) == -signal.SIGKILL
    assert TrialFailure.read(folder) is None and killed.error() == "killed by SIGKILL (out of memory?)"

    interrupted = TrialFailure.of(TrainingInterrupted("interrupted at step 4 of 30"))
    assert (
        interrupted.kind == "interrupted"
        and interrupted.reason(130) == "exit code 130: interrupted: interrupted at step 4 of 30"
    )
    assert TrialFailure.of(RuntimeError("CUDA out of memory")).reason(1) == "RuntimeError: CUDA out of memory"

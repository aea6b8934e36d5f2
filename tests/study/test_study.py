"""`qatune run`: the study file is checked up front; a tiny study runs end to end, resumes, and its
report shows exactly the numbers in the run's own result files."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from qatune.errors import ConfigError
from qatune.report.failures import failure_blocks
from qatune.study import load_study, parse_study, run_study

ROOT = Path(__file__).resolve().parents[2]
TINY = {"eval_sample": 10, "max_seq_length": 128, "doc_stride": 32, "micro_batch_size": 8, "train_batch_size": 8}


def tiny_study(model: Path, out: Path, **changes) -> dict:
    study = {
        "name": "tiny",
        "data": {"train": "sample", "test": "sample:validation"},
        "sweep": {
            "method": "random",
            "metric": {"name": "f1", "goal": "maximize"},
            "parameters": {"learning_rate": {"values": [1e-3, 5e-3]}},
            "run_cap": 2,
            "base": {"model": str(model), "max_steps": 4, "eval_steps": 2, **TINY},
        },
        "experiments": [
            {
                "name": "picked",
                "model": str(model),
                "learning_rate": {"from_sweep": "best_f1"},
                "max_steps": 6,
                "eval_steps": 3,
                **TINY,
            },
            {"name": "fixed", "model": str(model), "learning_rate": 1e-4, "max_steps": 6, "eval_steps": 3, **TINY},
        ],
        "compare": {"experiment": "picked", "sample": 15, "train_sample": 10},
        "questions": {
            "top_k": 2,
            "items": [
                {"context": "Vin is a Mistborn of great power and skill.", "question": "What is Vin's speciality?"}
            ],
        },
        "report": {"dir": str(out)},
    }
    study.update(changes)
    return study


def test_shipped_studies_validate():
    quick = load_study(ROOT / "examples" / "quickstart.yaml")
    from qatune.cli.study import quickstart_path

    assert quickstart_path().read_text() == (ROOT / "examples" / "quickstart.yaml").read_text()
    assert quick.sweep.run_cap == 6 and quick.data.allow_sample
    study = load_study(ROOT / "examples" / "study.yaml")
    verbatim = {
        "method": "bayes",
        "metric": {"name": "train_loss", "goal": "minimize"},
        "parameters": {"train_batch_size": {"values": [64, 128]}, "learning_rate": {"min": 4e-5, "max": 4e-4}},
    }
    assert {k: study.sweep.raw[k] for k in verbatim} == verbatim and study.sweep_count == 25
    assert [e.name for e in study.experiments] == ["Roberta", "Roberta 1", "Roberta 2", "Bert"]
    assert len(study.questions.items) == 4 and study.compare.experiment == "Bert"
    own = load_study(ROOT / "examples" / "own-data" / "study.yaml")
    assert [e.from_experiment for e in own.experiments] == [None, "squad", "squad"]
    assert own.compare.also_data == ("squad:validation",) and own.experiments[2].settings["mix"] == "squad:train:1"


@pytest.mark.parametrize(
    "change, message",
    [
        ({"experimens": []}, "study: unknown key(s) experimens"),
        ({"sweep": None}, "experiments.picked.learning_rate: from_sweep needs a `sweep` section"),
        ({"compare": {"experiment": "nope"}}, "compare.experiment: 'nope' is not an experiment; valid: picked, fixed"),
        ({"compare": {"experiment": "picked", "sample": 0}}, "compare.sample: expected a positive integer"),
        ({"questions": {"items": [{"context": "x"}]}}, "questions[0]: expected {context: TEXT, question: TEXT}"),
        ({"questions": {"items": [{"context": "x", "question": "y", "title": 5}]}}, "questions[0]: title must be text"),
        ({"questions": {"file": "missing.json"}}, "questions.file: missing.json: no such questions file"),
        ({"report": {"formats": ["pdf"]}}, "report.formats: expected some of markdown, html"),
        ({"data": {"train": "sample", "tset": "x"}}, "data: unknown key(s) tset"),
        ({"report_to": "tensorbord"}, "report_to: unknown tracker(s) tensorbord"),
    ],
)
def test_bad_study_names_the_key(tiny_bert, tmp_path, change, message):
    with pytest.raises(ConfigError) as err:
        parse_study(tiny_study(tiny_bert, tmp_path, **change))
    assert message in str(err.value)


def test_report_to_reaches_every_experiment(tiny_bert, tmp_path):
    from qatune.study.run import StudyRunner

    spec = parse_study(tiny_study(tiny_bert, tmp_path, report_to=["mlflow", "tensorboard"]))
    assert spec.report_to == "mlflow,tensorboard"
    runner = StudyRunner(spec, progress_bar=False)
    fixed = spec.experiments[1]
    assert runner.experiment_config(fixed, None, {}).report_to == "mlflow,tensorboard"
    plain = StudyRunner(parse_study(tiny_study(tiny_bert, tmp_path)), progress_bar=False)
    assert plain.experiment_config(fixed, None, {}).report_to == "none"


def test_bad_experiment_and_sweep_settings(tiny_bert, tmp_path):
    study = tiny_study(tiny_bert, tmp_path)
    study["experiments"][0]["learning_rate"] = {"from_sweep": "luckiest"}
    with pytest.raises(ConfigError, match="experiments.picked.learning_rate.from_sweep: unknown pick 'luckiest'"):
        parse_study(study)
    study = tiny_study(tiny_bert, tmp_path)
    study["experiments"][1]["warmup_ratio"] = {"from_sweep": "best_f1"}
    with pytest.raises(ConfigError, match="the sweep does not search 'warmup_ratio'"):
        parse_study(study)
    study = tiny_study(tiny_bert, tmp_path)
    study["experiments"][1]["lr"] = 1
    with pytest.raises(ConfigError, match="experiments.fixed: unknown setting"):
        parse_study(study)
    study = tiny_study(tiny_bert, tmp_path)
    del study["sweep"]["run_cap"]
    with pytest.raises(ConfigError, match="sweep: give `run_cap`"):
        parse_study(study)


def _cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "qatune.cli", *args], capture_output=True, text=True, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}: {proc.stderr[-3000:]}")
    return proc


def test_dry_run_and_errors(tiny_bert, tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(tiny_study(tiny_bert, tmp_path / "out")))
    out = _cli("run", str(path), "--dry-run").stdout
    assert "1. sweep: random over learning_rate" in out and "2. fine-tune picked" in out and "5. report" in out
    assert not (tmp_path / "out").exists()
    path.write_text(yaml.safe_dump(tiny_study(tiny_bert, tmp_path / "out", compare={"experiment": "x"})))
    proc = _cli("run", str(path), check=False)
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and "compare.experiment" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "quickstart" in _cli("run", "--dry-run").stdout


def _table(markdown: str, caption: str) -> list[list[str]]:
    block = markdown.split(f"**{caption}")[1].split("\n\n")[1]
    return [[c.strip() for c in line.strip("|").split(" | ")] for line in block.splitlines()[2:]]


def test_tiny_study_end_to_end_and_report_matches_results(tiny_bert, tmp_path):
    out = tmp_path / "out"
    results = run_study(parse_study(tiny_study(tiny_bert, out)), progress_bar=False)
    saved = json.loads((out / "results.json").read_text())
    assert saved["experiments"] == results.to_dict()["experiments"]
    md = (out / "report.md").read_text()
    sweep = saved["sweep"]
    picked = next(r for r in sweep["trials"] if r["name"] == sweep["picks"]["best_f1"])
    experiments = {e["name"]: e for e in saved["experiments"]}
    assert experiments["picked"]["config"]["learning_rate"] == picked["learning_rate"]  # from_sweep honoured
    for e in experiments.values():  # each experiment's summary is the trainer's own qatune.json
        trained = json.loads((out / "experiments" / e["name"] / "qatune.json").read_text())
        assert e["final_eval"] == trained["final_eval"] and e["steps"] == trained["steps"] == 6
    table1 = _table(md, "Table 1")  # one row per trial, naming every pick it is
    row = next(r for r in table1 if "best F1" in r[1].split(", "))
    assert row[0] == sweep["picks"]["best_f1"] and float(row[-1]) == pytest.approx(picked["f1"], abs=1e-3)
    assert len(table1) == len(set(sweep["picks"].values()))
    table3 = {row[0]: row for row in _table(md, "Table 3")}
    for name, e in experiments.items():
        assert table3[name][4] == f"{e['train_eval']['exact_match']:.2f}"
        assert table3[name][6] == f"{e['test_eval']['f1']:.2f}" and e["test_eval"]["total"] == 15
        preds = json.loads((out / "evals" / f"{name}_test.predictions.json").read_text())
        assert len(preds) == 15
    table4 = _table(md, "Table 4")
    compare = saved["compare"]
    assert table4[0][1:4] == [str(compare["untuned"][k]) for k in ("correct", "similar", "incorrect")]
    assert (
        table4[1][5] == f"{compare['fine_tuned']['f1']:.2f}"
        and compare["fine_tuned"] == experiments["picked"]["test_eval"]
    )
    answers = saved["questions"][0]["answers"]
    assert set(answers) == {"picked", "fixed", f"{tiny_bert} (untuned)"} and all(len(a) == 2 for a in answers.values())
    assert f"{answers['picked'][0]['text']!r} ({answers['picked'][0]['probability']:.3f})" in md
    assert "Figure 5" in md and len(compare["fine_tuned"]["reliability"]["calibrated"]) == 10
    for link in re.findall(r"!\[[^]]*\]\(([^)]+)\)", md):
        assert (out / link).stat().st_size > 5000, link
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(re.findall(r"!\[", md)) >= 6
    assert "Table 4" in html and "<script" not in html


def test_study_resumes_after_kill(tiny_bert, tmp_path):
    out = tmp_path / "out"
    study = tiny_study(tiny_bert, out)
    study["experiments"][1].update(max_steps=40, save_steps=2, eval_steps=20)
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(study))
    args = [sys.executable, "-m", "qatune.cli", "run", str(path)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not list((out / "experiments" / "fixed" / "checkpoints").glob("step-*")):
        assert time.time() < deadline and proc.poll() is None, proc.communicate()[1][-2000:]
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "run the same command again" in err
    err = _cli("run", str(path)).stderr
    assert "sweep: up to date, skipped" in err and "fine-tune picked: up to date, skipped" in err
    assert "resumed from" in err and "fine-tune fixed ..." in err
    saved = json.loads((out / "results.json").read_text())
    history = next(e for e in saved["experiments"] if e["name"] == "fixed")["history"]
    assert [h["step"] for h in history] == [0, 20, 40]  # nothing lost, nothing twice


def test_a_study_another_process_is_running_is_refused(tiny_bert, tmp_path):
    from qatune.paths import exclusive

    out = tmp_path / "out"
    out.mkdir()
    with exclusive(out, "this study"):
        with pytest.raises(ConfigError, match="another qatune process is writing this study"):
            run_study(parse_study(tiny_study(tiny_bert, out)), progress_bar=False)
    assert not any(out.iterdir())  # the refused run wrote nothing


def test_missing_data_stops_with_where_it_looked(tiny_bert, tmp_path, monkeypatch):
    from qatune.errors import DataError

    monkeypatch.setenv("QATUNE_DATA_DIR", str(tmp_path / "empty"))
    study = tiny_study(tiny_bert, tmp_path / "out", data={"train": "squad:train", "test": "squad:validation"})
    with pytest.raises(DataError) as err:
        run_study(parse_study(study), progress_bar=False)
    message = str(err.value)
    assert "squad:train: not found" in message and str(tmp_path / "empty") in message
    assert "set QATUNE_DATA_DIR" in message and not (tmp_path / "out" / "sweep").exists()


def test_study_never_removes_folders_it_did_not_make(tiny_bert, tmp_path):
    """The stale-stage cleanup only removes a folder of this study that carries qatune's marker; a folder of
    the user's own files in its place stops the run with an error, and a foreign report folder is refused."""
    out = tmp_path / "out"
    theirs = out / "experiments" / "fixed"
    theirs.mkdir(parents=True)
    (theirs / "notes.txt").write_text("precious")
    (out / "stages.json").write_text("{}")
    study = tiny_study(tiny_bert, out, sweep=None, compare=None, questions=None)
    study["experiments"] = [study["experiments"][1]]
    with pytest.raises(ConfigError, match="did not write"):
        run_study(parse_study(study), progress_bar=False)
    assert (theirs / "notes.txt").read_text() == "precious"
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(ConfigError, match="not a qatune study folder"):
        run_study(parse_study(tiny_study(tiny_bert, foreign)), progress_bar=False)
    assert [p.name for p in foreign.iterdir()] == ["thesis.tex"]


@pytest.mark.parametrize(
    "content", ["[1, 2]", '{"stages": []}', '{"stages": {"sweep": 5}}', '{"stages": {"sweep": {}}}', '{"files": 1}']
)
def test_a_damaged_stages_file_is_one_error_naming_it(tmp_path, content):
    from qatune.study.cache import StageCache

    (tmp_path / "stages.json").write_text(content)
    with pytest.raises(ConfigError, match="stages.json: not a qatune stages file.*delete it"):
        StageCache(tmp_path)
    (tmp_path / "stages.json").unlink()
    assert StageCache(tmp_path).get("sweep", "key") is None


def test_from_experiment_and_also_data_are_checked(tiny_bert, tmp_path):
    study = tiny_study(tiny_bert, tmp_path, sweep=None)
    study["experiments"] = [study["experiments"][1], {"name": "more", "model": {"from_experiment": "later"}}]
    with pytest.raises(ConfigError, match=r"experiments.more.model.from_experiment: 'later' is not an experiment "):
        parse_study(study)
    study["experiments"][1]["model"] = {"from_experiment": "fixed", "x": 1}
    with pytest.raises(ConfigError, match="experiments.more.model: a mapping here must be"):
        parse_study(study)
    study["experiments"] = study["experiments"][:1]
    for also, message in (([1], "expected a list of data specs"), (["squad:dve"], "unknown split 'dve'")):
        study["compare"] = {"experiment": "fixed", "also_data": also}
        with pytest.raises(ConfigError, match=f"compare.also_data: .*{message}"):
            parse_study(study)
    sample_train = str(ROOT / "src" / "qatune" / "resources" / "sample-train.json")
    for also, message in ((["sample:dev"], "is the test data"), (["sample:train", sample_train], "is sample:train")):
        study["compare"] = {"experiment": "fixed", "also_data": also}  # the same file under another name
        with pytest.raises(ConfigError, match=f"compare.also_data: .*{message} .*already"):
            run_study(parse_study(study), progress_bar=False)
    assert not (tmp_path / "experiments").exists()  # refused before the first stage


def test_an_experiment_fine_tunes_another_further_with_a_mix(tiny_bert, tmp_path):
    """SQuAD-then-own-data as a study: the second experiment starts from the first one's model, mixes the
    first one's data back in, is scored on a second test set too, and the report shows where models fail."""
    out = tmp_path / "out"
    other = str(Path(__file__).resolve().parents[2] / "src" / "qatune" / "resources" / "sample-train.json")
    base = {"max_steps": 3, "eval_steps": 3, "calibration_questions": 0, **TINY}
    study = tiny_study(tiny_bert, out, sweep=None, questions=None)
    study["experiments"] = [
        {"name": "first", "model": str(tiny_bert), **base},
        {
            "name": "further",
            "model": {"from_experiment": "first"},
            "train_data": "sample:validation",
            "mix": "sample:train:0.5",
            **base,
        },
    ]
    study["compare"] = {"experiment": "further", "sample": 10, "train_sample": None, "also_data": [other]}
    results = run_study(parse_study(study), progress_bar=False)
    first, further = results.experiments
    assert further.config.model == str(out / "experiments" / "first")
    assert further.config.mix.endswith("sample-train.json:0.5")  # the spec resolved to its file
    trained = json.loads((out / "experiments" / "further" / "qatune.json").read_text())
    assert trained["train_data"]["questions"] == 34 + 17  # its own 34 questions and half as many mixed in
    assert "17 of these questions mixed in from" in trained["train_data"]["notes"][-1]
    assert [len(e.other_evals) for e in results.experiments] == [1, 1]
    assert further.other_evals[0].scores.total == 10 and further.test_eval.errors is not None
    md = (out / "report.md").read_text()
    table3 = {row[0]: row for row in _table(md, "Table 3")}
    assert table3["further"][7] == f"{further.other_evals[0].scores.exact_match:.2f}"
    assert table3["further"][1] == "first" and "EM on sample-train.json" in md
    assert "5. Where the models fail" in md and "Table 6: further's most confident wrong answers" in md
    assert results.compare.model == "first" and results.compare.untuned == first.test_eval  # not "untuned"
    assert "first (before fine-tuning further)" in md and "3. Before and after" in md
    saved = json.loads((out / "results.json").read_text())
    assert saved["experiments"][1]["test_eval"]["errors"]["by_question_word"]
    again = run_study(parse_study(study), progress_bar=False)  # cached: nothing trained again
    assert again.experiments[1].key == further.key and all(t.cached for t in again.stages.values())


def test_a_local_model_folder_is_known_by_its_content(tiny_bert, tmp_path):
    """A study whose model is a local folder reruns what depends on it when the folder holds another model
    (the cache key hashes its files, not its path); a hub name or `default` is known by its name."""
    from qatune.study.pipeline import _untuned
    from qatune.study.run import StudyRunner

    model = shutil.copytree(tiny_bert, tmp_path / "model")
    runner = StudyRunner(parse_study(tiny_study(model, tmp_path / "out")), progress_bar=False)
    keys: list[str] = []
    runner.stage = lambda name, key, *rest: keys.append(key)  # type: ignore[method-assign]  # the sweep's key
    runner.run_sweep()
    before = (runner.model_sha(str(model)), _untuned(runner, str(model), 0))
    (model / ".DS_Store").write_bytes(b"junk")  # files no loader reads change nothing
    (model / "config.json~").write_text("an editor's backup")
    assert before == (runner.model_sha(str(model)), _untuned(runner, str(model), 0)) and before[0]
    config = model / "config.json"
    config.write_text(config.read_text().replace("{", '{"a_change": 1, ', 1))
    after = (runner.model_sha(str(model)), _untuned(runner, str(model), 0))
    assert after[0] != before[0] and after[1] != before[1]
    runner.run_sweep()
    assert keys[0] != keys[1]  # the sweep's trials start from that folder too
    assert runner.model_sha("default") is None and runner.model_sha("bert-base-uncased") is None


def test_experiments_with_the_same_settings_are_one_model(tiny_bert, tmp_path):
    """Two sweep picks that are the same trial give two experiments with the same settings: the model is
    trained once, the report says so, and an experiment that starts from the second starts from that model."""
    out = tmp_path / "out"
    base = {"model": str(tiny_bert), "learning_rate": 1e-3, "max_steps": 3, "eval_steps": 3, **TINY}
    study = tiny_study(tiny_bert, out, sweep=None)
    study["experiments"] = [
        {"name": "a", **base},
        {"name": "b", **base},
        {"name": "c", **base, "model": {"from_experiment": "b"}},
    ]
    study["compare"] = {"experiment": "c", "sample": 10, "train_sample": None}
    results = run_study(parse_study(study), progress_bar=False)
    a, b, c = results.experiments
    assert b.config.output_dir == a.config.output_dir and b.key == a.key and b.name == "b"
    assert not (out / "experiments" / "b").exists() and c.config.model == a.config.output_dir
    assert "fine-tune b" not in results.stages and results.compare.model == "a"
    assert "evaluate b test" not in results.stages and b.test_eval == a.test_eval  # scored and asked once too
    assert "questions b" not in results.stages and "questions a" in results.stages
    report = (out / "report.md").read_text()
    assert "(b has the settings of a: one model, trained once)" in report
    untuned = replace(results.compare, experiment="b", model="base", before="untuned")  # listed first
    as_b = replace(results, compare=untuned)  # the failures of b are a's, not the first model's listed
    assert failure_blocks(as_b)[1].text.startswith("a answers")
    assert "| a F1 | c F1 |" in report  # the error analysis has a column per model, not per name

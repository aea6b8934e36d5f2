"""Folders an older qatune wrote (commit 86659ef, before the subpackages and typed records) still load.

tests/fixtures/v01 was made by tests/fixtures/make_v01.py with that commit's code: a fine-tuned tiny
model, a two-trial sweep and a study, with what the older code printed for them (expected-*.json).
Today's code must read each and give the same figures.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from qatune.cli.main import main
from qatune.training.summary import RunSummary

FIXTURE = Path(__file__).parent / "fixtures" / "v01"
MADE_IN = "/tmp/fx/v01"  # where make_v01.py wrote them: paths in the expected output start here


def _json_output(capsys, *args: str) -> dict:
    capsys.readouterr()
    assert main([*args, "--json", "-q"]) == 0
    return json.loads(capsys.readouterr().out)


def test_an_old_model_folder_evaluates_to_the_same_scores_and_answers(tmp_path, capsys):
    model = shutil.copytree(FIXTURE / "model", tmp_path / "model")
    expected = json.loads((FIXTURE / "expected-evaluate.json").read_text())
    predictions = tmp_path / "predictions.json"
    now = _json_output(
        capsys, "evaluate", "--model", str(model), "--data", "sample:validation", "--predictions", str(predictions)
    )
    for key in ("exact_match", "f1", "total", "correct", "similar", "incorrect"):
        assert now[key] == expected[key], key
    for key in ("eval_loss", "ece", "ece_raw"):
        assert now[key] == pytest.approx(expected[key], rel=1e-5, abs=1e-7), key
    assert json.loads(predictions.read_text()) == json.loads((FIXTURE / "expected-predictions.json").read_text())


def test_an_old_run_summary_reads_as_a_record_and_writes_back_the_same_json():
    saved = json.loads((FIXTURE / "model" / "qatune.json").read_text())
    summary = RunSummary.read(FIXTURE / "model")
    assert summary.schema == 1 and summary.steps == saved["steps"] == 6
    assert summary.final_eval is not None and summary.final_eval.scores.f1 == saved["final_eval"]["f1"]
    assert summary.config.learning_rate == saved["config"]["learning_rate"]
    again = summary.to_dict()
    assert again.pop("schema") == 1 and again == saved


def test_an_old_sweep_shows_the_same_results(tmp_path, capsys):
    folder = shutil.copytree(FIXTURE / "sweep", tmp_path / "sweep")
    text = (FIXTURE / "expected-sweep-show.json").read_text().replace(f"{MADE_IN}/sweep", str(folder))
    assert _json_output(capsys, "sweep", "show", "old", "--dir", str(folder)) == json.loads(text)


def test_an_old_study_gives_the_same_report(tmp_path):
    from qatune.report import write_report
    from qatune.report.results import StudyResults

    folder = shutil.copytree(FIXTURE / "study", tmp_path / "study")
    (folder / "report.md").unlink()
    results = StudyResults.from_dict(json.loads((folder / "results.json").read_text()))
    write_report(results, SimpleNamespace(dir=str(folder), formats=["markdown"], title=None))
    expected = (FIXTURE / "study" / "report.md").read_text()
    # the one change since: a trial that is every pick is one row of Table 1 that says so
    picks = ("lowest training loss", "most correct answers", "best F1", "lowest evaluation loss")
    rows = [f"| trial-0 | {p} | 0.003 | 4.3778 | 4.3241 | 0 | 0 |\n" for p in picks]
    assert all(r in expected for r in rows)
    expected = expected.replace("".join(rows), f"| trial-0 | {', '.join(picks)} | 0.003 | 4.3778 | 4.3241 | 0 | 0 |\n")
    caption = "**Table 1: the sweep's extreme explorations"
    said = "one trial is every extreme: the others did not beat it on any figure"
    expected = expected.replace(caption, f"{caption} ({said})")
    assert (folder / "report.md").read_text() == expected


def test_old_study_results_read_as_records_and_write_back_the_same_json():
    from qatune.report.results import StudyResults

    saved = json.loads((FIXTURE / "study" / "results.json").read_text())
    results = StudyResults.from_dict(saved)
    assert (
        results.compare is not None
        and results.compare.fine_tuned.scores.total == saved["compare"]["fine_tuned"]["total"]
    )
    assert results.to_dict() == saved and list(results.to_dict()) == list(saved)


def test_a_run_summary_from_another_version_is_read_or_refused_by_name(tmp_path):
    from qatune.errors import ConfigError

    saved = json.loads((FIXTURE / "model" / "qatune.json").read_text())
    saved["calibration"] = {
        **(
            saved["calibration"]
            or {
                "temperature": 1.5,
                "questions": 50,
                "data": "d",
                "exact_match": 1.0,
                "ece_before": 0.1,
                "ece_after": 0.05,
            }
        ),
        "a_later_field": 1,
    }
    (tmp_path / "qatune.json").write_text(json.dumps(saved))
    assert RunSummary.read(tmp_path).calibration is not None  # a field added later is left out
    for schema in (99, "x", True):
        (tmp_path / "qatune.json").write_text(json.dumps({**saved, "schema": schema}))
        with pytest.raises(ConfigError, match="qatune.json: not the summary of a finished run .*schema"):
            RunSummary.read(tmp_path)


def test_a_run_from_before_negative_kinds_keeps_its_same_article_negatives():
    """A folder written before `negative_kinds` trained with same-article negatives only: a resume or a
    calibration refit must rebuild exactly those, not the newer default mix."""
    from qatune.training.config import TrainConfig
    from qatune.training.summary import saved_config

    old = {**TrainConfig(output_dir="o").to_dict(), "negatives": 0.33}
    assert "negative_kinds" not in old
    assert TrainConfig.from_saved(old).negative_kinds == saved_config(old).negative_kinds == "article"
    assert TrainConfig.from_dict(old).negative_kinds == "article,entity,number,antonym"  # new: the default mix
    plain = TrainConfig(output_dir="o").to_dict()  # no negatives: no kinds written, old study keys stay
    assert "negative_kinds" not in plain and TrainConfig.from_saved(plain) == TrainConfig(output_dir="o")

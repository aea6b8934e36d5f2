"""qatune.data.negatives: v2-style unanswerable questions from v1.1 data, and a model that abstains end to end."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from qatune.data.negatives import add_mined_negatives, add_negatives, made_from
from qatune.data.sources import load_data
from qatune.data.squad import load_file, to_squad
from qatune.errors import ConfigError
from qatune.evaluation.metrics import normalize_answer


def test_negatives_never_hold_a_gold_answer_and_stay_in_the_article(squad_dir):
    dev = load_file(squad_dir / "dev-v1.1.json.gz")
    made = add_negatives(dev.select(sample=2000, seed=1), 0.5, seed=3, pool=dev)
    originals = {e.id: e for e in dev.examples}
    negatives = [e for e in made.examples if not e.answers]
    assert 900 <= len(negatives) <= 1000 and "added" in made.notes[-1]
    for negative in negatives:
        source = originals[negative.id.removesuffix("-negative")]
        assert negative.question == source.question and negative.title == source.title
        assert negative.context != source.context
        for gold in source.answers:
            assert gold.lower() not in negative.context.lower()
            assert normalize_answer(gold) not in normalize_answer(negative.context)
    again = add_negatives(dev.select(sample=2000, seed=1), 0.5, seed=3, pool=dev)
    assert [e.context for e in again.examples] == [e.context for e in made.examples]  # seeded


def test_a_negative_id_names_its_source_and_kind():
    assert made_from("56be4db0acb8001400a502ec-negative") == ("56be4db0acb8001400a502ec", "article")
    assert made_from("q1-number") == ("q1", "number") and made_from("q1-mined") == ("q1", "mined")
    assert made_from("q1") is None and made_from("q1-answer") is None


def test_bad_fraction_is_refused():
    dataset = load_data("sample", "train")
    for bad in (0, 1.5, -0.2):
        with pytest.raises(ConfigError, match="negatives"):
            add_negatives(dataset, bad)
        with pytest.raises(ConfigError, match="mined negatives"):
            add_mined_negatives(dataset, bad)


def test_mined_negatives_are_what_bm25_ranks_highest_without_the_answer(squad_dir):
    from qatune.data.lexical import Lexical

    dev = load_file(squad_dir / "dev-v1.1.json.gz")
    made = add_mined_negatives(dev.select(sample=300, seed=1), 0.5, seed=3, pool=dev)
    originals = {e.id: e for e in dev.examples}
    negatives = [e for e in made.examples if not e.answers]
    assert 140 <= len(negatives) <= 150 and "BM25" in made.notes[-1]
    contexts = list(dict.fromkeys(e.context for e in dev.examples))
    ranked = Lexical.build(contexts).search([n.question for n in negatives], 20)
    same_article = 0
    for negative, (found, _) in zip(negatives, ranked):
        source = originals[negative.id.removesuffix("-mined")]
        assert negative.question == source.question and negative.context != source.context
        for gold in source.answers:
            assert normalize_answer(gold) not in normalize_answer(negative.context)

        # the best-ranked paragraph that is neither its own nor holds an answer, in the BM25 ranking
        def holds(c, golds=source.answers):
            return any(g.lower() in c.lower() or normalize_answer(g) in normalize_answer(c) for g in golds)

        allowed = [c for c in (contexts[i] for i in found) if c != source.context and not holds(c)]
        assert negative.context == allowed[0]
        same_article += negative.title == source.title
    assert 0.5 < same_article / len(negatives) < 1  # mostly on topic, but not only from the same article


def test_v2_file_round_trip(tmp_path, squad_dir):
    from qatune.io import atomic_write_json

    made = add_negatives(load_file(squad_dir / "dev-v1.1.json.gz").select(limit=300), 0.4, seed=0)
    atomic_write_json(tmp_path / "v2.json", to_squad(made))
    loaded = load_file(tmp_path / "v2.json")
    assert sorted(loaded.examples, key=lambda e: e.id) == sorted(made.examples, key=lambda e: e.id)
    assert loaded.has_impossible and sum(e.is_impossible for e in loaded.examples) == sum(not e.answers for e in made)


@pytest.fixture(scope="module")
def v2_model(tmp_path_factory, tiny_bert, squad_dir):
    """A tiny model trained on v2-style data (dev v1.1 questions plus same-article negatives), with its
    temperature and no-answer threshold fitted on held-out questions of the same file."""
    from qatune.io import atomic_write_json
    from qatune.training.config import TrainConfig
    from qatune.training.trainer import train

    folder = tmp_path_factory.mktemp("v2")
    dev = load_file(squad_dir / "dev-v1.1.json.gz")
    atomic_write_json(folder / "v2.json", to_squad(add_negatives(dev.select(limit=400), 0.5, 0, pool=dev)))
    config = TrainConfig(
        model=str(tiny_bert),
        train_data=str(folder / "v2.json"),
        eval_data=str(folder / "v2.json"),
        output_dir=str(folder / "model"),
        train_sample=160,
        eval_limit=40,
        max_steps=4,
        train_batch_size=8,
        micro_batch_size=8,
        eval_steps=None,
        eval_at_start=False,
        max_seq_length=128,
        doc_stride=32,
        precision="fp32",
        calibration_questions=120,
    )
    summary = train(config, progress_bar=False).to_dict()
    return folder, summary


def test_a_v2_model_saves_and_uses_its_no_answer_threshold(v2_model):
    from qatune.answering.torch_backend import Answerer
    from qatune.evaluation.scoring import evaluate
    from qatune.models.loading import load_model
    from qatune.models.settings import read_calibration

    folder, summary = v2_model
    calibration = read_calibration(folder / "model")
    assert calibration is not None and calibration.null_threshold is not None
    assert (
        0 <= calibration.null_threshold <= 1 and summary["calibration"]["null_threshold"] == calibration.null_threshold
    )
    loaded = load_model(str(folder / "model"))
    assert loaded.with_null and loaded.null_threshold == calibration.null_threshold
    v2 = load_file(folder / "v2.json").select(limit=60)
    metrics = evaluate(Answerer(loaded, loaded.window), v2).metrics
    for key in (
        "HasAns_exact",
        "NoAns_exact",
        "HasAns_f1",
        "NoAns_f1",
        "best_f1",
        "best_f1_threshold",
        "best_exact_match",
    ):
        assert key in metrics
    assert metrics["null_threshold"] == calibration.null_threshold
    answerer = Answerer(str(folder / "model"))
    for prediction in answerer.predict_many([(e.context, e.question) for e in v2.examples], top_k=2):
        abstains = prediction.no_answer_probability > calibration.null_threshold
        assert (prediction.answers[0].text == "") == abstains
        assert all(a.text for a in prediction.answers[1:])


def test_evaluate_writes_no_answer_probabilities_and_the_threshold_table(v2_model, tmp_path, tiny_bert):
    import csv
    import json
    import subprocess
    import sys

    folder, _ = v2_model
    na_file, report, metrics = tmp_path / "na.json", tmp_path / "report", tmp_path / "metrics.json"
    args = ["evaluate", "--model", str(folder / "model"), "--data", str(folder / "v2.json"), "--limit", "60", "-q"]
    args += ["--na-probs", str(na_file), "--metrics", str(metrics), "--report", str(report)]
    run = subprocess.run([sys.executable, "-m", "qatune.cli", *args], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    na, scores = json.loads(na_file.read_text()), json.loads(metrics.read_text())
    ids = [e.id for e in load_file(folder / "v2.json").select(limit=60).examples]
    assert list(na) == ids and all(0 <= p <= 1 for p in na.values())
    assert json.loads((report / "na_probs.json").read_text()) == na
    rows = list(csv.DictReader((report / "thresholds.csv").open()))
    saved = next(r for r in rows if "saved" in r["which"].split(";"))
    assert float(saved["f1"]) == pytest.approx(scores["f1"], abs=0.01)  # what the model answered, recomputed
    assert float(saved["NoAns_exact"]) == pytest.approx(scores["NoAns_exact"], abs=0.01)
    best = next(r for r in rows if "best_f1" in r["which"].split(";"))
    assert float(best["f1"]) == pytest.approx(scores["best_f1"], abs=0.01)
    assert [float(r["answered"]) for r in rows] == sorted(float(r["answered"]) for r in rows)
    assert float(saved["threshold"]) == scores["null_threshold"]  # in full: what --null-threshold can be given
    refused = subprocess.run(
        [sys.executable, "-m", "qatune.cli", "evaluate", "--model", str(tiny_bert), "--data", "sample:validation"]
        + ["--limit", "3", "--na-probs", str(tmp_path / "no.json")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert refused.returncode == 2 and "cannot answer 'no answer'" in refused.stderr
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert not (tmp_path / "no.json").exists() and len(errors) == 1 and "Traceback" not in refused.stderr


def test_a_threshold_set_by_hand_is_what_the_model_answers_with(v2_model, copy_model, tiny_bert, capsys):
    from qatune.answering.torch_backend import Answerer
    from qatune.cli.main import main
    from qatune.models.settings import read_calibration

    folder, _ = v2_model
    model = copy_model(folder / "model")
    fitted = read_calibration(model)
    assert main(["calibrate", "--model", str(model), "--null-threshold", "0.9", "-q"]) == 0
    assert "-> 0.9 (set by hand)" in capsys.readouterr().out
    saved = read_calibration(model)
    assert saved is not None and fitted is not None
    assert (saved.null_threshold, saved.null_threshold_f1, saved.temperature) == (0.9, None, fitted.temperature)
    assert "probability of 0.9 (set by hand)" in (model / "README.md").read_text()
    questions = load_file(folder / "v2.json").examples[:40]
    predictions = Answerer(str(model)).predict_many([(e.context, e.question) for e in questions], top_k=2)
    assert [p.answers[0].text == "" for p in predictions] == [p.no_answer_probability > 0.9 for p in predictions]
    plain = copy_model(tiny_bert)  # no no-answer head, no calibration.json
    bare = Path(shutil.copytree(folder / "model", model.parent / "bare"))
    (bare / "calibration.json").unlink()
    for args, message in (
        ([str(model), "--null-threshold", "1.5"], "must be between 0 and 1"),
        ([str(model), "--null-threshold", "nan"], "finite"),
        ([str(model), "--null-threshold", "0.5", "--data", "sample"], "--data would do nothing"),
        ([str(model), "--null-threshold", "0.5", "--target", "f1", "--sample", "9"], "--target, --sample would"),
        ([str(plain), "--null-threshold", "0.5"], "cannot answer 'no answer'"),
        ([str(bare), "--null-threshold", "0.5"], "no calibration.json"),
    ):
        try:
            code = main(["calibrate", "--model", *args])
        except SystemExit as exc:  # argparse's own refusals
            code = exc.code
        assert code == 2
        errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and message in errors[0], errors
    assert read_calibration(model) == saved
    assert main(["calibrate", "--model", str(model), "--null-threshold", "-0", "-q"]) == 0
    assert read_calibration(model).null_threshold == 0.0 and "-0" not in (model / "calibration.json").read_text()
    assert main(["calibrate", "--model", str(plain), "--data", "sample", "--sample", "60", "-q"]) == 0  # a v1 fit
    assert main(["calibrate", "--model", str(plain), "--null-threshold", "0.5"]) == 2
    assert "cannot answer 'no answer'" in capsys.readouterr().err


def test_v2_round_trip_through_the_api_and_the_export(v2_model, tmp_path):
    from fastapi.testclient import TestClient

    from qatune.answering.onnx_backend import OnnxAnswerer
    from qatune.models.settings import read_calibration
    from qatune.publishing.export import export_onnx
    from qatune.serving.app import create_app
    from qatune.serving.config import ServeConfig
    from qatune.serving.models import Models

    folder, _ = v2_model
    threshold = read_calibration(folder / "model").null_threshold
    config = ServeConfig(model=str(folder / "model"))
    models = Models()
    models.load(config)
    questions = load_file(folder / "v2.json").examples[:40]
    with TestClient(create_app(config, models)) as client:
        for e in questions:
            body = client.post("/v1/answer", json={"context": e.context, "question": e.question, "top_k": 2}).json()
            abstains = body["no_answer_probability"] > threshold
            assert (body["answers"][0]["text"] == "") == abstains
    export_onnx(str(folder / "model"), tmp_path / "onnx")
    onnx = OnnxAnswerer(tmp_path / "onnx").predict_many([(e.context, e.question) for e in questions], 2)
    assert [(p.answers[0].text == "") for p in onnx] == [p.no_answer_probability > threshold for p in onnx]

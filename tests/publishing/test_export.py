"""`qatune export`: the ONNX folder answers like the torch model, without importing torch."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from qatune.answering.onnx_backend import OnnxAnswerer
from qatune.answering.torch_backend import Answerer
from qatune.data.windows import WindowConfig
from qatune.models.settings import Calibration, write_calibration
from qatune.publishing.export import export_onnx

CONTEXT = (
    "Earth is the third planet from the Sun and the only place known in the universe where life has "
    "originated and found habitability. "
) * 6  # long enough for several windows
QUESTIONS = ["What is Earth?", "Where has life originated?", "Which planet is third from the Sun?"]
WINDOW = WindowConfig(max_seq_length=64, doc_stride=16, max_query_length=16)


@pytest.fixture(scope="module")
def tiny_export(tiny_bert, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "onnx"
    export_onnx(str(tiny_bert), out, window=WINDOW)
    return out


@pytest.mark.parametrize("fixture", ["tiny_bert", "tiny_roberta"])
def test_onnx_answers_match_torch(fixture, request, tmp_path, copy_model):
    model = str(copy_model(request.getfixturevalue(fixture)))
    write_calibration(model, Calibration(2.5, 100, "held-out", 50.0, 0.2, 0.02))  # travels with the export
    meta = export_onnx(model, tmp_path / "onnx", window=WINDOW)
    assert meta["max_logit_difference"] < 1e-4
    pairs = [(CONTEXT, q) for q in QUESTIONS]
    expected = Answerer(model, WINDOW).predict_many(pairs, 3)
    got = OnnxAnswerer(tmp_path / "onnx").predict_many(pairs, 3)
    for want, have in zip(expected, got):
        assert [(a.text, a.start, a.end) for a in have.answers] == [(a.text, a.start, a.end) for a in want.answers]
        assert [a.probability for a in have.answers] == pytest.approx([a.probability for a in want.answers], abs=1e-5)
        assert [a.raw_probability for a in have.answers] == pytest.approx([a.raw_probability for a in want.answers])
        assert have.answers[0].probability != pytest.approx(have.answers[0].raw_probability)
        assert have.no_answer_probability == pytest.approx(want.no_answer_probability, abs=1e-5)


def test_export_folder_has_optimums_question_answering_layout(tiny_roberta, tmp_path):
    import onnx
    from transformers import AutoConfig, AutoTokenizer

    export_onnx(str(tiny_roberta), tmp_path / "onnx", window=WINDOW)
    graph = onnx.load(str(tmp_path / "onnx" / "model.onnx")).graph
    assert [i.name for i in graph.input] == ["input_ids", "attention_mask"]  # RoBERTa has no token_type_ids
    assert [o.name for o in graph.output] == ["start_logits", "end_logits"]
    assert AutoConfig.from_pretrained(tmp_path / "onnx").model_type == "roberta"
    assert AutoTokenizer.from_pretrained(tmp_path / "onnx")("a question", "a context")["input_ids"]


def test_exported_cli_answers_without_torch(tiny_bert, tmp_path):
    export_onnx(str(tiny_bert), tmp_path / "onnx", quantize=True)
    code = (
        "import sys, json; from qatune.cli.main import main; "
        f"main(['ask', '--model', {str(tmp_path / 'onnx')!r}, '--context', {CONTEXT!r}, "
        "'--question', 'What is Earth?', '--json', '-q']); "
        "print(json.dumps(sorted(m for m in ('torch', 'transformers', 'qatune.training.trainer') if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True).stdout
    answer_json, imported = out.rsplit("\n", 2)[0], out.rsplit("\n", 2)[1]
    assert json.loads(imported) == []
    answers = json.loads(answer_json)["answers"]
    assert len(answers) == 3 and all(CONTEXT[a["start"] : a["end"]] == a["text"] for a in answers)
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(tmp_path / "onnx" / "model.onnx")).graph
    scales = [numpy_helper.to_array(i) for i in graph.initializer if i.name.endswith("_scale")]
    assert any(s.ndim == 1 and len(s) > 1 for s in scales), "int8 weights are quantised per channel"
    proc = subprocess.run(
        [sys.executable, "-m", "qatune.cli", "export", str(tmp_path / "missing"), "--output", str(tmp_path / "x")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and not (tmp_path / "x").exists()


def test_export_never_destroys_a_folder_it_did_not_write(tiny_bert, tmp_path, monkeypatch):
    """A non-empty folder that is not an export is refused; an export is replaced only when the new one is
    complete, and a failed export leaves the old one and no temporary folder behind."""
    import qatune.publishing.export
    from qatune.errors import ConfigError, ModelError

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "model.safetensors").write_text("my trained model")
    with pytest.raises(ConfigError, match="not empty"):
        export_onnx(str(tiny_bert), mine)
    assert (mine / "model.safetensors").read_text() == "my trained model"
    out = tmp_path / "onnx"
    export_onnx(str(tiny_bert), out, window=WINDOW)
    export_onnx(str(tiny_bert), out, window=WindowConfig(96, 32, 16))  # an earlier export: replaced
    assert OnnxAnswerer(out).window.max_seq_length == 96
    assert OnnxAnswerer(out, window=WINDOW).window == WINDOW  # an explicit override wins

    def broken(*args, **kwargs):
        raise ModelError("simulated failure")

    monkeypatch.setattr(qatune.publishing.export, "_check", broken)
    with pytest.raises(ModelError):
        export_onnx(str(tiny_bert), out, window=WINDOW)
    assert OnnxAnswerer(out).window.max_seq_length == 96  # the old export is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "onnx"]  # no temporary folders left


@pytest.mark.parametrize("fixture", ["tiny_bert", "tiny_roberta"])
def test_windows_longer_than_the_models_positions_are_refused(fixture, request, tmp_path):
    from qatune.errors import ConfigError

    model = str(request.getfixturevalue(fixture))
    longest = WindowConfig(max_seq_length=512, doc_stride=128, max_query_length=64)
    too_long = WindowConfig(max_seq_length=513, doc_stride=128, max_query_length=64)
    context = "Earth is the third planet from the Sun. " * 200  # fills 512-token windows
    answers = Answerer(model, longest).ask(context, "Which planet?")  # RoBERTa: 514 positions less 2
    assert answers
    with pytest.raises(ConfigError, match="512 or less"):
        Answerer(model, too_long)
    meta = export_onnx(model, tmp_path / "onnx", window=WINDOW)
    assert meta["max_positions"] == 512
    assert OnnxAnswerer(tmp_path / "onnx", window=longest).ask(context, "Which planet?")
    with pytest.raises(ConfigError, match="512 or less"):
        OnnxAnswerer(tmp_path / "onnx", window=too_long)


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        ({"max_answer_length": -5}, "max_answer_length"),
        ({"max_answer_length": "30"}, "max_answer_length"),
        ({"with_null": "no"}, "with_null"),
        ({"fresh_head": 1}, "fresh_head"),
        ({"max_answer_length": True}, "max_answer_length"),
        ({"pad_token_id": 10**30}, "pad_token_id"),
        ({"input_names": ["attention_mask"]}, "input_ids"),
        ({"input_names": "input_ids"}, "input_names"),
        ({"max_positions": -3}, "max_positions"),
        ({"window": {"max_seq_length": 64, "doc_stride": 16, "max_query_length": 0}}, "max_query_length"),
    ],
)
def test_a_damaged_export_settings_file_is_one_error(edit, words, tiny_export, tmp_path):
    """A hand-edited qatune-onnx.json is refused when loaded, naming the field, not a traceback mid-answer."""
    from qatune.errors import ModelError
    from qatune.layout import ONNX_META

    out = shutil.copytree(tiny_export, tmp_path / "onnx")
    meta = json.loads((out / ONNX_META).read_text())
    (out / ONNX_META).write_text(json.dumps({**meta, **edit}))
    with pytest.raises(ModelError, match=words):
        OnnxAnswerer(out)


def test_evaluate_scores_an_export_as_it_answers(tiny_bert, tiny_export, tmp_path, capsys):
    """`qatune evaluate --model EXPORT` scores the ONNX model (as ask and serve run it) like the torch model."""
    from qatune.cli.main import main

    window = ["--max-seq-length", "64", "--doc-stride", "16", "--max-query-length", "16"]
    scores = {}
    for name, model in (("torch", str(tiny_bert)), ("onnx", str(tiny_export))):
        predictions = tmp_path / f"{name}.json"
        assert main(["evaluate", "--model", model, "--data", "sample:validation", *window, "-q", "--json",
                     "--predictions", str(predictions)]) == 0  # fmt: skip
        scores[name] = (json.loads(capsys.readouterr().out), json.loads(predictions.read_text()))
    (torch_metrics, torch_answers), (onnx_metrics, onnx_answers) = scores["torch"], scores["onnx"]
    assert onnx_metrics["total"] == torch_metrics["total"] == 34 and onnx_metrics["eval_loss"] is None
    same = sum(onnx_answers[q] == torch_answers[q] for q in torch_answers)
    assert same >= 32  # the same answers but for near-ties (logits agree to 1e-4)
    assert onnx_metrics["f1"] == pytest.approx(torch_metrics["f1"], abs=3)


def test_calibrating_an_export_says_to_calibrate_its_model(tiny_export, capsys):
    from qatune.cli.main import main

    assert main(["calibrate", "--model", str(tiny_export), "--data", "sample"]) == 2
    assert "calibrate that model and export it again" in capsys.readouterr().err

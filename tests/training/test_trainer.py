"""qatune.training.trainer: a tiny model fine-tunes, saves a loadable folder, and resumes after an interruption."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from safetensors.torch import load_file as load_weights

from conftest import tiny_config
from qatune.errors import ConfigError, TrainingInterrupted
from qatune.io import read_jsonl
from qatune.models.loading import load_model
from qatune.training.config import TrainConfig
from qatune.training.trainer import train


def _interrupt_at(step: int):
    """A callback that stops training like Ctrl-C once `step` is logged."""

    def interrupt(record):
        if record["type"] == "train" and record["step"] == step:
            raise KeyboardInterrupt

    return interrupt


def test_train_writes_model_history_and_config(tiny_bert, tmp_path):
    summary = train(tiny_config(tiny_bert, tmp_path / "run"), progress_bar=False).to_dict()
    out = tmp_path / "run"
    assert (out / "model.safetensors").exists() and (out / "tokenizer.json").exists()
    assert not (out / "checkpoints").exists()
    history = read_jsonl(out / "metrics.jsonl")
    evals = [r for r in history if r["type"] == "eval"]
    assert [r["step"] for r in evals] == [0, 2, 4, 6]
    for r in evals:
        assert {"exact_match", "f1", "correct", "similar", "incorrect", "eval_loss", "train_loss"} <= set(r)
        assert r["eval_loss"] > 0 and r["correct"] + r["similar"] + r["incorrect"] == r["total"] == 12
    assert [r["step"] for r in history if r["type"] == "train"] == [1, 2, 3, 4, 5, 6]
    saved = json.loads((out / "qatune.json").read_text())
    assert saved["config"]["learning_rate"] == 1e-3 and saved["steps"] == 6
    assert summary["final_eval"]["step"] == 6
    reloaded = load_model(str(out))
    assert not reloaded.fresh_head


def test_training_lowers_the_loss(tiny_bert, tmp_path):
    train(
        tiny_config(
            tiny_bert, tmp_path / "run", max_steps=30, eval_steps=30, train_limit=16, eval_data=None, learning_rate=3e-3
        ),
        progress_bar=False,
    )
    losses = [r["loss"] for r in read_jsonl(tmp_path / "run" / "metrics.jsonl") if r["type"] == "train"]
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5


def test_gradient_accumulation_reaches_the_batch(tiny_bert, tmp_path):
    config = tiny_config(
        tiny_bert, tmp_path / "run", train_batch_size=16, micro_batch_size=4, max_steps=2, eval_data=None
    )
    assert config.accumulation_steps == 4
    train(config, progress_bar=False)
    seen = [r["windows_seen"] for r in read_jsonl(tmp_path / "run" / "metrics.jsonl") if r["type"] == "train"]
    assert seen == [16, 32]


@pytest.mark.parametrize("stop, precision", [(3, "fp32"), (5, "fp32"), (3, "bf16")])
def test_interrupted_run_resumes_to_the_same_weights(tiny_roberta, tmp_path, stop, precision):
    # 5 questions -> a few steps per epoch, so 8 steps cross epoch boundaries
    reference = tmp_path / "ref"
    # dropout on (the model's own 0.1): a resumed run must also replay the dropout masks (RNG state)
    config = dict(train_limit=5, max_steps=8, precision=precision, dropout=None)
    train(tiny_config(tiny_roberta, reference, **config), progress_bar=False)
    assert json.loads((reference / "progress.json").read_text())["epoch"] >= 1

    resumed = tmp_path / "resumed"
    with pytest.raises(TrainingInterrupted, match=f"step {stop} of 8"):
        train(tiny_config(tiny_roberta, resumed, **config), callback=_interrupt_at(stop), progress_bar=False)
    assert (resumed / "checkpoints" / f"step-{stop}").exists()
    steps_after = []
    train(
        tiny_config(tiny_roberta, resumed, **config),
        callback=lambda r: steps_after.append(r["step"]),
        progress_bar=False,
    )
    assert min(steps_after) == stop + 1  # nothing before the checkpoint was redone
    history = read_jsonl(resumed / "metrics.jsonl")
    train_steps = [r["step"] for r in history if r["type"] == "train"]
    assert train_steps == list(range(1, 9))
    a, b = load_weights(reference / "model.safetensors"), load_weights(resumed / "model.safetensors")
    for name in a:
        assert (a[name] - b[name]).abs().max() < 1e-5, name


@pytest.mark.parametrize(
    "file, content, words",
    [
        ("model.safetensors", b"garbage", "damaged checkpoint"),
        ("optimizer.bin", b"garbage", "damaged checkpoint"),
        ("progress.json", b'{"step": "3"}', "step is '3'"),
        ("progress.json", b'{"step": 3, "epoch": -1}', "epoch is -1"),
    ],
)
def test_a_damaged_checkpoint_is_one_error_naming_it(tiny_bert, tmp_path, file, content, words):
    config = tiny_config(tiny_bert, tmp_path / "run", train_limit=8, max_steps=4, eval_data=None)
    with pytest.raises(TrainingInterrupted):
        train(config, callback=_interrupt_at(2), progress_bar=False)
    (tmp_path / "run" / "checkpoints" / "step-2" / file).write_bytes(content)
    with pytest.raises(ConfigError, match=words) as error:
        train(config, progress_bar=False)
    assert "step-2" in str(error.value) and "--overwrite" in str(error.value)
    assert train(config, overwrite=True, progress_bar=False).to_dict()["steps"] == 4


def test_finished_run_is_not_repeated_and_clashes_are_refused(tiny_bert, tmp_path):
    config = tiny_config(tiny_bert, tmp_path / "run", max_steps=2, eval_data=None)
    train(config, progress_bar=False)
    calls = []
    train(config, callback=calls.append, progress_bar=False)
    assert calls == []
    with pytest.raises(ConfigError, match="other settings"):
        train(tiny_config(tiny_bert, tmp_path / "run", max_steps=3, eval_data=None), progress_bar=False)
    train(tiny_config(tiny_bert, tmp_path / "run", max_steps=3, eval_data=None), overwrite=True, progress_bar=False)


@pytest.mark.parametrize(
    "later",
    [{"mined_negatives": 0.2}, {"restated": 0.05}, {"mix": "squad:train"}, {"span_loss": "joint"}, {"use_title": True}],
)
def test_a_later_setting_away_from_its_default_is_another_run(later):
    """Settings newer than the oldest folders are left out of the saved config at their defaults; the
    resume check still sees them, in both directions."""
    base, changed = TrainConfig(), dataclasses.replace(TrainConfig(), **later)
    assert not base.same_run(changed) and not changed.same_run(base)
    assert base.same_run(TrainConfig(eval_steps=7, negative_kinds="article"))  # neither changes the weights


def test_a_run_another_process_is_writing_is_refused_and_resumed_after(tiny_bert, tmp_path):
    """The same command started twice: the second is one error while the first holds the folder (it
    would resume the first's checkpoint and mix their files), and resumes once the first has stopped."""
    from qatune.paths import exclusive

    out = tmp_path / "run"
    config = tiny_config(tiny_bert, out, max_steps=4, eval_data=None)
    with pytest.raises(TrainingInterrupted):
        train(config, callback=_interrupt_at(2), progress_bar=False)
    before = sorted(p.name for p in out.iterdir())
    with exclusive(out, "a training run"):  # the first run, still going
        with pytest.raises(ConfigError, match="another qatune process is writing"):
            train(config, progress_bar=False)
        assert sorted(p.name for p in out.iterdir()) == before
    steps = []
    train(config, callback=lambda r: steps.append(r["step"]), progress_bar=False)
    assert min(steps) == 3  # resumed, not restarted
    assert not (out / ".qatune.lock").exists()  # a finished folder keeps no lock file


@pytest.mark.parametrize(
    "field, value",
    [("learning_rate", 0), ("warmup_ratio", 1.5), ("train_batch_size", 6), ("dropout", 1.0), ("dropout", -0.1)],
)
def test_bad_settings(field, value, tmp_path):
    with pytest.raises(ConfigError, match=field):
        TrainConfig(**{field: value, "micro_batch_size": 4}).check()


def test_unknown_setting_lists_valid_ones():
    with pytest.raises(ConfigError, match="unknown setting.*valid: .*learning_rate"):
        TrainConfig.from_dict({"learnin_rate": 1})


def test_divergence_stops_with_the_step_and_saves_no_model(tiny_bert, tmp_path):
    """A weight decay that blows up the weights ends with an error naming the step and the setting;
    no model, no completed progress, and a rerun does not take the run for finished."""
    from qatune.errors import TrainingDiverged

    out = tmp_path / "run"
    config = tiny_config(tiny_bert, out, eval_data=None, learning_rate=0.1, weight_decay=1e30, max_steps=10)
    with pytest.raises(TrainingDiverged, match=r"diverged at step \d+ of 10.*weight_decay") as exc:
        train(config, progress_bar=False)
    assert "No model was saved" in str(exc.value)
    assert not (out / "model.safetensors").exists() and not (out / "progress.json").exists()
    assert any(r["type"] == "diverged" for r in read_jsonl(out / "metrics.jsonl"))


def test_output_folder_of_user_files_is_refused(tiny_bert, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "config.json").write_text("my own")
    with pytest.raises(ConfigError, match="not empty and is not a qatune training run"):
        train(tiny_config(tiny_bert, out), progress_bar=False)
    assert [p.name for p in out.iterdir()] == ["config.json"] and (out / "config.json").read_text() == "my own"


def test_window_settings_travel_with_the_model(tiny_bert, tmp_path):
    """A model trained at max_seq_length 96 is answered at 96 unless told otherwise."""
    from qatune.answering.torch_backend import Answerer
    from qatune.data.windows import WindowConfig

    train(tiny_config(tiny_bert, tmp_path / "run", max_steps=2, eval_data=None), progress_bar=False)
    assert Answerer(str(tmp_path / "run")).window == WindowConfig(96, 32, 24)
    assert Answerer(str(tmp_path / "run"), WindowConfig(64, 16, 16)).window.max_seq_length == 64
    assert load_model(str(tiny_bert)).window == WindowConfig()  # no saved settings: the defaults


@pytest.mark.parametrize(
    "requested, cuda, flags, used",
    [
        ("auto", False, {"avx2"}, "fp32"),  # no native bfloat16: emulated bf16 would be slower
        ("auto", False, {"avx512f", "amx_bf16"}, "bf16"),
        ("auto", False, {"avx512_bf16"}, "bf16"),
        ("fp32", False, {"amx_bf16"}, "fp32"),
        ("bf16", False, {"avx2"}, "bf16"),  # asked for: runs, with a warning
        ("auto", True, set(), "bf16"),
        ("fp32", True, set(), "fp32"),
    ],
)
def test_precision_selection(requested, cuda, flags, used, caplog):
    from qatune.hardware import resolve_precision

    precision = resolve_precision(requested, cuda, True, frozenset(flags))
    assert precision.used == used and precision.mixed_precision == ("no" if used == "fp32" else used)
    assert ("emulated" in caplog.text) == (requested == "bf16" and not cuda and not flags & {"amx_bf16", "avx512_bf16"})


def test_bf16_training_lowers_the_loss_and_saves_float32(tiny_bert, tmp_path):
    """Mixed precision: bfloat16 compute, float32 master weights, a float32 model that loads everywhere."""
    out = tmp_path / "run"
    config = tiny_config(
        tiny_bert, out, max_steps=30, eval_steps=30, train_limit=16, learning_rate=3e-3, precision="bf16", eval_limit=4
    )
    summary = train(config, progress_bar=False).to_dict()
    losses = [r["loss"] for r in read_jsonl(out / "metrics.jsonl") if r["type"] == "train"]
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5
    assert summary["precision"]["used"] == "bf16" and summary["precision"]["requested"] == "bf16"
    assert json.loads((out / "qatune.json").read_text())["precision"] == summary["precision"]
    assert {t.dtype for t in load_weights(out / "model.safetensors").values()} == {torch.float32}
    assert next(load_model(str(out)).model.parameters()).dtype == torch.float32


@pytest.mark.parametrize(
    "used, device, kernel", [("bf16", "cpu", "eager"), ("fp32", "cpu", None), ("bf16", "cuda", None)]
)
def test_training_attention_is_eager_only_for_bf16_on_a_cpu(used, device, kernel):
    from qatune.hardware import Precision
    from qatune.models.attention import training_attention

    assert training_attention(Precision("auto", used, device, ())) == kernel


def test_attention_switch_restores_the_model_kernel_and_keeps_its_outputs(tiny_bert):
    from qatune.models.attention import attention

    model = load_model(str(tiny_bert)).model
    batch = {"input_ids": torch.randint(5, 1000, (2, 12)), "attention_mask": torch.ones(2, 12, dtype=torch.long)}
    batch["attention_mask"][1, 8:] = 0
    own = model.config._attn_implementation
    with torch.no_grad():
        before = model(**batch).start_logits
        with attention(model, "eager"):
            assert model.config._attn_implementation == "eager"
            eager = model(**batch).start_logits
    assert model.config._attn_implementation == own == "sdpa"
    assert torch.allclose(before, eager, atol=1e-5)  # the same function, another kernel


def test_bf16_run_trains_with_eager_attention_and_evaluates_with_the_model_kernel(tiny_bert, tmp_path, monkeypatch):
    """On a CPU, bf16 steps use eager attention (faster there), evaluations and the saved model SDPA."""
    import qatune.training.trainer as train_module

    loaded = load_model(str(tiny_bert), seed=3)
    seen: dict[str, set[str]] = {"train": set(), "eval": set()}
    real_evaluate = train_module.evaluate

    def spy(answerer, *args, **kwargs):
        seen["eval"].add(answerer.loaded.model.config._attn_implementation)
        return real_evaluate(answerer, *args, **kwargs)

    monkeypatch.setattr(train_module, "evaluate", spy)
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    callback = lambda r: seen["train"].add(loaded.model.config._attn_implementation) if r["type"] == "train" else None  # noqa: E731
    config = tiny_config(tiny_bert, tmp_path / "run", precision="bf16", max_steps=4)
    train(config, loaded=loaded, callback=callback, progress_bar=False)
    assert seen == {"train": {"eager"}, "eval": {"sdpa"}}
    assert loaded.model.config._attn_implementation == "sdpa"
    assert "attn_implementation" not in (tmp_path / "run" / "config.json").read_text()


def test_micro_batch_default_depends_on_the_device():
    """8 windows suit a 2-core CPU's caches but starve a GPU: there the default is the whole batch."""
    config = TrainConfig(train_batch_size=32)
    assert (config.micro_batch_on(gpu=False), config.accumulation_on(gpu=False)) == (8, 4)
    assert (config.micro_batch_on(gpu=True), config.accumulation_on(gpu=True)) == (32, 1)
    explicit = TrainConfig(train_batch_size=32, micro_batch_size=16)
    assert explicit.micro_batch_on(gpu=True) == explicit.micro_batch_on(gpu=False) == 16


def test_training_fits_the_calibration_on_held_out_questions(tiny_bert, tmp_path):
    from qatune.answering.torch_backend import Answerer
    from qatune.models.settings import read_calibration

    out = tmp_path / "run"
    summary = train(tiny_config(tiny_bert, out, calibration_questions=60), progress_bar=False).to_dict()
    saved = read_calibration(out)
    assert saved is not None and saved.questions == 60 and summary["calibration"]["temperature"] == saved.temperature
    assert "sample" in saved.data
    answerer = Answerer(str(out))
    assert answerer.decoding.temperature == saved.temperature
    top = answerer.ask("Paris is the capital of France.", "What is the capital of France?")[0]
    assert top.raw_probability is not None and (top.probability != top.raw_probability) == (saved.temperature != 1.0)
    assert saved.target == "f1"  # one answer a question (auto): token F1 stands in for several annotators
    # `qatune calibrate --model RUN` refits on the same held-out questions: the same temperature
    from qatune.cli.main import main
    from qatune.training.setup import held_out_questions

    assert len(held_out_questions(out, 60)) == 60
    assert main(["calibrate", "--model", str(out), "--sample", "60", "--quiet"]) == 0
    assert read_calibration(out) == saved
    assert main(["calibrate", "--model", str(out), "--sample", "60", "--target", "exact_match", "--quiet"]) == 0
    exact = read_calibration(out)
    assert exact is not None and exact.target == "exact_match" and exact.exact_match == saved.exact_match
    # too few questions left out of training: trained, saved, not calibrated, and said so
    bare = train(
        tiny_config(tiny_bert, tmp_path / "bare", train_limit=None, calibration_questions=60), progress_bar=False
    ).to_dict()
    assert bare["calibration"] is None and read_calibration(tmp_path / "bare") is None


def test_dropout_setting_changes_training_not_the_saved_config(tiny_bert, tmp_path):
    from qatune.training.setup import set_dropout

    loaded = load_model(str(tiny_bert), seed=0)
    set_dropout(loaded.model, None, 0.0)
    probabilities = {name: m.p for name, m in loaded.model.named_modules() if isinstance(m, torch.nn.Dropout)}
    assert {p for name, p in probabilities.items() if "attention.self" in name} == {0.0}
    assert {p for name, p in probabilities.items() if "attention.self" not in name} == {0.1}
    set_dropout(loaded.model, 0.0)
    assert all(m.p == 0.0 for m in loaded.model.modules() if isinstance(m, torch.nn.Dropout))
    runs = {}
    for name, dropout in (("zero", 0.0), ("model", None)):
        out = tmp_path / name
        train(tiny_config(tiny_bert, out, dropout=dropout, eval_data=None, max_steps=3), progress_bar=False)
        runs[name] = load_weights(out / "model.safetensors")
        assert json.loads((out / "config.json").read_text())["hidden_dropout_prob"] == 0.1
        assert json.loads((out / "qatune.json").read_text())["config"]["dropout"] == dropout
    assert any(not torch.equal(runs["zero"][k], runs["model"][k]) for k in runs["zero"])  # it changed training


def test_dropout_flags_take_a_number_or_model():
    from qatune.cli.main import build_parser

    args = build_parser().parse_args(["train", "--dropout", "model", "--attention-dropout", "0"])
    assert args.dropout is None and args.attention_dropout == 0.0
    assert build_parser().parse_args(["train"]).dropout == 0.0  # the default recipe trains without dropout
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--dropout", "nan"])


def test_model_folder_files_are_readable_as_the_umask_says(tiny_bert, tmp_path):
    import os
    import stat

    from qatune.publishing.export import export_onnx

    previous = os.umask(0o022)
    try:
        out = tmp_path / "run"
        train(tiny_config(tiny_bert, out, max_steps=2, eval_data=None, calibration_questions=60), progress_bar=False)
        export_onnx(str(out), tmp_path / "onnx")
        for path in [out, *out.iterdir(), tmp_path / "onnx", *(tmp_path / "onnx").iterdir()]:
            mode = stat.S_IMODE(path.stat().st_mode)
            assert mode == (0o755 if path.is_dir() else 0o644), (path, oct(mode))
    finally:
        os.umask(previous)


def test_a_trained_folder_loads_in_plain_transformers_with_the_same_logits(tiny_roberta, tmp_path):
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    out = tmp_path / "run"
    train(tiny_config(tiny_roberta, out, max_steps=2, eval_data=None), progress_bar=False)
    tokenizer = AutoTokenizer.from_pretrained(out)
    plain = AutoModelForQuestionAnswering.from_pretrained(out).eval()
    ours = load_model(str(out)).model
    batch = tokenizer(["Who?"], ["Ada wrote the first program."], return_tensors="pt")
    with torch.inference_mode():
        a, b = plain(**batch), ours(**batch)
    assert torch.allclose(a.start_logits, b.start_logits) and torch.allclose(a.end_logits, b.end_logits)
    assert not torch.allclose(a.start_logits, torch.zeros_like(a.start_logits))


def _scripted_f1(monkeypatch, values):
    """Evaluations that score the given F1s in turn (the real evaluation, with its f1 replaced)."""
    import qatune.training.trainer as train_module
    from qatune.evaluation.scoring import evaluate as real

    scores = iter(values)

    def scripted(*args, **kwargs):
        result = real(*args, **kwargs)
        result.scores = dataclasses.replace(result.scores, f1=next(scores))
        return result

    monkeypatch.setattr(train_module, "evaluate", scripted)


def test_load_best_model_at_end_saves_the_best_evaluations_weights(tiny_bert, tmp_path, monkeypatch):
    _scripted_f1(monkeypatch, [10.0, 50.0, 20.0])  # evaluations at steps 2, 4 and the closing one at 6
    last = tmp_path / "last"
    train(tiny_config(tiny_bert, last, eval_at_start=False), progress_bar=False)
    _scripted_f1(monkeypatch, [10.0, 50.0, 20.0])
    out = tmp_path / "best"
    summary = train(
        tiny_config(tiny_bert, out, eval_at_start=False, load_best_model_at_end=True), progress_bar=False
    ).to_dict()
    assert summary["best"] == {"metric": "f1", "value": 50.0, "step": 4, "loaded": True}
    assert summary["final_eval"]["step"] == 4 and summary["final_eval"]["f1"] == 50.0
    a, b = load_weights(last / "model.safetensors"), load_weights(out / "model.safetensors")
    assert any(not torch.equal(a[k], b[k]) for k in a)  # not the last weights
    assert "best evaluation's (step 4" in (out / "README.md").read_text()


def test_early_stopping_stops_after_patience_evaluations(tiny_bert, tmp_path, monkeypatch):
    _scripted_f1(monkeypatch, [40.0, 30.0, 20.0, 10.0, 5.0])
    out = tmp_path / "run"
    config = tiny_config(tiny_bert, out, eval_at_start=False, max_steps=10, early_stopping_patience=2)
    summary = train(config, progress_bar=False).to_dict()
    history = read_jsonl(out / "metrics.jsonl")
    assert [r["step"] for r in history if r["type"] == "eval"] == [2, 4, 6]  # no closing re-evaluation
    assert history[-1]["type"] == "early_stop" and history[-1]["best_step"] == 2
    assert summary["steps"] == 6 and summary["best"]["step"] == 2 and "loaded" not in summary["best"]
    with pytest.raises(ConfigError, match="need evaluations"):
        tiny_config(tiny_bert, out, eval_data=None, early_stopping_patience=2).check()


def test_a_run_refused_for_its_data_leaves_no_folders_behind(tiny_bert, tmp_path):
    from qatune.errors import QatuneError

    out = tmp_path / "deep" / "a" / "b"
    with pytest.raises(QatuneError, match="missing.json"):
        train(tiny_config(tiny_bert, out, train_data=str(tmp_path / "missing.json")), progress_bar=False)
    assert not (tmp_path / "deep").exists()
    (tmp_path / "mine").mkdir()  # a folder that was there stays, with what it holds
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(QatuneError, match="missing.json"):
        train(tiny_config(tiny_bert, tmp_path / "mine" / "run", train_data=str(tmp_path / "missing.json")))
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["notes.txt"]

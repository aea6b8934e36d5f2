"""qatune.training.card: a trained folder's README.md is a Hub model card that huggingface_hub parses."""

from __future__ import annotations

import json
import subprocess
import sys

from huggingface_hub import ModelCard
from huggingface_hub.repocard import metadata_load


def qatune(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qatune.cli", *args], capture_output=True, text=True, timeout=600)


def test_trained_folder_has_a_hub_model_card_and_evaluate_adds_results(tiny_bert, tmp_path):
    out = tmp_path / "run"
    args = ["train", "--model", str(tiny_bert), "--train-data", "sample", "--eval-data", "sample:validation"]
    args += ["--train-limit", "16", "--eval-limit", "6", "--max-steps", "2", "--train-batch-size", "8"]
    args += ["--max-seq-length", "96", "--doc-stride", "32", "--max-query-length", "24", "--output", str(out), "-q"]
    args += ["--calibration-questions", "60"]
    trained = qatune(*args)
    assert trained.returncode == 0, trained.stderr
    meta = metadata_load(out / "README.md")
    assert meta["library_name"] == "transformers" and meta["pipeline_tag"] == "question-answering"
    assert meta["license"] and meta["datasets"] and "qatune" in meta["tags"]
    card = ModelCard.load(out / "README.md")
    final = json.loads((out / "qatune.json").read_text())["final_eval"]
    results = {(r.dataset_config, r.metric_type): r.metric_value for r in card.data.eval_results}
    assert results[("6 questions", "exact_match")] == round(final["exact_match"], 2)
    assert results[("6 questions", "f1")] == round(final["f1"], 2)
    assert f"--output {out}" in card.text and "temperature" in card.text  # the command and the calibration
    evaluated = qatune("evaluate", "--model", str(out), "--data", "sample:validation", "--limit", "9", "--update-card")
    assert evaluated.returncode == 0, evaluated.stderr
    card = ModelCard.load(out / "README.md")
    slices = [(r.dataset_name, r.dataset_config, r.metric_type) for r in card.data.eval_results]
    assert sorted(slices) == [
        ("sample-dev.json", size, metric) for size in ("6 questions", "9 questions") for metric in ("exact_match", "f1")
    ]
    refused = qatune("evaluate", "--model", str(tiny_bert), "--data", "sample:validation", "--update-card")
    assert refused.returncode == 2 and "no model card" in refused.stderr


def test_push_fails_offline_with_one_error_line(tiny_bert, tmp_path):
    import os

    env = {k: v for k, v in os.environ.items() if k != "HF_TOKEN"} | {"HF_HOME": str(tmp_path / "hf")}
    for args, message in (
        ([str(tiny_bert), "--repo-id", "me/tiny"], "cannot reach the Hugging Face Hub"),  # this machine is offline
        ([str(tiny_bert), "--repo-id", "no-user"], "USER/NAME"),
        ([str(tiny_bert), "--repo-id", "me/bad..name"], "--repo-id"),
        ([str(tmp_path), "--repo-id", "me/tiny"], "no model here"),
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "qatune.cli", "push", *args], capture_output=True, text=True, timeout=120, env=env
        )
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
        assert proc.returncode == 2 and len(errors) == 1 and message in errors[0], proc.stderr
        assert "Traceback" not in proc.stderr


def test_push_sends_only_model_files(tiny_bert, tmp_path, monkeypatch):
    import shutil

    from huggingface_hub import HfApi
    from huggingface_hub.utils import filter_repo_objects

    import qatune.publishing.push as push_module

    folder = tmp_path / "model"
    shutil.copytree(tiny_bert, folder)
    events = "tensorboard/events.out.tfevents.1.[host]"  # glob characters in a name are taken literally
    for name in ("notes.txt", ".env", "checkpoints/step-2/optimizer.bin", events):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text("x")
    sent = {}
    monkeypatch.setattr(push_module, "hub_reachable", lambda: True)
    monkeypatch.setattr(HfApi, "create_repo", lambda self, *a, **k: None)
    monkeypatch.setattr(HfApi, "upload_folder", lambda self, **kwargs: sent.update(kwargs) or "url")
    push_module.push(folder, "me/tiny")
    files = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]
    uploaded = set(filter_repo_objects(files, allow_patterns=sent["allow_patterns"]))  # as huggingface_hub filters
    assert {"config.json", "model.safetensors", "tokenizer.json", events} <= uploaded
    assert not uploaded & {"notes.txt", ".env", "checkpoints/step-2/optimizer.bin"}

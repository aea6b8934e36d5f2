"""The command-line contract (README): JSON outputs, one-line errors with exit code 2, kill and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from qatune.io import read_jsonl

CONTEXT = "Earth is the third planet from the Sun and the only place known in the universe where life has originated."


def qatune(*args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "qatune.cli", *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=600,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}: {proc.stderr}")
    return proc


def test_help_teaches():
    out = qatune("--help").stdout
    for word in ("train", "evaluate", "ask", "QATUNE_DATA_DIR", "examples:"):
        assert word in out
    assert "overlap" in qatune("train", "--help").stdout.lower()


def test_ask_json_contract(tiny_bert):
    proc = qatune(
        "ask", "--model", str(tiny_bert), "--context", CONTEXT, "--question", "What is Earth?", "--top-k", "3", "--json"
    )
    obj = json.loads(proc.stdout)
    assert obj["model"] == str(tiny_bert) and len(obj["answers"]) == 3
    for answer in obj["answers"]:
        assert set(answer) == {"text", "probability", "start", "end", "score", "raw_probability"}
        assert answer["probability"] == answer["raw_probability"]  # an uncalibrated model
        assert CONTEXT[answer["start"] : answer["end"]] == answer["text"]
        assert 0 < answer["probability"] < 1
    assert 0 < obj["no_answer_probability"] < 1
    assert "no question-answering head" in proc.stderr


def test_ask_reads_stdin_and_compares(tiny_bert, tmp_path):
    qfile = tmp_path / "q.json"
    qfile.write_text(
        json.dumps(
            [
                {"context": CONTEXT, "question": "What is Earth?"},
                {"context": CONTEXT, "question": "Where has life originated?"},
            ]
        )
    )
    objs = json.loads(
        qatune(
            "ask",
            "--model",
            str(tiny_bert),
            "--questions",
            str(qfile),
            "--compare-with",
            str(tiny_bert),
            "--top-k",
            "2",
            "--json",
        ).stdout
    )
    assert len(objs) == 2 and objs[0]["answers"] == objs[0]["compare"]["answers"]
    text = qatune("ask", "--model", str(tiny_bert), "--question", "What is Earth?", stdin=CONTEXT).stdout
    assert "Q: What is Earth?" in text and "p=" in text


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_evaluate_json_contract(tiny_bert, tmp_path, dtype):
    preds = tmp_path / "p.json"
    obj = json.loads(
        qatune(
            "evaluate",
            "--model",
            str(tiny_bert),
            "--data",
            "sample:validation",
            "--limit",
            "7",
            "--predictions",
            str(preds),
            "--dtype",
            dtype,
            "--json",
        ).stdout
    )
    for key in ("exact_match", "f1", "correct", "similar", "incorrect", "total", "seconds", "eval_loss"):
        assert key in obj
    assert obj["total"] == 7 and obj["correct"] + obj["similar"] + obj["incorrect"] == 7
    assert len(json.loads(preds.read_text())) == 7
    assert 0 <= obj["ece"] <= 1


def test_calibrate_then_evaluate_report(tiny_bert, copy_model, tmp_path):
    model = copy_model(tiny_bert)
    fitted = json.loads(
        qatune("calibrate", "--model", str(model), "--data", "sample", "--sample", "60", "--json").stdout
    )
    assert fitted["questions"] == 60 and fitted["temperature"] > 0
    assert json.loads((model / "calibration.json").read_text()) == fitted
    answer = json.loads(
        qatune("ask", "--model", str(model), "--context", CONTEXT, "--question", "What?", "--json").stdout
    )
    top = answer["answers"][0]
    assert top["probability"] != top["raw_probability"]  # the temperature is applied
    report = tmp_path / "report"
    args = ("evaluate", "--model", str(model), "--data", "sample:validation", "--report", str(report), "--json")
    metrics = json.loads(qatune(*args).stdout)
    saved = json.loads((report / "evaluation.json").read_text())
    assert saved["ece"] == metrics["ece"] and set(saved["reliability"]) == {"calibrated", "raw"}
    assert saved["model"] == metrics["model"] == str(model) and saved["data"] == metrics["data"]
    assert sum(b["questions"] for b in saved["reliability"]["raw"]) == metrics["total"]
    assert (report / "reliability.png").stat().st_size > 1000 and (report / "reliability.csv").exists()
    errors = json.loads((report / "errors.json").read_text())
    assert sum(g["questions"] for g in errors["by_question_word"]) == metrics["total"]
    assert len(errors["most_confident_wrong"]) == min(20, metrics["total"] - metrics["correct"])
    assert "weakest question words: " in qatune(*args[:-1]).stdout  # its own earlier report is replaced
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    refused = qatune("evaluate", "--model", str(model), "--report", str(tmp_path / "mine"), check=False)
    assert refused.returncode == 2 and (tmp_path / "mine" / "notes.txt").read_text() == "mine"


def test_calibrate_without_data_needs_a_model_qatune_trained(tiny_bert, copy_model):
    model = copy_model(tiny_bert)  # a transformers folder: its training questions are unknown
    proc = qatune("calibrate", "--model", str(model), check=False)
    assert proc.returncode == 2 and "pass --data FILE" in proc.stderr and "Traceback" not in proc.stderr
    assert not (model / "calibration.json").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["evaluate", "--data", "nope/missing.json"], "nope/missing.json: file not found"),
        (["ask", "--model", "./no-such-model", "--context", "x", "--question", "y"], "no such model directory"),
        (["ask", "--context", " ", "--question", "y"], "empty context"),
        (["ask", "--context", "x", "--question", "y", "--top-k", "0"], "--top-k"),
        (["train", "--doc-stride", "500", "--output", "/tmp/never"], "doc_stride"),
        (["calibrate", "--model", "default", "--data", "sample"], "not a model folder"),
        (["train", "--calibration-questions", "-1", "--output", "/tmp/never"], "calibration_questions"),
        (["evaluate", "--na-probs", "-", "--json"], "--json and --na-probs would each write to stdout"),
        (["evaluate", "--predictions", "-", "--metrics", "/dev/stdout"], "--predictions and --metrics would each"),
        (["evaluate", "--na-probs", "/tmp/n.json", "--predictions", "/tmp/../tmp/n.json"], "--predictions and --na"),
        (["evaluate", "--na-probs", ""], "--na-probs is empty"),
        (["evaluate", "--metrics", "/tmp/r/m.json", "--report", "/tmp/r"], "inside the --report folder"),
    ],
)
def test_errors_are_one_line_exit_2(args, message):
    proc = qatune(*args, check=False)
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0]
    assert "Traceback" not in proc.stderr


def test_bad_data_file_error(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(
        '{"data": [{"title": "T", "paragraphs": [{"context": "abc", "qas": '
        '[{"id": "q1", "question": "?", "answers": [{"text": "zz", "answer_start": 0}]}]}]}]}'
    )
    proc = qatune("data", str(bad), check=False)
    assert proc.returncode == 2 and "question id 'q1'" in proc.stderr and "--skip-invalid" in proc.stderr
    assert "1 skipped" not in qatune("data", "sample").stdout


def test_kill_and_resume(tiny_bert, tmp_path):
    out = tmp_path / "run"
    args = [
        "train",
        "--model",
        str(tiny_bert),
        "--train-data",
        "sample",
        "--eval-data",
        "none",
        "--output",
        str(out),
        "--max-steps",
        "200",
        "--train-batch-size",
        "4",
        "--micro-batch-size",
        "4",
        "--save-steps",
        "2",
        "--max-seq-length",
        "64",
        "--doc-stride",
        "16",
        "--max-query-length",
        "16",
        "--logging-steps",
        "1",
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "qatune.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.time() + 300
    while not list((out / "checkpoints").glob("step-*")) and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)  # at once: a tiny model on an idle machine runs ~60 steps/s
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "run the same command again to resume" in err
    done_before = max(r["step"] for r in read_jsonl(out / "metrics.jsonl"))
    assert 2 <= done_before < 200
    qatune(*args)
    steps = [r["step"] for r in read_jsonl(out / "metrics.jsonl") if r["type"] == "train"]
    assert steps == list(range(1, 201))
    assert json.loads((out / "qatune.json").read_text())["steps"] == 200

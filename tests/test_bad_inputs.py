"""The bad-input corpus (tests/bad_inputs/): every surface answers a bad input with the error contract.

CLI: exit code 2, exactly one `error:` line naming the problem, no traceback, nothing written.
HTTP: a 4xx status with a JSON body, never a 5xx. Commands run in-process (`qatune.cli.main.main`), so an
unexpected exception fails the test with its traceback.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import shutil
from pathlib import Path

import pytest
from safetensors.torch import load_file as load_weights
from safetensors.torch import save_file as save_weights

from qatune.cli.main import main

CORPUS = Path(__file__).parent / "bad_inputs"
STUDY_OK = """name: s
data: {train: sample, test: sample:validation}
experiments:
  - {name: e, model: default, max_steps: 1}
"""
SWEEP_OK = """method: random
metric: {name: f1, goal: maximize}
run_cap: 2
parameters:
  learning_rate: {values: [1.0e-4, 2.0e-4]}
"""


def _tree(folder: Path) -> dict[str, str]:
    """Every file under `folder` with a hash of its bytes (folders as '/')."""
    return {
        str(p.relative_to(folder)): "/" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
    }


def _expect_error(argv: list[str], capsys, cwd: Path, words: str = "") -> str:
    """Run `qatune argv` in `cwd`; assert the error contract and that nothing under `cwd` changed."""
    before = _tree(cwd)
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse
        code = exc.code
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2, err
    assert len(errors) == 1, err
    assert "Traceback" not in err
    assert words.lower() in errors[0].lower(), errors[0]
    assert _tree(cwd) == before, "a failed command wrote or changed files"
    return errors[0]


@pytest.fixture
def place(tmp_path, monkeypatch):
    """A working folder holding a user's file and folder; the command runs there."""
    work = tmp_path / "cwd"
    (work / "work").mkdir(parents=True)
    (work / "work" / "notes.txt").write_text("precious")
    (work / "file.txt").write_text("precious")
    monkeypatch.chdir(work)
    return work


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, tiny_bert) -> dict[str, str]:
    """The placeholders of args.txt, made once: damaged models, generated data, a finished run."""
    from qatune.training.config import TrainConfig
    from qatune.training.trainer import train

    root = tmp_path_factory.mktemp("inputs")
    data = root / "data.json"
    data.write_text(
        json.dumps(
            {
                "data": [
                    {
                        "title": "T",
                        "paragraphs": [
                            {
                                "context": "Vin is a Mistborn.",
                                "qas": [
                                    {
                                        "id": "q1",
                                        "question": "Who is Vin?",
                                        "answers": [{"text": "a Mistborn", "answer_start": 7}],
                                    }
                                ],
                            }
                        ],
                    }
                ]
            }
        )
    )
    german = root / "german.json"  # a language the word-changing negatives do not read
    german.write_text(data.read_text().replace("Who is Vin?", "Wer ist Vin?"))
    nested = root / "nested.json"
    nested.write_text("[" * 100_000 + "]" * 100_000)
    nested_jsonl = root / "nested.jsonl"
    nested_jsonl.write_text("[" * 100_000 + "]" * 100_000 + "\n")
    big = root / "big.txt"
    big.write_text("word " * 40_000)
    big_data = root / "big.json"
    context = "Vin is a Mistborn. " + "Filler text. " * 10_000
    big_data.write_text(
        json.dumps(
            {
                "data": [
                    {
                        "title": "T",
                        "paragraphs": [
                            {
                                "context": context,
                                "qas": [
                                    {
                                        "id": "q1",
                                        "question": "Who is Vin?",
                                        "answers": [{"text": "a Mistborn", "answer_start": 7}],
                                    }
                                ],
                            }
                        ],
                    }
                ]
            }
        )
    )
    corrupt_weights = root / "corrupt-weights"
    shutil.copytree(tiny_bert, corrupt_weights)
    (corrupt_weights / "model.safetensors").write_bytes(b"\x00garbage" * 100)
    nan_model = root / "nan-weights"  # loads, but every output is NaN (a diverged model saved elsewhere)
    shutil.copytree(tiny_bert, nan_model)
    weights = load_weights(nan_model / "model.safetensors")
    next(w for name, w in weights.items() if "LayerNorm" in name).fill_(float("nan"))
    save_weights(weights, nan_model / "model.safetensors", metadata={"format": "pt"})
    dup_calibration = root / "dup-calibration"  # calibration.json with a key given twice (json.loads keeps the last)
    shutil.copytree(tiny_bert, dup_calibration)
    (dup_calibration / "calibration.json").write_text('{"temperature": 1.5, "temperature": 0.2, "questions": 10}')
    corrupt_settings = root / "corrupt-settings"
    shutil.copytree(tiny_bert, corrupt_settings)
    (corrupt_settings / "qatune.json").write_text("{not json")
    trained = root / "trained"
    train(
        TrainConfig(
            model=str(tiny_bert),
            train_data=str(data),
            eval_data=None,
            output_dir=str(trained),
            max_steps=1,
            train_batch_size=2,
            max_seq_length=64,
            doc_stride=16,
            max_query_length=16,
        ),
        progress_bar=False,
    )
    bad_card = root / "bad-card"
    shutil.copytree(trained, bad_card)
    (bad_card / "README.md").write_text("---\nlicense: [unclosed\n---\nmy notes\n")
    bad_pdf = root / "bad.pdf"  # the only file given to `qatune index`, and it cannot be read
    bad_pdf.write_bytes(b"%PDF-1.4\nnot a real pdf")
    empty_list = root / "empty.json"
    empty_list.write_text("[]")
    number_context = root / "number.json"
    number_context.write_text('[{"context": 5, "question": "Who?"}]')
    study = root / "study.yaml"
    study.write_text(STUDY_OK)
    sweep = root / "sweep.yaml"
    sweep.write_text(SWEEP_OK)
    paths = {
        "model": tiny_bert,
        "data": data,
        "nested": nested,
        "german": german,
        "nested_jsonl": nested_jsonl,
        "big": big,
        "big_data": big_data,
        "corrupt_weights": corrupt_weights,
        "nan_model": nan_model,
        "corrupt_settings": corrupt_settings,
        "dup_calibration": dup_calibration,
        "trained": trained,
        "bad_card": bad_card,
        "empty_list": empty_list,
        "bad_pdf": bad_pdf,
        "number_context": number_context,
        "study": study,
        "sweep": sweep,
    }
    return {key: str(value) for key, value in paths.items()}


def _arg_cases() -> list[tuple[str, str]]:
    lines = (CORPUS / "args.txt").read_text().splitlines()
    return [
        tuple(part.strip() for part in line.split("  # ", 1)) for line in lines if line and not line.startswith("#")
    ]


@pytest.mark.parametrize("args, words", _arg_cases(), ids=[a for a, _ in _arg_cases()])
def test_bad_arguments(args, words, inputs, place, capsys):
    values = {**inputs, "work": "work", "file": "file.txt"}
    argv = [part.format(**values) for part in shlex.split(args)]
    _expect_error(argv, capsys, place, words)
    assert (place / "work" / "notes.txt").read_text() == "precious"


@pytest.mark.parametrize("path", sorted((CORPUS / "data").iterdir()), ids=lambda p: p.name)
def test_bad_data_files(path, place, capsys):
    line = _expect_error(["data", str(path)], capsys, place)
    assert path.name in line  # the error names the file


@pytest.mark.parametrize("path", sorted((CORPUS / "studies").iterdir()), ids=lambda p: p.name)
def test_bad_study_files(path, place, capsys):
    line = _expect_error(["run", str(path), "--dry-run"], capsys, place)
    assert path.name in line


@pytest.mark.parametrize("path", sorted((CORPUS / "sweeps").iterdir()), ids=lambda p: p.name)
def test_bad_sweep_files(path, place, capsys):
    _expect_error(["sweep", str(path), "--dry-run"], capsys, place)


def _http_cases() -> list[dict]:
    return [json.loads(line) for line in (CORPUS / "http.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def keyed_client(tiny_bert):
    from fastapi.testclient import TestClient

    from qatune.serving.app import create_app
    from qatune.serving.config import ServeConfig
    from qatune.serving.models import Models

    config = ServeConfig(
        model=str(tiny_bert),
        api_key="s3cret",
        max_context_chars=5000,
        max_batch=4,
        max_body_bytes=20_000,
        max_request_chars=6000,
        max_request_windows=16,  # 4,800 characters of digits make more; of English, fewer
    )
    models = Models()
    models.load(config)
    with TestClient(create_app(config, models), raise_server_exceptions=False) as client:
        yield client


@pytest.mark.parametrize("case", _http_cases(), ids=lambda c: c["name"])
def test_bad_http_requests(case, keyed_client):
    headers = {"X-API-Key": "s3cret", "Content-Type": "application/json", **case["headers"]}
    headers = {k: v for k, v in headers.items() if v is not None}
    response = keyed_client.request(
        case["method"], case["path"], content=case["body"].encode("utf-8", "surrogatepass"), headers=headers
    )
    assert response.status_code == case["status"], response.text
    assert response.json()["detail"]


def test_zero_width_context_evaluates(tiny_bert, tmp_path, capsys):
    """A context with no tokens at all passes validation and is answered with an empty span, not a crash."""
    data = tmp_path / "zw.json"
    data.write_text(
        json.dumps(
            {
                "data": [
                    {
                        "title": "T",
                        "paragraphs": [
                            {
                                "context": "\u200b\u200b\x00",
                                "qas": [
                                    {"id": "z", "question": "What?", "answers": [{"text": "\u200b", "answer_start": 0}]}
                                ],
                            },
                            {
                                "context": "Vin is a Mistborn.",
                                "qas": [
                                    {
                                        "id": "v",
                                        "question": "Who is Vin?",
                                        "answers": [{"text": "a Mistborn", "answer_start": 7}],
                                    }
                                ],
                            },
                        ],
                    }
                ]
            }
        )
    )
    assert main(["evaluate", "--model", str(tiny_bert), "--data", str(data), "--json", "-q"]) == 0
    assert json.loads(capsys.readouterr().out)["total"] == 2

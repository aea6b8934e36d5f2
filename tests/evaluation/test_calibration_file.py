"""calibration.json is read strictly, `qatune calibrate` replaces a damaged one, and after it the model
folder's three records of the calibration agree (issue 25, item 11)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from qatune.errors import ModelError
from qatune.models.settings import Calibration, read_calibration, write_calibration

GOOD = Calibration(1.7, 100, "train.json", 55.0, 0.2, 0.03, 0.4, 61.0, "f1").to_dict()


def _text(**changes: object) -> str:
    return json.dumps({**GOOD, **changes})


DAMAGED = [
    (_text()[:-1] + ', "temperature": 2.5}', "temperature: given twice"),  # json.loads would keep the last
    (_text().replace('"questions": 100', '"questions": 100, "questions": 7'), "questions: given twice"),
    (_text(temperature=0).replace("0,", "NaN,", 1), "NaN"),
    (_text().replace('"exact_match": 55.0', '"exact_match": Infinity'), "Infinity"),
    (_text().replace('"ece_after": 0.03', '"ece_after": 1e999'), "ece_after"),  # parses as inf
    (_text(questions="100"), "questions"),
    (_text(questions=100.5), "questions"),
    (_text(questions=True), "questions"),
    (_text(questions=0), "questions"),
    (_text(data=5), "data"),
    (_text(data=None), "data"),
    (_text(exact_match="55"), "exact_match"),
    (_text(exact_match=155.0), "exact_match"),
    (_text(ece_before=[0.2]), "ece_before"),
    (_text(ece_after=None), "ece_after"),
    (_text(ece_after=-0.1), "ece_after"),
    (_text(temperature=True), "temperature"),
    (_text(temperature="1.7"), "temperature"),
    (_text(temperature=1000.0), "temperature"),
    (_text(null_threshold=2), "null_threshold"),
    (_text(null_threshold_f1="61"), "null_threshold_f1"),
    (_text(target="accuracy"), "target"),
    (_text(surprise=1), "surprise"),
    (json.dumps({k: v for k, v in GOOD.items() if k != "data"}), "data: missing"),
    ("[1.7]", "JSON object"),
    ("{", "malformed JSON"),
]


@pytest.mark.parametrize("text, field", DAMAGED)
def test_a_damaged_calibration_file_is_refused_naming_the_file_and_the_field(tmp_path, text, field):
    (tmp_path / "calibration.json").write_text(text)
    with pytest.raises(ModelError) as caught:
        read_calibration(tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'calibration.json'}: ") and field in message, message
    assert "qatune calibrate" in message and "\n" not in message


def test_a_good_file_reads_back_and_old_files_without_a_target_still_read(tmp_path):
    write_calibration(tmp_path, Calibration.from_dict(GOOD))
    assert read_calibration(tmp_path) == Calibration.from_dict(GOOD)
    (tmp_path / "calibration.json").write_text(json.dumps({k: v for k, v in GOOD.items() if k != "target"}))
    calibration = read_calibration(tmp_path)
    assert calibration is not None and calibration.target == "exact_match"
    (tmp_path / "calibration.json").write_text(_text(questions=60, temperature=2, null_threshold=None))
    assert read_calibration(tmp_path) == Calibration.from_dict(
        {**GOOD, "questions": 60, "temperature": 2.0, "null_threshold": None}
    )
    with pytest.raises(ModelError, match="questions"):  # a record built by hand is checked before it is saved
        write_calibration(tmp_path, Calibration(1.0, 0, "x", 1.0, 0.1, 0.1))


def test_an_export_s_damaged_calibration_says_to_export_again(tmp_path):
    (tmp_path / "qatune-onnx.json").write_text("{}")
    (tmp_path / "calibration.json").write_text(_text(data=5))
    with pytest.raises(ModelError, match="data: .*export it again"):
        read_calibration(tmp_path)


@pytest.fixture(scope="module")
def trained(tiny_bert, tmp_path_factory):
    from conftest import tiny_config
    from qatune.training.trainer import train

    out = tmp_path_factory.mktemp("calibrated") / "run"
    train(tiny_config(tiny_bert, out, calibration_questions=60, max_steps=2), progress_bar=False)
    assert read_calibration(out) is not None
    return out


def test_calibrate_replaces_a_damaged_file_and_the_folder_agrees_after_it(trained):
    from qatune.cli.main import main
    from qatune.training.summary import RunSummary

    card_before = (trained / "README.md").read_text()
    (trained / "calibration.json").write_text(_text()[:-1] + ', "questions": "many"}')
    used = subprocess.run(
        [
            sys.executable,
            "-m",
            "qatune.cli",
            "ask",
            "--model",
            str(trained),
            "--context",
            "Paris is in France.",
            "--question",
            "Where is Paris?",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    errors = [line for line in used.stderr.splitlines() if line.startswith("error:")]
    assert used.returncode == 2 and len(errors) == 1 and "Traceback" not in used.stderr, used.stderr
    assert "calibration.json" in errors[0] and "questions: given twice" in errors[0]
    assert f"qatune calibrate --model {trained}" in errors[0]
    # the remedy works: calibrate does not read the old calibration
    assert main(["calibrate", "--model", str(trained), "--sample", "60", "--target", "exact_match", "--quiet"]) == 0
    fitted = read_calibration(trained)
    assert fitted is not None and fitted.target == "exact_match" and fitted.questions == 60
    summary = RunSummary.read(trained)
    assert summary.calibration == fitted  # qatune.json, which push publishes, says the same
    card = (trained / "README.md").read_text()
    assert f"temperature {fitted.temperature:.3f}" in card and "to predict exact_match" in card
    head = card_before[: card_before.index("## Confidence")]
    assert card.startswith(head) and card.count("## Confidence") == 1  # the rest of the card as it was
    assert not (trained / ".qatune.lock").exists()

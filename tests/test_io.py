"""Atomic writes and JSON Lines history files."""

from __future__ import annotations

import json

import pytest

from qatune.errors import OutputError
from qatune.io import append_jsonl, atomic_write_json, read_jsonl


def test_history_keeps_only_json_object_lines(tmp_path):
    path = tmp_path / "metrics.jsonl"
    append_jsonl(path, {"type": "train", "step": 1})
    with open(path, "a", encoding="utf-8") as handle:
        handle.write('5\n["a"]\nnull\n' + "[" * 100_000 + "\n\xff\n")
    append_jsonl(path, {"type": "eval", "step": 2})
    with open(path, "a", encoding="utf-8") as handle:
        handle.write('{"type": "tr')  # torn by a kill mid-write
    assert read_jsonl(path) == [{"type": "train", "step": 1}, {"type": "eval", "step": 2}]


def test_an_unwritable_place_is_an_output_error_naming_the_file(tmp_path):
    (tmp_path / "file").write_text("precious")
    with pytest.raises(OutputError, match="file/out.json: cannot write it"):
        atomic_write_json(tmp_path / "file" / "out.json", {"a": 1})
    assert (tmp_path / "file").read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # no temp file left behind


def test_json_written_is_strict_with_non_finite_numbers_as_null(tmp_path):
    """NaN would be written as a bare NaN, which browsers, jq and other languages refuse."""
    from qatune.io import dumps

    def strict(text: str):
        return json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in JSON"))

    record = {"loss": float("nan"), "scores": [1.5, float("inf"), -float("inf")], "nested": {"x": (float("nan"),)}}
    atomic_write_json(tmp_path / "a.json", record)
    append_jsonl(tmp_path / "b.jsonl", record)
    expected = {"loss": None, "scores": [1.5, None, None], "nested": {"x": [None]}}
    assert strict((tmp_path / "a.json").read_text()) == expected
    assert strict((tmp_path / "b.jsonl").read_text()) == expected
    assert strict(dumps(record)) == expected


@pytest.mark.parametrize(
    "text, words",
    [
        ('{"steps": 3, "steps": 4}', "steps: given twice"),
        ('{"seconds": NaN}', "NaN is not a JSON number"),
        ('{"a": {"b": -Infinity}}', "-Infinity is not a JSON number"),
        ('{"a": 1', "malformed JSON at line 1"),
    ],
)
def test_settings_files_are_read_strictly(tmp_path, text, words):
    """One rule for every settings and run file qatune reads (qatune.json, progress.json, stages.json,
    calibration.json, ...): json.loads would keep the last of two keys and read NaN."""
    from qatune.errors import ConfigError
    from qatune.io import parse_json, read_json

    path = tmp_path / "qatune.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match=words) as caught:
        read_json(path, "run file")
    assert str(caught.value).startswith(f"{path}: ")
    if "malformed" not in words:
        parse_json(text, "data")  # data files are read as JSON reads them (their fields are checked after)

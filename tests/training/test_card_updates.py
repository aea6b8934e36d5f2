"""Updating a model card in place: only qatune's own keys change, concurrent updates all land, and a card
that cannot be updated is refused before the evaluation runs (issue 25, items 2 and 4)."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import pytest
from huggingface_hub import ModelCard

from qatune.errors import ModelError
from qatune.evaluation.results import Scores
from qatune.layout import LOCK_FILE
from qatune.models.settings import Calibration
from qatune.training.card import add_result, check_card, save_calibration

HEAD = """---
# The licence is the client's: ask legal before changing it.
license: mit   # not apache
language:
  - en      # English only for now
tags: [qatune, question-answering]
base_model: "some/base"
"""
OLD_INDEX = """model-index:
- name: my-model
  results:
  - task:
      type: question-answering
    dataset:
      type: squad
      name: dev.json
      config: 6 questions
      split: validation
    metrics:
    - type: exact_match
      value: 50.0
      name: EM
"""
TAIL = """# Keep this comment: it is about what follows.
datasets:
- squad
---

# My model

Prose the user wrote, kept as it is.
"""


def scores(em: float, f1: float, total: int = 9) -> Scores:
    return Scores(em, f1, total, total, 0, 0, 0.1, 0.2, None, 1.0, 9.0)


def card_results(folder: Path) -> dict[tuple[str, str, str], float]:
    card = ModelCard.load(folder / "README.md")
    return {(r.dataset_name, r.dataset_config, r.metric_type): r.metric_value for r in card.data.eval_results}


FRONT_END, BODY = TAIL.split("---\n", 1)  # the tail's metadata lines; the closing --- and the body
CRLF = {k: v.replace("\n", "\r\n") for k, v in {"head": HEAD, "index": OLD_INDEX, "tail": TAIL}.items()}
INDENTED = """model-index:
  - name: my-model   # as the user indents lists
    results:
      - task: {type: question-answering}
        dataset: {type: squad, name: dev.json, config: 6 questions, split: validation}
        metrics:
          - {type: exact_match, value: 50.0, name: EM}
"""


@pytest.mark.parametrize(
    "kept_before, index, kept_after",
    [
        (HEAD, OLD_INDEX, TAIL),  # model-index in the middle, comments on both sides
        (HEAD + FRONT_END, OLD_INDEX, "---\n" + BODY),  # model-index last
        (HEAD + FRONT_END, "", "---\n" + BODY),  # no model-index yet: added at the end of the metadata
        (CRLF["head"], CRLF["index"], CRLF["tail"]),  # Windows line ends
        (HEAD, INDENTED, TAIL),  # the user's indentation
    ],
)
def test_add_result_changes_only_the_model_index(tmp_path, kept_before, index, kept_after):
    (tmp_path / "README.md").write_bytes((kept_before + index + kept_after).encode())
    add_result(tmp_path, scores(60.0, 70.0), "dev.json")
    written = (tmp_path / "README.md").read_bytes().decode()
    assert written.startswith(kept_before) and written.endswith(kept_after), written  # byte for byte
    assert written.count("\n") == written.count("\r\n") or "\r" not in written  # one kind of line end
    results = card_results(tmp_path)
    assert results[("dev.json", "9 questions", "exact_match")] == 60.0
    assert results[("dev.json", "9 questions", "f1")] == 70.0
    if index:  # the other slice's result is kept
        assert results[("dev.json", "6 questions", "exact_match")] == 50.0
    meta = ModelCard.load(tmp_path / "README.md").data
    assert meta.license == "mit" and meta.tags == ["qatune", "question-answering"] and meta.datasets == ["squad"]


def test_a_second_result_of_the_same_slice_replaces_the_first_and_a_card_without_metadata_gets_some(tmp_path):
    (tmp_path / "README.md").write_text("# Just prose\n")
    add_result(tmp_path, scores(10.0, 20.0), "dev.json")
    add_result(tmp_path, scores(30.0, 40.0), "dev.json")
    text = (tmp_path / "README.md").read_text()
    assert text.endswith("---\n# Just prose\n") and card_results(tmp_path) == {
        ("dev.json", "9 questions", "exact_match"): 30.0,
        ("dev.json", "9 questions", "f1"): 40.0,
    }


def test_a_card_that_cannot_be_edited_in_place_is_refused_and_kept(tmp_path):
    flow = "---\n{license: mit, tags: [a]}\n---\n# Card\n"
    (tmp_path / "README.md").write_text(flow)
    for call in (lambda: check_card(tmp_path, "--update-card"), lambda: add_result(tmp_path, scores(1, 2), "d.json")):
        with pytest.raises(ModelError, match="README.md.*block mapping"):
            call()
    assert (tmp_path / "README.md").read_text() == flow


def _update(folder: str, worker: int, rounds: int, barrier: object) -> None:
    for r in range(rounds):
        barrier.wait()  # type: ignore[attr-defined]
        add_result(Path(folder), scores(worker, r), f"w{worker}-r{r}.json")


def test_concurrent_updates_of_one_card_all_land(tmp_path):
    """Two processes add a result at the same moment, many times: without the lock one is lost."""
    (tmp_path / "README.md").write_text(HEAD + OLD_INDEX + TAIL)
    rounds = 15
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    workers = [context.Process(target=_update, args=(str(tmp_path), w, rounds, barrier)) for w in range(2)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(timeout=120)
    assert [p.exitcode for p in workers] == [0, 0]
    slices = {name for name, _, _ in card_results(tmp_path)}
    missing = {f"w{w}-r{r}.json" for w in range(2) for r in range(rounds)} - slices
    assert not missing, f"lost updates: {sorted(missing)}"
    assert "dev.json" in slices and not (tmp_path / LOCK_FILE).exists()
    assert (tmp_path / "README.md").read_text().startswith(HEAD)


def test_an_unwritable_card_is_refused_before_the_evaluation(tmp_path, monkeypatch, capsys):
    """Root can write any file, so the permission check is simulated: no evaluation may start."""
    import qatune.answering.factory as factory
    from qatune.cli.main import main

    (tmp_path / "README.md").write_text(HEAD + TAIL)
    before = (tmp_path / "README.md").read_bytes()
    card = str(tmp_path / "README.md")
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == card else real_access(p, mode))

    def no_model(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was opened before the card was checked")

    monkeypatch.setattr(factory, "open_answerer", no_model)
    args = ["evaluate", "--model", str(tmp_path), "--data", "sample:validation", "--limit", "3", "--update-card"]
    assert main(args) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "README.md" in errors[0] and "permission denied" in errors[0], errors
    assert (tmp_path / "README.md").read_bytes() == before


def test_save_calibration_updates_the_file_the_summary_and_the_card_together(tmp_path):
    old = Calibration(2.0, 60, "sample", 40.0, 0.2, 0.05, target="f1")
    new = Calibration(0.5, 80, "held.json", 45.0, 0.3, 0.04, target="exact_match")
    summary = {"schema": 2, "config": {"model": "m"}, "steps": 3, "calibration": old.to_dict()}
    (tmp_path / "qatune.json").write_text(json.dumps(summary))
    body = f"# m\n\nIntro.\n\n## Confidence\n\nProbabilities are calibrated (temperature {old.temperature:.3f}).\n"
    (tmp_path / "README.md").write_text(HEAD + TAIL + body + "\n## Later\n\nMore prose.\n")
    save_calibration(tmp_path, new)
    saved = json.loads((tmp_path / "calibration.json").read_text())
    assert saved == new.to_dict() == json.loads((tmp_path / "qatune.json").read_text())["calibration"]
    assert {k: v for k, v in json.loads((tmp_path / "qatune.json").read_text()).items() if k != "calibration"} == {
        k: v for k, v in summary.items() if k != "calibration"
    }
    text = (tmp_path / "README.md").read_text()
    assert text.startswith(HEAD + TAIL + "# m\n\nIntro.\n\n## Confidence\n\n") and text.endswith(
        "\n\n## Later\n\nMore prose.\n"
    )
    assert "temperature 0.500" in text and "80 held-out questions of held.json" in text and "2.000" not in text
    assert not (tmp_path / LOCK_FILE).exists()


def test_an_update_inside_the_folder_s_own_lock_does_not_wait_for_itself(tmp_path):
    import time

    from qatune.paths import exclusive

    (tmp_path / "README.md").write_text(HEAD + TAIL)
    began = time.monotonic()
    with exclusive(tmp_path, "a training run"):  # as `qatune train` holds its run folder while it saves
        add_result(tmp_path, scores(1.0, 2.0), "dev.json")
    assert time.monotonic() - began < 5 and ("dev.json", "9 questions", "f1") in card_results(tmp_path)

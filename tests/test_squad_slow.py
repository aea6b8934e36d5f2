"""Real SQuAD, bounded to a few minutes on 2 cores (marked slow; `make test` runs them after the fast tests)."""

from __future__ import annotations

import pytest

from conftest import squad_file
from qatune.answering.torch_backend import Answerer
from qatune.data.sources import load_data
from qatune.data.windows import WindowConfig
from qatune.evaluation.scoring import evaluate
from qatune.io import read_jsonl
from qatune.models.loading import load_model
from qatune.training.config import TrainConfig
from qatune.training.trainer import train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fine_tuned(tmp_path_factory, squad_dir):
    """The default model fine-tuned on 1,200 real training questions (about 3 minutes here)."""
    out = tmp_path_factory.mktemp("minilm-slice")
    config = TrainConfig(
        model="default",
        train_data=str(squad_file("train-v1.1-partial.json.gz")),
        eval_data=str(squad_dir / "dev-v1.1.json.gz"),
        output_dir=str(out),
        train_sample=1200,
        eval_sample=200,
        eval_steps=1000,
        train_batch_size=16,
        micro_batch_size=16,
        learning_rate=2e-4,
        max_seq_length=192,
        doc_stride=64,
        seed=1,
    )
    train(config, progress_bar=False)
    return out


def test_untuned_model_scores_near_zero(squad_dir):
    dev = load_data(str(squad_dir / "dev-v1.1.json.gz")).select(sample=200, seed=0)
    metrics = evaluate(Answerer(load_model("default", seed=0), WindowConfig()), dev).metrics
    assert metrics["total"] == 200 and metrics["exact_match"] < 5
    assert metrics["eval_loss"] > 4


def test_fine_tuning_beats_the_untuned_model(fine_tuned):
    evals = [r for r in read_jsonl(fine_tuned / "metrics.jsonl") if r["type"] == "eval"]
    before, after = evals[0], evals[-1]
    assert before["step"] == 0 and after["step"] > 0
    assert after["f1"] > before["f1"] + 10
    assert after["exact_match"] > before["exact_match"] + 5
    assert after["eval_loss"] < before["eval_loss"] - 1
    assert after["correct"] > before["correct"]


def test_fine_tuned_model_answers_an_easy_question(fine_tuned):
    answers = Answerer(str(fine_tuned)).ask(
        "Bidirectional Encoder Representations from Transformers (BERT) is a family of language models "
        "introduced in 2018 by researchers at Google.",
        "When was BERT introduced?",
        top_k=3,
    )
    assert len(answers) == 3 and answers[0].probability >= answers[1].probability
    assert "2018" in " ".join(a.text for a in answers)

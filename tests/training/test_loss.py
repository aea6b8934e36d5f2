"""qatune.training.loss: the joint span loss is -log of the decoder's span probability, and trains."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
import torch

from conftest import tiny_config
from qatune.answering.decoding import window_candidates
from qatune.errors import ConfigError
from qatune.io import read_jsonl
from qatune.training.config import TrainConfig
from qatune.training.loss import context_bounds, joint_span_loss
from qatune.training.trainer import train


def _brute(start, end, gold, bounds, width):
    """-log softmax of the gold span over every valid (i, j) of one window plus the null (0, 0), by loops."""
    first, last = bounds
    spans = [(i, j) for i, j in itertools.product(range(first, last + 1), repeat=2) if 0 <= j - i < width]
    spans = [(0, 0)] + spans + ([gold] if gold not in spans and gold != (0, 0) else [])
    scores = [start[i] + end[j] for i, j in spans]
    top = max(scores)
    log_z = top + math.log(sum(math.exp(s - top) for s in scores))
    return log_z - (start[gold[0]] + end[gold[1]])


@pytest.mark.parametrize("width", [1, 3, 50])
def test_joint_loss_is_the_spans_and_nulls_softmax(width):
    rng = np.random.default_rng(0)
    start, end = rng.normal(size=(4, 12)) * 3, rng.normal(size=(4, 12)) * 3
    gold = [(0, 0), (5, 6), (4, 10), (9, 9)]  # null, a span, one longer than 3 tokens, one token
    bounds = [(3, 11), (3, 10), (4, 11), (2, 9)]
    loss = joint_span_loss(
        torch.tensor(start),
        torch.tensor(end),
        torch.tensor([g[0] for g in gold]),
        torch.tensor([g[1] for g in gold]),
        torch.tensor([b[0] for b in bounds]),
        torch.tensor([b[1] for b in bounds]),
        width,
    )
    expected = np.mean([_brute(start[k], end[k], gold[k], bounds[k], width) for k in range(4)]) / 2
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    assert float(loss) > 0


def test_joint_loss_spans_are_the_decoders_candidates():
    """The spans the loss normalises over are those `window_candidates` scores (without word alignment)."""
    offsets = np.array([[-1, -1]] * 3 + [[i * 5, i * 5 + 4] for i in range(6)] + [[-1, -1]])
    rng = np.random.default_rng(1)
    start, end = rng.normal(size=10), rng.normal(size=10)
    _, _, scores = window_candidates(start, end, offsets, 4)
    first, last = context_bounds(offsets)
    assert (first, last) == (3, 8)
    gold = torch.tensor([4]), torch.tensor([5])
    bounds = torch.tensor([first]), torch.tensor([last])
    loss = joint_span_loss(torch.tensor(start[None]), torch.tensor(end[None]), *gold, *bounds, 4)
    log_z = np.logaddexp.reduce(np.append(scores, start[0] + end[0]))
    assert float(loss) == pytest.approx((log_z - (start[4] + end[5])) / 2, rel=1e-6)
    assert context_bounds(np.full((4, 2), -1)) == (1, 0)  # no context: only the null answer is left


def test_joint_loss_has_finite_gradients_where_a_window_has_no_context():
    start = torch.randn(2, 6, requires_grad=True)
    end = torch.randn(2, 6, requires_grad=True)
    zeros = torch.zeros(2, dtype=torch.long)
    loss = joint_span_loss(start, end, zeros, zeros, torch.tensor([1, 2]), torch.tensor([0, 4]), 30)
    loss.backward()
    assert torch.isfinite(start.grad).all() and torch.isfinite(end.grad).all()
    assert float(start.grad[0].abs().sum()) == 0.0  # only the null: its probability is 1 already


def test_training_with_the_joint_loss_lowers_it(tiny_bert, tmp_path):
    config = tiny_config(
        tiny_bert,
        tmp_path / "run",
        max_steps=30,
        eval_steps=30,
        train_limit=16,
        eval_data=None,
        learning_rate=3e-3,
        span_loss="joint",
    )
    train(config, progress_bar=False)
    losses = [r["loss"] for r in read_jsonl(tmp_path / "run" / "metrics.jsonl") if r["type"] == "train"]
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5
    saved = json.loads((tmp_path / "run" / "qatune.json").read_text())["config"]
    assert TrainConfig.from_saved(saved).span_loss == "joint"


def test_an_unknown_span_loss_is_refused():
    with pytest.raises(ConfigError, match="span_loss must be one of separate, joint"):
        TrainConfig(span_loss="focal").check()

"""The window order of an epoch (`EpochSampler`): seeded, complete, and with groups kept together."""

from __future__ import annotations

import random

import pytest

from qatune.training.setup import EpochSampler


@pytest.mark.parametrize("by_length", [True, False])
def test_grouped_windows_stay_side_by_side_in_a_seeded_order(by_length):
    rng = random.Random(0)
    lengths = [rng.randint(10, 250) for _ in range(200)]
    groups = [i // 2 if i < 80 else 1000 + i for i in range(200)]  # 40 pairs, 120 windows alone
    sampler = EpochSampler(lengths, 8, seed=3, group_by_length=by_length, groups=groups)
    order = list(sampler)
    assert sorted(order) == list(range(200)) and len(sampler) == 200
    where = {window: k for k, window in enumerate(order)}
    assert all(abs(where[2 * j] - where[2 * j + 1]) == 1 for j in range(40))
    assert list(EpochSampler(lengths, 8, seed=3, group_by_length=by_length, groups=groups)) == order  # resumable
    sampler.set_epoch(1)
    assert list(sampler) != order
    # without groups, a pair is side by side only by chance
    alone = list(EpochSampler(lengths, 8, seed=3, group_by_length=by_length))
    where = {window: k for k, window in enumerate(alone)}
    assert sum(abs(where[2 * j] - where[2 * j + 1]) == 1 for j in range(40)) < 10


@pytest.mark.parametrize("by_length", [True, False])
def test_groups_of_one_window_give_the_order_without_groups(by_length):
    rng = random.Random(1)
    lengths = [rng.randint(10, 250) for _ in range(300)]
    alone = EpochSampler(lengths, 8, seed=5, group_by_length=by_length)
    grouped = EpochSampler(lengths, 8, seed=5, group_by_length=by_length, groups=list(range(300)))
    assert list(grouped) == list(alone)

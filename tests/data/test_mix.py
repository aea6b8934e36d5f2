"""qatune.data.mix: another data set mixed into a training slice at a ratio, seeded, never a question twice."""

from __future__ import annotations

import pytest

from qatune.data.mix import Mix, mix_in, parse_mix
from qatune.data.sources import load_sample
from qatune.data.squad import QADataset
from qatune.errors import ConfigError, DataError
from qatune.training.config import TrainConfig


@pytest.mark.parametrize(
    "text, expected",
    [
        ("squad:train:0.5", Mix("squad:train", 0.5)),
        ("squad:train", Mix("squad:train", 1.0)),
        ("squad:2", Mix("squad", 2.0)),
        ("data/mine.json", Mix("data/mine.json", 1.0)),
        ("C:\\data\\mine.json:0.25", Mix("C:\\data\\mine.json", 0.25)),
    ],
)
def test_parse_mix(text, expected):
    assert parse_mix(text) == expected


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "mix: empty"),
        (":0.5", "names no data"),
        ("squad:train:0", "must be a number in (0, 100]"),
        ("squad:train:-1", "must be a number in (0, 100]"),
        ("squad:train:nan", "must be a number in (0, 100]"),
        ("squad:train:inf", "must be a number in (0, 100]"),
        ("squad:train:101", "must be a number in (0, 100]"),
    ],
)
def test_bad_mix_is_one_config_error(text, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("]", r"\]")):
        parse_mix(text)


def test_a_mix_spec_is_checked_with_the_config():
    with pytest.raises(ConfigError, match="mix: .*unknown split 'trian'"):
        TrainConfig(mix="squad:trian:0.5").check()
    assert TrainConfig(mix="squad:train:0.5").check().to_dict()["mix"] == "squad:train:0.5"
    assert "mix" not in TrainConfig().to_dict()  # older folders' settings and study cache keys stay as they were


def test_mix_in_adds_a_seeded_sample_at_the_ratio():
    mine, other = load_sample("validation"), load_sample("train")
    mixed = mix_in(mine, other, Mix("sample:train", 0.5), seed=3)
    assert len(mixed) == len(mine) + round(0.5 * len(mine))
    assert mixed.examples[: len(mine)] == mine.examples and mixed.source == mine.source
    added = {e.id for e in mixed.examples[len(mine) :]}
    assert added <= {e.id for e in other.examples}
    again = mix_in(mine, other, Mix("sample:train", 0.5), seed=3)
    assert [e.id for e in again.examples] == [e.id for e in mixed.examples]
    assert [e.id for e in mix_in(mine, other, Mix("x", 0.5), seed=4).examples] != [e.id for e in mixed.examples]


def test_mix_in_refuses_too_few_questions_and_shared_ids():
    mine, other = load_sample("validation"), load_sample("train")
    with pytest.raises(DataError, match=r"asks for 340 questions but .* has 174; use a ratio of at most 5.11"):
        mix_in(mine, other, Mix("sample:train", 10), seed=0)
    with pytest.raises(DataError, match="is the training data itself"):
        mix_in(mine, mine, Mix("sample:validation", 0.5), seed=0)
    copy = QADataset(list(mine.examples), "elsewhere.json")
    with pytest.raises(DataError, match="is in the training data too"):
        mix_in(mine, copy, Mix("elsewhere.json", 0.5), seed=0)
    with pytest.raises(DataError, match="is in the eval data too"):  # training on the test
        mix_in(other.select(limit=50), copy, Mix("elsewhere.json", 0.5), seed=0, kept_apart=mine)
    assert len(mix_in(mine, other, Mix("x", 1), seed=0, own=10)) == len(mine) + 10  # negatives do not count


def test_a_file_whose_name_ends_in_a_number_is_a_spec(tmp_path):
    odd = tmp_path / "data:2"
    odd.write_text("{}")
    assert parse_mix(str(odd)) == Mix(str(odd), 1.0)
    assert parse_mix("squad:train:0x10") == Mix("squad:train:0x10")  # no ratio: the config check names the split


def test_a_mix_is_in_the_calibration_questions_too(tmp_path):
    """A SQuAD v2 file mixed into answerable-only data teaches the model to abstain; the no-answer threshold
    is chosen on the held-out questions, so they get the mix's share of its questions (none trained on)."""
    import dataclasses

    from conftest import tiny_config
    from qatune.data.squad import to_squad
    from qatune.io import atomic_write_json as write_json
    from qatune.training.setup import load_train_eval

    sample = load_sample("train")
    mine = QADataset(sample.examples[:60], "mine")
    rows = [dataclasses.replace(e, id=f"v2-{i}", answers=(), answer_starts=()) for i, e in enumerate(sample)]
    write_json(tmp_path / "mine.json", to_squad(mine))
    write_json(tmp_path / "v2.json", to_squad(QADataset(rows, "v2")))
    config = tiny_config(
        "m",
        "run",
        train_data=str(tmp_path / "mine.json"),
        eval_data=None,
        train_limit=None,
        train_sample=40,
        calibration_questions=20,
        mix=f"{tmp_path / 'v2.json'}:0.5",
    )
    train, _, held = load_train_eval(config)
    assert held is not None
    assert len(train) == 40 + 20 and sum(not e.answers for e in train.examples) == 20
    # calibration_questions is the whole set: 14 of one's own (20 / 1.5) and the mix's 0.5 per question, 6 left
    assert len(held) == 14 + 6 and sum(not e.answers for e in held.examples) == 6
    assert not {e.id for e in train.examples} & {e.id for e in held.examples}
    assert "mixed in from" in held.notes[-1] and held.source.endswith("v2.json")  # the card names both files
    held = load_train_eval(dataclasses.replace(config, mix=f"{tmp_path / 'v2.json'}:3"))[2]
    assert held is not None and len(held) == 20 and sum(not e.answers for e in held.examples) == 10  # never over half

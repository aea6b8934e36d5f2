"""Mix other data into a training slice, so fine-tuning on one's own questions does not forget SQuAD.

A mix is written `SPEC[:RATIO]`: a data spec (`squad:train`, a file) and how many of its questions to add
per question of the training slice (`squad:train:0.5`: one SQuAD question for every two of one's own;
default 1). Replaying a share of the earlier task's data is the standard guard against catastrophic
forgetting in continued fine-tuning; the questions are a seeded sample, so a rerun trains on the same mix.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from qatune.data.squad import QADataset
from qatune.errors import ConfigError, DataError

RATIO = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?|[-+]?(nan|inf|infinity)")  # no 0x10, no 1_0
MAX_RATIO = 100.0  # beyond this the "mix" is the other data set with a few of one's own questions


@dataclass(frozen=True)
class Mix:
    """The data spec mixed in and the questions of it per training question."""

    spec: str
    ratio: float = 1.0

    def count(self, train_questions: int) -> int:
        """Questions to add to a training slice of `train_questions`."""
        return max(1, round(self.ratio * train_questions))

    def own_share(self, total: int) -> int:
        """Of `total` calibration questions, one's own: drawn as for training, but never under half (the
        model is for one's own questions; at most as many of the mix's beside them)."""
        return math.ceil(total / (1 + min(self.ratio, 1.0)))


def parse_mix(text: str) -> Mix:
    """`SPEC[:RATIO]` as a Mix; a ConfigError names what is wrong and the form expected."""
    form = "write SPEC[:RATIO], e.g. squad:train:0.5 (0.5 mixed-in questions per question of your own)"
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"mix: empty; {form}")
    spec, _, last = text.rpartition(":")
    if Path(text.strip()).is_file() or not RATIO.fullmatch(last.strip().lower()):
        return Mix(text.strip())  # no ratio: the whole text is the spec (squad:train, a file path, data:2 a file)
    ratio = float(last)
    if not spec.strip():
        raise ConfigError(f"mix: {text!r} names no data; {form}")
    if not (math.isfinite(ratio) and 0 < ratio <= MAX_RATIO):
        raise ConfigError(f"mix: ratio {last!r} must be a number in (0, {MAX_RATIO:g}]; {form}")
    return Mix(spec.strip(), ratio)


def mix_in(
    train: QADataset, other: QADataset, mix: Mix, seed: int, own: int | None = None, kept_apart: QADataset | None = None
) -> QADataset:
    """`train` with a seeded sample of `other`'s questions added (`mix.count(own)` of them; `own`: one's own
    questions, before any generated negatives, default all of `train`). Refused when `other` is the training
    data, has too few questions, or shares question ids with `train` or with `kept_apart` (the evaluation
    questions: mixing them in would train on the test)."""
    own = own or len(train)
    if other.source == train.source:
        raise DataError(f"mix {mix.spec}: is the training data itself; mix in other data, e.g. squad:train")
    wanted = mix.count(own)
    if wanted > len(other):
        most = len(other) / own
        raise DataError(
            f"mix {mix.spec}:{mix.ratio:g}: asks for {wanted} questions but {other.source} has {len(other)}; "
            f"use a ratio of at most {math.floor(most * 100) / 100:g}"
        )
    for ids, what in (
        (train.examples, "the training data"),
        (kept_apart.examples if kept_apart else [], "the eval data"),
    ):
        taken = {e.id for e in ids}
        shared = next((e.id for e in other.examples if e.id in taken), None)
        if shared is not None:
            raise DataError(
                f"mix {mix.spec}: question id {shared!r} is in {what} too; mix in data that holds none of its "
                f"questions (or give the questions other ids)"
            )
    added = other.select(sample=wanted, seed=seed)
    notes = [*train.notes, *(n for n in other.notes if n not in train.notes)]
    notes.append(f"{wanted} of these questions mixed in from {other.source} ({mix.ratio:g} per question of its own)")
    return QADataset([*train.examples, *added.examples], train.source, train.skipped, notes)


def mix_held(
    held: QADataset, other: QADataset, used: QADataset, mix: Mix, seed: int, own: int, total: int
) -> QADataset:
    """The calibration questions `held` (`own` of them one's own) with the mix's share of `other`'s questions
    that `used` (the training slice) does not hold, at most as many as one's own and `total` in all: the
    confidence and the no-answer threshold are then fitted on questions drawn like the training ones (a
    SQuAD v2 mix brings its unanswerable questions, which the model learns to abstain on)."""
    wanted = min(mix.count(own), own, total - own)
    rest = other.held_out(used, wanted, seed) if wanted > 0 else None
    if rest is None:
        return held
    taken = {e.id for e in held.examples}
    examples = [e for e in rest.examples if e.id not in taken]  # an id both have would merge two questions' scores
    note = f"{len(examples)} of these questions mixed in from {other.source}"
    source = f"{held.source} and {other.source}"  # what the card says it was calibrated on
    return QADataset([*held.examples, *examples], source, held.skipped, [*held.notes, note])

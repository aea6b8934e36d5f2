"""Train/dev splits without leakage: every question of a context (or of a title) lands on one side.

A random split by question puts questions about the same paragraph on both sides, and the model is
then scored on text it trained on: SQuAD's own dev set shares no article with its train set. Groups
(contexts, or titles with `by="title"`) are shuffled with the seed and taken for dev until it holds
the asked share of the questions.
"""

from __future__ import annotations

import random
from collections import defaultdict

from qatune.data.squad import Example, QADataset
from qatune.errors import ConfigError, DataError

BY = ("context", "title")


def split(dataset: QADataset, dev: float, seed: int = 0, by: str = "context") -> tuple[QADataset, QADataset]:
    """(train, dev): about `dev` of the questions in dev, no context (or title) on both sides."""
    if not 0 < dev < 1:
        raise ConfigError(f"--dev must be a fraction in (0, 1), got {dev}")
    if by not in BY:
        raise ConfigError(f"--by must be one of {', '.join(BY)}, got {by!r}")
    groups: dict[str, list[Example]] = defaultdict(list)
    for e in dataset.examples:
        groups[e.title if by == "title" else e.context].append(e)
    if len(groups) < 2:
        raise DataError(
            f"{dataset.source}: all its questions share one {by}, so no split keeps the {by}s apart; "
            f"{'split by context (--by context)' if by == 'title' else 'add more contexts'}"
        )
    order = list(groups)
    random.Random(seed).shuffle(order)
    held: set[str] = set()
    count = 0
    for key in order[:-1]:  # the train side keeps at least one group
        if count >= dev * len(dataset.examples):
            break
        held.add(key)
        count += len(groups[key])
    picked = [e for e in dataset.examples if (e.title if by == "title" else e.context) in held]
    rest = [e for e in dataset.examples if (e.title if by == "title" else e.context) not in held]
    both = {e.context for e in picked} & {e.context for e in rest}
    if both:
        raise DataError(
            f"{dataset.source}: {len(both)} context(s) appear under several titles, so a split by title puts them "
            f"on both sides; split by context (--by context), or give each paragraph one title"
        )
    note = f"split by {by} (--dev {dev:g}, --seed {seed}): {len(held)} of {len(groups)} {by}s in dev"
    return (
        QADataset(rest, dataset.source, 0, [*dataset.notes, note]),
        QADataset(picked, dataset.source, 0, [*dataset.notes, note]),
    )

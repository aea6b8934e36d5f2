"""Benchmark the no-answer cue: does `no_answer_probability` tell answerable questions from unanswerable ones?

Unanswerable questions are made from SQuAD dev v1.1 (there is no SQuAD v2 offline): each sampled
question is asked once about its own context and once about the context of a question from
another article. Printed: the median no-answer probability of each kind, how many of each are
flagged at 0.5 (the page's warning), and the AUC (the chance that a random unanswerable question
gets a higher no-answer probability than a random answerable one).

    python bench/answerable.py --model runs/quality [--questions 400]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA_DIR, save, table  # noqa: E402


def mismatched(examples: list, offset: int) -> list[tuple[str, str]]:
    """Each question paired with the context of a question from another article."""
    pairs = []
    for i, example in enumerate(examples):
        j = (i + offset) % len(examples)
        while examples[j].title == example.title:
            j = (j + 1) % len(examples)
        pairs.append((examples[j].context, example.question))
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--questions", type=int, default=400)
    args = parser.parse_args()
    from qatune.answering.torch_backend import Answerer
    from qatune.data.squad import load_file

    examples = load_file(DATA_DIR / "dev-v1.1.json.gz").select(sample=args.questions, seed=3).examples
    answerer = Answerer(args.model)
    own = np.array(
        [p.no_answer_probability for p in answerer.predict_many([(e.context, e.question) for e in examples])]
    )
    other = np.array([p.no_answer_probability for p in answerer.predict_many(mismatched(examples, len(examples) // 2))])
    auc = float((other[:, None] > own[None, :]).mean() + 0.5 * (other[:, None] == own[None, :]).mean())
    rows = [
        {
            "questions": "asked about their own context",
            "n": len(own),
            "median": float(np.median(own)),
            "flagged_at_0.5": float((own > 0.5).mean()),
        },
        {
            "questions": "asked about another article's context",
            "n": len(other),
            "median": float(np.median(other)),
            "flagged_at_0.5": float((other > 0.5).mean()),
        },
    ]
    print(f"no_answer_probability of {args.model}; AUC {auc:.3f}")
    print(table(rows, list(rows[0])))
    path = save("answerable", {"model": args.model, "auc": auc, "results": rows})
    print(f"written {path}")


if __name__ == "__main__":
    main()

"""Restated answerable questions (qatune.data.restated): how often a question fits, and a sample to label.

    python bench/restated.py --seed 23 --count 60 --sample sample.json     # write the sample to label
    python bench/restated.py --seed 23 --count 60 --labels labels.json     # score the labels

The sample (random dev v1.1 questions that `restate` changes: the question, its answer, the paragraph
before and after) is written outside the repository: it is SQuAD text. A person reads each record and
writes `labels.json`, a list of {"n", "id", "after", "answerable", "natural", "note"} in the sample's order
(`answerable`: the changed paragraph still gives the answer to the question, as SQuAD's answerable
questions that name something their paragraph leaves implicit; `natural`: the changed paragraph reads as
written). With --labels the same seed rebuilds the same sample, and the rates are printed and saved to
bench/results/restated-labels.json (question ids and labels only, no SQuAD text).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA_DIR, fail, save, table  # noqa: E402


def sample(seed: int, count: int) -> tuple[list[dict], int, int]:
    """`count` random restated dev questions, how many answerable dev questions were tried, and how many fit."""
    from qatune.data.restated import restate
    from qatune.data.sources import load_data

    dev = load_data(str(DATA_DIR / "dev-v1.1.json.gz"), "validation")
    answerable = [e for e in dev.examples if e.answers]
    # each question restated with its own seeded generator, and the sample the first `count` of a seeded order
    # that fit: a change to `restate` changes only the records it touches, so earlier labels still apply
    made = {e.id: r for e in answerable if (r := restate(e, random.Random(f"{seed}-{e.id}"))) is not None}
    order = [e for e in random.Random(seed).sample(answerable, len(answerable)) if e.id in made][:count]
    records = [
        {
            "n": n,
            "id": e.id,
            "question": e.question,
            "answer": e.answers[0],
            "before": e.context,
            "after": made[e.id].context,
        }
        for n, e in enumerate(order)
    ]
    return records, len(answerable), len(made)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=23)
    parser.add_argument("--count", type=int, default=60, help="restated questions in the sample")
    parser.add_argument("--sample", help="write the sample to label here (outside the repository)")
    parser.add_argument("--labels", help="score these labels of the sample")
    args = parser.parse_args()
    records, tried, fit = sample(args.seed, args.count)
    print(f"restated {fit} of {tried} answerable dev questions ({100 * fit / tried:.1f}%)")
    if args.sample:
        Path(args.sample).write_text(json.dumps(records, indent=1, ensure_ascii=False))
    if args.labels:
        labels = json.loads(Path(args.labels).read_text())
        if [(r["n"], r["id"]) for r in records] != [(x["n"], x["id"]) for x in labels]:
            fail("the labels do not match this sample (same --seed, --count and version of qatune.data.restated?)")
        if any(x.get("after") not in (None, r["after"]) for r, x in zip(records, labels)):
            fail("a labelled paragraph differs from what qatune.data.restated makes now; label the sample again")
        shares = {k: sum(x[k] for x in labels) / len(labels) for k in ("answerable", "natural")}
        both = sum(x["answerable"] and x["natural"] for x in labels) / len(labels)
        row = {"labelled": len(labels), **shares, "both": both}
        print(table([row], list(row)))
        kept = [{k: x[k] for k in ("n", "id", "answerable", "natural", "note")} for x in labels]
        params = {"seed": args.seed, "count": args.count, "tried": tried, "restated": fit}
        save("restated-labels", {**params, "rates": row, "labels": kept})


if __name__ == "__main__":
    main()

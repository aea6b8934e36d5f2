"""Does the rule that turns a v2 model's scores into "no answer" matter? Two rules on the same logits:

- `probability` (qatune's): the null's share of the softmax over the null and every span;
- `score_diff` (BERT's and HF's run_qa: `null_score_diff_threshold`): the null score minus the best span's.

    python bench/no_answer_rule.py --model M --data dev30-bal.json [--name NAME]

For each rule: the best overall F1 at a threshold chosen on the data itself, the same chosen on the
questions of half the articles and scored on the other half (both ways, averaged; NaN where a half
lacks answerable or unanswerable questions), and the HasAns F1 at the threshold where NoAns EM first
reaches 70. A model's span and its no-answer probability come from qatune's own decoding; only the
rule differs.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import result_name, save, table  # noqa: E402
from qatune.answering.decoding import predict_examples  # noqa: E402
from qatune.answering.factory import open_answerer  # noqa: E402
from qatune.data.negatives import made_from  # noqa: E402
from qatune.data.squad import load_file  # noqa: E402
from qatune.evaluation.metrics import best_over_golds, best_threshold  # noqa: E402
from qatune.evaluation.scoring import dataset_logits  # noqa: E402

NAMES = ("id", "span", "answerable", "f1", "probability", "score_diff", "half")


def per_question(model: str, data: str) -> dict[str, np.ndarray]:
    """Per question (`NAMES`, and its gold answers): its best span and that span's F1 (0-100), the two
    rules' values and its article's half."""
    answerer, _ = open_answerer(model)
    if not answerer.decoding.with_null:
        print(f"error: {model}: has no null answer; score a model trained with --negatives", file=sys.stderr)
        sys.exit(2)
    dataset = load_file(data)
    if all(e.answers for e in dataset.examples) or not any(e.answers for e in dataset.examples):
        print(f"error: {data}: needs answerable and unanswerable questions (qatune data --negatives)", file=sys.stderr)
        sys.exit(2)
    titles = {e.id: e.title for e in dataset.examples}
    windows, logits = dataset_logits(answerer, dataset, progress_bar=True)
    decoding = dataclasses.replace(answerer.decoding, null_threshold=None)
    predicted = predict_examples(dataset.examples, windows, logits, 2, decoding, keep_scores=True)
    rows = []
    for e, p in zip(dataset.examples, predicted):
        assert p.gaps is not None  # keep_scores
        span = next((a.text for a in p.answers if a.text), "")
        f1 = best_over_golds(span, e.answers)[1] * 100 if e.answers else 0.0
        diff = float(p.gaps[-1] - p.gaps[:-1].max()) if p.gaps.size > 1 else np.inf  # the null is last
        made = made_from(e.id) if not e.answers else None  # a mined negative: its source question's article
        title = titles.get(made[0], e.title) if made else e.title
        rows.append((e.id, span, bool(e.answers), f1, p.no_answer_probability, diff, zlib.crc32(title.encode()) % 2))
    q = {name: np.array(column) for name, column in zip(NAMES, zip(*rows))}
    q["golds"] = np.empty(len(rows), dtype=object)
    q["golds"][:] = [list(e.answers) for e in dataset.examples]
    return q


def scores(q: dict[str, np.ndarray], value: np.ndarray, threshold: float, keep: np.ndarray) -> tuple[float, ...]:
    """Overall F1, HasAns F1 and NoAns EM of the questions `keep`, abstaining where value > threshold."""
    abstain, answerable = value[keep] > threshold, q["answerable"][keep]
    per = np.where(abstain, np.where(answerable, 0.0, 100.0), np.where(answerable, q["f1"][keep], 0.0))
    return per.mean(), per[answerable].mean(), per[~answerable].mean()


def threshold_on(q: dict[str, np.ndarray], value: np.ndarray, keep: np.ndarray) -> float:
    """The best-F1 threshold on the questions `keep`: `evaluation.metrics.best_threshold` (tied values
    decided together), given `value` as a rank in (0, 1) (it takes probabilities; a rank keeps every
    comparison)."""
    ids = q["id"][keep]
    spans = dict(zip(ids, q["span"][keep]))
    return best_threshold(spans, dict(zip(ids, value[keep])), dict(zip(ids, q["golds"][keep])))[0]


def ranked(value: np.ndarray) -> np.ndarray:
    """`value` mapped to (0, 1) in the same order, ties kept."""
    distinct, rank = np.unique(value, return_inverse=True)
    return (rank + 1) / (len(distinct) + 1)


def rule_row(q: dict[str, np.ndarray], rule: str) -> dict[str, object]:
    """The figures of one rule (module doc)."""
    value, every = ranked(q[rule]), np.ones_like(q["answerable"])
    best = scores(q, value, threshold_on(q, value, every), every)
    halves = [q["half"] == h for h in (0, 1)]
    if all(q["answerable"][m].any() and not q["answerable"][m].all() for m in halves):
        crossed = np.mean([scores(q, value, threshold_on(q, value, m), ~m) for m in halves], 0)
    else:  # a half without answerable or unanswerable questions has no score to choose or check a threshold by
        crossed = np.full(3, np.nan)
    negatives = np.sort(value[~q["answerable"]])[::-1]
    at_70 = negatives[int(np.ceil(0.7 * len(negatives))) - 1]  # abstaining on values >= this: NoAns EM >= 70
    has_70 = scores(q, value, np.nextafter(at_70, -np.inf), every)
    row = {
        "rule": rule,
        "best_f1": best[0],
        "two_fold_f1": crossed[0],
        "two_fold_HasAns_f1": crossed[1],
        "two_fold_NoAns_exact": crossed[2],
        "HasAns_f1_at_NoAns_70": has_70[1],
        "NoAns_exact_there": has_70[2],
    }
    return {k: None if isinstance(v, float) and np.isnan(v) else v for k, v in row.items()}  # JSON has no NaN


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a model trained with --negatives")
    parser.add_argument("--data", required=True, help="a v2-style file (qatune data --negatives)")
    parser.add_argument("--name", type=result_name, help="save the table to bench/results/NAME.json")
    args = parser.parse_args()
    q = per_question(args.model, args.data)
    rows = [rule_row(q, rule) for rule in ("probability", "score_diff")]
    print(table(rows, list(rows[0])))
    print(f"never abstaining: HasAns F1 {q['f1'][q['answerable']].mean():.1f}")
    if args.name:
        print(f"written {save(args.name, {'model': args.model, 'data': args.data, 'rows': rows})}")


if __name__ == "__main__":
    main()

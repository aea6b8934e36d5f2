"""Adversarial negatives: how often each kind applies, and a random sample of each kind to label by hand.

    python bench/adversarial.py --seed 13 --per-kind 40 --sample sample.json     # write the sample to label
    python bench/adversarial.py --seed 13 --per-kind 40 --labels labels.json     # score the labels

The sample (dev v1.1 questions, their paragraphs and the changed question) is written outside the
repository: it is SQuAD text. A person reads each record and writes `labels.json`, a list of
{"n", "kind", "unanswerable", "natural", "note"} in the sample's order (`unanswerable`: the paragraph no
longer answers the changed question; `natural`: it reads as a sensible question of the right type).
With --labels the same seed rebuilds the same sample, and the rates per kind are printed and saved to
bench/results/adversarial-labels.json (question ids and labels only, no SQuAD text).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA_DIR, save, table  # noqa: E402

KINDS = ("entity", "number", "antonym", "negation")


def sample(seed: int, questions: int, per_kind: int, kinds: tuple[str, ...]) -> tuple[list[dict], dict[str, int]]:
    """`per_kind` random changed questions of each kind among `questions` random dev questions, and how
    many of those questions each kind could change."""
    from qatune.data.sources import load_data
    from qatune.models.embedding import perturber_for

    dev = load_data(str(DATA_DIR / "dev-v1.1.json.gz"), "validation")
    rng = random.Random(seed)
    chosen = rng.sample(dev.examples, questions)
    perturber = perturber_for(dev.examples, kinds)
    changed: dict[str, dict] = {}
    for kind in kinds:
        made: dict = {}
        for e in chosen:
            question = perturber.perturb(e, kind, rng)
            if question:
                made[question] = e
        changed[kind] = made
    records = [
        {"kind": kind, "id": e.id, "original": e.question, "perturbed": q, "answer": e.answers[0], "context": e.context}
        for kind, made in changed.items()
        for q, e in rng.sample(list(made.items()), min(per_kind, len(made)))
    ]
    applied = {kind: len(made) for kind, made in changed.items()}
    for n, record in enumerate(records):
        record["n"] = n
    return records, applied


def rates(records: list[dict], labels: list[dict]) -> list[dict]:
    """Per kind: labelled, unanswerable, natural, both (shares)."""
    if [(r["n"], r["kind"]) for r in records] != [(x["n"], x["kind"]) for x in labels]:
        raise SystemExit("error: the labels do not match this sample (same --seed, --questions, --per-kind?)")
    rows = []
    for kind in dict.fromkeys(r["kind"] for r in records):
        mine = [x for x in labels if x["kind"] == kind]
        yes = sum(x["unanswerable"] for x in mine)
        natural = sum(x["natural"] for x in mine)
        both = sum(x["unanswerable"] and x["natural"] for x in mine)
        rows.append({"kind": kind, "labelled": len(mine), "unanswerable": yes / len(mine)} | {
            "natural": natural / len(mine), "both": both / len(mine)})  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--questions", type=int, default=3000, help="random dev questions the kinds are tried on")
    parser.add_argument("--per-kind", type=int, default=40)
    parser.add_argument("--kinds", default=",".join(KINDS[:3]))
    parser.add_argument("--sample", help="write the sample to label here (outside the repository)")
    parser.add_argument("--labels", help="score these labels of the sample")
    args = parser.parse_args()
    began = time.perf_counter()
    records, applied = sample(args.seed, args.questions, args.per_kind, tuple(args.kinds.split(",")))
    seconds = time.perf_counter() - began
    print(
        table([{"kind": k, "changed": n, "of": args.questions} for k, n in applied.items()], ["kind", "changed", "of"])
    )
    print(f"{seconds:.0f} s")
    if args.sample:
        Path(args.sample).write_text(json.dumps(records, indent=1, ensure_ascii=False))
    if args.labels:
        labels = json.loads(Path(args.labels).read_text())
        rows = rates(records, labels)
        print(table(rows, list(rows[0])))
        kept = [{k: x[k] for k in ("n", "kind", "unanswerable", "natural", "note")} | {"id": r["id"]}
                for r, x in zip(records, labels)]  # fmt: skip
        params = {"seed": args.seed, "questions": args.questions, "per_kind": args.per_kind, "kinds": args.kinds}
        save("adversarial-labels", {**params, "applied": applied, "rates": rows, "labels": kept})


if __name__ == "__main__":
    main()

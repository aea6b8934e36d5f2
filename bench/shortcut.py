"""Does a model with a null answer abstain because a number of the question is missing from the paragraph?

    python bench/shortcut.py MODEL DATA [--name NAME]

A causal check of the `number` kind's mark (README, Unanswerable questions): the answerable questions of
DATA that state a small number (2-20) their paragraph also states in digits, and not in the answer, are
asked twice: as they are, and with the paragraph writing that number in words ("16" -> "sixteen"), which
leaves the question just as answerable. A model that learnt the meaning abstains on both about as often;
one that learnt the mark abstains more on the second. With --name the figures are saved to
bench/results/NAME.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import fail, result_name, save, table  # noqa: E402
from qatune.data.squad import Example, QADataset  # noqa: E402

# 2-20 in words: the numbers a paragraph writes either way ("16 games", "sixteen games")
WORDS = "two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen "
WORDS += "eighteen nineteen twenty"
IN_WORDS = dict(zip(range(2, 21), WORDS.split()))


def in_words(e: Example) -> Example | None:
    """`e` with its paragraph writing the question's first usable number in words, answers moved along."""
    for m in re.finditer(r"(?<![\w.,-])\d{1,2}(?![\w.,-])", e.question):
        value, digits = int(m.group()), m.group()
        word = IN_WORDS.get(value)
        stated = re.compile(rf"(?<![\w.,-]){digits}(?![\w.,-])")
        if word is None or not stated.search(e.context) or re.search(rf"\b{word}\b", e.context, re.IGNORECASE):
            continue
        if any(digits in a for a in e.answers):
            continue
        hits = list(stated.finditer(e.context))
        starts = tuple(a + (len(word) - len(digits)) * sum(h.end() <= a for h in hits) for a in e.answer_starts)
        context = stated.sub(word, e.context)
        if all(context[s : s + len(t)] == t for s, t in zip(starts, e.answers)):
            return dataclasses.replace(e, id=f"{e.id}-words", context=context, answer_starts=starts)
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a model trained with --negatives (it can answer 'no answer')")
    parser.add_argument("data", help="a SQuAD-format file with answerable questions (a v2-style dev set)")
    parser.add_argument("--name", type=result_name, help="save the figures to bench/results/NAME.json")
    args = parser.parse_args()
    from qatune.answering.factory import open_answerer
    from qatune.data.squad import load_file
    from qatune.errors import QatuneError
    from qatune.evaluation.scoring import evaluate

    try:
        data = load_file(args.data)
        answerer, _ = open_answerer(args.model)
    except QatuneError as e:
        fail(str(e))
    if not answerer.decoding.with_null:
        fail(f"{args.model}: this model cannot answer 'no answer'; train one with --negatives")
    pairs = [(e, w) for e in data.examples if e.answers and (w := in_words(e)) is not None]
    if not pairs:
        fail(f"{args.data}: no answerable question states a number 2-20 that its paragraph has in digits")
    rows = []
    for variant, examples in (("as asked", [p[0] for p in pairs]), ("paragraph in words", [p[1] for p in pairs])):
        result = evaluate(answerer, QADataset(examples, data.source))
        abstained = sum(result.predictions[e.id] == "" for e in examples)
        share = 100 * abstained / len(examples)
        row = {"variant": variant, "questions": len(examples), "abstained": abstained, "share_%": share}
        rows.append({**row, "F1": result.scores.f1})
    print(table(rows, ["variant", "questions", "abstained", "share_%", "F1"]))
    if args.name:
        print(f"written {save(args.name, {'model': args.model, 'data': args.data, 'variants': rows})}")


if __name__ == "__main__":
    main()

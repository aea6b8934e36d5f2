"""How often a model abstains on each kind of a v2-style file's unanswerable questions, and on the
answerable questions that bear a kind's mark as they are (a number or a name the paragraph never states).

    qatune evaluate --model M --data dev30-adv.json --predictions P.json
    python bench/abstention.py P.json dev30-adv.json [--name NAME]

The kind is read off the question id that `qatune data --negatives` gave it (`<id>-negative` for
`article`, `<id>-<kind>` for the others, `<id>-mined`); unanswerable questions of other ids count as
`other`. An answerable question counts under `number` / `entity` when it bears that kind's mark
(`qatune.data.adversarial.unstated`), else under `neither`: abstaining there is a learnt shortcut.
With --name the counts are saved to bench/results/NAME.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import fail, result_name, save, table  # noqa: E402
from qatune.data.adversarial import unstated  # noqa: E402
from qatune.data.negatives import made_from  # noqa: E402
from qatune.data.squad import load_file  # noqa: E402


def kind(question_id: str) -> str:
    """The negative kind a `qatune data --negatives` id names, else 'other'."""
    made = made_from(question_id)
    return made[1] if made else "other"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("predictions", help="qatune evaluate --predictions file (id -> answer, '' = no answer)")
    parser.add_argument("data", help="the v2-style file those predictions were made on")
    parser.add_argument("--name", type=result_name, help="save the counts to bench/results/NAME.json")
    args = parser.parse_args()
    try:
        predictions = json.loads(Path(args.predictions).read_text())
    except (OSError, ValueError) as e:
        fail(f"{args.predictions}: not a predictions JSON file ({e}); write one with qatune evaluate --predictions")
    asked, abstained = Counter[str](), Counter[str]()  # unanswerable questions by kind
    answerable, wrong = Counter[str](), Counter[str]()  # answerable ones by the mark they bear
    for e in load_file(args.data).examples:
        if e.id not in predictions:
            fail(f"{args.predictions}: no prediction for question {e.id!r}; score the same file")
        counts, hits = (answerable, wrong) if e.answers else (asked, abstained)
        for group in (*((unstated(e) or ("neither",)) if e.answers else (kind(e.id),)), "all"):
            counts[group] += 1
            hits[group] += predictions[e.id] == ""
    kinds, marks = rows(asked, abstained, "kind"), rows(answerable, wrong, "answerable")
    print(table(kinds, ["kind", "questions", "abstained", "share_%"]))
    print(table(marks, ["answerable", "questions", "abstained", "share_%"]))
    if args.name:
        saved = {"predictions": args.predictions, "data": args.data, "kinds": kinds, "answerable": marks}
        print(f"written {save(args.name, saved)}")


def rows(asked: Counter[str], abstained: Counter[str], label: str) -> list[dict[str, object]]:
    """One row per group, the largest first and `all` last (a question may bear two marks)."""
    return [
        {label: k, "questions": asked[k], "abstained": abstained[k], "share_%": 100 * abstained[k] / asked[k]}
        for k in sorted(asked, key=lambda k: (k == "all", -asked[k]))
    ]


if __name__ == "__main__":
    main()

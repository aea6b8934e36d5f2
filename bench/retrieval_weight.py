"""How much the documents reader should trust the retrieval score (`ask --retrieval-weight`), chosen on
open-SQuAD dev questions kept apart from the ones bench/documents.py scores.

Each question's passages are read once (the model's logits are kept) and decoded with each weight and
each number of passages through `documents.reader.ask_index` itself, so a figure here is what `ask
--index` answers. The questions: N evenly spaced over the dev questions that bench/documents.py's
`--limit 1000` leaves out. Needs the index that `bench/documents.py --collection all --work DIR` made.

    python bench/retrieval_weight.py --model READER --work DIR [--questions 1000] [--weights 0 0.5 1 ...]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import result_name, save, table  # noqa: E402
from documents import articles, questions, write_documents  # noqa: E402


class KeptLogits:
    """A backend whose logits are computed once a set of windows (the same passages, decoded again)."""

    def __init__(self, backend) -> None:
        self.backend = backend
        self.kept: dict = {}

    def __call__(self, windows, progress=None, with_loss=False):
        key = b"".join(ids.tobytes() + b"|" for ids in windows.input_ids)
        if key not in self.kept:
            self.kept[key] = self.backend(windows, progress, with_loss)
        return self.kept[key]


def held_out(asked: list[dict], scored: int, n: int) -> list[dict]:
    """`n` evenly spaced questions among those bench/documents.py --limit `scored` does not ask."""
    taken = {i * len(asked) // scored for i in range(scored)}
    rest = [q for i, q in enumerate(asked) if i not in taken]
    return [rest[i * len(rest) // n] for i in range(min(n, len(rest)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="the reader")
    parser.add_argument("--work", required=True, help="the folder bench/documents.py --collection all --work made")
    parser.add_argument("--questions", type=int, default=1000)
    parser.add_argument("--weights", type=float, nargs="+", default=[0, 0.5, 0.75, 1, 1.25, 1.5, 2, 3])
    parser.add_argument("--passages", type=int, nargs="+", default=[5, 10])
    parser.add_argument("--data-dir", default=os.environ.get("QATUNE_DATA_DIR", "../shared/data/squad"))
    parser.add_argument("--name", type=result_name, default="retrieval-weight")
    args = parser.parse_args()
    import torch

    from qatune.answering.factory import open_answerer
    from qatune.documents.index import DocumentIndex
    from qatune.documents.reader import ask_index
    from qatune.evaluation.metrics import best_over_golds
    from qatune.hardware import compute_threads, inference_dtype

    torch.set_num_threads(compute_threads().count)
    docs, dev = articles(Path(args.data_dir), "all")
    spans = write_documents(Path(args.work) / "docs", docs)  # the same files, so the index's keys match
    asked = held_out(questions(dev, spans, None), 1000, args.questions)
    index = DocumentIndex.open(Path(args.work) / "idx")
    answerer, _ = open_answerer(args.model, dtype=inference_dtype("auto"))
    answerer.logits = KeptLogits(answerer.logits)
    rows = []
    for passages in sorted(args.passages, reverse=True):
        for weight in args.weights:
            em = f1 = 0.0
            for q in asked:
                (result,) = ask_index(index, answerer, [q["question"]], 1, passages, "fused", weight)
                e, f = best_over_golds(result.answers[0].text if result.answers else "", q["answers"])
                em, f1 = em + e, f1 + f
            em, f1 = round(100 * em / len(asked), 2), round(100 * f1 / len(asked), 2)
            rows.append({"passages": passages, "weight": weight, "em": em, "f1": f1})
            print(rows[-1], flush=True)
        answerer.logits.kept.clear()
    best = max(rows, key=lambda r: (r["em"], r["f1"]))
    print(table(rows, list(rows[0])))
    print(f"best on these {len(asked)} questions: {best}")
    payload = {"model": args.model, "questions": len(asked), "rows": rows, "best": best}
    print(save(args.name, payload | {"command": " ".join(["python", "bench/retrieval_weight.py", *sys.argv[1:]])}))


if __name__ == "__main__":
    main()

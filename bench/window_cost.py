"""Benchmark what a request costs: model time grows with windows, not characters.

Three contexts of 20,000 characters (English prose, digits and punctuation, Chinese) through the
default model: windows each makes, median seconds of `ask` over interleaved rounds, ms per window.
The serve bound `--max-request-windows` is set from this (its default times the ms per window is the
longest a request can hold the model).

    python bench/window_cost.py [--model default] [--dtype float32] [--rounds 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import median, save, table  # noqa: E402

QUESTION = "What is it?"
CONTEXTS = {
    "english": ("The quick brown fox jumps over the lazy dog near the river bank. " * 400)[:20000],
    "digits": ("12,345.67; 89-10/11 (12) [13] " * 700)[:20000],
    "chinese": ("中华人民共和国是一个位于东亚的国家，首都是北京。" * 900)[:20000],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    import torch

    from qatune.answering.factory import open_answerer
    from qatune.data.squad import question_examples
    from qatune.hardware import compute_threads

    torch.set_num_threads(compute_threads().count)
    answerer, _ = open_answerer(args.model, dtype=args.dtype)
    answerer.ask("Earth is a planet.", "What is Earth?")  # warm-up
    windows = {k: len(answerer.windows_of(question_examples([(c, QUESTION)]))) for k, c in CONTEXTS.items()}
    seconds: dict[str, list[float]] = {k: [] for k in CONTEXTS}
    for _ in range(args.rounds):  # interleaved: a slow moment of the machine hits every context alike
        for name, context in CONTEXTS.items():
            began = time.perf_counter()
            answerer.ask(context, QUESTION)
            seconds[name].append(time.perf_counter() - began)
    rows = [
        {
            "context": name,
            "characters": len(CONTEXTS[name]),
            "windows": windows[name],
            "seconds": round(median(seconds[name]), 3),
            "ms_per_window": round(1000 * median(seconds[name]) / windows[name], 1),
            "vs_english": round(median(seconds[name]) / median(seconds["english"]), 2),
        }
        for name in CONTEXTS
    ]
    print(table(rows, list(rows[0])))
    print(save("window_cost", {"model": args.model, "dtype": args.dtype, "rounds": args.rounds, "rows": rows}))


if __name__ == "__main__":
    main()

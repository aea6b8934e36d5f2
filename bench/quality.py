"""Benchmark quality: fine-tune the default model with the default recipe for a fixed wall-clock budget,
then score it on the COMPLETE SQuAD v1.1 dev set (10,570 questions). The headline number.

The budget is turned into a number of training questions up front (the learning-rate schedule needs
its length): a short calibration run measures this machine's windows/s, and the run trains on as
many questions as one epoch at that rate fits in the budget.

    python bench/quality.py [--budget-minutes 60] [--output runs/quality] [--rate WINDOWS_PER_S]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA_DIR, save, table  # noqa: E402

WINDOWS_PER_QUESTION = 1.10  # SQuAD train at 256/96 windows: 96.0k windows for 87,599 questions (README)


def calibrate() -> float:
    """Steady-state windows/s of the default recipe on this machine (a 25-step run)."""
    from train import run_qatune

    return run_qatune(1000, 25)["windows_per_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-minutes", type=float, default=60)
    parser.add_argument("--output", default="runs/quality")
    parser.add_argument("--rate", type=float, help="windows/s to plan with (default: measure)")
    parser.add_argument("--eval-sample", type=int, default=500, help="dev questions scored during training")
    args = parser.parse_args()
    from qatune.config import TrainConfig
    from qatune.inference import evaluate
    from qatune.models import load_model
    from qatune.sources import load_data
    from qatune.train import train

    train_file = DATA_DIR / "train-v1.1-rebuilt.json.gz"
    rate = args.rate or calibrate()
    questions = int(args.budget_minutes * 60 * rate * 0.93 / WINDOWS_PER_QUESTION)  # 7% for the evaluations
    config = TrainConfig(train_data=str(train_file), train_sample=questions, eval_data=str(DATA_DIR / "dev-v1.1.json.gz"),
                         eval_sample=args.eval_sample, eval_steps=max(50, questions // 32 // 6), output_dir=args.output)
    print(f"plan: {rate:.2f} windows/s -> {questions} training questions in {args.budget_minutes:.0f} minutes", flush=True)
    began = time.perf_counter()
    summary = train(config)
    train_minutes = (time.perf_counter() - began) / 60
    dev = load_data(str(DATA_DIR / "dev-v1.1.json.gz"), "validation")
    result = evaluate(load_model(args.output), dev, config.window, progress_bar=True).metrics
    row = {"train_questions": questions, "windows_seen": summary["windows_seen"], "steps": summary["steps"],
           "train_minutes": train_minutes, "dev_questions": result["total"], "EM": result["exact_match"],
           "F1": result["f1"], "eval_seconds": result["seconds"]}
    print(table([row], list(row)))
    path = save("quality", {"budget_minutes": args.budget_minutes, "rate_windows_per_s": rate,
                            "config": config.to_dict(), "result": row})
    print(f"written {path}")


if __name__ == "__main__":
    main()

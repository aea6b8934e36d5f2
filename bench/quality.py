"""Benchmark quality: fine-tune the default model with the default recipe for a fixed wall-clock budget,
then score it on the COMPLETE SQuAD v1.1 dev set (10,570 questions). The headline number.
The trained model is then also scored in bfloat16 and as an int8 ONNX export, on the same full dev
set, with the EM/F1 difference to float32 (a fast path is accepted only within 0.5 EM).

The budget is turned into a number of training questions up front (the learning-rate schedule needs
its length): a short calibration run measures this machine's windows/s, and the run trains on as
many questions as one epoch at that rate fits in the budget.

    python bench/quality.py [--budget-minutes 60] [--output runs/quality] [--rate WINDOWS_PER_S]

Unanswerable questions (SQuAD v2-style, README): train with `--negatives 0.33` and score on a v2-style
dev set made from dev v1.1 (`qatune data dev-v1.1.json.gz --negatives 0.5 --output dev-v2-style.json`,
then `--dev dev-v2-style.json --name quality-v2`): the result then has HasAns/NoAns/overall EM and F1 at the model's
saved no-answer threshold, and the best-threshold figures beside them; `--report R` also writes R/predictions.json
and R/thresholds.csv for `bench/abstention.py` (what `qatune evaluate --report` writes).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA_DIR, result_name, save, table  # noqa: E402

TRAIN_FILE = DATA_DIR / "train-v1.1-rebuilt.json.gz"
WINDOWS_PER_QUESTION = 1.10  # SQuAD train at 256/96 windows: 96.0k windows for 87,599 questions (README)


def calibrate() -> float:
    """Steady-state windows/s of the default recipe (precision auto) on this machine (a 25-step run)."""
    from train import run_qatune

    return run_qatune(1000, 25, "auto")["windows_per_s"]


def main() -> None:
    from qatune.training.config import SPAN_LOSSES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-minutes", type=float, default=60)
    parser.add_argument("--output", default="runs/quality")
    parser.add_argument("--rate", type=float, help="windows/s to plan with (default: measure)")
    parser.add_argument("--eval-sample", type=int, default=500, help="dev questions scored during training")
    parser.add_argument("--no-fast-paths", action="store_true", help="skip the bfloat16 / int8 full-dev scoring")
    parser.add_argument("--eval-only", action="store_true", help="score an already trained --output model")
    parser.add_argument(
        "--negatives", type=float, default=0.0, help="train with this fraction of unanswerable questions"
    )
    parser.add_argument("--negative-kinds", help="the kinds of --negatives (default: qatune's)")
    parser.add_argument(
        "--mined-negatives", type=float, default=0.0, help="and this fraction paired with BM25-mined paragraphs"
    )
    parser.add_argument(
        "--restated", type=float, default=0.0, help="and this fraction of restated answerable questions"
    )
    parser.add_argument(
        "--span-loss", choices=SPAN_LOSSES, default="separate", help="what training minimises (qatune's)"
    )
    parser.add_argument(
        "--use-title", action="store_true", help="read questions with their article's title (qatune's --use-title)"
    )
    parser.add_argument("--model", default="default", help="the model fine-tuned (default: the embedded MiniLM)")
    parser.add_argument("--name", type=result_name, default="quality", help="result file name under bench/results")
    parser.add_argument("--dev", default=str(DATA_DIR / "dev-v1.1.json.gz"), help="the data scored (default: dev v1.1)")
    parser.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        default="auto",
        help="training precision (default auto: bf16 where the CPU has it); fp32 repeats a float32 run elsewhere",
    )
    parser.add_argument(
        "--report",
        help="also write `qatune evaluate --report`'s folder (predictions, thresholds.csv) from the same scoring",
    )
    args = parser.parse_args()
    if args.report is not None and not args.report.strip():
        parser.error("--report: give a folder name (it was empty)")
    if args.report and Path(args.report).exists():
        parser.error(f"--report {args.report}: already exists; give a new folder")
    if args.report:  # the rest of `qatune evaluate --report`'s check (a dangling symlink, an unwritable parent)
        from qatune.errors import ConfigError
        from qatune.layout import EVAL_REPORT
        from qatune.paths import check_output_folder

        try:
            check_output_folder(args.report, "--report", (EVAL_REPORT,), "an evaluation report")
        except ConfigError as exc:
            parser.error(str(exc))
    from qatune.answering.torch_backend import Answerer
    from qatune.data.sources import load_data
    from qatune.evaluation.scoring import evaluate
    from qatune.models.loading import load_model
    from qatune.models.settings import read_calibration
    from qatune.training.config import TrainConfig
    from qatune.training.trainer import train

    if args.eval_only:
        import json

        saved = Path(args.output) / "qatune.json"
        if not saved.is_file():
            parser.error(f"--output {args.output}: no trained model there ({saved.name} is missing); train it first")
        summary = json.loads(saved.read_text())
        config, rate, train_minutes = TrainConfig.from_saved(summary["config"]), args.rate, summary["seconds"] / 60
        questions = config.train_sample
    else:
        rate = args.rate or calibrate()
        # 7% of the budget for the evaluations; each question brings about `negatives` unanswerable ones
        windows = args.budget_minutes * 60 * rate * 0.93
        questions = int(windows / (WINDOWS_PER_QUESTION * (1 + args.negatives + args.mined_negatives + args.restated)))
        # The calibration questions must stay out of training: a budget that holds more than the rest of
        # the train set trains one epoch over all of it (the whole-train-set recipe) and says so.
        available = len(load_data(str(TRAIN_FILE), "train").examples) - TrainConfig.calibration_questions
        if questions > available:
            print(
                f"the budget holds {questions / available:.2f} epochs of the {available} questions not kept "
                f"for calibration; training one epoch over all of them",
                flush=True,
            )
            questions = available
        config = TrainConfig(
            train_data=str(TRAIN_FILE),
            train_sample=questions,
            eval_data=args.dev,
            eval_sample=args.eval_sample,
            negatives=args.negatives,
            **({"negative_kinds": args.negative_kinds} if args.negative_kinds else {}),
            mined_negatives=args.mined_negatives,
            restated=args.restated,
            span_loss=args.span_loss,
            use_title=args.use_title,
            model=args.model,
            eval_steps=max(50, questions // 32 // 6),
            output_dir=args.output,
            precision=args.precision,
        )
        print(
            f"plan: {rate:.2f} windows/s -> {questions} training questions in {args.budget_minutes:.0f} minutes",
            flush=True,
        )
        began = time.perf_counter()
        summary = train(config).to_dict()
        train_minutes = (time.perf_counter() - began) / 60
    dev = load_data(args.dev, "validation")
    scored = evaluate(Answerer(load_model(args.output), config.window), dev, progress_bar=True)
    result = scored.metrics
    if args.report is not None:
        from qatune.report.evaluation import evaluation_summary, write_evaluation_report

        write_evaluation_report(Path(args.report), evaluation_summary(args.output, dev, scored, False), scored, dev)
    row = {
        "train_questions": questions,
        "windows_seen": summary["windows_seen"],
        "steps": summary["steps"],
        "train_minutes": train_minutes,
        "dev_questions": result["total"],
        "EM": result["exact_match"],
        "F1": result["f1"],
        "correct": result["correct"],
        "similar": result["similar"],
        "incorrect": result["incorrect"],
        "eval_loss": result["eval_loss"],
        "eval_seconds": result["seconds"],
        "ECE": result["ece"],  # of the calibrated top-1 probability (10 bins, against exact match)
        "ECE_raw": result["ece_raw"],
        "temperature": getattr(read_calibration(args.output), "temperature", None),  # as saved (or refitted)
        **{k: v for k, v in result.items() if k.startswith(("HasAns", "NoAns", "best_")) or k == "null_threshold"},
    }
    print(table([row], list(row)))
    fast = [] if args.no_fast_paths else fast_paths(args.output, dev, config, result)
    if fast:
        print(table(fast, list(fast[0])))
    path = save(
        args.name,
        {
            "budget_minutes": args.budget_minutes,
            "dev": args.dev,
            "rate_windows_per_s": rate,
            "config": config.to_dict(),
            "result": row,
            "full_dev_inference": fast,
        },
    )
    print(f"written {path}")


def fast_paths(model: str, dev, config, fp32: dict) -> list[dict]:
    """Full-dev EM/F1 and speed of float32, bfloat16 and int8 ONNX, with deltas to float32."""
    from eval import onnx_path
    from qatune.answering.torch_backend import Answerer
    from qatune.evaluation.metrics import squad_scores
    from qatune.evaluation.scoring import evaluate
    from qatune.hardware import inference_dtype
    from qatune.models.loading import load_model
    from qatune.publishing.export import export_onnx

    rows = [
        {
            "path": "torch float32",
            "questions_per_s": fp32["questions_per_second"],
            "EM": fp32["exact_match"],
            "F1": fp32["f1"],
        }
    ]
    if inference_dtype("auto") == "bfloat16":  # emulated bfloat16 (no AMX/AVX512-BF16) is no fast path
        bf16 = evaluate(Answerer(load_model(model, dtype="bfloat16"), config.window), dev, progress_bar=True).metrics
        rows.append(
            {
                "path": "torch bfloat16",
                "questions_per_s": bf16["questions_per_second"],
                "EM": bf16["exact_match"],
                "F1": bf16["f1"],
            }
        )
    else:
        print("torch bfloat16 skipped: this CPU has no native bfloat16 (AMX-BF16 or AVX512-BF16)", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        export_onnx(model, Path(tmp), quantize=True)
        run = onnx_path(Path(tmp))
        began = time.perf_counter()
        predictions = run(dev.examples)
        seconds = time.perf_counter() - began
    scores = squad_scores(predictions, {e.id: list(e.answers) for e in dev.examples})
    rows.append(
        {
            "path": "onnx int8",
            "questions_per_s": len(dev.examples) / seconds,
            "EM": scores["exact_match"],
            "F1": scores["f1"],
        }
    )
    for r in rows:
        r.update(
            EM_delta=r["EM"] - rows[0]["EM"],
            F1_delta=r["F1"] - rows[0]["F1"],
            accepted=abs(r["EM"] - rows[0]["EM"]) <= 0.5,
        )
    return rows


if __name__ == "__main__":
    main()

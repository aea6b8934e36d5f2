"""Quality parity of training variants: the same recipe, slice and seed, scored on the same dev questions.

Each variant is the default recipe with some settings changed (`NAME:key=value,key=value`); all train
on the same seeded sample of SQuAD train and are evaluated on the same seeded sample of dev v1.1.
Each model is calibrated as `qatune train` does (1,000 held-out training questions).
Prints EM/F1, the difference to the first variant, and the training rate (windows/s, not
interleaved: `bench/step_profile.py` measures speed ratios properly).

    python bench/parity.py --questions 4000 --dev-questions 1000 \\
        --variant fp32:precision=fp32 --variant bf16:precision=bf16
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA_DIR, result_name, save, table  # noqa: E402


def parse_variant(text: str) -> tuple[str, dict[str, object]]:
    import yaml

    name, _, settings = text.partition(":")
    overrides = {}
    for item in filter(None, settings.split(",")):
        key, _, value = item.partition("=")
        overrides[key.strip()] = yaml.safe_load(value)
    return name, overrides


def run(name: str, overrides: dict[str, object], args: argparse.Namespace) -> dict[str, object]:
    from qatune.io import read_jsonl
    from qatune.training.config import TrainConfig
    from qatune.training.trainer import train

    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(args.keep) / name) if args.keep else tmp
        config = TrainConfig.from_dict(
            {
                "train_data": str(DATA_DIR / "train-v1.1-rebuilt.json.gz"),
                "train_sample": args.questions,
                "eval_data": str(DATA_DIR / "dev-v1.1.json.gz"),
                "eval_sample": args.dev_questions,
                "eval_steps": None,
                "eval_at_start": False,
                "output_dir": out,
                **overrides,
            }
        )
        began = time.perf_counter()
        summary = train(config, progress_bar=False).to_dict()
        train_records = [r for r in read_jsonl(Path(out) / "metrics.jsonl") if r["type"] == "train"]
    last = train_records[-1]
    final = summary["final_eval"]
    return {
        "variant": name,
        "settings": overrides,
        "EM": final["exact_match"],
        "F1": final["f1"],
        "windows_per_s": last["windows_seen"] / last["elapsed"],
        "minutes": (time.perf_counter() - began) / 60,
        "precision": summary["precision"]["used"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--questions", type=int, default=4000, help="training questions (seeded sample)")
    parser.add_argument("--dev-questions", type=int, default=1000, help="dev v1.1 questions (seeded sample)")
    parser.add_argument("--variant", action="append", required=True, help="NAME:key=value,... (repeatable)")
    parser.add_argument("--name", type=result_name, default="parity", help="result file name under bench/results")
    parser.add_argument("--keep", help="keep each variant's model in KEEP/NAME")
    args = parser.parse_args()
    rows = []
    for text in args.variant:
        rows.append(run(*parse_variant(text), args))
        rows[-1]["EM_minus_first"] = rows[-1]["EM"] - rows[0]["EM"]
        print(table(rows, ["variant", "EM", "F1", "EM_minus_first", "windows_per_s", "minutes"]), flush=True)
    path = save(args.name, {"questions": args.questions, "dev_questions": args.dev_questions, "results": rows})
    print(f"saved {path}")


if __name__ == "__main__":
    main()

"""Answers you can trust, measured: word-aligned spans and calibrated confidence on the complete dev v1.1.

One forward pass over the dev set, then the same logits decoded with and without word alignment
(EM/F1 of each: alignment must not lower them), and the top-1 probability's expected calibration error
(10 equal-width bins, against exact match with any of the 3 gold answers, and with the first alone, as
single-reference data would score it) raw and with the model's fitted temperature
(`calibration.json`, fitted on held-out training questions by `qatune train` / `qatune calibrate`).

    python bench/confidence.py --model runs/my-model [--dev-questions N]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA_DIR, result_name, save, table  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="a model folder (or default, the untuned model)")
    parser.add_argument("--dev-questions", type=int, help="a seeded sample of dev v1.1 (default: all 10,570)")
    parser.add_argument("--name", type=result_name, default="confidence", help="result file name under bench/results")
    parser.add_argument("--figure", help="also draw the word-aligned reliability diagram to this PNG")
    args = parser.parse_args()

    from qatune.answering.decoding import predict_examples
    from qatune.answering.torch_backend import forward_windows, model_decoding
    from qatune.data.squad import load_file
    from qatune.data.windows import tokenize_windows
    from qatune.evaluation.metrics import best_over_golds, expected_calibration_error, reliability, squad_scores
    from qatune.models.loading import load_model
    from qatune.models.settings import read_calibration

    dev = load_file(DATA_DIR / "dev-v1.1.json.gz").select(sample=args.dev_questions, seed=0)
    loaded = load_model(args.model, seed=0)
    began = time.perf_counter()
    windows = tokenize_windows(dev.examples, loaded.tokenizer, loaded.window)
    logits = forward_windows(loaded.model, loaded.tokenizer, windows, 64)
    forward_s = time.perf_counter() - began
    references = {e.id: list(e.answers) for e in dev.examples}
    rows, bins = [], {}
    for aligned in (False, True):
        decoding = dataclasses.replace(model_decoding(loaded), align_to_words=aligned)
        predicted = predict_examples(dev.examples, windows, logits, 1, decoding)
        texts = {e.id: p.answers[0].text if p.answers else "" for e, p in zip(dev.examples, predicted)}
        hits = [best_over_golds(texts[e.id], e.answers)[0] for e in dev.examples]
        # dev v1.1 has 3 annotators' answers a question, a user's data (and SQuAD train) one: EM against the
        # first answer alone is the accuracy a single-reference data set would show at the same confidence
        first = [best_over_golds(texts[e.id], e.answers[:1])[0] for e in dev.examples]
        raw = [p.answers[0].raw_probability if p.answers else 0.0 for p in predicted]
        calibrated = [p.answers[0].probability if p.answers else 0.0 for p in predicted]
        scores = squad_scores(texts, references)
        name = "word-aligned" if aligned else "token spans"
        rows.append(
            {
                "decoding": name,
                "EM": scores["exact_match"],
                "F1": scores["f1"],
                "ECE_raw": expected_calibration_error(raw, hits),
                "ECE_calibrated": expected_calibration_error(calibrated, hits),
                "EM_first_answer": 100 * sum(first) / len(first),
                "ECE_first_answer_raw": expected_calibration_error(raw, first),
                "ECE_first_answer_calibrated": expected_calibration_error(calibrated, first),
                "mean_top1_raw": sum(raw) / len(raw),
                "mean_top1_calibrated": sum(calibrated) / len(calibrated),
            }
        )
        bins[name] = {
            "raw": reliability(raw, hits),
            "calibrated": reliability(calibrated, hits),
            "calibrated, first answer only": reliability(calibrated, first),
        }
    print(table(rows, list(rows[0])))
    calibration = read_calibration(args.model) if Path(args.model).is_dir() else None
    print(f"calibration: {calibration}")
    path = save(
        args.name,
        {
            "model": args.model,
            "dev_questions": len(dev),
            "forward_seconds": forward_s,
            "calibration": dataclasses.asdict(calibration) if calibration else None,
            "results": rows,
            "reliability": bins,
        },
    )
    print(f"saved {path}")
    if args.figure:
        from qatune.figures import reliability_diagram

        title = f"{Path(args.model).name} on dev v1.1 ({len(dev)} questions): exact match by top-1 probability"
        print(f"figure {reliability_diagram(bins['word-aligned'], Path(args.figure), title=title)}")


if __name__ == "__main__":
    main()

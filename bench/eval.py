"""Benchmark evaluation: questions/s and EM/F1 on a fixed dev slice, qatune vs the HF reference path.

Baseline (measured in the same run): the evaluation of transformers' `run_qa.py` example, written
here faithfully because the example is a script, not a library: features padded to max_length 384
with stride 128, a batched forward pass, and `utils_qa.postprocess_qa_predictions`-style n-best
decoding (20 best starts x 20 best ends per feature, answers up to 30 tokens). Variants: qatune's
evaluator (torch fp32, dynamic padding, length-sorted batches, vectorised decoding), and the
exported model through onnxruntime in fp32 and int8.

    python bench/eval.py --model runs/quick [--questions 1000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA_DIR, median, save, table  # noqa: E402

from qatune.data import load_file  # noqa: E402
from qatune.metrics import squad_scores  # noqa: E402

BATCH = 32


def hf_reference(model, tokenizer, examples) -> dict[str, str]:
    """run_qa.py's prepare_validation_features + Trainer-style batched forward + postprocess_qa_predictions."""
    enc = tokenizer([e.question.lstrip() for e in examples], [e.context for e in examples], truncation="only_second",
                    max_length=384, stride=128, return_overflowing_tokens=True, return_offsets_mapping=True,
                    padding="max_length")
    mapping = enc.pop("overflow_to_sample_mapping")
    offsets = [[o if enc.sequence_ids(i)[k] == 1 else None for k, o in enumerate(enc["offset_mapping"][i])]
               for i in range(len(enc["input_ids"]))]
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in enc]
    starts, ends = [], []
    with torch.inference_mode():
        for b in range(0, len(enc["input_ids"]), BATCH):
            out = model(**{n: torch.tensor(enc[n][b:b + BATCH]) for n in names})
            starts.append(out.start_logits.numpy())
            ends.append(out.end_logits.numpy())
    starts, ends = np.concatenate(starts), np.concatenate(ends)
    features = collections.defaultdict(list)
    for i, example_index in enumerate(mapping):
        features[example_index].append(i)
    predictions = {}
    for index, example in enumerate(examples):
        best, best_score = "", -np.inf
        for f in features[index]:
            for s in np.argsort(starts[f])[-1:-21:-1].tolist():
                for e in np.argsort(ends[f])[-1:-21:-1].tolist():
                    if offsets[f][s] is None or offsets[f][e] is None or e < s or e - s + 1 > 30:
                        continue
                    score = starts[f][s] + ends[f][e]
                    if score > best_score:
                        best_score, best = score, example.context[offsets[f][s][0]:offsets[f][e][1]]
        predictions[example.id] = best
    return predictions


def qatune_torch(loaded, examples) -> dict[str, str]:
    from qatune.data import QADataset
    from qatune.inference import evaluate

    return evaluate(loaded, QADataset(list(examples), "bench"), batch_size=BATCH).predictions


def onnx_path(folder: Path):
    from qatune.lite import OnnxAnswerer
    from qatune.predict import decode_examples
    from qatune.windows import tokenize_windows

    answerer = OnnxAnswerer(folder)

    def run(examples) -> dict[str, str]:
        windows = tokenize_windows(examples, answerer.tokenizer, answerer.window)
        answers = decode_examples(examples, windows, answerer._forward(windows, BATCH), 1, 30, False)
        return {e.id: (a[0].text if a else "") for e, a in zip(examples, answers)}

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--questions", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from qatune.export import export_onnx
    from qatune.models import load_model

    torch.set_num_threads(torch.get_num_threads())
    dev = load_file(DATA_DIR / "dev-v1.1.json.gz").select(sample=args.questions, seed=0)
    examples, gold = dev.examples, {e.id: list(e.answers) for e in dev.examples}
    loaded = load_model(args.model, device="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        export_onnx(args.model, Path(tmp) / "fp32")
        export_onnx(args.model, Path(tmp) / "int8", quantize=True)
        variants = {"HF run_qa.py reference (baseline)": lambda ex: hf_reference(loaded.model, loaded.tokenizer, ex),
                    "qatune evaluate (torch fp32)": lambda ex: qatune_torch(loaded, ex),
                    "qatune onnx fp32": onnx_path(Path(tmp) / "fp32"), "qatune onnx int8": onnx_path(Path(tmp) / "int8")}
        times = {name: [] for name in variants}
        scores = {}
        for _ in range(args.repeats):  # interleaved, so drifts in machine load hit every variant alike
            for name, run in variants.items():
                began = time.perf_counter()
                predictions = run(examples)
                times[name].append(time.perf_counter() - began)
                scores[name] = squad_scores(predictions, gold)
    base = len(examples) / median(times["HF run_qa.py reference (baseline)"])
    rows = []
    for name in variants:
        qps = len(examples) / median(times[name])
        rows.append({"variant": name, "questions_per_s": qps, "x_baseline": qps / base,
                     "EM": scores[name]["exact_match"], "F1": scores[name]["f1"],
                     "runs_s": [round(t, 1) for t in times[name]]})
    print(f"evaluation of {args.model} on {len(examples)} dev questions, median of {args.repeats} runs:")
    print(table(rows, ["variant", "questions_per_s", "x_baseline", "EM", "F1", "runs_s"]))
    path = save("eval", {"model": args.model, "questions": len(examples), "repeats": args.repeats, "results": rows})
    print(f"\nwritten {path}")


if __name__ == "__main__":
    main()

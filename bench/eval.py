"""Benchmark evaluation: questions/s and EM/F1 on a fixed dev slice, qatune vs the HF reference path.

Baseline (measured in the same run): the evaluation of transformers' `run_qa.py` example, written
here faithfully because the example is a script, not a library: features padded to max_length 384
with stride 128, a batched forward pass, and `utils_qa.postprocess_qa_predictions`-style n-best
decoding (20 best starts x 20 best ends per feature, answers up to 30 tokens). Variants: qatune's
evaluator (torch fp32, dynamic padding, length-sorted batches, vectorised decoding), and the
exported model through onnxruntime in fp32 and int8, and the torch model cast to bfloat16 (AMX).

    python bench/eval.py --model runs/quick [--questions 1000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA_DIR, median, run_json_with, save, table  # noqa: E402
from qatune.data.squad import load_file
from qatune.evaluation.metrics import squad_scores

BATCH = 32


def hf_reference(model, tokenizer, examples) -> dict[str, str]:
    """run_qa.py's prepare_validation_features + Trainer-style batched forward + postprocess_qa_predictions."""
    enc = tokenizer(
        [e.question.lstrip() for e in examples],
        [e.context for e in examples],
        truncation="only_second",
        max_length=384,
        stride=128,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding="max_length",
    )
    mapping = enc.pop("overflow_to_sample_mapping")
    offsets = [
        [o if enc.sequence_ids(i)[k] == 1 else None for k, o in enumerate(enc["offset_mapping"][i])]
        for i in range(len(enc["input_ids"]))
    ]
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in enc]
    starts, ends = [], []
    with torch.inference_mode():
        for b in range(0, len(enc["input_ids"]), BATCH):
            out = model(**{n: torch.tensor(enc[n][b : b + BATCH]) for n in names})
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
                        best_score, best = score, example.context[offsets[f][s][0] : offsets[f][e][1]]
        predictions[example.id] = best
    return predictions


def qatune_torch(loaded, examples, batch: int = BATCH) -> dict[str, str]:
    from qatune.answering.torch_backend import Answerer
    from qatune.data.squad import QADataset
    from qatune.data.windows import WindowConfig
    from qatune.evaluation.scoring import evaluate

    return evaluate(Answerer(loaded, WindowConfig(), batch_size=batch), QADataset(list(examples), "bench")).predictions


def onnx_path(folder: Path):
    """The exported model through qatune.answering.onnx_backend (onnxruntime, tokenizers, numpy), as `ask` runs it."""
    from qatune.answering.onnx_backend import OnnxAnswerer

    answerer = OnnxAnswerer(folder, batch_size=BATCH)

    def run(examples) -> dict[str, str]:
        found = answerer.ask_many([(e.context, e.question) for e in examples], 1)
        return {e.id: (a[0].text if a else "") for e, a in zip(examples, found)}

    return run


def pipeline_path(python: str, model: str, examples, threads: int, folder: Path):
    """The removed pipeline("question-answering"), run by bench/hf_pipeline.py in a side venv.

    Returns a variant that reports the pipeline's own seconds (model loading excluded)."""
    from qatune.models.loading import resolve_model

    job = {
        "model": str(Path(resolve_model(model)).resolve()),
        "threads": threads,
        "questions": [{"id": e.id, "question": e.question, "context": e.context} for e in examples],
    }
    job_file = folder / "pipeline-job.json"
    job_file.write_text(json.dumps(job))

    def run(_examples) -> tuple[dict[str, str], float]:
        out = run_json_with(python, [str(Path(__file__).parent / "hf_pipeline.py"), str(job_file)])
        return out["predictions"], out["seconds"]

    return run


def profile(loaded, examples, batch: int) -> dict:
    """Where qatune's evaluation spends its time: seconds per stage, and the forward pass's top operators."""
    from qatune.answering.decoding import decode_examples
    from qatune.answering.torch_backend import forward_windows, model_decoding
    from qatune.data.windows import tokenize_windows

    stages, began = {}, time.perf_counter()
    windows = tokenize_windows(examples, loaded.tokenizer)
    stages["tokenize"] = time.perf_counter() - began
    began = time.perf_counter()
    with torch.profiler.profile() as prof:
        logits = forward_windows(loaded.model, loaded.tokenizer, windows, batch, with_loss=True)
    stages["forward (profiled)"] = time.perf_counter() - began
    began = time.perf_counter()
    answers = decode_examples(examples, windows, logits, 1, model_decoding(loaded))
    stages["decode"] = time.perf_counter() - began
    began = time.perf_counter()
    squad_scores(
        {e.id: (a[0].text if a else "") for e, a in zip(examples, answers)}, {e.id: list(e.answers) for e in examples}
    )
    stages["score"] = time.perf_counter() - began
    ops = sorted(prof.key_averages(), key=lambda op: op.self_cpu_time_total, reverse=True)
    total = sum(op.self_cpu_time_total for op in ops)
    tokens = sum(len(ids) for ids in windows.input_ids)
    return {
        "windows": len(windows),
        "tokens": tokens,
        "stages_s": stages,
        "forward_ops_share": {op.key: op.self_cpu_time_total / total for op in ops[:10]},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--questions", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=BATCH, help="qatune's evaluation batch size")
    parser.add_argument("--pipeline-python", help="python of a side venv with transformers 5.2: also time its pipeline")
    parser.add_argument(
        "--profile", action="store_true", help="only profile qatune's evaluation and print where the time goes"
    )
    args = parser.parse_args()
    from qatune.hardware import inference_dtype
    from qatune.models.loading import load_model
    from qatune.publishing.export import export_onnx

    torch.set_num_threads(torch.get_num_threads())
    dev = load_file(DATA_DIR / "dev-v1.1.json.gz").select(sample=args.questions, seed=0)
    examples, gold = dev.examples, {e.id: list(e.answers) for e in dev.examples}
    loaded = load_model(args.model, device="cpu")
    if args.profile:
        report = profile(loaded, examples, args.batch)
        print(json.dumps(report, indent=2))
        save("eval_profile", {"model": args.model, "questions": len(examples), "batch": args.batch, **report})
        return
    native_bf16 = inference_dtype("auto") == "bfloat16"  # emulated bfloat16 is no fast path: skipped
    bf16 = load_model(args.model, device="cpu", dtype="bfloat16") if native_bf16 else None
    with tempfile.TemporaryDirectory() as tmp:
        export_onnx(args.model, Path(tmp) / "fp32")
        export_onnx(args.model, Path(tmp) / "int8", quantize=True)
        variants = {
            "HF run_qa.py reference (baseline)": lambda ex: hf_reference(loaded.model, loaded.tokenizer, ex),
            "qatune evaluate (torch fp32)": lambda ex: qatune_torch(loaded, ex, args.batch),
            **({"qatune evaluate (torch bf16)": lambda ex: qatune_torch(bf16, ex, args.batch)} if bf16 else {}),
            "qatune onnx fp32": onnx_path(Path(tmp) / "fp32"),
            "qatune onnx int8": onnx_path(Path(tmp) / "int8"),
        }
        if args.pipeline_python:
            variants["HF pipeline, transformers 5.2 (side venv)"] = pipeline_path(
                args.pipeline_python, args.model, examples, torch.get_num_threads(), Path(tmp)
            )
        times = {name: [] for name in variants}
        scores = {}
        for _ in range(args.repeats):  # interleaved, so drifts in machine load hit every variant alike
            for name, run in variants.items():
                began = time.perf_counter()
                predictions = run(examples)
                seconds = time.perf_counter() - began
                if isinstance(predictions, tuple):  # a child process that timed itself
                    predictions, seconds = predictions
                times[name].append(seconds)
                scores[name] = squad_scores(predictions, gold)
    base = len(examples) / median(times["HF run_qa.py reference (baseline)"])
    rows = []
    for name in variants:
        qps = len(examples) / median(times[name])
        rows.append(
            {
                "variant": name,
                "questions_per_s": qps,
                "x_baseline": qps / base,
                "EM": scores[name]["exact_match"],
                "F1": scores[name]["f1"],
                "runs_s": [round(t, 1) for t in times[name]],
            }
        )
    print(f"evaluation of {args.model} on {len(examples)} dev questions, median of {args.repeats} runs:")
    print(table(rows, ["variant", "questions_per_s", "x_baseline", "EM", "F1", "runs_s"]))
    path = save("eval", {"model": args.model, "questions": len(examples), "repeats": args.repeats, "results": rows})
    print(f"\nwritten {path}")


if __name__ == "__main__":
    main()

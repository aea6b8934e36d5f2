"""Benchmark training speed: qatune's default training path vs the HF `run_qa.py` recipe, same model and data.

Each variant runs in its own process (so peak RSS is its own), several times, interleaved; the
table gives medians of steady-state rates (the first steps, with their warm-up, are left out):
- HF run_qa.py recipe (baseline): Trainer, features padded to max_length 384 (stride 128).
- HF Trainer, dynamic padding at max_seq_length 256 with length-grouped batches.
- HF Trainer as above with `bf16=True` (its best CPU setting on a CPU with bfloat16).
- qatune `fine_tune`, default recipe (dynamic padding, length-grouped, fused AdamW, 256/96 windows), in
  float32 and in bf16 mixed precision (`--precision bf16`; what `auto` picks on CPUs with AMX/AVX512-BF16).
Model FLOP utilisation = useful training FLOPs/s over the fp32 matmul peak this script measures;
useful FLOPs per real (non-padding) token = 6 x non-embedding parameters + 12 x layers x hidden x
mean sequence length (attention), the usual estimate.

    python bench/train.py [--questions 1500] [--repeats 3] [--steps 30] [--hf-steps 10]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA_DIR, median, run_json, save, table  # noqa: E402

BATCH, LR, WARMUP_STEPS = 32, 1e-4, 3
TRAIN_FILE = DATA_DIR / "train-v1.1-rebuilt.json.gz"


def matmul_peak() -> float:
    """Best fp32 GFLOP/s of a 2048^3 matmul on all threads."""
    import torch

    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    best = 0.0
    for _ in range(8):
        began = time.perf_counter()
        torch.mm(a, b)
        best = max(best, 2 * 2048**3 / (time.perf_counter() - began) / 1e9)
    return best


def flops_per_token(model, mean_length: float) -> float:
    config = model.config
    params = sum(p.numel() for n, p in model.named_parameters() if "embeddings" not in n)
    return 6 * params + 12 * config.num_hidden_layers * config.hidden_size * mean_length


def run_qatune(questions: int, steps: int, precision: str) -> dict:
    from qatune.io import read_jsonl
    from qatune.models.loading import load_model
    from qatune.training.config import TrainConfig
    from qatune.training.trainer import train

    with tempfile.TemporaryDirectory() as out:
        config = TrainConfig(
            train_data=str(TRAIN_FILE),
            train_sample=questions,
            eval_data=None,
            max_steps=steps,
            output_dir=out,
            logging_steps=1,
            save_steps=10**6,
            precision=precision,
        )
        loaded = load_model("default", seed=config.seed)
        from qatune.data.windows import tokenize_windows
        from qatune.training.setup import load_train_eval

        windows = tokenize_windows(load_train_eval(config)[0].examples, loaded.tokenizer, config.window)
        mean_length = sum(len(w) for w in windows.input_ids) / len(windows)
        train(config, progress_bar=False, loaded=loaded)
        steps_log = [r for r in read_jsonl(Path(out) / "metrics.jsonl") if r["type"] == "train"]
    first, last = steps_log[WARMUP_STEPS - 1], steps_log[-1]
    windows_per_s = (last["windows_seen"] - first["windows_seen"]) / (last["elapsed"] - first["elapsed"])
    return {
        "windows_per_s": windows_per_s,
        "tokens_per_s": windows_per_s * mean_length,
        "mean_length": mean_length,
        "flops_per_token": flops_per_token(loaded.model, mean_length),
    }


def run_hf(questions: int, steps: int, padded: bool, bf16: bool = False) -> dict:
    """The run_qa.py recipe (padded) or Trainer with dynamic padding, timed by a callback."""
    import transformers
    from transformers import (
        AutoModelForQuestionAnswering,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainerCallback,
        TrainingArguments,
        default_data_collator,
    )

    from qatune.data.squad import load_file
    from qatune.models.loading import default_model_path

    transformers.logging.set_verbosity_error()
    path = default_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForQuestionAnswering.from_pretrained(path)
    examples = load_file(TRAIN_FILE).select(sample=questions, seed=42).examples
    features = prepare_train_features(tokenizer, examples, 384 if padded else 256, 128 if padded else 96, padded)
    stamps: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            stamps.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            out,
            per_device_train_batch_size=BATCH,
            learning_rate=LR,
            max_steps=steps,
            save_strategy="no",
            report_to=[],
            disable_tqdm=True,
            logging_strategy="no",
            dataloader_num_workers=0,
            use_cpu=True,
            bf16=bf16,
            train_sampling_strategy="random" if padded else "group_by_length",
        )
        collator = default_data_collator if padded else DataCollatorWithPadding(tokenizer)
        Trainer(model=model, args=args, train_dataset=features, data_collator=collator, callbacks=[Clock()]).train()
    real = sum(sum(f["attention_mask"]) for f in features) / len(features)
    windows_per_s = (len(stamps) - WARMUP_STEPS) * BATCH / (stamps[-1] - stamps[WARMUP_STEPS - 1])
    return {
        "windows_per_s": windows_per_s,
        "tokens_per_s": windows_per_s * real,
        "mean_length": real,
        "flops_per_token": flops_per_token(model, real),
    }


def prepare_train_features(tokenizer, examples, max_length: int, stride: int, padded: bool) -> list[dict]:
    """run_qa.py's prepare_train_features: windows with start/end token labels (CLS when not inside)."""
    enc = tokenizer(
        [e.question.lstrip() for e in examples],
        [e.context for e in examples],
        truncation="only_second",
        max_length=max_length,
        stride=stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding="max_length" if padded else False,
    )
    features = []
    for i, offsets in enumerate(enc["offset_mapping"]):
        example = examples[enc["overflow_to_sample_mapping"][i]]
        seq = enc.sequence_ids(i)
        start_char = example.answer_starts[0]
        end_char = start_char + len(example.answers[0])
        ctx = [k for k, s in enumerate(seq) if s == 1]
        s_tok = e_tok = 0
        if offsets[ctx[0]][0] <= start_char and offsets[ctx[-1]][1] >= end_char:
            s_tok = next(k for k in ctx if offsets[k][1] > start_char)
            e_tok = next(k for k in reversed(ctx) if offsets[k][0] < end_char)
        feature = {k: enc[k][i] for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc}
        features.append({**feature, "start_positions": s_tok, "end_positions": e_tok})
    return features


def child(variant: str, questions: int, steps: int) -> None:
    import torch

    torch.manual_seed(0)
    result = {
        "qatune": lambda: run_qatune(questions, steps, "fp32"),
        "qatune-bf16": lambda: run_qatune(questions, steps, "bf16"),
        "hf-padded": lambda: run_hf(questions, steps, True),
        "hf-dynamic": lambda: run_hf(questions, steps, False),
        "hf-dynamic-bf16": lambda: run_hf(questions, steps, False, bf16=True),
    }[variant]()
    result["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=1500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=30, help="optimizer steps per qatune / hf-dynamic run")
    parser.add_argument("--hf-steps", type=int, default=10, help="steps per run of the (slow) padded recipe")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), int(args.child[2]))
        return
    peak = matmul_peak()
    names = {
        "hf-padded": "HF run_qa.py recipe, pad 384 (baseline)",
        "hf-dynamic": "HF Trainer, dynamic pad 256",
        "hf-dynamic-bf16": "HF Trainer, dynamic pad 256, bf16=True",
        "qatune": "qatune fine_tune, default recipe, fp32",
        "qatune-bf16": "qatune fine_tune, default recipe, bf16",
    }
    runs: dict[str, list[dict]] = {v: [] for v in names}
    for _ in range(args.repeats):
        for variant in names:
            steps = args.hf_steps if variant == "hf-padded" else args.steps
            runs[variant].append(run_json([__file__, "--child", variant, str(args.questions), str(steps)]))
            print(f"{variant}: {runs[variant][-1]['windows_per_s']:.2f} windows/s", flush=True)
    base = median([r["windows_per_s"] for r in runs["hf-padded"]])
    fp32 = median([r["windows_per_s"] for r in runs["qatune"]])
    rows = []
    for variant, label in names.items():
        rate = median([r["windows_per_s"] for r in runs[variant]])
        tokens = median([r["tokens_per_s"] for r in runs[variant]])
        flops = tokens * runs[variant][0]["flops_per_token"] / 1e9
        rows.append(
            {
                "variant": label,
                "examples_per_s": rate,
                "x_baseline": rate / base,
                "x_qatune_fp32": rate / fp32,
                "tokens_per_s": tokens,
                "mfu_pct": 100 * flops / peak,
                "peak_rss_gib": max(r["peak_rss_gib"] for r in runs[variant]),
                "runs": [round(r["windows_per_s"], 2) for r in runs[variant]],
            }
        )
    print(
        f"\ntraining all-MiniLM-L6-v2 for QA, batch {BATCH}, {args.questions} SQuAD train questions; "
        f"fp32 matmul peak {peak:.0f} GFLOP/s; medians of {args.repeats} runs:"
    )
    columns = ["variant", "examples_per_s", "x_baseline", "x_qatune_fp32", "tokens_per_s", "mfu_pct", "peak_rss_gib"]
    print(table(rows, [*columns, "runs"]))
    path = save("train", {"questions": args.questions, "batch": BATCH, "matmul_peak_gflops": peak, "results": rows})
    print(f"\nwritten {path}")


if __name__ == "__main__":
    main()

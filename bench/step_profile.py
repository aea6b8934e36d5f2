"""Where one training step's time goes, and what the candidate speed-ups buy (issue 12).

Uses the real loop's batches: windows of SQuAD train questions, length-grouped micro-batches of 8
padded to their longest window, 4 micro-batches per optimizer step (the default recipe's 32). Each
variant trains the default model for `--steps` optimizer steps after `--warmup` steps; variants run
interleaved in rounds, in one process, each on its own fresh copy of the model, and the table gives
median seconds per step and windows/s with the ratio to float32 measured in the same run.

Variants, all with today's default recipe (no dropout); those needing bfloat16 hardware are run where the
CPU has AMX-BF16/AVX512-BF16, or with `--all` to see the emulated speed:
- fp32: the float32 loop (SDPA attention, fused AdamW over every parameter): the baseline.
- fp32-frozen-emb: the word-embedding matrix (11.7M of 22.7M parameters) not updated.
- fp32-compile: `torch.compile(model, dynamic=True)` (inductor's CPU backend); its warm-up is printed.
- bf16-sdpa: plain bfloat16 autocast (float32 master weights), the model's SDPA attention.
- bf16: what `--precision bf16` runs on a CPU: autocast with eager attention (qatune.models.attention).
- bf16-frozen-emb, bf16-compile: as above, on the bf16 path.
- bf16-micro4/16/32: the bf16 path with micro-batches of 4, 16 or 32 windows (the same 32 per step).
A torch.profiler table of one step of fp32, bf16-sdpa and bf16 groups operator time by kind (matmul,
attention, elementwise, norm, optimizer, embedding, other).

    python bench/step_profile.py [--questions 400] [--steps 6] [--warmup 2] [--rounds 2] [--all]
"""

from __future__ import annotations

import argparse
import copy
import functools
import statistics
import sys
import time
from collections import defaultdict
from contextlib import nullcontext
from pathlib import Path

import torch

from qatune.hardware import Precision
from qatune.models.attention import training_attention
from qatune.training.setup import set_dropout

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA_DIR, machine, save, table  # noqa: E402

MICRO, BATCH = 8, 32
KINDS = {
    "matmul": ("mm", "addmm", "bmm", "linear", "matmul", "baddbmm"),
    "attention": ("scaled_dot_product", "flash_attention", "_efficient_attention"),
    "norm": ("layer_norm",),
    "optimizer": ("adam", "_foreach", "clip_grad", "norm", "_amp_foreach"),
    "embedding": ("embedding",),
    "elementwise": ("gelu", "dropout", "add", "mul", "div", "softmax", "copy_", "to", "_to_copy", "fill_", "zero_"),
}


def kind_of(name: str) -> str:
    op = name.removeprefix("aten::").lower()
    for kind, keys in KINDS.items():
        if any(op == k or op.startswith(k) or k in op for k in keys):
            return kind
    return "other"


@functools.cache
def training_windows(questions: int):
    """The default recipe's config, tokenizer and windows of `questions` SQuAD train questions."""
    from qatune.data.windows import tokenize_windows
    from qatune.models.loading import load_model
    from qatune.training.config import TrainConfig
    from qatune.training.setup import load_train_eval

    config = TrainConfig(train_data=str(DATA_DIR / "train-v1.1-rebuilt.json.gz"), train_sample=questions)
    tokenizer = load_model("default", seed=config.seed).tokenizer
    return config, tokenizer, tokenize_windows(load_train_eval(config)[0].examples, tokenizer, config.window)


def batches(questions: int, micro: int = MICRO) -> list[dict[str, torch.Tensor]]:
    """The first micro-batches of `micro` windows of an epoch of qatune's loader over `questions` train questions."""
    from qatune.training.setup import window_loader

    config, tokenizer, windows = training_windows(questions)
    return [dict(b) for b in window_loader(windows, tokenizer, config, micro)]


class Variant:
    def __init__(
        self,
        name: str,
        base: torch.nn.Module,
        bf16: bool,
        frozen_emb: bool,
        compile_: bool,
        kernel: str = "sdpa",
        micro: int = MICRO,
    ) -> None:
        self.name, self.bf16, self.micro = name, bf16, micro
        self.model = copy.deepcopy(base).train()
        set_dropout(self.model, 0.0)  # the default recipe
        self.model.set_attn_implementation(kernel)
        if frozen_emb:
            self.model.bert.embeddings.word_embeddings.weight.requires_grad_(False)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=1e-4, fused=True)
        self.forward = torch.compile(self.model, dynamic=True) if compile_ else self.model
        self.times: list[float] = []
        self.windows: list[int] = []

    def step(self, micro_batches: list[dict[str, torch.Tensor]]) -> float:
        began = time.perf_counter()
        for batch in micro_batches:
            context = torch.autocast("cpu", dtype=torch.bfloat16) if self.bf16 else nullcontext()
            with context:
                loss = self.forward(**batch).loss
            (loss / len(micro_batches)).backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        self.optimizer.zero_grad()
        return time.perf_counter() - began


def profile(variant: Variant, micro_batches: list[dict[str, torch.Tensor]]) -> dict[str, dict[str, float]]:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        total = variant.step(micro_batches)
    by_kind: dict[str, float] = defaultdict(float)
    ops = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    for event in ops:
        by_kind[kind_of(event.key)] += event.self_cpu_time_total / 1e6
    by_kind["python/overhead"] = max(0.0, total - sum(by_kind.values()))
    shares = {k: round(v / total * 100, 1) for k, v in sorted(by_kind.items(), key=lambda kv: -kv[1])}
    top = {e.key: round(e.self_cpu_time_total / 1e6 / total * 100, 1) for e in ops[:12]}
    return {"by_kind": shares, "top_ops": top}


def optimizer_steps(args: argparse.Namespace, micro: int) -> list[list[dict[str, torch.Tensor]]]:
    """Enough optimizer steps of BATCH windows (as micro-batches of `micro`) for the warm-up and every round."""
    per_step = BATCH // micro
    needed = (args.warmup + args.steps * args.rounds) * per_step
    micro_batches = batches(args.questions, micro)
    micro_batches = (micro_batches * (needed // len(micro_batches) + 1))[:needed]
    return [micro_batches[i : i + per_step] for i in range(0, needed, per_step)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--questions", type=int, default=400)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--all", action="store_true", help="also the bf16 variants on a CPU without bf16 support")
    parser.add_argument("--no-compile", action="store_true", help="leave out the torch.compile variants")
    args = parser.parse_args()

    from qatune.hardware import cpu_flags
    from qatune.models.loading import load_model

    torch.manual_seed(0)
    has_bf16 = bool(cpu_flags() & {"amx_bf16", "avx512_bf16"})
    base = load_model("default", seed=42).model
    eager = training_attention(Precision("bf16", "bf16", "cpu", ())) or "sdpa"
    specs: list[tuple] = [("fp32", False, False, False), ("fp32-frozen-emb", False, True, False)]
    specs += [] if args.no_compile else [("fp32-compile", False, False, True)]
    if has_bf16 or args.all:
        specs += [("bf16-sdpa", True, False, False), ("bf16", True, False, False, eager)]
        specs += [("bf16-frozen-emb", True, True, False, eager)]
        specs += [(f"bf16-micro{m}", True, False, False, eager, m) for m in (4, 16, 32)]
        specs += [] if args.no_compile else [("bf16-compile", True, False, True, eager)]
    variants = [Variant(name, base, *flags) for name, *flags in specs]

    steps = {m: optimizer_steps(args, m) for m in {v.micro for v in variants}}
    warmup: dict[str, float] = {}
    for v in variants:  # warm-up (compile happens here)
        warmup[v.name] = sum(v.step(s) for s in steps[v.micro][: args.warmup])
        print(f"{v.name}: warm-up {args.warmup} steps {warmup[v.name]:.1f} s", flush=True)
    cursor = args.warmup
    for _ in range(args.rounds):
        for v in variants:
            for s in steps[v.micro][cursor : cursor + args.steps]:
                v.times.append(v.step(s))
                v.windows.append(sum(len(b["input_ids"]) for b in s))
        cursor += args.steps

    profiled = ("fp32", "bf16-sdpa", "bf16")
    profiles = {v.name: profile(v, steps[v.micro][0]) for v in variants if v.name in profiled}
    rows = []
    base_rate = None
    for v in variants:
        rate = sum(v.windows) / sum(v.times)
        base_rate = base_rate or rate
        rows.append(
            {
                "variant": v.name,
                "median_s_per_step": statistics.median(v.times),
                "windows_per_s": rate,
                "x_fp32": rate / base_rate,
                "warmup_s": warmup[v.name],
            }
        )
    print(table(rows, ["variant", "median_s_per_step", "windows_per_s", "x_fp32", "warmup_s"]))
    for name, shares in profiles.items():
        print(f"profile of one {name} step (% of step time): {shares}")
    mean_length = statistics.mean(b["input_ids"].shape[1] for step in steps[MICRO] for b in step)
    path = save(
        "step_profile",
        {
            "questions": args.questions,
            "micro_batch": MICRO,
            "batch": BATCH,
            "mean_padded_length": mean_length,
            "steps_per_round": args.steps,
            "rounds": args.rounds,
            "results": rows,
            "profiles": profiles,
            "emulated_bf16": (not has_bf16) and args.all,
        },
    )
    print(f"machine: {machine()['cpu']}, bf16 flags: {machine()['bf16_flags']}; saved {path}")


if __name__ == "__main__":
    main()

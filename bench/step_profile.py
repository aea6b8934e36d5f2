"""Where one training step's time goes, and what the candidate speed-ups buy (issue 12).

Uses the real loop's batches: windows of SQuAD train questions, length-grouped micro-batches of 8
padded to their longest window, 4 micro-batches per optimizer step (the default recipe's 32). Each
variant trains the default model for `--steps` optimizer steps after `--warmup` steps; variants run
interleaved in rounds, in one process, each on its own fresh copy of the model, and the table gives
median seconds per step and windows/s with the ratio to float32 eager measured in the same run.

Variants (those needing bfloat16 hardware are run where the CPU has AMX-BF16/AVX512-BF16, or with
`--all` to see the emulated speed):
- fp32: today's loop (eager, SDPA attention, fused AdamW over every parameter).
- fp32-frozen-emb: the word-embedding matrix (11.7M of 22.7M parameters) not updated.
- fp32-compile: `torch.compile(model, dynamic=True)` (inductor's CPU backend); its warm-up is printed.
- fp32-no-attn-dropout: dropout 0 on the attention probabilities only (hidden dropout kept), which lets
  SDPA use its fused kernel instead of materialising and masking the B x H x L x L matrix.
- fp32-no-dropout: no dropout at all (the cost of every dropout mask).
- bf16-*: the same under bfloat16 autocast (float32 master weights).
A torch.profiler table of one step per precision groups operator time by kind (matmul, attention,
elementwise, norm, optimizer, embedding, other).

    python bench/step_profile.py [--questions 400] [--steps 6] [--warmup 2] [--rounds 2] [--all]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from collections import defaultdict
from contextlib import nullcontext
from pathlib import Path

import torch

from qatune.train_parts import set_dropout

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA_DIR, machine, save, table  # noqa: E402

MICRO, ACCUMULATION = 8, 4
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


def batches(questions: int) -> list[dict[str, torch.Tensor]]:
    """The first micro-batches of an epoch of qatune's loader over `questions` train questions."""
    from qatune.config import TrainConfig
    from qatune.models import load_model
    from qatune.train_parts import load_train_eval, window_loader
    from qatune.windows import tokenize_windows

    config = TrainConfig(train_data=str(DATA_DIR / "train-v1.1-rebuilt.json.gz"), train_sample=questions)
    loaded = load_model("default", seed=config.seed)
    windows = tokenize_windows(load_train_eval(config)[0].examples, loaded.tokenizer, config.window)
    return [dict(b) for b in window_loader(windows, loaded.tokenizer, config, MICRO)]


class Variant:
    def __init__(
        self, name: str, base: torch.nn.Module, bf16: bool, frozen_emb: bool, compile_: bool, dropout: str = "all"
    ) -> None:
        self.name, self.bf16 = name, bf16
        self.model = copy.deepcopy(base).train()
        set_dropout(self.model, 0.0 if dropout == "none" else None, 0.0 if dropout == "hidden" else None)
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
    from qatune.models import load_model

    torch.manual_seed(0)
    has_bf16 = bool(cpu_flags() & {"amx_bf16", "avx512_bf16"})
    micro = batches(args.questions)
    per_step = ACCUMULATION
    needed = (args.warmup + args.steps * args.rounds) * per_step
    micro = (micro * (needed // len(micro) + 1))[:needed]
    base = load_model("default", seed=42).model
    specs: list[tuple] = []
    for precision, bf16 in [("fp32", False)] + ([("bf16", True)] if has_bf16 or args.all else []):
        specs += [(precision, bf16, False, False), (f"{precision}-frozen-emb", bf16, True, False)]
        specs += [(f"{precision}-no-attn-dropout", bf16, False, False, "hidden")]
        specs += [(f"{precision}-no-dropout", bf16, False, False, "none")]
        specs += [] if args.no_compile else [(f"{precision}-compile", bf16, False, True)]
    variants = [Variant(name, base, *flags) for name, *flags in specs]

    steps = [micro[i : i + per_step] for i in range(0, len(micro), per_step)]
    warmup: dict[str, float] = {}
    for v in variants:  # warm-up (compile happens here)
        warmup[v.name] = sum(v.step(s) for s in steps[: args.warmup])
        print(f"{v.name}: warm-up {args.warmup} steps {warmup[v.name]:.1f} s", flush=True)
    cursor = args.warmup
    for _ in range(args.rounds):
        for v in variants:
            for s in steps[cursor : cursor + args.steps]:
                v.times.append(v.step(s))
                v.windows.append(sum(len(b["input_ids"]) for b in s))
        cursor += args.steps

    profiled = ("fp32", "bf16", "fp32-no-attn-dropout", "bf16-no-attn-dropout")
    profiles = {v.name: profile(v, steps[0]) for v in variants if v.name in profiled}
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
    mean_length = statistics.mean(b["input_ids"].shape[1] for b in micro)
    path = save(
        "step_profile",
        {
            "questions": args.questions,
            "micro_batch": MICRO,
            "accumulation": ACCUMULATION,
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

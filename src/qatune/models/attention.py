"""Attention kernels: switching a model's for a block of work, and qatune's bfloat16 CPU attention.

Why a hand-written kernel: on a CPU, neither of transformers' kernels suits bfloat16. PyTorch's
flash attention (SDPA) is slower in bfloat16 than in float32, and eager attention materialises the
scores of the whole batch (batch x heads x length^2) and passes over them five times (scale, mask,
softmax, two products), which for a micro-batch of 8 windows is several MB, out of cache.
`item_attention` scales the (small) queries instead of the scores and works one window at a time, so
each window's scores stay in cache: matmul, mask, softmax, matmul (differentiable too). Measured per
layer on an AVX512-BF16 EPYC (12 heads x 32, bfloat16): 8 x 168 tokens SDPA 3.9 ms, this 2.9;
32 x 168 16.4 vs 10.2; 8 x 384 14.1 vs 8.0; 32 x 384 58 vs 32; the whole forward pass of 8 x 168
SDPA 74 ms, eager 72, this 60.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

import torch

if TYPE_CHECKING:
    from qatune.hardware import Precision

ITEM_ATTENTION = "qatune_item"  # its name in transformers' AttentionInterface


def item_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """Softmax attention one batch item at a time (see module doc); transformers' attention signature:
    (batch, heads, length, head size) in, (batch, length, heads, head size) out, no weights returned."""
    scale = query.shape[-1] ** -0.5 if scaling is None else scaling
    queries, out = query * scale, []
    for b in range(query.shape[0]):
        scores = torch.matmul(queries[b], key[b].transpose(-1, -2))
        if attention_mask is not None:
            scores = scores + attention_mask[b]
        probs = torch.nn.functional.dropout(torch.softmax(scores, -1), dropout, training=module.training)
        out.append(torch.matmul(probs, value[b]))
    return torch.stack(out).transpose(1, 2).contiguous(), None


def _register() -> None:
    """Make `ITEM_ATTENTION` known to transformers, with eager attention's additive float masks."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    AttentionInterface.register(ITEM_ATTENTION, item_attention)
    AttentionMaskInterface.register(ITEM_ATTENTION, eager_mask)


def inference_attention(model: torch.nn.Module) -> str | None:
    """The attention kernel to answer with: `item_attention` for bfloat16 weights on a CPU, where a
    model's heads all see the same keys (grouped-query models keep theirs); else None, the model's."""
    weights = next(model.parameters())
    config = getattr(model, "config", None)
    heads = getattr(config, "num_attention_heads", None)
    if weights.dtype != torch.bfloat16 or weights.device.type != "cpu" or heads is None:
        return None
    if getattr(config, "num_key_value_heads", heads) != heads:
        return None
    _register()
    return ITEM_ATTENTION


def training_attention(precision: Precision) -> str | None:
    """The attention kernel to train with, or None for the model's own (SDPA).

    bf16 on a CPU: eager attention (matmul + softmax), since PyTorch's CPU flash-attention backward is
    slower in bfloat16 than in float32 (28% of the step). Measured on the real loop's batches
    (bench/step_profile.py, an AVX512-BF16 EPYC, micro-batch 8): bf16 with SDPA 1.73x the float32 step,
    with eager attention 2.47x. Evaluation keeps SDPA, the faster kernel for float32 inference.
    """
    return "eager" if precision.used == "bf16" and precision.device == "cpu" else None


@contextmanager
def attention(model: torch.nn.Module, implementation: str | None) -> Iterator[None]:
    """Run the block with `model`'s attention set to `implementation` (None: unchanged), then restore it.
    A model that cannot switch (not on transformers' attention interface) keeps its own."""
    config = getattr(model, "config", None)
    before = getattr(config, "_attn_implementation", None)
    can_switch = getattr(model, "_can_set_attn_implementation", None)  # transformers' own check (else a warning)
    if implementation is None or before is None or before == implementation or not (can_switch and can_switch()):
        yield
        return
    switch = cast("Any", model).set_attn_implementation
    switch(implementation)
    try:
        yield
    finally:
        switch(before)

"""What fine-tuning minimises for a window's start and end logits (`TrainConfig.span_loss`).

`separate` is HF's loss: the mean of a cross-entropy over start tokens and one over end tokens, the
null answer being the CLS token in both. `joint` is (half) the negative log of the gold span's share of one
softmax over every valid span of the window (start <= end, both in the context, at most
`max_answer_length` tokens) plus the null answer, each scored start_logit + end_logit: the
probability `answering.decoding` answers with, so that training aims at what answering uses (the
null answer competes with the spans, not with each token apart). The evaluations' `eval_loss` stays
the separate one. Written here because no library has it: HF's QA heads compute only the separate loss.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from qatune.data.windows import Windows


def joint_span_loss(
    start_logits: torch.Tensor,
    end_logits: torch.Tensor,
    start_positions: torch.Tensor,
    end_positions: torch.Tensor,
    context_start: torch.Tensor,
    context_end: torch.Tensor,
    max_answer_length: int,
) -> torch.Tensor:
    """Mean over the batch of -log P(gold span) / 2, the softmax over the window's spans and its null (token 0).

    Halved like HF's mean of two cross-entropies, which it is about twice, so gradient clipping acts alike.
    A gold span longer than `max_answer_length` tokens joins the softmax by itself, so the loss never
    goes below 0. Computed in float32 whatever the autocast, over a (batch, tokens, lengths) band.
    """
    start, end = start_logits.float(), end_logits.float()
    batch, length = start.shape
    width = min(max_answer_length, length)
    tokens = torch.arange(length, device=start.device)
    in_context = (tokens >= context_start[:, None]) & (tokens <= context_end[:, None])
    # shifted[b, i, d] = end[b, i + d]: the end of the span of d + 1 tokens starting at i (past the window: masked)
    shifted = torch.nn.functional.pad(end, (0, width - 1)).unfold(1, width, 1)
    ends_in = torch.nn.functional.pad(in_context, (0, width - 1)).unfold(1, width, 1)
    spans = (start[:, :, None] + shifted).masked_fill(~(in_context[:, :, None] & ends_in), float("-inf"))
    gold = start.gather(1, start_positions[:, None])[:, 0] + end.gather(1, end_positions[:, None])[:, 0]
    too_long = (end_positions - start_positions >= width) & (start_positions > 0)
    null = start[:, 0] + end[:, 0]
    terms = (spans.reshape(batch, -1), null[:, None], gold.masked_fill(~too_long, float("-inf"))[:, None])
    return (torch.cat(terms, dim=1).logsumexp(dim=1) - gold).mean() / 2


def context_bounds(offsets: np.ndarray) -> tuple[int, int]:
    """First and last token of a window's context (offsets are -1 outside it); (1, 0), none, if it has none."""
    inside = np.flatnonzero(offsets[:, 0] >= 0)
    return (int(inside[0]), int(inside[-1])) if inside.size else (1, 0)


class BoundedWindows(Dataset[dict[str, object]]):
    """Training windows with their context's first and last token (`context_start`, `context_end`), which
    `joint_span_loss` needs and the model must not be given."""

    def __init__(self, windows: Windows) -> None:
        self.windows = windows
        self.bounds = [context_bounds(o) for o in windows.offsets]

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> dict[str, object]:
        item = self.windows.item(i)
        item["context_start"], item["context_end"] = self.bounds[i]
        return item


def batch_loss(model: Any, batch: dict[str, torch.Tensor], span_loss: str, max_answer_length: int) -> torch.Tensor:
    """The loss of one batch of training windows under `span_loss` (one of config.SPAN_LOSSES)."""
    if span_loss == "separate":
        loss: torch.Tensor = model(**batch).loss
        return loss
    bounds = batch.pop("context_start"), batch.pop("context_end")
    gold = batch.pop("start_positions"), batch.pop("end_positions")
    out = model(**batch)
    return joint_span_loss(out.start_logits, out.end_logits, *gold, *bounds, max_answer_length)

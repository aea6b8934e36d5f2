"""The torch answering backend: a QA model over windows (length-sorted batches, dynamic padding).

Orchestration only: windows come from `data.windows`, decoding is `answering.decoding`, and the seam
(`answering.answerer.SpanAnswerer`) does the rest, the same for every backend.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import torch

from qatune.answering.answerer import Progress, SpanAnswerer, batched_logits, pad_batch
from qatune.answering.decoding import Decoding, Logits
from qatune.data.windows import WindowConfig, Windows
from qatune.layout import DEFAULT_MODEL
from qatune.models.attention import attention, inference_attention
from qatune.models.loading import LoadedModel, load_model


def autocast(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """bf16 (or fp16) autocast on CUDA; plain fp32 on the CPU, where bf16 is slower here."""
    if device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return contextlib.nullcontext()


def forward_windows(
    model: torch.nn.Module,
    tokenizer: Any,
    windows: Windows,
    batch_size: int = 32,
    with_loss: bool = False,
    progress: Progress | None = None,
) -> Logits:
    """Logits for every window (`answerer.batched_logits`), and the mean gold-span loss if `with_loss`."""
    device = next(model.parameters()).device
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if windows.token_type_ids is not None else [])
    pad_id = tokenizer.pad_token_id or 0
    loss_sum, was_training = 0.0, model.training

    def run(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        nonlocal loss_sum
        batch = {k: torch.from_numpy(v).to(device) for k, v in pad_batch(windows, idx, names, pad_id).items()}
        if with_loss:
            batch["start_positions"] = torch.from_numpy(windows.start_positions[idx]).to(device)
            batch["end_positions"] = torch.from_numpy(windows.end_positions[idx]).to(device)
        out = model(**batch)
        if with_loss:
            loss_sum += float(out.loss) * len(idx)
        return out.start_logits.float().cpu().numpy(), out.end_logits.float().cpu().numpy()

    model.eval()
    with torch.inference_mode(), autocast(device), attention(model, inference_attention(model)):
        logits = batched_logits(windows, batch_size, run, progress)
    model.train(was_training)
    logits.loss = loss_sum / len(windows) if with_loss and len(windows) else None
    return logits


def model_decoding(loaded: LoadedModel, max_answer_length: int = 30) -> Decoding:
    """How a loaded model's answers are decoded: its null answer and its calibration, if any."""
    return Decoding(max_answer_length, loaded.with_null, True, loaded.temperature, loaded.null_threshold)


class Answerer(SpanAnswerer):
    """Answer questions about contexts: ``Answerer("default").ask(context, question, top_k=3)`` (torch)."""

    def __init__(
        self,
        model: str | LoadedModel = DEFAULT_MODEL,
        window: WindowConfig | None = None,
        max_answer_length: int = 30,
        batch_size: int = 32,
        seed: int = 0,
        max_context_chars: int | None = None,
        dtype: str = "float32",
    ) -> None:
        self.loaded = model if isinstance(model, LoadedModel) else load_model(model, seed=seed, dtype=dtype)
        self.batch_size = batch_size
        super().__init__(
            self.loaded.tokenizer,
            self._logits,
            self.loaded.checked_window(window or self.loaded.window),
            model_decoding(self.loaded, max_answer_length),
            max_context_chars,
        )
        self.fresh_head = self.loaded.fresh_head

    def _logits(self, windows: Windows, progress: Progress | None = None, with_loss: bool = False) -> Logits:
        return forward_windows(self.loaded.model, self.loaded.tokenizer, windows, self.batch_size, with_loss, progress)

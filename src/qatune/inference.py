"""Run a QA model over windows (length-sorted batches, dynamic padding) and turn logits into answers.

Orchestration only: tokenising is in `windows`, decoding in `predict`, scoring in `metrics`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from qatune.answering import SpanAnswerer, batched_logits, pad_batch
from qatune.data import QADataset
from qatune.metrics import squad_scores
from qatune.models import DEFAULT_MODEL, LoadedModel, load_model
from qatune.predict import Logits, decode_examples
from qatune.windows import WindowConfig, Windows, tokenize_windows

Progress = Callable[[int], None]


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
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
    """Logits for every window (`answering.batched_logits`), and the mean gold-span loss if `with_loss`."""
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
    with torch.inference_mode(), autocast(device):
        logits = batched_logits(windows, batch_size, run, progress)
    model.train(was_training)
    logits.loss = loss_sum / len(windows) if with_loss and len(windows) else None
    return logits


@dataclass
class EvalResult:
    """Predictions (id -> text) and scores of one evaluation."""

    predictions: dict[str, str]
    metrics: dict[str, Any] = field(default_factory=dict)


def evaluate(
    loaded: LoadedModel,
    dataset: QADataset,
    window: WindowConfig = WindowConfig(),
    batch_size: int = 32,
    max_answer_length: int = 30,
    progress_bar: bool = False,
) -> EvalResult:
    """EM/F1, buckets, true evaluation loss (cross-entropy on gold spans) and speed over `dataset`."""
    began = time.perf_counter()
    examples = dataset.examples
    windows = tokenize_windows(examples, loaded.tokenizer, window)
    with tqdm(
        total=len(windows), desc="evaluating", unit="window", disable=not progress_bar, dynamic_ncols=True
    ) as bar:
        logits = forward_windows(
            loaded.model, loaded.tokenizer, windows, batch_size, with_loss=True, progress=bar.update
        )
    answers = decode_examples(examples, windows, logits, 1, max_answer_length, loaded.with_null)
    predictions = {e.id: (a[0].text if a else "") for e, a in zip(examples, answers)}
    metrics: dict[str, Any] = dict(squad_scores(predictions, {e.id: list(e.answers) for e in examples}))
    seconds = time.perf_counter() - began
    metrics.update(eval_loss=logits.loss, seconds=seconds, questions_per_second=len(examples) / seconds)
    return EvalResult(predictions, metrics)


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
    ) -> None:
        self.loaded = model if isinstance(model, LoadedModel) else load_model(model, seed=seed)
        self.batch_size = batch_size
        super().__init__(
            self.loaded.tokenizer,
            self._logits,
            window or self.loaded.window,
            max_answer_length,
            self.loaded.with_null,
            max_context_chars,
        )

    def _logits(self, windows: Windows) -> Logits:
        return forward_windows(self.loaded.model, self.loaded.tokenizer, windows, self.batch_size)

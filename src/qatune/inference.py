"""Run a QA model over windows (length-sorted batches, dynamic padding) and turn logits into answers.

Orchestration only: tokenising is in `windows`, decoding in `predict`, scoring in `metrics`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from qatune.answering import SpanAnswerer, batched_logits, pad_batch
from qatune.attention import attention, inference_attention
from qatune.calibration import MIN_CALIBRATION_QUESTIONS, Calibration, fit, resolve_target
from qatune.data import Example, QADataset
from qatune.errors import DataError
from qatune.metrics import best_over_golds, best_threshold, expected_calibration_error, reliability, squad_scores
from qatune.models import DEFAULT_MODEL, LoadedModel, load_model
from qatune.predict import Decoding, Logits, Prediction, predict_examples
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
    with torch.inference_mode(), autocast(device), attention(model, inference_attention(model)):
        logits = batched_logits(windows, batch_size, run, progress)
    model.train(was_training)
    logits.loss = loss_sum / len(windows) if with_loss and len(windows) else None
    return logits


@dataclass
class EvalResult:
    """Predictions (id -> text), top-1 probabilities (id -> calibrated, raw) and scores of one evaluation."""

    predictions: dict[str, str]
    metrics: dict[str, Any] = field(default_factory=dict)
    probabilities: dict[str, tuple[float, float]] = field(default_factory=dict)
    exact: dict[str, float] = field(default_factory=dict)  # id -> exact match (0/1) of the top answer


def _top_probabilities(prediction: Prediction) -> tuple[float, float]:
    """(calibrated, raw) probability of the top answer; 0 for a question with no candidate span."""
    if not prediction.answers:
        return 0.0, 0.0
    top = prediction.answers[0]
    return top.probability, top.probability if top.raw_probability is None else top.raw_probability


def reliability_bins(result: EvalResult, dataset: QADataset) -> dict[str, list[dict[str, Any]]]:
    """Reliability bins (`metrics.reliability`) of the calibrated and of the raw top-1 probability."""
    hits = [result.exact[e.id] for e in dataset.examples]
    return {
        name: reliability([result.probabilities[e.id][k] for e in dataset.examples], hits)
        for name, k in (("calibrated", 0), ("raw", 1))
    }


def _dataset_logits(
    loaded: LoadedModel, dataset: QADataset, window: WindowConfig, batch_size: int, progress_bar: bool
) -> tuple[Windows, Logits]:
    """Windows of every question of `dataset` and their logits (with the mean gold-span loss)."""
    windows = tokenize_windows(dataset.examples, loaded.tokenizer, loaded.checked_window(window))
    with tqdm(
        total=len(windows), desc="evaluating", unit="window", disable=not progress_bar, dynamic_ncols=True
    ) as bar:
        logits = forward_windows(
            loaded.model, loaded.tokenizer, windows, batch_size, with_loss=True, progress=bar.update
        )
    return windows, logits


def _no_answer_scores(examples: list[Example], predicted: list[Prediction]) -> dict[str, Any]:
    """The official v2 script's best-threshold figures: EM/F1 if "no answer" were given exactly when the
    no-answer probability is over the best threshold (and those thresholds)."""
    spans = {e.id: next((a.text for a in p.answers if a.text), "") for e, p in zip(examples, predicted)}
    na_probs = {e.id: p.no_answer_probability for e, p in zip(examples, predicted)}
    references = {e.id: list(e.answers) for e in examples}
    out: dict[str, Any] = {}
    for metric, name in (("exact", "exact_match"), ("f1", "f1")):
        threshold, score = best_threshold(spans, na_probs, references, metric)
        out[f"best_{name}"], out[f"best_{name}_threshold"] = score, threshold
    return out


def evaluate(
    loaded: LoadedModel,
    dataset: QADataset,
    window: WindowConfig = WindowConfig(),
    batch_size: int = 32,
    max_answer_length: int = 30,
    progress_bar: bool = False,
) -> EvalResult:
    """EM/F1, buckets, true evaluation loss (cross-entropy on gold spans), calibration error and speed;
    for a model with a null answer also HasAns/NoAns scores and the best-threshold figures."""
    began = time.perf_counter()
    windows, logits = _dataset_logits(loaded, dataset, window, batch_size, progress_bar)
    decoding = loaded.decoding(max_answer_length)
    predicted = predict_examples(dataset.examples, windows, logits, 2, decoding)
    return _scored(dataset.examples, predicted, decoding, logits.loss, time.perf_counter() - began)


def evaluate_answerer(answerer: SpanAnswerer, dataset: QADataset, progress_bar: bool = False) -> EvalResult:
    """`evaluate` for any answering backend (an ONNX export, int8 included): the same scores from the
    answers it gives, in chunks for the progress bar; no eval loss (the backend gives logits only)."""
    began = time.perf_counter()
    examples, predicted = dataset.examples, []
    with tqdm(total=len(examples), desc="evaluating", unit="question", disable=not progress_bar) as bar:
        for b in range(0, len(examples), 256):
            chunk = examples[b : b + 256]
            predicted += answerer.predict_many([(e.context, e.question) for e in chunk], 2)
            bar.update(len(chunk))
    return _scored(examples, predicted, answerer.decoding, None, time.perf_counter() - began)


def _scored(
    examples: list[Example], predicted: list[Prediction], decoding: Decoding, loss: float | None, seconds: float
) -> EvalResult:
    """The scores of one evaluation's predictions (shared by every backend)."""
    predictions = {e.id: (p.answers[0].text if p.answers else "") for e, p in zip(examples, predicted)}
    references = {e.id: list(e.answers) for e in examples}
    metrics: dict[str, Any] = dict(squad_scores(predictions, references))
    probabilities = {e.id: _top_probabilities(p) for e, p in zip(examples, predicted)}
    exact = {qid: best_over_golds(predictions[qid], golds)[0] for qid, golds in references.items()}
    hits = list(exact.values())
    metrics["ece"] = expected_calibration_error([probabilities[q][0] for q in references], hits)
    metrics["ece_raw"] = expected_calibration_error([probabilities[q][1] for q in references], hits)
    if decoding.with_null:
        metrics.update(_no_answer_scores(examples, predicted), null_threshold=decoding.null_threshold)
    metrics.update(eval_loss=loss, seconds=seconds, questions_per_second=len(examples) / seconds)
    return EvalResult(predictions, metrics, probabilities, exact)


def calibrate(
    loaded: LoadedModel,
    dataset: QADataset,
    window: WindowConfig = WindowConfig(),
    batch_size: int = 32,
    max_answer_length: int = 30,
    progress_bar: bool = False,
    target: str = "auto",
) -> Calibration:
    """Fit the model's temperature on `dataset` (questions it was not trained or evaluated on) to predict
    `target` (`calibration.TARGETS`), and for a model with a null answer the no-answer threshold with
    the best F1 there (at that temperature)."""
    if len(dataset) < MIN_CALIBRATION_QUESTIONS:
        raise DataError(
            f"{dataset.source}: {len(dataset)} questions are too few to calibrate on; give at least "
            f"{MIN_CALIBRATION_QUESTIONS} (a larger --limit or --sample, or another data file)"
        )
    windows, logits = _dataset_logits(loaded, dataset, window, batch_size, progress_bar)
    decoding = dataclasses.replace(loaded.decoding(max_answer_length), temperature=1.0, null_threshold=None)
    predicted = predict_examples(dataset.examples, windows, logits, 1, decoding, keep_scores=True)
    gaps, top_gaps, scores, answers = [], [], [], []
    for example, p in zip(dataset.examples, predicted):
        if p.gaps is not None and p.top_gaps is not None and p.answers:
            gaps.append(p.gaps)
            top_gaps.append(p.top_gaps)
            scores.append(best_over_golds(p.answers[0].text, example.answers))
            answers.append(example.answers)
    if not gaps:
        raise DataError(f"{dataset.source}: no question could be answered, so there is nothing to calibrate on")
    chosen = resolve_target(target, answers)
    em, f1 = np.asarray(scores).T
    calibration = fit(gaps, f1 if chosen == "f1" else em, dataset.source, top_gaps, chosen, em)
    if not decoding.with_null:
        return calibration
    scaled = dataclasses.replace(decoding, temperature=calibration.temperature)
    best = _no_answer_scores(dataset.examples, predict_examples(dataset.examples, windows, logits, 2, scaled))
    return dataclasses.replace(calibration, null_threshold=best["best_f1_threshold"], null_threshold_f1=best["best_f1"])


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
            self.loaded.decoding(max_answer_length),
            max_context_chars,
        )

    def _logits(self, windows: Windows) -> Logits:
        return forward_windows(self.loaded.model, self.loaded.tokenizer, windows, self.batch_size)

"""The one answering seam: a backend turns windows into logits; one answerer does the rest.

torch (`inference.Answerer`) and onnxruntime (`lite.OnnxAnswerer`) differ only in how windows become
start/end logits. Checking the questions, cutting windows and decoding spans is `SpanAnswerer`, the
same code for both, so both answer alike. numpy-only: the ONNX path never imports torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from qatune.data import question_examples
from qatune.predict import Answer, Logits, Prediction, predict_examples
from qatune.windows import WindowConfig, Windows, tokenize_windows


class WindowLogits(Protocol):
    """Windows in, logits out (trimmed to each window's length)."""

    def __call__(self, windows: Windows) -> Logits: ...


class SpanAnswerer:
    """Top-k answers with probabilities and character spans, over any `WindowLogits` backend."""

    def __init__(
        self,
        tokenizer: Any,
        logits: WindowLogits,
        window: WindowConfig,
        max_answer_length: int = 30,
        with_null: bool = False,
        max_context_chars: int | None = None,
    ) -> None:
        self.tokenizer, self.logits, self.window = tokenizer, logits, window
        self.max_answer_length, self.with_null = max_answer_length, with_null
        self.max_context_chars = max_context_chars  # None: the size guard, $QATUNE_MAX_CONTEXT_CHARS or 100,000

    def ask(self, context: str, question: str, top_k: int = 3) -> list[Answer]:
        """Up to `top_k` distinct answers with probabilities and character spans."""
        return self.ask_many([(context, question)], top_k)[0]

    def ask_many(self, pairs: Sequence[tuple[str, str]], top_k: int = 3) -> list[list[Answer]]:
        """Batched `ask` for many (context, question) pairs."""
        return [p.answers for p in self.predict_many(pairs, top_k)]

    def predict_many(self, pairs: Sequence[tuple[str, str]], top_k: int = 3) -> list[Prediction]:
        """`ask_many` plus each question's no-answer probability."""
        examples = question_examples(pairs, self.max_context_chars)
        if not examples:
            return []
        windows = tokenize_windows(examples, self.tokenizer, self.window)
        return predict_examples(examples, windows, self.logits(windows), top_k, self.max_answer_length, self.with_null)


def open_answerer(
    model: str, *, window: WindowConfig | None = None, seed: int = 0, max_context_chars: int | None = None
) -> tuple[SpanAnswerer, str]:
    """The answerer for `model` and its backend's name: an exported folder answers with onnxruntime
    alone (fast start), anything else through torch. `window` defaults to the model's own settings."""
    from qatune.lite import OnnxAnswerer, is_exported

    if is_exported(model):
        return OnnxAnswerer(model, window=window, max_context_chars=max_context_chars), "onnxruntime"
    from qatune.inference import Answerer

    return Answerer(model, window, seed=seed, max_context_chars=max_context_chars), "torch"

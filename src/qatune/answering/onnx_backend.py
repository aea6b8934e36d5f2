"""Answer questions with an exported model (`qatune export`): onnxruntime + tokenizers + numpy only.

No torch, no transformers and no training code is imported here, so a CLI answer from an exported
model starts in well under a second. Windows and span decoding are the same code as the torch
path (`data.windows`, `answering.decoding`), so both give the same answers.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qatune.answering.answerer import Progress, SpanAnswerer, batched_logits, pad_batch
from qatune.answering.decoding import Decoding, Logits
from qatune.data.windows import WindowConfig, Windows, saved_window
from qatune.errors import ModelError
from qatune.hardware import compute_threads
from qatune.io import read_json
from qatune.layout import ONNX_META as META_FILE
from qatune.layout import ONNX_MODEL as MODEL_FILE
from qatune.models.settings import read_calibration


def is_exported(folder: str | os.PathLike[str]) -> bool:
    return (Path(folder) / MODEL_FILE).is_file() and (Path(folder) / META_FILE).is_file()


INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")


@dataclass(frozen=True)
class ExportMeta:
    """The settings `qatune export` writes beside the ONNX model, checked where they are read: a
    hand-edited or damaged file is one error, not a numpy or onnxruntime traceback mid-answer."""

    input_names: list[str]
    max_answer_length: int
    with_null: bool
    pad_token_id: int
    max_positions: int | None = None  # None: an export older than this field
    fresh_head: bool = False  # exported from a model whose QA head was untrained

    @classmethod
    def read(cls, folder: Path) -> ExportMeta:
        path = folder / META_FILE
        saved = read_json(path, "export settings file", ModelError)
        problem = _meta_problem(saved)
        if problem:
            raise ModelError(f"{path}: damaged ({problem}); export it again")
        return cls(**{f.name: saved[f.name] for f in dataclasses.fields(cls) if f.name in saved})


def _meta_problem(saved: Any) -> str | None:
    """What is wrong with a saved export settings object, or None. Checked by hand rather than with
    pydantic: importing it would add about 0.13 s (a third) to the start of `ask` on an export, the
    start this module exists to keep short."""
    if not isinstance(saved, dict):
        return "not a JSON object"
    names = saved.get("input_names")
    if not isinstance(names, list) or "input_ids" not in names or not set(names) <= set(INPUT_NAMES):
        return f"input_names: expected a list of {', '.join(INPUT_NAMES)} with input_ids, got {names!r}"
    ranges = {"max_answer_length": (1, 10_000), "pad_token_id": (0, 2**31 - 1), "max_positions": (16, 2**31 - 1)}
    for name, (low, high) in ranges.items():
        value = saved.get(name)
        if name == "max_positions" and value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            return f"{name}: expected an integer in [{low}, {high}], got {value!r}"
    if not isinstance(saved.get("with_null"), bool) or not isinstance(saved.get("fresh_head", False), bool):
        return "with_null and fresh_head must be true or false"
    return None


class _Batch(dict[str, list[Any]]):
    """What `data.windows.tokenize_windows` reads from a transformers BatchEncoding, built from raw encodings."""

    def __init__(self, encodings: list[Any], mapping: list[int]) -> None:
        super().__init__(
            input_ids=[e.ids for e in encodings],
            token_type_ids=[e.type_ids for e in encodings],
            offset_mapping=[e.offsets for e in encodings],
            overflow_to_sample_mapping=mapping,
        )
        self.encodings = encodings

    def sequence_ids(self, i: int) -> list[int | None]:
        ids: list[int | None] = self.encodings[i].sequence_ids
        return ids


class RawTokenizer:
    """The slice of the transformers tokenizer call API that `data.windows` uses, over a bare `tokenizers.Tokenizer`.

    Hand-written because transformers (and torch with it) takes seconds to import; overflowing
    windows are flattened exactly as transformers' fast tokenizers do ([encoding, *overflowing]).
    """

    is_fast = True

    def __init__(self, path: Path, model_input_names: Sequence[str]) -> None:
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(path))
        self.tokenizer.no_padding()
        self.model_input_names = list(model_input_names)

    def __call__(
        self,
        questions: Sequence[str],
        contexts: Sequence[str] | None = None,
        *,
        add_special_tokens: bool = True,
        max_length: int = 512,
        stride: int = 0,
        **_: Any,
    ) -> _Batch:
        if contexts is None:
            self.tokenizer.no_truncation()
            encodings = self.tokenizer.encode_batch(list(questions), add_special_tokens=add_special_tokens)
            return _Batch(encodings, list(range(len(encodings))))
        self.tokenizer.enable_truncation(max_length, stride=stride, strategy="only_second")
        flat, mapping = [], []
        for i, encoding in enumerate(self.tokenizer.encode_batch(list(zip(questions, contexts)))):
            for window in (encoding, *encoding.overflowing):
                flat.append(window)
                mapping.append(i)
        return _Batch(flat, mapping)


class OnnxAnswerer(SpanAnswerer):
    """`ask` / `ask_many` like `qatune.Answerer`, on an exported ONNX model."""

    def __init__(
        self,
        folder: str | os.PathLike[str],
        threads: int | None = None,
        batch_size: int = 16,
        window: WindowConfig | None = None,
        max_context_chars: int | None = None,
    ) -> None:
        import onnxruntime as ort

        folder = Path(folder)
        if not is_exported(folder):
            raise ModelError(
                f"{folder}: not an exported model (no {MODEL_FILE} + {META_FILE}); "
                f"make one with `qatune export MODEL --output {folder}`"
            )
        self.meta = ExportMeta.read(folder)
        window = (window or saved_window(folder)).checked_for(self.meta.max_positions)  # default: as exported
        calibration = read_calibration(folder)
        temperature = calibration.temperature if calibration else 1.0
        threshold = calibration.null_threshold if calibration else None
        try:
            tokenizer = RawTokenizer(folder / "tokenizer.json", self.meta.input_names)
        except Exception as exc:  # the tokenizers library raises plain Exceptions for a bad tokenizer.json
            raise ModelError(f"{folder}/tokenizer.json: cannot load it ({exc}); export it again") from None
        decoding = Decoding(
            self.meta.max_answer_length, self.meta.with_null, temperature=temperature, null_threshold=threshold
        )
        super().__init__(tokenizer, self._forward, window, decoding, max_context_chars)
        options = ort.SessionOptions()
        # onnxruntime would size its pool by the host's cores; the CPUs this process may use instead
        options.intra_op_num_threads = threads or compute_threads().count
        try:
            self.session = ort.InferenceSession(str(folder / MODEL_FILE), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own (non-standard) exception types
            raise ModelError(
                f"{folder}/{MODEL_FILE}: cannot load it ({str(exc).splitlines()[0]}); export it again"
            ) from None
        self.batch_size = batch_size
        self.fresh_head = self.meta.fresh_head

    def _forward(self, windows: Windows, progress: Progress | None = None, with_loss: bool = False) -> Logits:
        """Logits of `windows`; an export computes no loss (`with_loss` is ignored: `Logits.loss` stays None)."""
        names, pad = self.meta.input_names, self.meta.pad_token_id
        return batched_logits(
            windows,
            self.batch_size,
            lambda idx: tuple(self.session.run(["start_logits", "end_logits"], pad_batch(windows, idx, names, pad))),
            progress,
        )

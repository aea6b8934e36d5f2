"""Answer questions with an exported model (`qatune export`): onnxruntime + tokenizers + numpy only.

No torch, no transformers and no training code is imported here, so a CLI answer from an exported
model starts in well under a second. Windows and span decoding are the same code as the torch
path (`windows`, `predict`), so both give the same answers.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qatune.answering import SpanAnswerer, batched_logits, pad_batch
from qatune.calibration import read_calibration
from qatune.errors import ModelError
from qatune.io import read_json
from qatune.layout import ONNX_META as META_FILE
from qatune.layout import ONNX_MODEL as MODEL_FILE
from qatune.predict import Decoding, Logits
from qatune.windows import WindowConfig, Windows, saved_window


def is_exported(folder: str | os.PathLike) -> bool:
    return (Path(folder) / MODEL_FILE).is_file() and (Path(folder) / META_FILE).is_file()


class _Batch(dict):
    """What `windows.tokenize_windows` reads from a transformers BatchEncoding, built from raw encodings."""

    def __init__(self, encodings: list, mapping: list[int]) -> None:
        super().__init__(
            input_ids=[e.ids for e in encodings],
            token_type_ids=[e.type_ids for e in encodings],
            offset_mapping=[e.offsets for e in encodings],
            overflow_to_sample_mapping=mapping,
        )
        self.encodings = encodings

    def sequence_ids(self, i: int) -> list[int | None]:
        return self.encodings[i].sequence_ids


class RawTokenizer:
    """The slice of the transformers tokenizer call API that `windows` uses, over a bare `tokenizers.Tokenizer`.

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
        folder: str | os.PathLike,
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
        self.meta = read_json(folder / META_FILE, "export settings file", ModelError)
        window = window or saved_window(folder)  # default: the settings it was exported with
        positions = self.meta.get("max_positions") if isinstance(self.meta, dict) else None
        window.check()
        window.check_fits(positions if isinstance(positions, int) else None)  # older exports: unknown
        calibration = read_calibration(folder)
        temperature = calibration.temperature if calibration else 1.0
        threshold = calibration.null_threshold if calibration else None
        try:
            tokenizer = RawTokenizer(folder / "tokenizer.json", self.meta["input_names"])
            self.pad_id = self.meta["pad_token_id"]
            super().__init__(
                tokenizer,
                self._forward,
                window,
                Decoding(
                    self.meta["max_answer_length"],
                    self.meta["with_null"],
                    temperature=temperature,
                    null_threshold=threshold,
                ),
                max_context_chars,
            )
        except (KeyError, TypeError) as exc:
            raise ModelError(f"{folder}: damaged export ({type(exc).__name__}: {exc}); export it again") from None
        except Exception as exc:  # the tokenizers library raises plain Exceptions for a bad tokenizer.json
            raise ModelError(f"{folder}/tokenizer.json: cannot load it ({exc}); export it again") from None
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(folder / MODEL_FILE), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own (non-standard) exception types
            raise ModelError(
                f"{folder}/{MODEL_FILE}: cannot load it ({str(exc).splitlines()[0]}); export it again"
            ) from None
        self.batch_size = batch_size

    def _forward(self, windows: Windows) -> Logits:
        names = self.meta["input_names"]
        return batched_logits(
            windows,
            self.batch_size,
            lambda idx: tuple(
                self.session.run(["start_logits", "end_logits"], pad_batch(windows, idx, names, self.pad_id))
            ),
        )

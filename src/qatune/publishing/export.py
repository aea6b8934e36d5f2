"""Export a QA model for inference: ONNX graph + tokenizer.json + the settings answering needs.

The exported folder is answered by `qatune.answering.onnx_backend` with onnxruntime, tokenizers and numpy only
(`qatune ask --model FOLDER`), which starts in a fraction of the time torch + transformers take.
Optionally the graph is quantised to int8 (dynamic quantisation of the matrix multiplies).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import os
import time
import warnings
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from qatune.answering.onnx_backend import OnnxAnswerer
from qatune.data.windows import WindowConfig
from qatune.errors import ConfigError, ModelError
from qatune.io import JsonObject, atomic_write_json
from qatune.layout import ONNX_META as META_FILE
from qatune.layout import ONNX_MODEL as MODEL_FILE
from qatune.models.loading import LoadedModel, load_model, max_positions
from qatune.models.settings import read_calibration, write_calibration
from qatune.paths import check_output_folder, remove_leftovers, staged_folder

logger = logging.getLogger(__name__)
CHECK_CONTEXT = (
    "Earth is the third planet from the Sun and the only place known in the universe where life has originated."
)


class _Logits(torch.nn.Module):
    """The QA model as a function of token tensors to (start_logits, end_logits), for the exporter."""

    def __init__(self, model: torch.nn.Module, names: list[str]) -> None:
        super().__init__()
        self.model, self.names = model, names

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model(**dict(zip(self.names, inputs)))
        return out.start_logits, out.end_logits


def export_onnx(
    model: str,
    output: str | Path,
    *,
    window: WindowConfig | None = None,
    seed: int = 0,
    max_answer_length: int = 30,
    quantize: bool = False,
    overwrite: bool = False,
) -> JsonObject:
    """Write `output`/model.onnx (dynamic batch and length), tokenizer.json and qatune-onnx.json.

    `output` must be new, empty or an earlier export (else `overwrite`); it is replaced only once the
    new export is complete and checked against the torch model, and a failure leaves nothing behind
    (a kill leaves a qatune temporary folder beside it, which the next export to `output` removes).
    A symlink to a folder stays a link; the folder it leads to is replaced. `window` defaults to the
    model's own settings.
    """
    began = time.perf_counter()
    out = check_output_folder(output, "--output", (META_FILE,), "an earlier qatune export", overwrite)
    if Path(model).exists() and Path(model).resolve() == out.resolve():
        raise ConfigError(f"--output {out}: is the model's own folder; export to another folder")
    if max_answer_length < 1:
        raise ConfigError(f"max_answer_length must be > 0, got {max_answer_length}")
    loaded = load_model(model, seed=seed, device="cpu")
    window = loaded.checked_window(window or loaded.window)
    real = Path(os.path.realpath(out))
    remove_leftovers(real.parent, target=real.name)  # an earlier export to it that was killed
    with staged_folder(real) as tmp:
        meta = _write_export(loaded, model, tmp, window, max_answer_length, quantize)
    meta["seconds"] = round(time.perf_counter() - began, 1)
    return meta


def _write_export(
    loaded: LoadedModel, model: str, tmp: Path, window: WindowConfig, max_answer_length: int, quantize: bool
) -> JsonObject:
    """The export's files in `tmp`, checked against torch; returns its settings."""
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in loaded.tokenizer.model_input_names]
    sample = loaded.tokenizer(
        ["What is Earth?", "Where has life originated?"], [CHECK_CONTEXT] * 2, return_tensors="pt", padding=True
    )
    batch, length = torch.export.Dim("batch"), torch.export.Dim("length", max=window.max_seq_length)
    exporter_logger = logging.getLogger("torch.onnx")
    level = exporter_logger.level
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):  # the exporter is chatty
            warnings.simplefilter("ignore")
            exporter_logger.setLevel(logging.ERROR)
            torch.onnx.export(
                _Logits(loaded.model, names),
                tuple(sample[n] for n in names),
                str(tmp / MODEL_FILE),
                input_names=names,
                output_names=["start_logits", "end_logits"],
                dynamo=True,
                external_data=False,
                verbose=False,
                dynamic_shapes=(tuple({0: batch, 1: length} for _ in names),),
            )
    except Exception as exc:  # the exporter raises many kinds, all meaning "this model did not export"
        raise ModelError(f"{model}: ONNX export failed ({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
    finally:
        exporter_logger.setLevel(level)
    if quantize:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        # Per-channel scales (one per output row of each weight): per-tensor scales lost 2.1 EM on 1,000 dev
        # questions with the headline model, per-channel 0.2 (README, Speed).
        quantize_dynamic(
            str(tmp / MODEL_FILE), str(tmp / "model.int8.onnx"), weight_type=QuantType.QInt8, per_channel=True
        )
        (tmp / "model.int8.onnx").replace(tmp / MODEL_FILE)
    # optimum's layout for question answering: model.onnx beside config.json and the tokenizer files
    loaded.tokenizer.save_pretrained(tmp)
    cast(Any, loaded.model).config.save_pretrained(tmp)
    calibration = read_calibration(loaded.path) if Path(loaded.path).is_dir() else None
    if calibration:
        write_calibration(tmp, calibration)
    meta = {
        "model": model,
        "input_names": names,
        "window": dataclasses.asdict(window),
        "max_positions": max_positions(loaded.model),  # the longest window `ask` may use with it
        "max_answer_length": max_answer_length,
        "with_null": loaded.with_null,
        "pad_token_id": loaded.tokenizer.pad_token_id or 0,
        "quantized": quantize,
        "fresh_head": loaded.fresh_head,
    }
    atomic_write_json(tmp / META_FILE, meta)
    meta["max_logit_difference"] = _check(loaded, names, tmp)
    return meta


def _check(loaded: LoadedModel, names: list[str], folder: Path) -> float:
    """Largest |onnx - torch| start logit on the sample pair: a broken export fails here, not in use."""
    encoded = loaded.tokenizer(["Who?"], [CHECK_CONTEXT], return_tensors="pt")
    with torch.inference_mode():
        expected = loaded.model(**{n: encoded[n] for n in names}).start_logits.numpy()
    if not np.isfinite(expected).all():
        raise ModelError(f"{loaded.name}: its outputs are not finite numbers (NaN or infinity); weights damaged")
    session = OnnxAnswerer(folder).session
    got = session.run(["start_logits"], {n: encoded[n].numpy().astype(np.int64) for n in names})[0]
    if not np.isfinite(got).all():
        raise ModelError(f"{loaded.name}: the exported graph gives outputs that are not finite numbers; not exported")
    return float(np.abs(got - expected).max())

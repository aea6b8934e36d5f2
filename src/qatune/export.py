"""Export a QA model for inference: ONNX graph + tokenizer.json + the settings answering needs.

The exported folder is answered by `qatune.lite` with onnxruntime, tokenizers and numpy only
(`qatune ask --model FOLDER`), which starts in a fraction of the time torch + transformers take.
Optionally the graph is quantised to int8 (dynamic quantisation of the matrix multiplies).
"""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qatune.errors import ModelError
from qatune.io import atomic_write_json
from qatune.lite import META_FILE, MODEL_FILE, OnnxAnswerer
from qatune.models import load_model
from qatune.windows import WindowConfig

logger = logging.getLogger(__name__)
CHECK_CONTEXT = "Earth is the third planet from the Sun and the only place known in the universe where life has originated."


class _Logits(torch.nn.Module):
    """The QA model as a function of token tensors to (start_logits, end_logits), for the exporter."""

    def __init__(self, model: torch.nn.Module, names: list[str]) -> None:
        super().__init__()
        self.model, self.names = model, names

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model(**dict(zip(self.names, inputs)))
        return out.start_logits, out.end_logits


def export_onnx(model: str, output: str | Path, *, window: WindowConfig = WindowConfig(), seed: int = 0,
                max_answer_length: int = 30, quantize: bool = False) -> dict[str, Any]:
    """Write `output`/model.onnx (dynamic batch and length), tokenizer.json and qatune-onnx.json.

    Checks the exported graph against the torch model on a sample question before returning.
    """
    began = time.perf_counter()
    loaded = load_model(model, seed=seed, device="cpu")
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in loaded.tokenizer.model_input_names]
    out = Path(output)
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    sample = loaded.tokenizer(["What is Earth?", "Where has life originated?"], [CHECK_CONTEXT] * 2,
                              return_tensors="pt", padding=True)
    batch, length = torch.export.Dim("batch"), torch.export.Dim("length", max=window.max_seq_length)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):  # the exporter is chatty
            warnings.simplefilter("ignore")
            logging.getLogger("torch.onnx").setLevel(logging.ERROR)
            torch.onnx.export(_Logits(loaded.model, names), tuple(sample[n] for n in names), str(tmp / MODEL_FILE),
                              input_names=names, output_names=["start_logits", "end_logits"], dynamo=True,
                              external_data=False, verbose=False,
                              dynamic_shapes=(tuple({0: batch, 1: length} for _ in names),))
    except Exception as exc:  # the exporter raises many kinds, all meaning "this model did not export"
        shutil.rmtree(tmp, ignore_errors=True)
        raise ModelError(f"{model}: ONNX export failed ({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
    if quantize:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(str(tmp / MODEL_FILE), str(tmp / "model.int8.onnx"), weight_type=QuantType.QInt8)
        (tmp / "model.int8.onnx").replace(tmp / MODEL_FILE)
    loaded.tokenizer.backend_tokenizer.save(str(tmp / "tokenizer.json"))
    meta = {"model": model, "input_names": names, "window": window.__dict__, "max_answer_length": max_answer_length,
            "with_null": loaded.with_null, "pad_token_id": loaded.tokenizer.pad_token_id or 0, "quantized": quantize,
            "fresh_head": loaded.fresh_head}
    atomic_write_json(tmp / META_FILE, meta)
    meta["max_logit_difference"] = _check(loaded, names, tmp)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    meta["seconds"] = round(time.perf_counter() - began, 1)
    return meta


def _check(loaded, names: list[str], folder: Path) -> float:
    """Largest |onnx - torch| start logit on the sample pair: a broken export fails here, not in use."""
    encoded = loaded.tokenizer(["Who?"], [CHECK_CONTEXT], return_tensors="pt")
    with torch.inference_mode():
        expected = loaded.model(**{n: encoded[n] for n in names}).start_logits.numpy()
    session = OnnxAnswerer(folder).session
    got = session.run(["start_logits"], {n: encoded[n].numpy().astype(np.int64) for n in names})[0]
    return float(np.abs(got - expected).max())

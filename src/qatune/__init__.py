"""qatune: fine-tune pre-trained transformer encoders for extractive question answering."""

from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "Answerer": "qatune.answering.torch_backend",
    "open_answerer": "qatune.answering.factory",
    "RunSummary": "qatune.training.summary",
    "Scores": "qatune.evaluation.results",
    "evaluate": "qatune.evaluation.scoring",
    "Answer": "qatune.answering.decoding",
    "Prediction": "qatune.answering.decoding",
    "decode": "qatune.answering.decoding",
    "TrainConfig": "qatune.training.config",
    "fine_tune": "qatune.training.trainer",
    "load_model": "qatune.models.loading",
    "load_data": "qatune.data.sources",
    "load_file": "qatune.data.squad",
    "Example": "qatune.data.squad",
    "QADataset": "qatune.data.squad",
    "WindowConfig": "qatune.data.windows",
    "squad_scores": "qatune.evaluation.metrics",
    "QatuneError": "qatune.errors",
    "DataError": "qatune.errors",
    "ModelError": "qatune.errors",
    "ConfigError": "qatune.errors",
    "DocumentIndex": "qatune.documents.index",
    "open_index": "qatune.documents.backends",
    "build_index": "qatune.documents.build",
    "ask_index": "qatune.documents.reader",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> object:
    """Import the public API lazily: `import qatune` stays fast (no torch) until a name is used.

    (`qatune.training.trainer` is the module; its function is exported as `qatune.fine_tune`.)
    """
    if name in _LAZY:
        import importlib

        module = importlib.import_module(_LAZY[name])
        return getattr(module, "train" if name == "fine_tune" else name)
    raise AttributeError(f"module 'qatune' has no attribute {name!r}")

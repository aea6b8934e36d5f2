"""qatune: fine-tune pre-trained transformer encoders for extractive question answering."""

from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "Answerer": "qatune.inference",
    "evaluate": "qatune.inference",
    "Answer": "qatune.predict",
    "Prediction": "qatune.predict",
    "decode": "qatune.predict",
    "TrainConfig": "qatune.config",
    "fine_tune": "qatune.train",
    "load_model": "qatune.models",
    "load_data": "qatune.sources",
    "load_file": "qatune.data",
    "Example": "qatune.data",
    "QADataset": "qatune.data",
    "WindowConfig": "qatune.windows",
    "squad_scores": "qatune.metrics",
    "QatuneError": "qatune.errors",
    "DataError": "qatune.errors",
    "ModelError": "qatune.errors",
    "ConfigError": "qatune.errors",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    """Import the public API lazily: `import qatune` stays fast (no torch) until a name is used.

    (`qatune.train` is the module; its function is exported as `qatune.fine_tune`.)
    """
    if name in _LAZY:
        import importlib

        module = importlib.import_module(_LAZY[name])
        return getattr(module, "train" if name == "fine_tune" else name)
    raise AttributeError(f"module 'qatune' has no attribute {name!r}")

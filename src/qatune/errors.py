"""Typed errors raised by the library; the CLI turns them into one-line messages and exit code 2."""

from __future__ import annotations


class QatuneError(Exception):
    """Base class for every error qatune raises on purpose (bad input, missing files, ...)."""


class DataError(QatuneError):
    """A data file or data set is missing, malformed or fails validation."""


class ModelError(QatuneError):
    """A model cannot be found or loaded (no safetensors, slow tokenizer, ...)."""


class NonFiniteOutputs(ModelError):
    """A model's outputs are NaN or infinite: its weights are damaged (or training is diverging)."""


class ConfigError(QatuneError):
    """A setting is out of range or inconsistent with another one."""


class OutputError(QatuneError):
    """A file or folder cannot be written there (no permission, a read-only or full disk, ...)."""


class TrainingDiverged(QatuneError):
    """The loss or the gradients stopped being finite numbers; no model was saved."""


class TrainingInterrupted(QatuneError):
    """Training stopped on Ctrl-C or SIGTERM after writing a checkpoint it can resume from."""


class Unavailable(QatuneError):
    """A service qatune reads from (a database) cannot be reached now; the same call may work later."""

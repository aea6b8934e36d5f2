"""Hyperparameter sweeps: W&B sweep configs run locally (or on many machines) by Optuna."""

from qatune.sweep.runner import run_sweep, show_sweep
from qatune.sweep.spec import SweepSpec, load_sweep, parse_sweep
from qatune.sweep.storage import SweepOptions

__all__ = ["SweepOptions", "SweepSpec", "load_sweep", "parse_sweep", "run_sweep", "show_sweep"]

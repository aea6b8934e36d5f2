"""The best evaluation of a run: `--load-best-model-at-end` and `--early-stopping-patience`, as HF's Trainer.

Where the best evaluation stands lives in `Progress` (saved with every checkpoint, so a resumed run
knows it), and with `load_best_model_at_end` the best weights are kept as one safetensors file in the
checkpoints folder until the run ends and they become the saved model.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch

from qatune.evaluation.results import Scores
from qatune.io import new_temp_file
from qatune.layout import BEST_WEIGHTS, CHECKPOINTS
from qatune.training.checkpoint import Progress
from qatune.training.config import TrainConfig
from qatune.training.summary import BestChoice

LOWER_IS_BETTER = {"eval_loss"}


def improved(config: TrainConfig, progress: Progress, value: float) -> bool:
    """Whether `value` of the best-model metric beats the best so far."""
    if not math.isfinite(value):
        return False
    if progress.best_value is None:
        return True
    lower = config.metric_for_best_model in LOWER_IS_BETTER
    return value < progress.best_value if lower else value > progress.best_value


def record(config: TrainConfig, progress: Progress, scores: Scores, model: torch.nn.Module, out: Path) -> None:
    """Note an evaluation; keep the model's weights when it is the best so far and they will be wanted.
    The untuned model's evaluation (step 0) is a baseline, not a candidate."""
    if progress.step == 0:
        return
    value = float(getattr(scores, config.metric_for_best_model))
    if improved(config, progress, value):
        progress.best_step, progress.best_value, progress.evals_since_best = progress.step, value, 0
        if config.load_best_model_at_end:
            from safetensors.torch import save_file

            path = out / CHECKPOINTS / BEST_WEIGHTS
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = new_temp_file(path)  # qatune's own temporary name (the folder is the run's own)
            os.close(fd)
            try:
                save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(tmp))
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
    else:
        progress.evals_since_best += 1


def should_stop(config: TrainConfig, progress: Progress) -> bool:
    patience = config.early_stopping_patience
    return patience is not None and progress.evals_since_best >= patience


def restore(config: TrainConfig, progress: Progress, model: torch.nn.Module, out: Path) -> BestChoice | None:
    """Load the best evaluation's weights into `model` (with load_best_model_at_end); what was chosen."""
    if progress.best_step is None or progress.best_value is None:
        return None
    path = out / CHECKPOINTS / BEST_WEIGHTS
    loaded = config.load_best_model_at_end and path.is_file()
    if loaded:
        from safetensors.torch import load_file

        model.load_state_dict(load_file(str(path)))
    return BestChoice(config.metric_for_best_model, progress.best_value, progress.best_step, loaded)

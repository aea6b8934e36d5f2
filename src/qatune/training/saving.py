"""What a finished fine-tuning run leaves behind: the model folder, its calibration, qatune.json and the card."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from qatune.answering.torch_backend import Answerer
from qatune.data.squad import QADataset
from qatune.evaluation.calibration import MIN_CALIBRATION_QUESTIONS, calibrate
from qatune.hardware import Precision, package_versions
from qatune.io import atomic_write_json, read_jsonl, replace_file
from qatune.layout import CONFIG_FILE, HISTORY_FILE, LOCK_FILE, PROGRESS_FILE, SAVING_MODEL
from qatune.models.loading import LoadedModel
from qatune.models.settings import Calibration, write_calibration
from qatune.paths import temp_folder
from qatune.training import best
from qatune.training.card import write_card
from qatune.training.checkpoint import Progress, remove_run_leftovers
from qatune.training.config import TrainConfig
from qatune.training.summary import BestChoice, DataInfo, EvalRecord, RunSummary

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FinishedRun:
    """What the training loop hands the saver: the trained model (unwrapped from Accelerate) and the facts
    of the run that go into its folder."""

    config: TrainConfig
    out: Path
    model: Any  # a transformers question-answering model
    base: LoadedModel  # the model training started from (its name, path and tokenizer)
    precision: Precision
    windows: int  # training windows a pass over the data
    with_null: bool
    progress: Progress
    seconds: float


def _calibrate(run: FinishedRun, held: QADataset | None) -> Calibration | None:
    """Fit the saved model's confidence calibration on held-out training questions (`calibration.json`)."""
    if held is None or len(held) < MIN_CALIBRATION_QUESTIONS:
        if run.config.calibration_questions:
            logger.warning(
                "not calibrated: %d training questions were left out of training (at least %d are needed); "
                "fit it with `qatune calibrate --model %s --data FILE`",
                len(held) if held else 0,
                MIN_CALIBRATION_QUESTIONS,
                run.out,
            )
        return None
    loaded = LoadedModel(run.model, run.base.tokenizer, run.base.name, str(run.out), False, run.config.window)
    c = run.config
    calibration = calibrate(Answerer(loaded, c.window, c.max_answer_length, c.eval_batch_size), held)
    write_calibration(run.out, calibration)
    logger.info(
        "calibrated on %d held-out questions: temperature %.3f, ECE %.3f -> %.3f",
        calibration.questions,
        calibration.temperature,
        calibration.ece_before,
        calibration.ece_after,
    )
    return calibration


def _chosen_eval(history: list[EvalRecord], chosen: BestChoice | None) -> EvalRecord | None:
    """The evaluation of the saved weights: the best one's with load_best_model_at_end, else the last."""
    if chosen and chosen.loaded:
        return next((r for r in reversed(history) if r.step == chosen.step), None)
    return history[-1] if history else None


def _save_weights(run: FinishedRun) -> None:
    """The model and tokenizer files into the run folder, each replaced whole: written into a qatune
    temporary folder there (which a kill leaves for the next run to remove), then moved in one by one."""
    with temp_folder(run.out / SAVING_MODEL) as tmp:
        run.model.save_pretrained(tmp, safe_serialization=True)
        run.base.tokenizer.save_pretrained(tmp)
        for item in sorted(tmp.iterdir()):
            if item.name != LOCK_FILE:  # the temporary folder's own; the run folder has its lock
                replace_file(item, run.out / item.name)  # in the mode of the file it replaces, or the umask's


def save_final(
    run: FinishedRun, train: QADataset, dev: QADataset | None, held: QADataset | None, command: str | None
) -> RunSummary:
    """Write the loadable model folder (safetensors + tokenizer), its calibration, the summary
    (qatune.json) and the model card."""
    out = run.out
    remove_run_leftovers(out)  # the caller holds the run folder
    run.model.config.qatune_with_null = run.with_null
    chosen = best.restore(run.config, run.progress, run.model, out)
    _save_weights(run)
    history = [EvalRecord.from_dict(r) for r in read_jsonl(out / HISTORY_FILE) if r.get("type") == "eval"]
    summary = RunSummary(
        config=run.config,
        versions=package_versions(),
        precision=run.precision,
        base_model_path=run.base.path,
        train_data=DataInfo(train.source, len(train), tuple(train.notes), run.windows),
        eval_data=DataInfo(dev.source, len(dev), tuple(dev.notes)) if dev else None,
        steps=run.progress.step,
        windows_seen=run.progress.windows_seen,
        seconds=round(run.seconds, 1),
        final_eval=_chosen_eval(history, chosen),
        best=chosen,
        calibration=_calibrate(run, held),
    )
    atomic_write_json(out / CONFIG_FILE, summary.to_dict())
    write_card(out, summary, history, command)
    run.progress.completed = True
    atomic_write_json(out / PROGRESS_FILE, asdict(run.progress))
    return summary

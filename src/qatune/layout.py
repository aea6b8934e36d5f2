"""The file names qatune writes, defined once: model and run folders, exports, studies, sweeps.

Every module that reads or writes these imports them from here, so the contract cannot drift.
"""

from __future__ import annotations

import os
import re

DEFAULT_MODEL = "default"  # the model name that means the packaged all-MiniLM-L6-v2, whatever folder is here

# Every temporary file or folder qatune makes, beside what it becomes: TEMP_PREFIX + that name + "." + 8
# random characters (`temp_prefix`), so a later run recognises its own leftovers (`is_temp_name`) and
# removes them from the folders it owns (`paths.remove_leftovers`), and nothing else.
TEMP_PREFIX = ".qatune-tmp-"
_RANDOM = re.compile(r"[a-z0-9_]{8}")  # what tempfile.mkstemp / mkdtemp put between prefix and suffix
LEGACY_RUN_TEMPORARIES = (".tmp-model",)  # in a run folder: what qatune before TEMP_PREFIX called them
LEGACY_CHECKPOINT_TEMPORARIES = (".tmp-step-*",)  # in its CHECKPOINTS folder


def temp_prefix(name: str) -> str:
    """The start of a temporary's name for a file or folder called `name` (cut to 150 bytes: a name
    stays under the 255 bytes file systems allow)."""
    return f"{TEMP_PREFIX}{os.fsdecode(os.fsencode(name)[:150])}."


def is_temp_name(name: str, target: str | None = None) -> bool:
    """Whether `name` is a temporary qatune made (for the file or folder called `target`, when given)."""
    if target is not None:
        prefix = temp_prefix(target)
        return name.startswith(prefix) and bool(_RANDOM.fullmatch(name[len(prefix) :]))
    stem, _, random = name.rpartition(".")
    return len(stem) > len(TEMP_PREFIX) and stem.startswith(TEMP_PREFIX) and bool(_RANDOM.fullmatch(random))


# In any folder qatune is writing (a run, a study) while it writes: held by one process at a time.
LOCK_FILE = ".qatune.lock"

# A fine-tuning run folder (`qatune train --output DIR`), which is also a loadable model folder.
CONFIG_FILE = "qatune.json"  # the exact config, versions, data and final scores; marks a qatune run
HISTORY_FILE = "metrics.jsonl"  # one record per logging step and per evaluation
PROGRESS_FILE = "progress.json"  # where training stands; `completed` once the model is saved
CHECKPOINTS = "checkpoints"  # step-N folders a rerun resumes from
CARD_FILE = "README.md"  # the model card, as the Hugging Face Hub reads it
BEST_WEIGHTS = "best.safetensors"  # in CHECKPOINTS: the best evaluation's weights (load_best_model_at_end)
SAVING_MODEL = "model"  # the final model is written into a temporary folder named for this, then moved in file by file
TRACKER_IDS = "trackers.json"  # each tracker's run id, so a resumed run continues its tracker run
TENSORBOARD = "tensorboard"  # TensorBoard event files (--report-to tensorboard)

# An exported folder (`qatune export`).
ONNX_MODEL = "model.onnx"
ONNX_META = "qatune-onnx.json"  # window settings, input names, ...; marks a qatune export

# A document index (`qatune index`).
INDEX_META = "qatune-index.json"  # format version, the files and their hashes; marks a qatune index
INDEX_PASSAGES = "passages.jsonl"  # one passage a line: file, page, character span, text
INDEX_EMBEDDINGS = "embeddings.npy"  # the dense side: a unit vector a sentence (float16), in passage order
INDEX_UNITS = "units.npy"  # how many of those vectors each passage has
INDEX_LEXICAL = "bm25"  # the lexical side: a bm25s index over the passages

# A study folder (`qatune run`) and the folders its stages own.
STAGES_FILE = "stages.json"  # finished stages and their input hashes; marks a qatune study
STAGE_MARKER = ".stage-key"  # in each stage's folder: the inputs it holds work for
STUDY_RESULTS = "results.json"  # everything the report shows
STUDY_REPORT = {"markdown": "report.md", "html": "report.html"}
EM_FIGURE = "em_over_training.png"

# A sweep folder (`qatune sweep`) and its trials.
SWEEP_DB = "sweep.db"
SWEEP_CONFIG = "sweep.yaml"  # marks a qatune sweep
TRIAL_CONFIG = "trial.json"  # marks a trial folder
TRIALS = "trials"  # the sweep folder's trial folders, TRIAL_FOLDER each
TRIAL_FOLDER = "trial-{number:03d}"
TRIAL_LOG = "trial.log"  # the trial process's output
TRIAL_LOCK = ".trial.lock"  # held by the trial process writing the folder
TRIAL_FAILURE = "trial-error.json"  # why the trial process failed, when it could say (a kill -9 leaves none)
RESULTS_SUMMARY = "summary.json"  # marks a `sweep show` results folder
RESULTS_TABLE = "trials.csv"
RESULTS_TRIALS = "trials.json"  # the rows with their histories

# What an evaluation record in metrics.jsonl holds (besides its "type"): where training stood, then the
# scores. Sweeps keep exactly these per evaluation; results tables show the scores.
EVAL_POSITION = ("step", "epoch", "windows_seen", "elapsed")
EVAL_SCORES = ("train_loss", "eval_loss", "exact_match", "f1", "correct", "similar", "incorrect", "total")

# Figures: `sweep show` writes them to RESULTS/FIGURES of the sweep folder; a study's sweep lives in
# STUDY_SWEEP of the study folder, its experiments in STUDY_EXPERIMENTS, predictions in STUDY_EVALS.
SWEEP_RESULTS = "results"
FIGURES = "figures"
TRIAL_FIGURES = {"train_loss": "train_loss.png", "eval_loss": "eval_loss.png", "correct": "correct.png"}
HISTORY_FIGURE = "optimization_history.png"
IMPORTANCE_FIGURE = "param_importances.png"
STUDY_SWEEP = "sweep"
STUDY_EXPERIMENTS = "experiments"
STUDY_EVALS = "evals"

# Calibration of a model's confidence (`qatune calibrate`, or after `qatune train`), in its folder.
CALIBRATION_FILE = "calibration.json"

# An evaluation report folder (`qatune evaluate --report DIR`).
EVAL_REPORT = "evaluation.json"  # the metrics and the reliability bins; marks a qatune evaluation report
EVAL_PREDICTIONS = "predictions.json"
EVAL_ERRORS = "errors.json"  # where the model fails (evaluation.analysis): breakdowns, confident wrong answers
RELIABILITY_FIGURE = "reliability.png"
RELIABILITY_TABLE = "reliability.csv"
# Models with a null answer: id -> no-answer probability (the official v2 script's --na-prob-file), and
# the scores at a range of no-answer thresholds.
EVAL_NA_PROBS = "na_probs.json"
THRESHOLD_TABLE = "thresholds.csv"

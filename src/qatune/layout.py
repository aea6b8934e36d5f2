"""The file names qatune writes, defined once: model and run folders, exports, studies, sweeps.

Every module that reads or writes these imports them from here, so the contract cannot drift.
"""

from __future__ import annotations

# A fine-tuning run folder (`qatune train --output DIR`), which is also a loadable model folder.
CONFIG_FILE = "qatune.json"  # the exact config, versions, data and final scores; marks a qatune run
HISTORY_FILE = "metrics.jsonl"  # one record per logging step and per evaluation
PROGRESS_FILE = "progress.json"  # where training stands; `completed` once the model is saved
CHECKPOINTS = "checkpoints"  # step-N folders a rerun resumes from

# An exported folder (`qatune export`).
ONNX_MODEL = "model.onnx"
ONNX_META = "qatune-onnx.json"  # window settings, input names, ...; marks a qatune export

# A study folder (`qatune run`) and the folders its stages own.
STAGES_FILE = "stages.json"  # finished stages and their input hashes; marks a qatune study
STAGE_MARKER = ".stage-key"  # in each stage's folder: the inputs it holds work for

# A sweep folder (`qatune sweep`) and its trials.
SWEEP_DB = "sweep.db"
SWEEP_CONFIG = "sweep.yaml"  # marks a qatune sweep
TRIAL_CONFIG = "trial.json"  # marks a trial folder
RESULTS_SUMMARY = "summary.json"  # marks a `sweep show` results folder

"""Typed fine-tuning settings, validated once where they enter (CLI, YAML, Python API)."""

from __future__ import annotations

import dataclasses
import functools
import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from qatune.data.mix import parse_mix
from qatune.data.negatives import DEFAULT_KINDS, parse_kinds
from qatune.data.sources import check_spec
from qatune.data.windows import WindowConfig
from qatune.errors import ConfigError, DataError
from qatune.layout import DEFAULT_MODEL

MAX_EPOCHS = 1000
SEED_MAX = 2**32 - 1  # numpy's and Optuna's samplers take seeds below 2**32
# What "best" can mean for load_best_model_at_end / early stopping / a sweep's `summary: best`: the
# held-out evaluation's figures (eval_loss lower is better, the others higher).
BEST_MODEL_METRICS = ("f1", "exact_match", "correct", "eval_loss")
SPAN_LOSSES = ("separate", "joint")  # what training minimises (qatune.training.loss)
# Settings that must be > 0, and the optional ones that must be > 0 when set (TrainConfig._check_positive).
_POSITIVE = (
    "learning_rate",
    "train_batch_size",
    "num_train_epochs",
    "logging_steps",
    "eval_batch_size",
    "max_answer_length",
    "max_grad_norm",
)
_POSITIVE_WHEN_SET = (
    "train_limit",
    "train_sample",
    "eval_limit",
    "eval_sample",
    "max_steps",
    "eval_steps",
    "save_steps",
    "micro_batch_size",
)

SettingValue = str | int | float | bool | None
"""One training setting's value: every TrainConfig field is one of these scalars."""
Settings = dict[str, SettingValue]
"""Training settings by TrainConfig field name (all or some of them): `to_dict`, a sweep's base and trial
settings, a study experiment's settings."""
LATER_DEFAULTS: Settings = {
    "mined_negatives": 0.0,
    "restated": 0.0,
    "mix": None,
    "span_loss": "separate",
    "use_title": False,
}  # newer than the oldest folders, at their defaults


@dataclass
class TrainConfig:
    """Everything that defines a fine-tuning run; saved beside the model as `qatune.json`."""

    model: str = DEFAULT_MODEL
    train_data: str = "squad:train"
    eval_data: str | None = "squad:validation"
    output_dir: str = "runs/qatune"
    train_limit: int | None = None
    train_sample: int | None = None
    eval_limit: int | None = None
    eval_sample: int | None = 1000
    learning_rate: float = 3e-4  # examples/recipe_sweep.yaml: F1 63.7 vs 59.7 (2e-4) and 52.3 (1e-4)
    train_batch_size: int = 32
    micro_batch_size: int | None = None
    num_train_epochs: float = 1.0
    max_steps: int | None = None
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    seed: int = 42
    max_seq_length: int = 256
    doc_stride: int = 96
    max_query_length: int = 64
    use_title: bool = False  # read questions as "TITLE: question" (WindowConfig.use_title)
    max_answer_length: int = 30
    eval_steps: int | None = 500
    eval_at_start: bool = True
    save_steps: int | None = None
    logging_steps: int = 10
    eval_batch_size: int = 64
    group_by_length: bool = True
    skip_invalid: bool = False
    data_dir: str | None = None
    precision: str = "auto"  # auto: bf16 on CPUs with AMX/AVX512-BF16, CUDA autocast on GPUs, else fp32
    negatives: float = 0.0  # add this fraction of unanswerable questions (qatune.data.negatives) ...
    negative_kinds: str = DEFAULT_KINDS  # ... of these kinds (comma-separated; older folders: article)
    mined_negatives: float = 0.0  # and this fraction paired with their best BM25-ranked paragraph without the answer
    restated: float = 0.0  # and this fraction of answerable ones with a name or number left unstated (data.restated)
    mix: str | None = None  # SPEC[:RATIO]: add RATIO questions of SPEC per training question (qatune.data.mix)
    # Every dropout layer's probability while training; None: the model's own. 0 by default: a CPU step is
    # 1.56x faster without the masks, and on the same 4,000 questions EM rose 41.9 -> 49.7 (README, Speed).
    dropout: float | None = 0.0
    attention_dropout: float | None = None  # the attention probabilities' dropout (over `dropout`); None: same
    span_loss: str = "separate"  # one of SPAN_LOSSES: HF's start/end cross-entropies, or joint
    load_best_model_at_end: bool = False  # save the best evaluation's weights, not the last ones
    metric_for_best_model: str = "f1"  # one of BEST_MODEL_METRICS (eval_loss: lower is better)
    early_stopping_patience: int | None = None  # stop after this many evaluations without improvement
    calibration_questions: int = 1000  # held-out training questions the confidence is calibrated on; 0: off
    report_to: str = "none"  # trackers fed every record: comma-separated tensorboard, mlflow, wandb

    @property
    def window(self) -> WindowConfig:
        return WindowConfig(self.max_seq_length, self.doc_stride, self.max_query_length, self.use_title)

    @property
    def micro_batch(self) -> int:
        """Windows per forward pass. Default: the largest divisor of the batch up to 8; small micro-batches
        keep activations in cache, measured faster and leaner on a 2-core CPU (README, Speed)."""
        if self.micro_batch_size:
            return min(self.micro_batch_size, self.train_batch_size)
        return max(d for d in range(1, min(8, self.train_batch_size) + 1) if self.train_batch_size % d == 0)

    @property
    def accumulation_steps(self) -> int:
        """Micro-batches per optimizer step, so large batches (64, 128) fit in small memory."""
        return self.accumulation_on(gpu=False)

    def micro_batch_on(self, gpu: bool) -> int:
        """`micro_batch` on this device: on a GPU the default forward pass holds the whole batch (the CPU's
        8 windows would starve it); an explicit micro_batch_size wins everywhere."""
        return self.train_batch_size if gpu and not self.micro_batch_size else self.micro_batch

    def accumulation_on(self, gpu: bool) -> int:
        return max(1, math.ceil(self.train_batch_size / self.micro_batch_on(gpu)))

    @property
    def effective_save_steps(self) -> int:
        return self.save_steps or self.eval_steps or 500

    def check(self) -> TrainConfig:
        """Raise ConfigError naming the first bad setting; return self for chaining.

        The checks run in a fixed order, so that a config with several problems always reports the same one.
        """
        self._check_finite()
        self._check_names()
        self._check_data_specs()
        self._check_positive()
        self._check_ranges()
        self._check_best_model()
        self._check_trackers()
        self._check_budget()
        self.window.check()
        return self

    def _check_finite(self) -> None:
        """Every float setting is a real number: NaN and infinity slip past the range checks below."""
        for f in dataclasses.fields(self):
            value = typed(f.name, getattr(self, f.name))
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{f.name} must be a finite number, got {value}")

    def _check_names(self) -> None:
        """The model, data and output names are not blank, which would point at the working folder."""
        for name in ("model", "train_data", "eval_data", "output_dir"):
            value = getattr(self, name)
            if value is not None and not value.strip():
                raise ConfigError(f"{name} is empty; give a {'folder' if name == 'output_dir' else 'name or path'}")

    def _check_data_specs(self) -> None:
        """The data specs parse, so a typo fails here and not after the model has loaded."""
        for name, split in (("train_data", "train"), ("eval_data", "validation")):
            if getattr(self, name) is not None:
                try:
                    check_spec(getattr(self, name), split)
                except DataError as exc:
                    raise ConfigError(f"{name}: {exc}") from None
        if self.mix is not None:
            try:
                check_spec(parse_mix(self.mix).spec, "train")
            except DataError as exc:
                raise ConfigError(f"mix: {exc}") from None

    def _check_positive(self) -> None:
        """Sizes, counts and step sizes are > 0 (the optional ones only when set)."""
        for name in _POSITIVE:
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in _POSITIVE_WHEN_SET:
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(f"{name} must be > 0 when set, got {value}")

    def _check_ranges(self) -> None:
        """The seed, precision, optimizer settings, negatives and dropouts lie in their valid ranges."""
        if not 0 <= self.seed <= SEED_MAX:
            raise ConfigError(f"seed must be between 0 and {SEED_MAX}, got {self.seed}")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ConfigError(f"precision must be auto, fp32 or bf16, got {self.precision!r}")
        if self.learning_rate > 1:
            raise ConfigError(
                f"learning_rate must be at most 1 (fine-tuning uses about 1e-5 to 1e-3), got {self.learning_rate}"
            )
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay must be >= 0, got {self.weight_decay}")
        for name in ("negatives", "mined_negatives", "restated"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"{name} must be a fraction in [0, 1] (0: none), got {getattr(self, name)}")
        parse_kinds(self.negative_kinds)
        if self.span_loss not in SPAN_LOSSES:
            raise ConfigError(f"span_loss must be one of {', '.join(SPAN_LOSSES)}, got {self.span_loss!r}")
        for name in ("dropout", "attention_dropout"):
            value = getattr(self, name)
            if value is not None and not 0 <= value < 1:
                raise ConfigError(f"{name} must be in [0, 1) or null (the model's own), got {value}")

    def _check_best_model(self) -> None:
        """The best-model metric is known, and keeping the best model or stopping early has evaluations."""
        if self.metric_for_best_model not in BEST_MODEL_METRICS:
            raise ConfigError(
                f"metric_for_best_model must be one of {', '.join(BEST_MODEL_METRICS)}, "
                f"got {self.metric_for_best_model!r}"
            )
        if (self.load_best_model_at_end or self.early_stopping_patience) and not self.eval_data:
            raise ConfigError("load_best_model_at_end and early_stopping_patience need evaluations: set eval_data")
        if self.early_stopping_patience is not None and self.early_stopping_patience < 1:
            raise ConfigError(f"early_stopping_patience must be >= 1 when set, got {self.early_stopping_patience}")

    def _check_trackers(self) -> None:
        """Every tracker named in report_to is known (the trackers module is loaded only when checking)."""
        from qatune.training.trackers import parse_report_to

        parse_report_to(self.report_to)  # a ConfigError naming an unknown tracker

    def _check_budget(self) -> None:
        """Calibration size, epoch count and micro-batch fit together, before any work is spent on them."""
        if self.calibration_questions < 0:
            raise ConfigError(f"calibration_questions must be >= 0 (0: off), got {self.calibration_questions}")
        if self.max_steps is None and self.num_train_epochs > MAX_EPOCHS:
            raise ConfigError(f"num_train_epochs must be at most {MAX_EPOCHS}, got {self.num_train_epochs}")
        if self.train_batch_size % self.micro_batch:
            raise ConfigError(
                f"train_batch_size ({self.train_batch_size}) must be a multiple of micro_batch_size "
                f"({self.micro_batch_size}), the batch that goes through the model at once"
            )

    def to_dict(self) -> Settings:
        """Every setting, except those added since folders were first written while they are at their
        defaults: an older qatune.json or study result reads back and writes out unchanged, and a
        study's cache keys stay (`LATER_DEFAULTS`)."""
        values = dataclasses.asdict(self)
        if not self.negatives:
            del values["negative_kinds"]  # no negatives: their kinds do not change the run
        return {k: v for k, v in values.items() if k not in LATER_DEFAULTS or v != LATER_DEFAULTS[k]}

    @classmethod
    def from_dict(cls, values: Mapping[str, object]) -> TrainConfig:
        """Build from a mapping of raw values (a file, flags, a sweep's settings), each checked against its
        field's type; unknown keys are rejected with the list of valid ones."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"unknown setting(s) {', '.join(unknown)}; valid: {', '.join(sorted(names))}")
        return cls(**{name: typed(name, value) for name, value in values.items()}).check()

    @classmethod
    def from_saved(cls, values: Mapping[str, object]) -> TrainConfig:
        """`from_dict` of a config qatune wrote (`upgraded`)."""
        return cls.from_dict(upgraded(values))

    def same_run(self, other: TrainConfig) -> bool:
        """Whether `other` describes the same training (so a checkpoint of one resumes the other)."""
        ignore = {"eval_steps", "save_steps", "logging_steps", "eval_batch_size", "data_dir", "output_dir"}
        ignore |= {"calibration_questions"}  # fitted after training: it does not change the weights
        ignore |= {"load_best_model_at_end", "metric_for_best_model", "early_stopping_patience", "report_to"}
        if not (self.negatives or other.negatives):
            ignore.add("negative_kinds")  # no negatives: their kinds do not change the run
        # every field, not `to_dict`'s: it leaves out later settings at their defaults, on one side only
        mine, theirs = dataclasses.asdict(self), dataclasses.asdict(other)
        return all(mine[k] == theirs[k] for k in mine if k not in ignore)


def upgraded(values: Mapping[str, Any]) -> Mapping[str, Any]:
    """Saved settings as this qatune reads them: a run from before `negative_kinds` existed made its
    negatives of the `article` kind only."""
    if values.get("negatives") and "negative_kinds" not in values:
        return {**values, "negative_kinds": "article"}
    return values


@functools.cache
def field_types(cls: type | None = None) -> dict[str, tuple[type, bool]]:
    """Each field's type and whether it may be None, from a dataclass's annotations (TrainConfig's
    settings by default)."""
    cls = cls or TrainConfig
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        args = typing.get_args(hints[f.name])
        kind = next((a for a in args if a is not type(None)), hints[f.name])
        out[f.name] = (kind, type(None) in args)
    return out


def typed(name: str, value: object, cls: type | None = None, where: str = "") -> Any:
    """`value` checked against the field's type: YAML's `"no"`, `"3e-4"` or `true` for a number are
    errors, not silently truthy or compared as strings; an int is accepted for a float field. The
    result has the type of field `name` (so: Any, statically)."""
    kind, optional = field_types(cls)[name]
    if value is None and optional:
        return value
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, kind) and (kind is bool or not isinstance(value, bool)):
        return value
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    raise ConfigError(
        f"{where}{name} must be {names.get(kind, kind.__name__)}{' or null' if optional else ''}, got {value!r}"
    )

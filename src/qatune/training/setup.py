"""The pieces a fine-tuning run is built from: its data, window loader, optimizer, accelerator and dropout."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
from torch.utils.data import DataLoader, Dataset
from transformers import DataCollatorWithPadding
from transformers.trainer_pt_utils import get_length_grouped_indices

from qatune.compat import accelerate_precision, reset_accelerate_precision
from qatune.data.mix import mix_held, mix_in, parse_mix
from qatune.data.negatives import add_mined_negatives, add_negatives, parse_kinds
from qatune.data.restated import add_restated
from qatune.data.sources import load_data
from qatune.data.squad import QADataset
from qatune.data.windows import WindowConfig, Windows, check_windows, tokenize_windows
from qatune.errors import ConfigError, DataError, ModelError
from qatune.hardware import Precision
from qatune.io import read_json
from qatune.layout import CONFIG_FILE
from qatune.models.embedding import perturber_for
from qatune.training.config import TrainConfig
from qatune.training.loss import BoundedWindows


def load_train_eval(config: TrainConfig) -> tuple[QADataset, QADataset | None, QADataset | None]:
    """The training slice (with `mix`'s questions), the (optional) evaluation slice, and the calibration
    questions: up to `calibration_questions` of the training file's questions that are not in the training
    slice, so a model fine-tuned further on one's own data is calibrated on one's own questions."""
    full = load_data(config.train_data, "train", data_dir=config.data_dir, skip_invalid=config.skip_invalid)
    train = full.select(config.train_limit, config.train_sample, config.seed)
    own = len(train)  # the ratio of a mix counts these, not the negatives made from them
    dev = None
    if config.eval_data:
        dev = load_data(config.eval_data, "validation", data_dir=config.data_dir, skip_invalid=config.skip_invalid)
        dev = dev.select(config.eval_limit, config.eval_sample, config.seed)
    mix = parse_mix(config.mix) if config.mix else None
    size = mix.own_share(config.calibration_questions) if mix else config.calibration_questions  # room for the mix's
    held = full.held_out(train, size, config.seed) if size else None
    own_held = len(held) if held else 0
    # the held-out questions get negatives too (other seeds, the same kinds): the no-answer threshold is chosen on them
    if config.negatives:
        kinds = parse_kinds(config.negative_kinds)
        perturber = perturber_for(full.examples, kinds)
        train = add_negatives(train, config.negatives, config.seed, full, kinds=kinds, perturber=perturber)
        if held:
            held = add_negatives(
                held, config.negatives, config.seed + 1, full, strict=False, kinds=kinds, perturber=perturber
            )
    if config.mined_negatives:
        train = add_mined_negatives(train, config.mined_negatives, config.seed + 2, pool=full)
        held = (
            add_mined_negatives(held, config.mined_negatives, config.seed + 3, pool=full, strict=False)
            if held
            else None
        )
    if config.restated:  # the training questions only: the threshold is chosen on questions as they come
        train = add_restated(train, config.restated, config.seed + 6)
    if mix:  # after the negatives: the mixed-in questions come as their file has them
        other = load_data(mix.spec, "train", data_dir=config.data_dir, skip_invalid=config.skip_invalid)
        train = mix_in(train, other, mix, config.seed + 4, own=own, kept_apart=dev)
        held = (
            mix_held(held, other, train, mix, config.seed + 5, own_held, config.calibration_questions) if held else None
        )
    return train, dev, held


@dataclass(frozen=True)
class TrainingData:
    """What a run trains on (with its windows), evaluates on, and calibrates on."""

    train: QADataset
    dev: QADataset | None
    held: QADataset | None
    windows: Windows  # the training questions'


def windowed(
    sets: tuple[QADataset, QADataset | None, QADataset | None], tokenizer: Any, window: WindowConfig
) -> TrainingData:
    """`load_train_eval`'s sets with the training windows, every question of all three checked against the
    work bound first (a dev question over it would otherwise fail the first evaluation, minutes in)."""
    train, dev, held = sets
    for other in (dev, held):
        if other is not None:
            check_windows(tokenize_windows(other.examples, tokenizer, window), other, window.max_seq_length)
    windows = tokenize_windows(train.examples, tokenizer, window)
    check_windows(windows, train, window.max_seq_length)
    return TrainingData(train, dev, held, windows)


def held_out_questions(model_dir: str | Path, size: int) -> QADataset:
    """Up to `size` of a qatune model's training-file questions it was not trained on: the questions
    `qatune train` calibrates on, found again from the config in its qatune.json."""
    path = Path(model_dir) / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(f"{model_dir}: no {CONFIG_FILE}, so its training questions are unknown; pass --data FILE")
    saved = read_json(path, "run summary", ModelError)
    if not isinstance(saved, dict) or not isinstance(saved.get("config"), dict):
        raise ModelError(f"{path}: has no training config; pass --data FILE")
    try:
        config = dataclasses.replace(
            TrainConfig.from_saved(saved["config"]), calibration_questions=size, eval_data=None
        )
    except ConfigError as exc:
        raise ModelError(f"{path}: {exc}") from None
    held = load_train_eval(config)[2]
    if held is None:
        raise DataError(f"{config.train_data}: every question was used for training; pass --data FILE")
    return held


def make_accelerator(precision: Precision, accumulation_steps: int) -> Any:
    """Accelerate with the run's mixed precision: bf16/fp16 autocast with float32 master weights and
    optimizer state, or plain float32."""
    from accelerate import Accelerator

    current = accelerate_precision()
    if current is not None and current != precision.mixed_precision:
        # Accelerate keeps one precision per process; a second run in this process with another one
        # (the Python API, tests) resets it. The process group (DDP) is kept.
        reset_accelerate_precision()
    accelerator = Accelerator(
        gradient_accumulation_steps=accumulation_steps,
        mixed_precision=precision.mixed_precision,
        cpu=not torch.cuda.is_available(),
    )  # cpu=True is what enables DDP over gloo; threads: `hardware.compute_threads`, set by the CLI
    return accelerator


@dataclass
class Parts:
    """What the loop steps, prepared by Accelerate: the model, its optimizer and schedule, the window loader."""

    accelerator: Any  # accelerate.Accelerator
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any  # a transformers learning-rate schedule
    loader: Any  # the prepared DataLoader of windows
    steps_per_epoch: int
    total_steps: int


def build_parts(
    config: TrainConfig, model: torch.nn.Module, tokenizer: Any, windows: Windows, precision: Precision
) -> Parts:
    """The run's accelerator, loader, optimizer and linear warm-up/decay schedule, with the model in
    training mode at the configured dropout."""
    from transformers import get_linear_schedule_with_warmup

    cuda = torch.cuda.is_available()
    accumulation = config.accumulation_on(gpu=cuda)
    accelerator = make_accelerator(precision, accumulation)
    loader = accelerator.prepare(window_loader(windows, tokenizer, config, config.micro_batch_on(gpu=cuda)))
    steps_per_epoch = max(1, math.ceil(len(loader) / accumulation))
    total_steps = config.max_steps or math.ceil(config.num_train_epochs * steps_per_epoch)
    set_dropout(model, config.dropout, config.attention_dropout)
    model.train()
    optimizer = make_optimizer(model, config)
    scheduler = get_linear_schedule_with_warmup(optimizer, round(config.warmup_ratio * total_steps), total_steps)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    return Parts(accelerator, model, optimizer, scheduler, loader, steps_per_epoch, total_steps)


@dataclass
class Losses:
    """Training losses since the last logged record and since the last evaluation."""

    total: float = 0.0
    count: int = 0
    since_eval: float = 0.0
    since_eval_count: int = 0

    def add(self, value: float) -> None:
        self.total, self.count = self.total + value, self.count + 1
        self.since_eval, self.since_eval_count = self.since_eval + value, self.since_eval_count + 1

    def mean(self) -> float:
        return self.total / max(self.count, 1)

    def take(self) -> float:
        """The mean since the last logged record, starting a new one."""
        mean, self.total, self.count = self.mean(), 0.0, 0
        return mean

    def take_since_eval(self) -> float | None:
        """The mean since the last evaluation (None if no step came between), starting anew."""
        mean = self.since_eval / self.since_eval_count if self.since_eval_count else None
        self.since_eval, self.since_eval_count = 0.0, 0
        return mean


class EpochSampler(torch.utils.data.Sampler[int]):
    """Window order of an epoch: a function of (seed, epoch) only, so a resumed run replays it exactly.

    With `group_by_length`, batches hold windows of similar length (HF's mega-batch recipe), which
    keeps dynamic padding small.
    """

    def __init__(self, lengths: list[int], batch_size: int, seed: int, group_by_length: bool) -> None:
        self.lengths, self.batch_size, self.seed, self.group = lengths, batch_size, seed, group_by_length
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        if self.group:
            return iter(get_length_grouped_indices(self.lengths, self.batch_size, generator=generator))
        return iter(torch.randperm(len(self.lengths), generator=generator).tolist())


def window_loader(windows: Windows, tokenizer: Any, config: TrainConfig, batch: int) -> DataLoader[Any]:
    """Micro-batches of `batch` training windows, padded to the longest window in each batch."""
    sampler = EpochSampler([len(ids) for ids in windows.input_ids], batch, config.seed, config.group_by_length)
    # The loader gets its own generator: otherwise each new iterator draws a seed from the global RNG,
    # which drives dropout, and a resumed run would see other dropout masks than an uninterrupted one.
    dataset = BoundedWindows(windows) if config.span_loss == "joint" else windows
    return DataLoader(
        cast("Dataset[dict[str, object]]", dataset),  # a map-style dataset: __len__ and __getitem__
        batch_size=batch,
        sampler=sampler,
        collate_fn=DataCollatorWithPadding(tokenizer),
        generator=torch.Generator().manual_seed(config.seed),
    )


def set_dropout(model: torch.nn.Module, p: float | None, attention: float | None = None) -> None:
    """Set the dropout layers' probability: `p` for every layer, `attention` for the dropout of the
    attention probabilities (the Dropout inside a `*SelfAttention` module: BERT, RoBERTa, ELECTRA,
    DistilBERT, ...); None leaves a layer as the model has it.

    Only the modules change, not the saved model config: dropout is a training setting (recorded in
    qatune.json), and a model fine-tuned further from this one starts from its own defaults again.
    """
    inside_attention = {
        id(child)
        for module in model.modules()
        if type(module).__name__.endswith("SelfAttention")
        for child in module.children()
        if isinstance(child, torch.nn.Dropout)
    }
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            value = attention if attention is not None and id(module) in inside_attention else p
            if value is not None:
                module.p = value


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW without decay on biases and LayerNorm weights; fused kernels where available."""
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for param in model.parameters():
        (no_decay if param.ndim < 2 else decay).append(param)
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    try:
        return torch.optim.AdamW(groups, lr=config.learning_rate, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(groups, lr=config.learning_rate)

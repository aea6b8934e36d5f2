"""Fine-tune a model for extractive QA: a plain loop on Accelerate with dynamic padding.

Why a plain loop and not `transformers.Trainer`: QA evaluation needs span decoding over windows,
and on a 2-core CPU the loop (length-grouped batches, fused AdamW, no per-step overhead) is
faster. Accelerate still gives DDP under `torchrun`/`accelerate launch`, autocast on GPUs,
gradient accumulation and checkpoint/RNG state, so none of that is hand-written.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any, cast

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm
from transformers import DataCollatorWithPadding, get_linear_schedule_with_warmup
from transformers.trainer_pt_utils import get_length_grouped_indices

from qatune import best
from qatune import checkpoint as ckpt
from qatune.calibration import write_calibration
from qatune.card import write_card
from qatune.config import TrainConfig
from qatune.data import QADataset
from qatune.errors import ConfigError, DataError, ModelError, TrainingDiverged, TrainingInterrupted
from qatune.hardware import Precision, resolve_precision
from qatune.inference import calibrate, evaluate
from qatune.io import append_jsonl, atomic_write_json, normal_mode, read_json, read_jsonl
from qatune.layout import CHECKPOINTS, CONFIG_FILE, HISTORY_FILE, PROGRESS_FILE
from qatune.models import LoadedModel, load_model
from qatune.negatives import add_negatives
from qatune.sources import load_data
from qatune.trackers import Feed, RunInfo, open_feed, parse_report_to
from qatune.windows import Windows, tokenize_windows

logger = logging.getLogger(__name__)

Callback = Callable[[dict[str, Any]], None]
MIN_CALIBRATION_QUESTIONS = 50


def load_train_eval(config: TrainConfig) -> tuple[QADataset, QADataset | None, QADataset | None]:
    """The training slice, the (optional) evaluation slice, and the calibration questions: up to
    `calibration_questions` of the training file's questions that are not in the training slice."""
    full = load_data(config.train_data, "train", data_dir=config.data_dir, skip_invalid=config.skip_invalid)
    train = full.select(config.train_limit, config.train_sample, config.seed)
    dev = None
    if config.eval_data:
        dev = load_data(config.eval_data, "validation", data_dir=config.data_dir, skip_invalid=config.skip_invalid)
        dev = dev.select(config.eval_limit, config.eval_sample, config.seed)
    held = full.held_out(train, config.calibration_questions, config.seed) if config.calibration_questions else None
    if config.negatives:  # the held-out questions get them too: the no-answer threshold is chosen on them
        train = add_negatives(train, config.negatives, config.seed, pool=full)
        held = add_negatives(held, config.negatives, config.seed + 1, pool=full) if held else None
    return train, dev, held


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
        config = dataclasses.replace(TrainConfig.from_dict(saved["config"]), calibration_questions=size, eval_data=None)
    except ConfigError as exc:
        raise ModelError(f"{path}: {exc}") from None
    held = load_train_eval(config)[2]
    if held is None:
        raise DataError(f"{config.train_data}: every question was used for training; pass --data FILE")
    return held


def _make_accelerator(precision: Precision, accumulation_steps: int):
    """Accelerate with the run's mixed precision: bf16/fp16 autocast with float32 master weights and
    optimizer state, or plain float32."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    state = AcceleratorState._shared_state
    if state and state.get("_mixed_precision", precision.mixed_precision) != precision.mixed_precision:
        # Accelerate keeps one precision per process; a second run in this process with another one
        # (the Python API, tests) resets it. The process group (DDP) is kept.
        AcceleratorState._reset_state(reset_partial_state=False)
    accelerator = Accelerator(
        gradient_accumulation_steps=accumulation_steps,
        mixed_precision=precision.mixed_precision,
        cpu=not torch.cuda.is_available(),
    )  # cpu=True is what enables DDP over gloo
    if accelerator.device.type == "cpu":
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // accelerator.num_processes))
    return accelerator


class _EpochSampler(torch.utils.data.Sampler[int]):
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


def _loader(windows: Windows, tokenizer, config: TrainConfig, batch: int) -> DataLoader:
    """Micro-batches of `batch` training windows, padded to the longest window in each batch."""
    sampler = _EpochSampler([len(ids) for ids in windows.input_ids], batch, config.seed, config.group_by_length)
    # The loader gets its own generator: otherwise each new iterator draws a seed from the global RNG,
    # which drives dropout, and a resumed run would see other dropout masks than an uninterrupted one.
    return DataLoader(
        cast("Dataset[dict[str, Any]]", windows),  # a map-style dataset: __len__ and __getitem__
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


def _optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
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


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM (kill) like Ctrl-C so both leave a checkpoint."""

    def handler(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class _Run:
    """State of one fine-tuning run; `fit` is the loop."""

    def __init__(
        self,
        config: TrainConfig,
        loaded: LoadedModel,
        train: QADataset,
        dev: QADataset | None,
        callback: Callback | None,
        progress_bar: bool,
    ) -> None:
        self.config, self.loaded, self.dev, self.callback = config, loaded, dev, callback
        self.out = Path(config.output_dir)
        cuda = torch.cuda.is_available()
        self.precision = resolve_precision(config.precision, cuda, cuda and torch.cuda.is_bf16_supported())
        self.accumulation = config.accumulation_on(gpu=cuda)
        self.accelerator = _make_accelerator(self.precision, self.accumulation)
        self.windows = tokenize_windows(train.examples, loaded.tokenizer, config.window)
        self.with_null = train.has_impossible
        micro = config.micro_batch_on(gpu=cuda)
        self.loader = self.accelerator.prepare(_loader(self.windows, loaded.tokenizer, config, micro))
        self.steps_per_epoch = max(1, math.ceil(len(self.loader) / self.accumulation))
        self.total_steps = config.max_steps or math.ceil(config.num_train_epochs * self.steps_per_epoch)
        self.model = loaded.model
        set_dropout(self.model, config.dropout, config.attention_dropout)
        self.model.train()
        optimizer = _optimizer(self.model, config)
        scheduler = get_linear_schedule_with_warmup(
            optimizer, round(config.warmup_ratio * self.total_steps), self.total_steps
        )
        self.model, self.optimizer, self.scheduler = self.accelerator.prepare(self.model, optimizer, scheduler)
        self.progress = ckpt.Progress()
        self.bar = tqdm(
            total=self.total_steps,
            desc="fine-tuning",
            unit="step",
            dynamic_ncols=True,
            disable=not (progress_bar and self.accelerator.is_main_process),
        )
        self.loss_sum, self.loss_count, self.began = 0.0, 0, time.perf_counter()
        self.since_eval_sum, self.since_eval_count = 0.0, 0

    def record(self, kind: str, values: dict[str, Any]) -> None:
        entry = {
            "type": kind,
            "step": self.progress.step,
            "epoch": round(self.progress.step / self.steps_per_epoch, 4),
            "windows_seen": self.progress.windows_seen,
            "elapsed": round(time.perf_counter() - self.began, 2),
            **values,
        }
        if self.accelerator.is_main_process:
            append_jsonl(self.out / HISTORY_FILE, entry)
            if self.callback:
                self.callback(entry)

    def evaluate(self) -> None:
        """Score the dev slice (main process only) and append an 'eval' record to the history."""
        if self.dev is None:
            return
        if self.accelerator.is_main_process:
            unwrapped = LoadedModel(
                self.accelerator.unwrap_model(self.model),
                self.loaded.tokenizer,
                self.loaded.name,
                self.loaded.path,
                self.loaded.fresh_head,
            )
            model_config: Any = unwrapped.model.config
            model_config.qatune_with_null = self.with_null
            result = evaluate(
                unwrapped, self.dev, self.config.window, self.config.eval_batch_size, self.config.max_answer_length
            )
            train_loss = self.since_eval_sum / self.since_eval_count if self.since_eval_count else None
            self.since_eval_sum, self.since_eval_count = 0.0, 0
            metrics = {k: v for k, v in result.metrics.items() if k != "questions_per_second"}
            self.record("eval", {"train_loss": train_loss, **metrics})
            best.record(self.config, self.progress, metrics, unwrapped.model, self.out)
            line = (
                f"step {self.progress.step}: EM {metrics['exact_match']:.2f} F1 {metrics['f1']:.2f} "
                f"eval loss {metrics['eval_loss']:.3f}"
            )
            if self.bar.disable:
                logger.info(line)
            else:
                self.bar.write(line)
        self.accelerator.wait_for_everyone()
        if self.accelerator.num_processes > 1:  # every rank stops together
            from accelerate.utils import broadcast_object_list

            self.progress.evals_since_best = broadcast_object_list([self.progress.evals_since_best])[0]
        self.model.train()

    def resume(self) -> None:
        latest = ckpt.latest_checkpoint(self.out)
        if latest is None:
            (self.out / HISTORY_FILE).unlink(missing_ok=True)
            return
        self.accelerator.load_state(str(latest))
        self.progress = ckpt.load_progress(latest)
        ckpt.trim_history(self.out, self.progress.step)
        self.bar.update(self.progress.step)
        logger.info("resumed from %s (step %d of %d)", latest, self.progress.step, self.total_steps)

    def _step_done(self, boundary: int, windows: int) -> None:
        p, c = self.progress, self.config
        p.step += 1
        p.batch_in_epoch = boundary
        p.windows_seen += windows
        rate = p.windows_seen / max(time.perf_counter() - self.began, 1e-9)
        self.bar.set_postfix(loss=f"{self.loss_sum / max(self.loss_count, 1):.3f}", windows_s=f"{rate:.1f}")
        self.bar.update(1)
        if p.step % c.logging_steps == 0:
            self.record(
                "train",
                {"loss": self.loss_sum / max(self.loss_count, 1), "learning_rate": self.scheduler.get_last_lr()[0]},
            )
            self.loss_sum, self.loss_count = 0.0, 0
        if c.eval_steps and p.step % c.eval_steps == 0 and p.step < self.total_steps:
            self.evaluate()
            if best.should_stop(c, p):
                logger.info(
                    "early stopping at step %d: %d evaluations without a better %s",
                    p.step,
                    p.evals_since_best,
                    c.metric_for_best_model,
                )
                self.record("early_stop", {"best_step": p.best_step, "best_value": p.best_value})
                self.total_steps = p.step  # the loop ends here; this step's evaluation is the last
        if p.step % c.effective_save_steps == 0 and p.step < self.total_steps:
            ckpt.save_checkpoint(self.accelerator, self.out, p) if self.accelerator.is_main_process else None
            self.accelerator.wait_for_everyone()

    def _diverged(self, what: str, value: float) -> None:
        """Stop before a non-finite loss or gradient reaches the weights; say which setting to change."""
        c, step = self.config, self.progress.step + 1
        self.record("diverged", {"what": what, "value": str(value)})
        cause = (
            f"weight_decay ({c.weight_decay:g}) times the learning rate ({c.learning_rate:g}) is over 1, which "
            f"flips and blows up the weights; use a weight_decay below 1 (0.01 is usual)"
            if c.weight_decay * c.learning_rate >= 1
            else f"the learning rate ({c.learning_rate:g}) is the likely cause; lower it (fine-tuning uses about 1e-5 "
            f"to 5e-4), or check weight_decay ({c.weight_decay:g}) and max_grad_norm ({c.max_grad_norm:g})"
        )
        raise TrainingDiverged(
            f"training diverged at step {step} of {self.total_steps}: the {what} is {value}; "
            f"{cause}. No model was saved"
        )

    def fit(self) -> None:
        """The training loop: epochs of micro-batches, an optimizer step every `accumulation_steps`."""
        p, c = self.progress, self.config
        if p.step == 0 and c.eval_at_start:
            self.evaluate()
        while p.step < self.total_steps:
            self.loader.set_epoch(p.epoch)
            start_batch, pending = p.batch_in_epoch, 0
            batches = self.accelerator.skip_first_batches(self.loader, start_batch) if start_batch else self.loader
            for n, batch in enumerate(batches, start=start_batch + 1):
                with self.accelerator.accumulate(self.model):
                    loss = self.model(**batch).loss
                    value = float(loss.detach())
                    if not math.isfinite(value):
                        self._diverged("loss", value)
                    self.accelerator.backward(loss)
                    if self.accelerator.sync_gradients:
                        norm = self.accelerator.clip_grad_norm_(self.model.parameters(), c.max_grad_norm)
                        if norm is not None and not math.isfinite(float(norm)):
                            self._diverged("gradient norm", float(norm))
                    self.optimizer.step()
                    self.scheduler.step()
                    self.optimizer.zero_grad()
                self.loss_sum += value
                self.loss_count += 1
                self.since_eval_sum += value
                self.since_eval_count += 1
                pending += len(batch["input_ids"]) * self.accelerator.num_processes
                if self.accelerator.sync_gradients:
                    self._step_done(n, pending)
                    pending = 0
                    if p.step >= self.total_steps:
                        break
            else:
                p.epoch, p.batch_in_epoch = p.epoch + 1, 0
        if not best.should_stop(c, p):  # an early stop has just evaluated this step
            self.evaluate()
        self.bar.close()


def _versions() -> dict[str, str]:
    import accelerate
    import transformers

    import qatune

    return {
        "qatune": qatune.__version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "accelerate": accelerate.__version__,
    }


def _calibrate(run: _Run, held: QADataset | None) -> dict[str, Any] | None:
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
    model = cast(Any, run.accelerator.unwrap_model(run.model))
    loaded = LoadedModel(model, run.loaded.tokenizer, run.loaded.name, str(run.out), False, run.config.window)
    c = run.config
    calibration = calibrate(loaded, held, c.window, c.eval_batch_size, c.max_answer_length)
    write_calibration(run.out, calibration)
    logger.info(
        "calibrated on %d held-out questions: temperature %.3f, ECE %.3f -> %.3f",
        calibration.questions,
        calibration.temperature,
        calibration.ece_before,
        calibration.ece_after,
    )
    return dataclasses.asdict(calibration)


def _chosen_eval(history: list[dict[str, Any]], chosen: dict[str, Any] | None) -> dict[str, Any] | None:
    """The evaluation of the saved weights: the best one's with load_best_model_at_end, else the last."""
    if chosen and chosen.get("loaded"):
        return next((r for r in reversed(history) if r["step"] == chosen["step"]), None)
    return history[-1] if history else None


def _save_final(
    run: _Run, train: QADataset, dev: QADataset | None, held: QADataset | None, command: str | None
) -> dict[str, Any]:
    """Write the loadable model folder (safetensors + tokenizer), its calibration, the config and the final
    metrics."""
    out, model = run.out, cast(Any, run.accelerator.unwrap_model(run.model))
    model.config.qatune_with_null = run.with_null
    chosen = best.restore(run.config, run.progress, model, out)
    tmp = out / ".tmp-model"
    model.save_pretrained(tmp, safe_serialization=True)
    run.loaded.tokenizer.save_pretrained(tmp)
    for item in tmp.iterdir():
        normal_mode(item)  # transformers writes the weights through a 0600 temp file
        os.replace(item, out / item.name)
    tmp.rmdir()
    history = [r for r in read_jsonl(out / HISTORY_FILE) if r["type"] == "eval"]
    summary = {
        "config": run.config.to_dict(),
        "versions": _versions(),
        "precision": {**dataclasses.asdict(run.precision), "bf16_flags": list(run.precision.bf16_flags)},
        "base_model_path": run.loaded.path,
        "train_data": {
            "source": train.source,
            "questions": len(train),
            "windows": len(run.windows),
            "notes": train.notes,
        },
        "eval_data": {"source": dev.source, "questions": len(dev), "notes": dev.notes} if dev else None,
        "steps": run.progress.step,
        "windows_seen": run.progress.windows_seen,
        "seconds": round(time.perf_counter() - run.began, 1),
        "final_eval": _chosen_eval(history, chosen),
        "best": chosen,
        "calibration": _calibrate(run, held),
    }
    atomic_write_json(out / CONFIG_FILE, summary)
    write_card(out, summary, history, command)
    run.progress.completed = True
    atomic_write_json(out / PROGRESS_FILE, asdict(run.progress))
    return summary


def train(
    config: TrainConfig,
    *,
    overwrite: bool = False,
    callback: Callback | None = None,
    progress_bar: bool = True,
    loaded: LoadedModel | None = None,
    command: str | None = None,
) -> dict[str, Any]:
    """Fine-tune `config.model` on `config.train_data`; resumes from the last checkpoint if there is one.

    `loaded` passes an already loaded model (trained in place) instead of loading `config.model`;
    `command` (the command line that started it) goes into the model card.
    Returns the run summary (also saved as `qatune.json` beside the model).
    """
    config.check()
    done = ckpt.check_output(config, overwrite)
    out = Path(config.output_dir)
    if done is not None:
        logger.warning("%s already holds a finished run (step %d); pass --overwrite to train again", out, done.step)
        return read_json(out / CONFIG_FILE, "run file")
    train_set, dev, held = load_train_eval(config)  # bad data or model: an error before anything is written
    loaded = loaded or load_model(config.model, seed=config.seed)
    loaded.checked_window(config.window)
    ckpt.prepare_output(config, overwrite)
    atomic_write_json(out / CONFIG_FILE, {"config": config.to_dict(), "versions": _versions()})
    run = _Run(config, loaded, train_set, dev, callback, progress_bar)
    feed = _open_trackers(run)
    run.resume()
    try:
        with _sigterm_as_interrupt():
            run.fit()
    except TrainingDiverged:
        run.bar.close()
        feed.finish({}, "failed")
        raise
    except KeyboardInterrupt:
        run.bar.close()
        feed.finish({}, "interrupted")
        saved = run.progress.step
        if run.accelerator.is_main_process and saved > 0:
            ckpt.save_checkpoint(run.accelerator, out, run.progress)
        raise TrainingInterrupted(
            f"interrupted at step {saved} of {run.total_steps}; run the same command again to resume"
        ) from None
    if run.accelerator.is_main_process:
        summary = _save_final(run, train_set, dev, held, command)
        feed.finish(summary.get("final_eval") or {}, "complete")
        shutil.rmtree(out / CHECKPOINTS, ignore_errors=True)
        return summary
    return {}


def _open_trackers(run: _Run) -> Feed:
    """The run's trackers (--report-to; main process only), fed every record the run writes."""
    names = parse_report_to(run.config.report_to) if run.accelerator.is_main_process else ()
    feed = open_feed(names, RunInfo(run.out.name, run.out, run.config.to_dict()))
    if feed.trackers:
        user = run.callback

        def both(entry: dict[str, Any]) -> None:
            feed(entry)
            if user:
                user(entry)

        run.callback = both
    return feed

"""Fine-tune a model for extractive QA: a plain loop on Accelerate with dynamic padding.

Why a plain loop and not `transformers.Trainer`: QA evaluation needs span decoding over windows,
and on a 2-core CPU the loop (length-grouped batches, fused AdamW, no per-step overhead) is
faster. Accelerate still gives DDP under `torchrun`/`accelerate launch`, autocast on GPUs,
gradient accumulation and checkpoint/RNG state, so none of that is hand-written.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any, NoReturn

import torch
from tqdm.auto import tqdm

from qatune.answering.torch_backend import Answerer
from qatune.errors import NonFiniteOutputs, TrainingDiverged, TrainingInterrupted
from qatune.evaluation.scoring import evaluate
from qatune.hardware import package_versions, resolve_precision
from qatune.io import append_jsonl, atomic_write_json
from qatune.layout import CHECKPOINTS, CONFIG_FILE, HISTORY_FILE
from qatune.models.attention import attention, training_attention
from qatune.models.loading import LoadedModel, load_model
from qatune.paths import exclusive, first_missing, removed_if_new
from qatune.training import best
from qatune.training import checkpoint as ckpt
from qatune.training.config import TrainConfig
from qatune.training.history import HistoryRecord, HistoryValues, Kind, eval_values
from qatune.training.loss import batch_loss
from qatune.training.saving import FinishedRun, save_final
from qatune.training.setup import Losses, TrainingData, build_parts, load_train_eval, windowed
from qatune.training.summary import RunSummary
from qatune.training.trackers import Feed, RunInfo, check_trackers, open_feed, parse_report_to

logger = logging.getLogger(__name__)

Callback = Callable[[HistoryRecord], None]


class _Run:
    """State of one fine-tuning run; `fit` is the loop."""

    def __init__(
        self,
        config: TrainConfig,
        loaded: LoadedModel,
        data: TrainingData,
        callback: Callback | None,
        progress_bar: bool,
    ) -> None:
        self.config, self.loaded, self.dev, self.callback = config, loaded, data.dev, callback
        self.out = Path(config.output_dir)
        cuda = torch.cuda.is_available()
        self.precision = resolve_precision(config.precision, cuda, cuda and torch.cuda.is_bf16_supported())
        self.windows = data.windows
        self.with_null = data.train.has_impossible
        self.own_attention = getattr(loaded.model.config, "_attn_implementation", None)
        self.train_attention = training_attention(self.precision)
        parts = build_parts(config, loaded.model, loaded.tokenizer, self.windows, self.precision)
        self.accelerator, self.model, self.optimizer = parts.accelerator, parts.model, parts.optimizer
        self.scheduler, self.loader = parts.scheduler, parts.loader
        self.steps_per_epoch, self.total_steps = parts.steps_per_epoch, parts.total_steps
        self.progress = ckpt.Progress()
        self.bar = tqdm(
            total=self.total_steps,
            desc="fine-tuning",
            unit="step",
            dynamic_ncols=True,
            disable=not (progress_bar and self.accelerator.is_main_process),
        )
        self.losses, self.began = Losses(), time.perf_counter()
        self.logged = 0  # the last step whose train record was written

    def finished(self) -> FinishedRun:
        """The finished run as the saver takes it."""
        return FinishedRun(
            self.config,
            self.out,
            self.accelerator.unwrap_model(self.model),
            self.loaded,
            self.precision,
            len(self.windows),
            self.with_null,
            self.progress,
            time.perf_counter() - self.began,
        )

    def record(self, kind: Kind, values: HistoryValues) -> None:
        entry: HistoryRecord = {
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
            try:
                with attention(unwrapped.model, self.own_attention):
                    c = self.config
                    result = evaluate(Answerer(unwrapped, c.window, c.max_answer_length, c.eval_batch_size), self.dev)
            except NonFiniteOutputs:  # the last step's update blew the weights up before a loss could show it
                self._diverged("model's output on the dev slice", math.nan, self.progress.step)
            train_loss = self.losses.take_since_eval()
            scores = result.scores
            self.record("eval", eval_values(train_loss, scores))
            best.record(self.config, self.progress, scores, unwrapped.model, self.out)
            line = (
                f"step {self.progress.step}: EM {scores.exact_match:.2f} F1 {scores.f1:.2f} "
                f"eval loss {scores.eval_loss:.3f}"
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
        self.progress = ckpt.load_checkpoint(self.accelerator, latest)
        ckpt.trim_history(self.out, self.progress.step)
        self.logged = self.progress.step  # its records up to here are kept
        self.bar.update(self.progress.step)
        logger.info("resumed from %s (step %d of %d)", latest, self.progress.step, self.total_steps)

    def _step_done(self, boundary: int, windows: int) -> None:
        p, c = self.progress, self.config
        p.step += 1
        p.batch_in_epoch = boundary
        p.windows_seen += windows
        rate = p.windows_seen / max(time.perf_counter() - self.began, 1e-9)
        self.bar.set_postfix(loss=f"{self.losses.mean():.3f}", windows_s=f"{rate:.1f}")
        self.bar.update(1)
        self.log_step()
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

    def log_step(self) -> None:
        """The step's train record, if it is a logging step and not yet written: also called when an
        interrupt lands between a step's end and its record, before the checkpoint of that step is saved
        (a resume starts after it, so the record would be lost)."""
        p = self.progress
        if p.step % self.config.logging_steps == 0 and p.step > self.logged:
            self.logged = p.step
            self.record("train", {"loss": self.losses.take(), "learning_rate": self.scheduler.get_last_lr()[0]})

    def _diverged(self, what: str, value: float, step: int | None = None) -> NoReturn:
        """Stop before a non-finite loss or gradient reaches the weights (or once the weights give
        non-finite outputs, at `step`); say which setting to change."""
        c, step = self.config, self.progress.step + 1 if step is None else step
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
        with attention(self.loaded.model, self.train_attention):
            self._epochs()
        if not best.should_stop(c, p):  # an early stop has just evaluated this step
            self.evaluate()
        self.bar.close()

    def _epochs(self) -> None:
        p, c = self.progress, self.config
        while p.step < self.total_steps:
            self.loader.set_epoch(p.epoch)
            start_batch, pending = p.batch_in_epoch, 0
            batches = self.accelerator.skip_first_batches(self.loader, start_batch) if start_batch else self.loader
            for n, batch in enumerate(batches, start=start_batch + 1):
                with self.accelerator.accumulate(self.model):
                    loss = batch_loss(self.model, batch, c.span_loss, c.max_answer_length)
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
                self.losses.add(value)
                pending += len(batch["input_ids"]) * self.accelerator.num_processes
                if self.accelerator.sync_gradients:
                    self._step_done(n, pending)
                    pending = 0
                    if p.step >= self.total_steps:
                        break
            else:
                p.epoch, p.batch_in_epoch = p.epoch + 1, 0


def train(
    config: TrainConfig,
    *,
    overwrite: bool = False,
    callback: Callback | None = None,
    progress_bar: bool = True,
    loaded: LoadedModel | None = None,
    command: str | None = None,
) -> RunSummary | None:
    """Fine-tune `config.model` on `config.train_data`; resumes from the last checkpoint if there is one.

    `loaded` passes an already loaded model (trained in place) instead of loading `config.model`;
    `command` (the command line that started it) goes into the model card.
    Returns the run summary (also saved as `qatune.json` beside the model); None in the processes of a
    distributed launch other than the first, which saves nothing.
    """
    config.check()
    done = ckpt.check_output(config, overwrite)
    out = Path(config.output_dir)
    if done is not None:
        logger.warning("%s already holds a finished run (step %d); pass --overwrite to train again", out, done.step)
        return RunSummary.read(out)
    main = int(os.environ.get("RANK", "0")) == 0  # under torchrun the first process holds the folder
    if main:  # a tracker that cannot take the run is refused before any folder is made or model loaded
        check_trackers(parse_report_to(config.report_to))
    created = first_missing(out)
    ckpt.prepare_output(config, overwrite=False)  # the folder exists, so it can be held before the slow loading
    with exclusive(out, "a training run") if main else nullcontext():
        if not overwrite and ckpt.check_output(config, overwrite) is not None:  # finished before this one held it
            return RunSummary.read(out)
        with removed_if_new(out, created):  # bad data or model: an error, and no folder left behind
            sets = load_train_eval(config)
            loaded = loaded or load_model(config.model, seed=config.seed)
            loaded.checked_window(config.window)
            data = windowed(sets, loaded.tokenizer, config.window)
        ckpt.prepare_output(config, overwrite)
        return _fit(config, loaded, data, callback, progress_bar, command)


def _fit(
    config: TrainConfig,
    loaded: LoadedModel,
    data: TrainingData,
    callback: Callback | None,
    progress_bar: bool,
    command: str | None,
) -> RunSummary | None:
    """The training itself, in the prepared output folder this process holds."""
    out = Path(config.output_dir)
    atomic_write_json(out / CONFIG_FILE, {"config": config.to_dict(), "versions": package_versions()})
    run = _Run(config, loaded, data, callback, progress_bar)
    feed = _open_trackers(run)
    run.resume()
    try:
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
            run.log_step()
            ckpt.save_checkpoint(run.accelerator, out, run.progress)
        raise TrainingInterrupted(
            f"interrupted at step {saved} of {run.total_steps}; run the same command again to resume"
        ) from None
    if run.accelerator.is_main_process:
        summary = save_final(run.finished(), data.train, data.dev, data.held, command)
        feed.finish(summary.final_eval.to_dict() if summary.final_eval else {}, "complete")
        shutil.rmtree(out / CHECKPOINTS, ignore_errors=True)
        return summary
    return None


def _open_trackers(run: _Run) -> Feed:
    """The run's trackers (--report-to; main process only), fed every record the run writes."""
    names = parse_report_to(run.config.report_to) if run.accelerator.is_main_process else ()
    feed = open_feed(names, RunInfo(run.out.name, run.out, run.config.to_dict()))
    if feed.trackers:
        user = run.callback

        def both(entry: HistoryRecord) -> None:
            feed(entry)
            if user:
                user(entry)

        run.callback = both
    return feed

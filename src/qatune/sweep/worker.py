"""A sweep worker: ask Optuna for a trial, run it in a child process, follow it, tell the result.

Any number of workers (processes, machines) can share one storage; run caps, grid points and
retries of trials whose worker died are settled through the storage alone.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import signal
import socket
import threading
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import cast

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback, fail_stale_trials
from optuna.trial import FrozenTrial, Trial, TrialState

from qatune.compat import study_storage, trial_id
from qatune.errors import QatuneError, TrainingInterrupted
from qatune.io import JsonObject
from qatune.layout import CHECKPOINTS, EVAL_POSITION, EVAL_SCORES, TRIAL_CONFIG, TRIAL_FOLDER, TRIALS
from qatune.paths import remove_owned
from qatune.sweep.spec import SweepSpec
from qatune.sweep.storage import Callback, SweepOptions, counted, root_number
from qatune.sweep.trial import TrialProcess
from qatune.training.config import SEED_MAX
from qatune.training.history import HistoryRecord, history_records, metric_value
from qatune.training.trackers import Feed, RunInfo, check_trackers, open_feed

logger = logging.getLogger(__name__)


class _Heartbeat:
    """Record the trial's heartbeat while its child runs, so other workers can tell it is alive."""

    def __init__(self, storage: RDBStorage, trial_id: int) -> None:
        self.stop_event = threading.Event()
        interval = storage.get_heartbeat_interval() or 60

        def beat() -> None:
            while not self.stop_event.is_set():
                storage.record_heartbeat(trial_id)
                self.stop_event.wait(interval)

        self.thread = threading.Thread(target=beat, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join()


class Worker:
    """One worker of a sweep: ask Optuna for a trial, run it in a child process, tell the result."""

    def __init__(
        self, study: optuna.Study, spec: SweepSpec, options: SweepOptions, callback: Callback | None = None
    ) -> None:
        self.study, self.spec, self.options, self.callback = study, spec, options, callback
        # The RDBStorage we opened (behind Optuna's cache, which passes heartbeats on to it)
        self.storage = cast(RDBStorage, study_storage(study))
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"
        self.ran, self.repeats = 0, 0
        self.explorer = optuna.samplers.RandomSampler(seed=(options.seed + os.getpid()) % (SEED_MAX + 1))
        check_trackers(options.report_to)  # a tracker that cannot take runs stops the sweep before its first trial

    def trials(self) -> list[FrozenTrial]:
        return self.study.get_trials(deepcopy=False)

    def _frozen(self, number: int) -> FrozenTrial:
        return next(t for t in self.trials() if t.number == number)

    def stop_reason(self) -> str | None:
        """Why no further trial should start (run cap, grid walked, target met, --count), or None."""
        if self.options.count is not None and self.ran >= self.options.count:
            return f"ran --count {self.options.count} trials"
        live = counted(self.trials())
        if any(t.state == TrialState.WAITING for t in live):
            return None  # a retry is queued: it replaces a counted trial
        if self.spec.run_cap and len(live) >= self.spec.run_cap:
            return f"run_cap {self.spec.run_cap} reached"
        if self.spec.grid_size and len(live) >= self.spec.grid_size:
            return f"all {self.spec.grid_size} grid points done"
        done = [t for t in live if t.state == TrialState.COMPLETE and t.value is not None]
        if any(t.value is not None and self.spec.metric.reached(t.value) for t in done):
            return f"metric target {self.spec.metric.target} reached"
        return None

    def _running(self) -> bool:
        """Whether other workers still run trials (if one died, its trial goes stale and is retried)."""
        return any(t.state == TrialState.RUNNING for t in counted(self.trials()))

    def _skip_reason(self, trial: FrozenTrial) -> str | None:
        """A freshly created trial that must not run: past the cap, or a grid point already taken."""
        if trial.system_attrs.get("retry_history"):
            return None
        earlier = [t for t in counted(self.trials()) if t.number < trial.number]
        if self.spec.run_cap and len(earlier) >= self.spec.run_cap:
            return "over run_cap"
        same = next((t for t in earlier if t.params == trial.params and t.state != TrialState.FAIL), None)
        if same is not None:
            if self.spec.method == "grid":
                return "grid point taken by another worker"
            # A seeded trial with the same settings gives the same result: rather than train it again
            # (GP samplers like to propose a boundary point over and over), explore a random point.
            return f"repeat of trial-{same.number}"
        return None

    def _explore_instead(self, frozen: FrozenTrial) -> None:
        """Queue a random point in place of a repeated one (it runs next, and counts as this slot)."""
        params = {
            name: self.explorer.sample_independent(self.study, frozen, name, dist)
            for name, dist in self.spec.distributions.items()
        }
        reason = f"random point instead of a {frozen.user_attrs.get('skipped')}"
        self.study.enqueue_trial(params, user_attrs={"explored": reason}, skip_if_exists=True)

    def run(self) -> str:
        """Run trials until a stop reason; returns it. Ctrl-C (and SIGTERM under the CLI): stop the trial,
        queue its retry."""
        while True:
            fail_stale_trials(self.study)
            reason = self.stop_reason()
            if reason and not reason.startswith("ran --count") and self._running():
                time.sleep(min(5.0, self.options.heartbeat_interval))  # a dead worker's trial may come back
                continue
            if reason:
                return reason
            trial = self.study.ask(self.spec.distributions)
            frozen = self._frozen(trial.number)
            skip = self._skip_reason(frozen)
            if skip:
                trial.set_user_attr("skipped", skip)
                self.study.tell(trial, state=TrialState.FAIL)
                if skip == "over run_cap":
                    return f"run_cap {self.spec.run_cap} reached"
                if skip.startswith("repeat"):
                    self.repeats += 1
                    if self.repeats > 20:  # a small discrete space: every point has been tried
                        return "every point of the search space has been tried"
                    self._explore_instead(self._frozen(trial.number))
                continue
            self.repeats = 0
            self._run_trial(trial, frozen)
            self.ran += 1
            self._check_failing()

    def _check_failing(self, limit: int = 3) -> None:
        """Stop when the last `limit` trials all failed with an error: the setup, not a trial, is broken."""
        finished = [t for t in counted(self.trials()) if t.state.is_finished()]
        last = sorted(finished, key=lambda t: t.datetime_complete or t.datetime_start or datetime.min)[-limit:]
        if len(last) == limit and all(
            t.state == TrialState.FAIL and "interrupted" not in str(t.user_attrs.get("error")) for t in last
        ):
            raise QatuneError(f"the last {limit} trials failed; the last said: {last[-1].user_attrs.get('error')}")

    def _trial_dir(self, frozen: FrozenTrial) -> Path:
        return self.options.directory / TRIALS / TRIAL_FOLDER.format(number=root_number(frozen))

    def _run_trial(self, trial: Trial, frozen: FrozenTrial) -> None:
        values = self.spec.values(trial.params)
        folder = self._trial_dir(frozen)
        for key, attr in (("values", values), ("worker", self.worker_id), ("output_dir", str(folder))):
            trial.set_user_attr(key, attr)
        if not frozen.system_attrs.get("retry_history"):
            remove_owned(folder, self.options.directory, (TRIAL_CONFIG,))  # leftovers of an older sweep of this name
        try:
            config = self.spec.config(values, str(folder))
        except QatuneError as exc:
            trial.set_user_attr("error", str(exc))
            self.study.tell(trial, state=TrialState.FAIL)
            self._announce(trial.number, "failed", str(exc))
            return
        run = RunInfo(f"{self.options.name}-trial-{root_number(frozen)}", folder, {**self.spec.base, **values})
        feed = open_feed(
            self.options.report_to, replace(run, group=self.options.name, project=self.spec.project or "qatune")
        )
        heartbeat = _Heartbeat(self.storage, trial_id(trial))
        process = TrialProcess(folder, config.to_dict())
        self._announce(trial.number, "running", ", ".join(f"{k}={v}" for k, v in values.items()))
        try:
            state, value, note = self._watch(trial, process, feed)
        except KeyboardInterrupt:
            self._interrupt(trial, process)
            feed.finish({}, "interrupted")
            raise TrainingInterrupted(
                f"sweep stopped during trial {trial.number}; run the same command again to resume it"
            ) from None
        finally:
            heartbeat.stop()
        self._finish(trial, process, state, value, note)
        feed.finish(trial.user_attrs.get("metrics") or {}, state.name.lower())

    def _watch(self, trial: Trial, process: TrialProcess, feed: Feed) -> tuple[TrialState, float | None, str]:
        """Follow the child's metrics.jsonl: report each evaluation to Optuna (and every record to the
        trackers), prune when Optuna says so."""
        metric, reported, fed = self.spec.metric.name, 0, 0
        evals: list[HistoryRecord] = []
        while True:
            code = process.poll()
            history = history_records(process.history())
            for record in history[fed:]:
                feed(record)
            fed = len(history)
            evals = [r for r in history if r.get("type") == "eval"]
            for step, record in enumerate(evals[reported:], start=reported + 1):
                figure = metric_value(record, metric)
                if figure is not None:
                    trial.report(figure, step)
            if len(evals) > reported:
                trial.set_user_attr("history", [compact(r) for r in evals])
                reported = len(evals)
                if code is None and trial.should_prune():
                    process.stop(signal.SIGKILL)
                    shutil.rmtree(process.folder / CHECKPOINTS, ignore_errors=True)
                    return TrialState.PRUNED, None, f"pruned after {reported} evaluations"
            if code is not None:
                break
            time.sleep(self.options.poll_seconds)
        process.close()
        if code != 0:
            return TrialState.FAIL, None, process.error()
        scored = self.spec.metric.score(evals)
        value = metric_value(scored, metric) if scored else None
        if scored is None or value is None or not math.isfinite(value):
            which = "best" if self.spec.metric.summary == "best" else "final"
            return TrialState.FAIL, None, f"the {which} evaluation has no finite {metric}"
        trial.set_user_attr("metrics", compact(scored))
        for key in ("exact_match", "f1", "correct", "eval_loss"):  # flat too: dashboards show scalars as columns
            trial.set_user_attr(key, scored.get(key))
        at = f" (best, at step {scored.get('step')})" if self.spec.metric.summary == "best" else ""
        return TrialState.COMPLETE, float(value), f"{metric} {value:.4g}{at}"

    def _finish(self, trial: Trial, process: TrialProcess, state: TrialState, value: float | None, note: str) -> None:
        trial.set_user_attr("seconds", round(time.time() - process.began, 1))
        if state == TrialState.FAIL:
            trial.set_user_attr("error", note)
        self.study.tell(trial, value, state=state)
        if state == TrialState.COMPLETE and not self.options.keep_models:
            for name in ("model.safetensors", "pytorch_model.bin"):
                (process.folder / name).unlink(missing_ok=True)
        self._announce(trial.number, state.name.lower(), note)

    def _interrupt(self, trial: Trial, process: TrialProcess) -> None:
        """Stop the child (it checkpoints), fail the trial and queue a retry that resumes it."""
        code = process.stop(signal.SIGTERM)
        trial.set_user_attr("error", f"interrupted (child exit {code}); queued to resume")
        self.study.tell(trial, state=TrialState.FAIL)
        frozen = self._frozen(trial.number)
        RetryHeartbeatStaleTrialCallback(max_retry=None)(self.study, frozen)  # interruptions are not failures

    def _announce(self, number: int, state: str, note: str) -> None:
        if self.callback:
            self.callback({"trial": number, "state": state, "note": note})


def compact(record: HistoryRecord) -> JsonObject:
    """The part of an evaluation record a trial keeps in the storage (a JSON user attribute: None where absent)."""
    return {k: record.get(k) for k in (*EVAL_POSITION, *EVAL_SCORES)}

"""Experiment trackers (`--report-to tensorboard,mlflow,wandb`): a run's records where users watch runs.

One seam, `Tracker`, fed the records qatune writes to metrics.jsonl: training loss, learning rate and
windows/s every `logging_steps`, each evaluation's EM, F1, correct/similar/incorrect, losses and ECE
at its step, the settings as parameters, and the final scores. `train` feeds its own run; the sweep
worker feeds each trial from the trial's history (so a trial's child process opens no tracker). A
tracker's run id is kept in the run folder (`trackers.json`), so a resumed run continues its run.

- tensorboard: event files in RUN/tensorboard (`tensorboard --logdir RUN`), via torch's SummaryWriter.
- mlflow: $MLFLOW_TRACKING_URI, else MLflow's own default (./mlflow.db, SQLite: MLflow 3 no longer
  takes the ./mlruns file store); experiment `qatune` (or a sweep config's `project`).
- wandb: project `qatune` (or the sweep config's `project`); WANDB_MODE=offline works as documented.

`check_trackers`, before a run makes a folder or loads a model: each package is installed, each server answers
within PROBE_SECONDS, each local store can be written; else one error, never a hang or a failed run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from qatune.errors import ConfigError, QatuneError
from qatune.io import JsonObject, atomic_write_json, read_json
from qatune.layout import TENSORBOARD, TRACKER_IDS
from qatune.training.history import HistoryRecord

logger = logging.getLogger(__name__)

TRACKERS = ("tensorboard", "mlflow", "wandb")
EVAL_KEYS = ("exact_match", "f1", "correct", "similar", "incorrect", "eval_loss", "train_loss", "ece", "ece_raw")
PACKAGES = {"tensorboard": "tensorboard", "mlflow": "mlflow-skinny", "wandb": "wandb"}
PROBE_SECONDS = 5.0  # how long a tracker's server may take to answer `check_trackers`


def parse_report_to(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """`tensorboard,mlflow` (or a list) -> the tracker names; `none`, empty or None -> none."""
    names = [value] if isinstance(value, str) else list(value or [])
    parts = [p.strip().lower() for name in names for p in str(name).split(",") if p.strip()]
    if "none" in parts:
        if set(parts) != {"none"}:
            raise ConfigError(f"report_to: none means no tracker; it cannot be combined with others, got {value!r}")
        return ()
    unknown = [p for p in parts if p not in TRACKERS]
    if unknown:
        raise ConfigError(f"report_to: unknown tracker(s) {', '.join(unknown)}; valid: {', '.join(TRACKERS)}, none")
    return tuple(dict.fromkeys(parts))


@dataclass
class RunInfo:
    """Who a tracker run is: its name, folder (event files, ids), settings, and sweep (group)."""

    name: str
    folder: Path
    params: Mapping[str, object]  # the settings, as the trackers show them (`_flat`)
    group: str | None = None
    project: str = "qatune"


class Tracker(Protocol):
    """One tracker's run, opened as `Tracker(run, run_id)` (run_id: the run to continue, or None);
    `run_id` is then the id to keep for a resume (None for trackers that need none)."""

    run_id: str | None

    def log(self, metrics: dict[str, float], step: int) -> None: ...

    def finish(self, summary: dict[str, float], state: str) -> None: ...


@dataclass
class Feed:
    """Turns metrics.jsonl records into tracker metrics and hands them to every tracker."""

    trackers: list[Tracker]
    last_train: HistoryRecord | None = field(default=None)

    def __call__(self, record: HistoryRecord) -> None:
        metrics = self.metrics(record)
        if metrics:
            for tracker in self.trackers:
                tracker.log(metrics, int(record["step"]))

    def metrics(self, record: HistoryRecord) -> dict[str, float]:
        if record.get("type") == "eval":
            return _finite({f"eval/{k}": record.get(k) for k in EVAL_KEYS})
        if record.get("type") != "train":
            return {}
        out = {"train/loss": record.get("loss"), "train/learning_rate": record.get("learning_rate")}
        before, self.last_train = self.last_train, record
        if before and record["elapsed"] > before["elapsed"]:
            rate = (record["windows_seen"] - before["windows_seen"]) / (record["elapsed"] - before["elapsed"])
            out["train/windows_per_s"] = rate
        return _finite(out)

    def finish(self, summary: Mapping[str, object], state: str) -> None:
        """End every tracker's run in `state`, with the final evaluation's figures (an eval record; {}: none)."""
        final = _finite({f"final/{k}": summary.get(k) for k in EVAL_KEYS})
        for tracker in self.trackers:
            tracker.finish(final, state)


def _finite(values: Mapping[str, object]) -> dict[str, float]:
    numbers = {k: v for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return {k: float(v) for k, v in numbers.items() if math.isfinite(v)}


def _flat(params: Mapping[str, object]) -> dict[str, str | int | float | bool]:
    """Settings as scalar parameters (lists and None as text), as every tracker takes them."""
    return {k: v if isinstance(v, (str, int, float, bool)) else json.dumps(v) for k, v in params.items()}


def require(names: Sequence[str]) -> None:
    """A ConfigError naming the install for the first tracker whose package is missing."""
    import importlib

    for name in names:
        try:
            importlib.import_module({"tensorboard": "torch.utils.tensorboard"}.get(name, name))
        except ImportError:
            raise ConfigError(
                f"--report-to {name} needs the {PACKAGES[name]} package: pip install {PACKAGES[name]} "
                f"(or qatune[trackers])"
            ) from None


def check_trackers(names: Sequence[str]) -> None:
    """A ConfigError (the problem and the fix) for the first tracker that is not installed, whose server does
    not answer within PROBE_SECONDS, or whose local store cannot be written (module doc)."""
    require(names)
    for name in names:
        if problem := {"mlflow": _mlflow_problem, "wandb": _wandb_problem}.get(name, lambda: None)():
            raise ConfigError(f"--report-to {name}: {problem}")


def _mlflow_problem() -> str | None:
    """What keeps MLflow's tracking store ($MLFLOW_TRACKING_URI, else MLflow's default) from taking runs."""
    import mlflow

    uri = mlflow.get_tracking_uri()
    where = f"$MLFLOW_TRACKING_URI={_shown(uri)}" if os.environ.get("MLFLOW_TRACKING_URI") else f"MLflow's store {uri}"
    fix = "set MLFLOW_TRACKING_URI to a store you can write, e.g. sqlite:///mlflow.db"
    scheme = urlsplit(uri).scheme.lower()
    why = None
    if scheme in ("http", "https"):
        why, fix = _http_problem(uri.rstrip("/") + "/health"), f"start the tracking server, or {fix}"
    elif scheme.startswith("sqlite"):
        path = uri.partition(":///")[2].partition("?")[0]
        why = _unwritable(Path(path), directory=False) if path and path != ":memory:" else None
    elif scheme == "file" or (not scheme and uri not in ("databricks", "databricks-uc", "uc")):
        allowed = getattr(mlflow.environment_variables, "MLFLOW_ALLOW_FILE_STORE", None)
        if allowed is not None and not allowed.get():  # MLflow 3 refuses file stores unless told otherwise
            why, fix = "a file store, which this MLflow refuses", f"{fix} (or set MLFLOW_ALLOW_FILE_STORE=true)"
        else:
            why = _unwritable(Path(urlsplit(uri).path if scheme else uri), directory=True)
    return f"{where}: {why}; {fix}" if why else None


def _wandb_problem() -> str | None:
    """What keeps W&B from taking runs online (the offline and disabled modes need no server)."""
    settings = _wandb_settings()
    mode = (os.environ.get("WANDB_MODE") or settings.get("mode") or "online").strip().lower()
    disabled = (os.environ.get("WANDB_DISABLED") or settings.get("disabled") or "").strip().lower() in ("1", "true")
    if mode in ("offline", "dryrun", "disabled") or disabled:
        return None
    base = os.environ.get("WANDB_BASE_URL") or settings.get("base_url") or "https://api.wandb.ai"
    why = _http_problem(base)
    fix = "check the network or WANDB_BASE_URL, or log offline with WANDB_MODE=offline (upload later: `wandb sync`)"
    return f"the W&B server {_shown(base)}: {why}; {fix}" if why else None


def _wandb_settings() -> dict[str, str]:
    """[default] of W&B's settings files (`wandb login --host`, `wandb offline`): the machine's, then this folder's."""
    import configparser

    home = Path(os.environ.get("WANDB_CONFIG_DIR") or Path.home() / ".config" / "wandb")
    found: dict[str, str] = {}
    for path in (home / "settings", Path(os.environ.get("WANDB_DIR") or ".") / "wandb" / "settings"):
        parser = configparser.ConfigParser(interpolation=None)
        with contextlib.suppress(configparser.Error, OSError, UnicodeDecodeError):
            parser.read(path, encoding="utf-8")
            found.update(parser["default"] if parser.has_section("default") else {})
    return found


def _http_problem(url: str) -> str | None:
    """None when an HTTP server answers `url` within PROBE_SECONDS (any status is an answer), else why not."""
    import ssl
    from urllib import error, request

    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # reachability only: the tracker checks trust
    try:
        request.urlopen(url, timeout=PROBE_SECONDS, context=context).close()  # through $https_proxy, as trackers
    except error.HTTPError as exc:
        exc.close()
    except Exception as exc:  # no answer, a refused connection, no HTTP, a bad URL
        reason = exc.reason if isinstance(exc, error.URLError) else exc
        if isinstance(reason, TimeoutError):
            return f"no answer within {PROBE_SECONDS:g} s"
        return "connection refused" if isinstance(reason, ConnectionRefusedError) else f"cannot be reached ({reason})"
    return None


def _unwritable(path: Path, directory: bool) -> str | None:
    """Why `path` (a folder, else a file, with its folder) cannot be written or made there, or None."""
    if path.exists():
        if path.is_dir() != directory:
            return f"{path} is {'not a folder' if directory else 'a folder'}"
        writable = os.access(path, os.W_OK) and os.access(path if directory else path.parent, os.W_OK | os.X_OK)
        return None if writable else f"{path} cannot be written (permission denied)"
    parent = next(p for p in path.absolute().parents if p.exists())
    why = "a file" if not parent.is_dir() else None if os.access(parent, os.W_OK | os.X_OK) else "not writable"
    return f"{path} cannot be made ({parent} is {why})" if why else None


def _shown(uri: str) -> str:  # without its password, to show in a message
    return re.sub(r"//([^/@:]*):[^/@]*@", r"//\1:***@", uri)


def open_feed(names: Sequence[str], run: RunInfo) -> Feed:
    """A Feed to trackers `names` for `run` (`check_trackers` first, where a run may still be refused);
    a missing package, or a tracker that fails to start its run, is a ConfigError."""
    require(names)
    ids_path = run.folder / TRACKER_IDS
    ids = _saved_ids(ids_path)
    opened: list[Tracker] = []
    for name in names:
        try:
            tracker = OPENERS[name](run, ids.get(name))
        except Exception as exc:  # the tracker's own error (a refused key, a server error): one line, not a traceback
            with contextlib.suppress(Exception):
                Feed(opened).finish({}, "failed")
            why = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}"
            raise ConfigError(f"--report-to {name}: it could not start a run ({why})") from exc
        ids[name] = tracker.run_id
        opened.append(tracker)
    if names:
        run.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(ids_path, ids)
    return Feed(opened)


def _saved_ids(path: Path) -> JsonObject:
    """The tracker run ids of an earlier attempt of this run (to resume them); damaged: start new runs."""
    if not path.is_file():
        return {}
    try:
        ids = read_json(path, "tracker ids file")
        if isinstance(ids, dict):
            return ids
        why = "not a JSON object"
    except QatuneError as exc:
        why = str(exc)
    logger.warning("%s: damaged (%s); the trackers start new runs", path, why)
    return {}


class TensorBoard:
    def __init__(self, run: RunInfo, run_id: str | None = None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.run_id: str | None = None  # event files are appended in the run folder: nothing to remember
        self.writer = SummaryWriter(log_dir=str(run.folder / TENSORBOARD))
        table = "\n".join(f"| {k} | {v} |" for k, v in _flat(run.params).items())
        self.writer.add_text("settings", "| setting | value |\n|---|---|\n" + table)

    def log(self, metrics: dict[str, float], step: int) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def finish(self, summary: dict[str, float], state: str) -> None:
        self.writer.add_text("state", state)
        for key, value in summary.items():
            self.writer.add_scalar(key, value, 0)
        self.writer.close()


class MLflow:
    def __init__(self, run: RunInfo, run_id: str | None) -> None:
        import mlflow
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(mlflow.get_tracking_uri())  # $MLFLOW_TRACKING_URI or MLflow's default
        if run_id is None:
            experiment = self.client.get_experiment_by_name(run.project)
            experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(run.project)
            tags = {"qatune.group": run.group} if run.group else {}
            run_id = self.client.create_run(experiment_id, run_name=run.name, tags=tags).info.run_id
            params = [Param(k, str(v)[:6000]) for k, v in _flat(run.params).items()]
            self.client.log_batch(run_id, params=params)
        else:
            self.client.update_run(run_id, status="RUNNING")
        self.run_id = run_id

    def log(self, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, v, now, step) for k, v in metrics.items()])

    def finish(self, summary: dict[str, float], state: str) -> None:
        if summary:
            self.log(summary, 0)
        status = {"complete": "FINISHED", "pruned": "FINISHED", "interrupted": "KILLED"}.get(state, "FAILED")
        self.client.set_terminated(self.run_id, status)


class Wandb:
    def __init__(self, run: RunInfo, run_id: str | None) -> None:
        import wandb

        self.run = wandb.init(
            project=run.project,
            group=run.group,
            name=run.name,
            id=run_id,
            resume="allow" if run_id else None,
            reinit="create_new",
            config=run.params,
            dir=str(run.folder),
            job_type="sweep-trial" if run.group else "train",
        )
        self.run_id = getattr(self.run, "id", run_id)

    def log(self, metrics: dict[str, float], step: int) -> None:
        self.run.log(metrics, step=step)

    def finish(self, summary: dict[str, float], state: str) -> None:
        self.run.summary.update({"state": state, **summary})
        self.run.finish(exit_code=0 if state in ("complete", "pruned") else 1)


Opener = Callable[[RunInfo, str | None], Tracker]
OPENERS: dict[str, Opener] = {"tensorboard": TensorBoard, "mlflow": MLflow, "wandb": Wandb}

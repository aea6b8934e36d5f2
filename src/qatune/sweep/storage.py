"""Where a sweep lives: its Optuna study in an RDB storage, with the sampler and pruner its config maps to.

The storage (SQLite in the sweep folder, or PostgreSQL/MySQL for many machines) is the single
source of truth: the config, every trial's settings, state, metrics and history live there, so a
worker can join with nothing but the sweep's name and URL, and `qatune sweep show` needs no files.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from qatune.errors import ConfigError
from qatune.layout import SWEEP_DB
from qatune.paths import make_folder, masked_url
from qatune.sweep.spec import SweepSpec, parse_sweep
from qatune.sweep.trial import TrialEvent
from qatune.training.config import SEED_MAX


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """While a sweep runs: Optuna's INFO logs off, and its warnings about the features we use on purpose.

    Heartbeats, stale-trial retries and ask/tell with heartbeats are what make sweeps resumable across
    workers; Optuna flags them experimental (stable since 2.x). Scoped, not set at import: a library
    must not change process-wide logging or warning filters.
    """
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
            warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
            yield
    finally:
        optuna.logging.set_verbosity(verbosity)


CONFIG_ATTR = "qatune_sweep"
Callback = Callable[[TrialEvent], None]  # told each trial's start and end


@dataclass
class SweepOptions:
    """How this worker runs: where, how many trials, and the failure policy."""

    name: str
    directory: Path
    storage: str | None = None
    count: int | None = None
    retries: int = 1
    heartbeat_interval: int = 20
    keep_models: bool = False
    seed: int = 0
    poll_seconds: float = 1.0
    report_to: tuple[str, ...] = ()  # trackers each trial is logged to (qatune.training.trackers), by this worker

    def __post_init__(self) -> None:
        if self.storage is not None:
            check_url(self.storage)

    @property
    def url(self) -> str:
        return self.storage or f"sqlite:///{(self.directory / SWEEP_DB).resolve()}"

    @property
    def shown_url(self) -> str:
        """The storage URL with its password masked: what messages and result files may show."""
        return masked_url(self.url)


def check_url(url: str) -> None:
    """Refuse a storage URL that is not a database URL SQLAlchemy knows, before anything runs (a dry run
    included); connecting is left to `open_storage`. The URL is not echoed: it may hold a password."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        make_url(url).get_dialect()
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        raise ConfigError(
            f"storage {masked_url(url)}: not a database URL SQLAlchemy knows ({type(exc).__name__}); use e.g. "
            f"sqlite:///sweeps.db or postgresql://user:password@host/db (--storage or $QATUNE_STORAGE)"
        ) from None


def open_storage(options: SweepOptions, attempts: int = 5) -> RDBStorage:
    """The RDB storage with heartbeats: a trial whose worker stops beating is failed, then retried.

    Workers started together on an empty database race to create Optuna's tables; the loser's
    CREATE fails once, and simply opening again succeeds, hence the few attempts.
    """
    if options.storage is None:  # the default SQLite file lives in the sweep folder
        make_folder(options.directory, "sweep folder (--dir)")
    for attempt in range(attempts):
        try:
            return RDBStorage(
                options.url,
                heartbeat_interval=options.heartbeat_interval,
                grace_period=3 * options.heartbeat_interval,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=options.retries),
            )
        except (ImportError, ModuleNotFoundError) as exc:
            raise _driver_error(options, exc) from None
        except Exception as exc:  # SQLAlchemy raises many kinds; all mean the same to the user
            error = exc
            if "already exists" not in str(exc) and "UniqueViolation" not in str(exc):
                break
            time.sleep(0.5 + attempt)
    raise _open_error(options, error) from None


def _driver_error(options: SweepOptions, exc: ImportError) -> ConfigError:
    return ConfigError(
        f"storage {options.shown_url}: missing database driver ({exc.__cause__ or exc}); for "
        f"PostgreSQL `pip install 'qatune[postgres]'`, for MySQL `pip install 'qatune[mysql]'`"
    )


def _open_error(options: SweepOptions, exc: Exception) -> ConfigError:
    return ConfigError(f"storage {options.shown_url}: cannot open ({type(exc).__name__}: {str(exc).splitlines()[0]})")


OPTUNA_TABLES = frozenset({"studies", "trials", "version_info"})  # a database without them holds no sweep
ELSEWHERE = "pass the --storage (or --dir) the sweep ran with; nothing was changed"


def open_existing_storage(options: SweepOptions, *, read_only: bool = True) -> RDBStorage:
    """The storage of a sweep that must exist (show, dashboard), checked first and opened without creating
    tables; a SQLite file read-only (`mode=ro`) unless `read_only=False`. A wrong URL, a missing, empty or
    foreign file is a ConfigError and stays byte for byte as it was."""
    check_sweep_exists(options)
    path = _sqlite_file(options.url)
    uri = _read_only_uri(path) if path is not None and read_only else None
    engine = {"creator": lambda: sqlite3.connect(uri, uri=True, check_same_thread=False)} if uri else None
    try:
        return RDBStorage(options.url, engine_kwargs=engine, skip_table_creation=True)
    except (ImportError, ModuleNotFoundError) as exc:
        raise _driver_error(options, exc) from None
    except Exception as exc:  # a schema Optuna cannot read, a database that went away
        raise _open_error(options, exc) from None


def check_sweep_exists(options: SweepOptions) -> None:
    """Raise ConfigError unless the storage holds a study named `options.name`, reading only: no file is
    created, no table added (Optuna's RDBStorage creates its tables when it opens a database)."""
    where = f"no sweep {options.name!r} in {options.shown_url}"
    path = _sqlite_file(options.url)
    names = _sqlite_studies(path, where) if path is not None else _rdb_studies(options, where)
    if options.name not in names:
        listed = sorted(names)
        held = ", ".join(listed[:5]) + (f" and {len(listed) - 5} more" if len(listed) > 5 else "")
        raise ConfigError(
            f"{where} ({f'it holds {held}' if names else 'it holds no sweep'}); start it with "
            f"`qatune sweep CONFIG --name {options.name}`, or {ELSEWHERE}"
        )


def _sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (relative to the working folder, as SQLAlchemy reads it), else None."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file:") or "uri" in parsed.query:
        raise ConfigError(f"storage {masked_url(url)}: give the sweep's SQLite file as sqlite:///PATH")
    return Path(database)


def _read_only_uri(path: Path) -> str:
    return f"file:{quote(str(path.resolve()), safe='/')}?mode=ro"  # quoted: a ? or # in a path is no query


def _sqlite_studies(path: Path, where: str) -> set[str]:
    """The study names in a SQLite file, opened read-only; ConfigError if it is not an Optuna database."""
    if not path.is_file() or path.stat().st_size == 0:
        what = "is an empty file" if path.is_file() else "is not a file" if path.exists() else "does not exist"
        raise ConfigError(f"{where}: {path} {what}; {ELSEWHERE}")
    try:
        with contextlib.closing(sqlite3.connect(_read_only_uri(path), uri=True)) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not OPTUNA_TABLES <= tables:
                raise ConfigError(f"{where}: {path} is a SQLite database without Optuna's tables; {ELSEWHERE}")
            return {str(row[0]) for row in db.execute("SELECT study_name FROM studies")}
    except sqlite3.Error as exc:
        raise ConfigError(f"{where}: cannot read {path} as a SQLite database ({exc}); {ELSEWHERE}") from None


def _rdb_studies(options: SweepOptions, where: str) -> set[str]:
    """The study names in a server database (PostgreSQL, MySQL), read with SELECTs only."""
    import sqlalchemy.exc
    from sqlalchemy import create_engine, inspect, text

    try:
        engine = create_engine(options.url)
    except (ImportError, ModuleNotFoundError) as exc:
        raise _driver_error(options, exc) from None
    try:
        with engine.connect() as connection:
            if not OPTUNA_TABLES <= set(inspect(connection).get_table_names()):
                raise ConfigError(f"{where}: the database has no Optuna tables; {ELSEWHERE}")
            return {str(row[0]) for row in connection.execute(text("SELECT study_name FROM studies"))}
    except (sqlalchemy.exc.SQLAlchemyError, OSError) as exc:  # cannot connect, no access: one line
        raise _open_error(options, exc) from None
    finally:
        engine.dispose()


class _GridSampler(optuna.samplers.GridSampler):
    """Optuna's grid sampler, minus its `study.stop()` when the grid is done: that call only works
    inside `study.optimize`, and our workers decide when to stop themselves (`Worker.stop_reason`)."""

    def after_trial(  # noqa: ARG002
        self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None
    ) -> None:
        return None


def _sampler(spec: SweepSpec, seed: int) -> optuna.samplers.BaseSampler:
    if spec.method == "grid":
        return _GridSampler({n: list(p.grid or ()) for n, p in spec.params.items()}, seed=seed)
    if spec.method == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    # W&B's bayes is a Gaussian process with expected improvement; so is Optuna's GPSampler (log EI).
    return optuna.samplers.GPSampler(
        seed=seed, n_startup_trials=startup_trials(spec), independent_sampler=optuna.samplers.RandomSampler(seed=seed)
    )


def startup_trials(spec: SweepSpec) -> int:
    """Random trials before the GP takes over: 10 (Optuna's default), fewer for short sweeps."""
    return min(10, max(3, (spec.run_cap or 30) // 3))


def _pruner(spec: SweepSpec) -> optuna.pruners.BasePruner:
    band = spec.early_terminate
    if band is None:
        return optuna.pruners.NopPruner()
    return optuna.pruners.HyperbandPruner(band.min_resource, band.max_resource, band.eta)


def engine_description(spec: SweepSpec) -> list[str]:
    """What the config maps to in Optuna, for --dry-run and the README."""
    sampler = {
        "grid": "GridSampler",
        "random": "RandomSampler",
        "bayes": f"GPSampler (Gaussian process, log expected improvement; {startup_trials(spec)} "
        f"random startup trials)",
    }[spec.method]
    band = spec.early_terminate
    pruner = (
        f"HyperbandPruner(min_resource={band.min_resource}, max_resource={band.max_resource}, "
        f"reduction_factor={band.eta}); a resource unit is one evaluation"
        if band
        else "none"
    )
    return [
        f"method {spec.method} -> optuna {sampler}",
        f"early_terminate -> {pruner}",
        f"metric {spec.metric.name} ({spec.metric.goal})"
        + (f", stop when a trial reaches {spec.metric.target}" if spec.metric.target is not None else ""),
        f"run_cap {spec.run_cap}" if spec.run_cap else "run_cap none (stop with --count or Ctrl-C)",
    ]


def open_study(spec: SweepSpec | None, options: SweepOptions) -> tuple[optuna.Study, SweepSpec]:
    """Create or load the sweep's study. With `spec=None` (joining), the config comes from the storage.

    The sampler's seed is `options.seed` plus the number of trials already there, so a fresh sweep is
    reproducible and a resumed one does not replay the draws it made before; on a shared storage
    (`--storage`) the worker's process id is added too, so simultaneous workers draw differently.
    """
    if spec is None:  # joining: the sweep must exist, checked before Optuna's tables could be created
        check_sweep_exists(options)
        storage = open_storage(options)
        spec = stored_spec(optuna.load_study(study_name=options.name, storage=storage), options)
    else:
        storage = open_storage(options)
    study = optuna.create_study(
        study_name=options.name,
        storage=storage,
        load_if_exists=True,
        direction=StudyDirection.MAXIMIZE if spec.metric.goal == "maximize" else StudyDirection.MINIMIZE,
        pruner=_pruner(spec),
    )
    salt = len(study.get_trials(deepcopy=False)) + (os.getpid() if options.storage else 0)
    study.sampler = _sampler(spec, (options.seed + salt) % (SEED_MAX + 1))
    stored = study.user_attrs.get(CONFIG_ATTR)
    if stored is None:
        study.set_user_attr(CONFIG_ATTR, spec.raw)
    elif parse_sweep(stored).raw != spec.raw:
        raise ConfigError(
            f"sweep {options.name!r} exists with another config; pick another --name, or delete "
            f"{options.directory} to start over"
        )
    return study, spec


def stored_spec(study: optuna.Study, options: SweepOptions) -> SweepSpec:
    """The sweep config qatune stored in the study; ConfigError for a study qatune did not make."""
    raw = study.user_attrs.get(CONFIG_ATTR)
    if raw is None:
        raise ConfigError(f"study {options.name!r} in {options.shown_url} was not made by qatune sweep")
    return parse_sweep(raw)


def superseded(trials: list[FrozenTrial]) -> set[int]:
    """Numbers of trials that a retry replaced (the retry carries on under a new number)."""
    return {n for t in trials for n in t.system_attrs.get("retry_history", [])}


def counted(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """The trials that count towards run_cap: not replaced by a retry, not skipped."""
    gone = superseded(trials)
    return [t for t in trials if t.number not in gone and not t.user_attrs.get("skipped")]


def root_number(trial: FrozenTrial) -> int:
    """The first attempt's number: a retried trial trains in (and resumes from) that trial's folder."""
    history = trial.system_attrs.get("retry_history") or []
    return history[0] if history else trial.number

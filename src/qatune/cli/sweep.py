"""`qatune sweep`: run, resume, join or show a hyperparameter sweep (the CLI side only)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from qatune.cli.common import Parser, emit, from_args, int_in, positive_int, seed_int
from qatune.errors import ConfigError
from qatune.paths import safe_name

if TYPE_CHECKING:
    from qatune.sweep.spec import SweepSpec
    from qatune.sweep.storage import SweepOptions
    from qatune.training.config import Settings

SWEEP_EPILOG = """usage forms:
  qatune sweep CONFIG [--name NAME]            run a sweep, or resume it (same command again)
  qatune sweep CONFIG --dry-run                validate CONFIG, print the search space and the engine
  qatune sweep --join NAME --storage URL       add this machine as one more worker of a running sweep
  qatune sweep show NAME                       trial table, top 10, picks; CSV/JSON and PNG figures
  qatune sweep dashboard NAME [--port 8080]    optuna-dashboard on the sweep's storage (live, in a browser)

CONFIG is a W&B sweep config (YAML or JSON): method, metric, parameters, early_terminate, run_cap,
plus `base:` with the training settings every trial shares (model, data, slices, epochs). Trials run
one at a time in child processes; the results live in the storage (default NAME/sweep.db).

examples:
  qatune sweep examples/sweep_study.yaml --base train_sample=200 --base eval_sample=100 --count 25
  qatune sweep examples/sweep_f1.yaml --storage postgresql://user:pw@db/qatune
  qatune sweep --join sweep_f1 --storage postgresql://user:pw@db/qatune
  qatune sweep show sweep_f1 --top 10"""


def add_sweep_parser(sub: argparse._SubParsersAction[Parser], common: Parser) -> None:
    """`qatune sweep`: one parser for running, joining, showing and serving a sweep (see SWEEP_EPILOG)."""
    p = sub.add_parser(
        "sweep",
        parents=[common],
        help="hyperparameter sweep from a W&B sweep config, on Optuna",
        description="Run a W&B-format hyperparameter sweep locally with Optuna (resumable, "
        "many workers with --storage), or show its results.",
        epilog=SWEEP_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="qatune sweep [CONFIG | show NAME | --join NAME] [options]",
    )
    _add_where_args(p)
    _add_run_args(p)
    _add_tracker_args(p)
    _add_show_args(p)


def _add_where_args(p: argparse.ArgumentParser) -> None:
    """Which sweep: the config or `show NAME`, its name, its folder and the storage its workers share."""
    p.add_argument("config", nargs="?", metavar="CONFIG", help="sweep config file, or `show`")
    p.add_argument("show_name", nargs="?", metavar="NAME", help=argparse.SUPPRESS)
    p.add_argument("--name", help="sweep name (default: the config's `name`, else the file name)")
    p.add_argument("--dir", default="runs/sweeps", help="parent folder of sweep folders (default: runs/sweeps)")
    p.add_argument(
        "--storage",
        default=os.environ.get("QATUNE_STORAGE") or None,  # set but empty: unset
        help="database URL shared by workers, e.g. postgresql://user:pw@host/db; also $QATUNE_STORAGE "
        "(default: a SQLite file in the sweep folder)",
    )
    p.add_argument("--join", metavar="NAME", help="join the existing sweep NAME (config read from --storage)")


def _add_run_args(p: argparse.ArgumentParser) -> None:
    """How this worker runs trials: how many, with which overrides, retries, heartbeat, seed and cleanup."""
    p.add_argument(
        "--count", type=positive_int, help="run at most N trials in this worker (like `wandb agent --count`)"
    )
    p.add_argument(
        "--base",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a `base` training setting, e.g. --base train_sample=500 (repeatable)",
    )
    p.add_argument(
        "--retries",
        type=int_in(0),
        default=1,
        help="times a trial whose worker died (no heartbeat) is retried, resuming its checkpoint "
        "(default: 1); a Ctrl-C'd trial is always resumed",
    )
    p.add_argument(
        "--heartbeat-interval",
        type=positive_int,
        default=20,
        metavar="SECONDS",
        help="heartbeat period; a trial silent for 3x this is failed (default: 20)",
    )
    p.add_argument("--keep-models", action="store_true", help="keep every trial's model weights (default: delete)")
    p.add_argument("--seed", type=seed_int, default=0, help="sampler seed (default: 0)")
    p.add_argument("--dry-run", action="store_true", help="validate the config, print the plan, run nothing")


def _add_tracker_args(p: argparse.ArgumentParser) -> None:
    """Where each trial is logged: the trackers, one tracker run per trial."""
    p.add_argument(
        "--report-to",
        default="none",
        metavar="TRACKERS",
        help="log each trial (one tracker run per trial, grouped by the sweep) to these: comma-separated "
        "tensorboard (event files in the trial folder), mlflow ($MLFLOW_TRACKING_URI, else ./mlflow.db), "
        "wandb (honours WANDB_MODE=offline), or none (default: none)",
    )
    p.add_argument("--wandb", action="store_true", help="the same as adding wandb to --report-to")


def _add_show_args(p: argparse.ArgumentParser) -> None:
    """The flags of `sweep show` and `sweep dashboard`, and --json (a run prints its result as JSON too)."""
    p.add_argument(
        "--top", type=positive_int, default=10, help="show: how many best trials to list and plot (default: 10)"
    )
    p.add_argument("--out", help="show: folder for trials.csv/json and figures (default: NAME/results)")
    p.add_argument("--no-figures", action="store_true", help="show: skip the PNG figures")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--host", default="127.0.0.1", help="dashboard: address to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=int_in(1, 65535), default=8080, help="dashboard: port (default: 8080)")


def _overrides(pairs: list[str]) -> Settings:
    """--base KEY=VALUE pairs, each VALUE read as YAML (so 500 is a number and none is null); the sweep checks
    them as it checks its `base`."""
    from qatune.yamlfile import yaml_value

    out: Settings = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--base {pair!r}: expected KEY=VALUE, e.g. --base train_sample=500")
        out[key.strip().replace("-", "_")] = yaml_value(value, f"--base {pair}")
    return out


def _options(args: argparse.Namespace, name: str) -> SweepOptions:
    from qatune.sweep import SweepOptions
    from qatune.training.trackers import parse_report_to

    safe_name(name, "sweep name (--name, --join, `show NAME` or the config's `name`)")
    trackers = parse_report_to([args.report_to, "wandb"] if args.wandb else args.report_to)
    options: SweepOptions = from_args(
        SweepOptions, args, name=name, directory=Path(args.dir) / name, report_to=trackers
    )
    return options


def _print_plan(spec: SweepSpec, name: str, options: SweepOptions) -> None:
    from qatune.sweep.spec import SWEEP_DEFAULTS
    from qatune.sweep.storage import engine_description

    print(f"sweep {name}: OK ({options.shown_url})")
    print("search space:")
    for param in spec.params.values():
        grid = f", grid {list(param.grid or ())}" if spec.method == "grid" else ""
        print(f"  {param.name}: {param.kind} -> optuna {param.distribution}{grid}")
    for key, value in spec.fixed.items():
        print(f"  {key}: constant {value!r}")
    if spec.grid_size:
        print(f"  grid points: {spec.grid_size}")
    print("engine:")
    for line in engine_description(spec):
        print(f"  {line}")
    print("every trial: " + ", ".join(f"{k}={v}" for k, v in {**SWEEP_DEFAULTS, **spec.base}.items()))


def _show(args: argparse.Namespace) -> int:
    from qatune.sweep import show_sweep
    from qatune.sweep.results import format_table

    name = args.show_name or args.join or args.name
    if not name:
        raise ConfigError("sweep show: give the sweep NAME, e.g. `qatune sweep show my-sweep`")
    options = _options(args, name)
    shown = show_sweep(options, Path(args.out) if args.out else None, n_top=args.top, figures=not args.no_figures)
    report = shown.to_dict()  # printed as the JSON rows it writes
    if args.json:
        emit(report, default=str)
        return 0
    columns = report["columns"]
    counts = report["counts"]
    print(
        f"sweep {name}: {report['method']}, metric {report['metric']['name']} ({report['metric']['goal']}); "
        + ", ".join(f"{v} {k}" for k, v in counts.items() if v)
    )
    print(format_table(report["trials"], columns))
    ranked = [r for name_ in report["top"] for r in report["trials"] if r["name"] == name_]
    print(f"\ntop {len(ranked)} by {report['metric']['name']}:")
    print(format_table(ranked, columns))
    print("\nextreme explorations (the study's Table 1):")
    picked = [
        {"pick": pick, **next(r for r in report["trials"] if r["name"] == trial)}
        for pick, trial in report["picks"].items()
    ]
    print(format_table(picked, ["pick", "name", *report["params"], "train_loss", "eval_loss", "correct", "f1"]))
    print("\nwritten: " + ", ".join(report["files"]))
    return 0


def _dashboard(args: argparse.Namespace) -> int:
    from wsgiref.simple_server import make_server

    from qatune.cli.serve import check_port
    from qatune.sweep.runner import dashboard_app

    name = args.show_name or args.join or args.name
    if not name:
        raise ConfigError("sweep dashboard: give the sweep NAME, e.g. `qatune sweep dashboard my-sweep`")
    options = _options(args, name)
    app = dashboard_app(options)
    check_port(args.host, args.port)
    with make_server(args.host, args.port, app) as server:
        print(f"sweep {name}: optuna-dashboard on http://{args.host}:{args.port}/dashboard/ (Ctrl-C stops it)")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from qatune.paths import masked_url
    from qatune.sweep import load_sweep, run_sweep

    if args.config == "show":
        return _show(args)
    if args.config == "dashboard":
        return _dashboard(args)
    if args.show_name:
        raise ConfigError(f"unexpected argument {args.show_name!r}; did you mean `qatune sweep show NAME`?")
    if args.join and args.config:
        raise ConfigError("give a CONFIG or --join NAME, not both")
    if args.join:
        if not args.storage:
            raise ConfigError("--join needs --storage URL (the database the sweep lives in)")
        spec, name = None, args.join
    elif args.config:
        spec = load_sweep(args.config, _overrides(args.base))
        name = args.name or spec.name or Path(args.config).stem
    else:
        raise ConfigError("give a sweep CONFIG file (or --join NAME, or `show NAME`); see `qatune sweep --help`")
    options = _options(args, name)
    if args.dry_run:
        if spec is None:
            raise ConfigError("--dry-run checks a CONFIG file; it has nothing to check with --join")
        _print_plan(spec, name, options)
        return 0
    result = run_sweep(spec, options, progress_bar=not args.quiet)
    if args.json:
        emit(result, default=str)
        return 0
    counts = result["counts"]
    print(f"sweep {name}: stopped ({result['stopped']}); " + ", ".join(f"{v} {k}" for k, v in counts.items() if v))
    best = result["best"]
    if best:
        print(
            f"best: {best['name']}, {result['metric']} {best['value']:.4g} "
            f"(EM {best['exact_match']:.2f}, F1 {best['f1']:.2f}, correct {best['correct']})"
        )
    print(
        f"results: qatune sweep show {name}"
        + (f" --storage {masked_url(args.storage)}" if args.storage else "")
        + (f" --dir {args.dir}" if args.dir != "runs/sweeps" else "")
    )
    return 0

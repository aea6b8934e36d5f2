"""`qatune run [STUDY.yaml]`: the whole study from one file (the CLI side only)."""

from __future__ import annotations

import argparse
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from qatune.cli.common import Parser, emit

if TYPE_CHECKING:
    from qatune.study.spec import StudySpec

RUN_EPILOG = """stages: data -> sweep (optional) -> fine-tune each experiment -> evaluate (train slice, test slice,
untuned base) -> questions -> report (report.md, report.html, results.json in the report folder).
A rerun skips every stage whose inputs did not change and resumes an interrupted one.

examples:
  qatune run                                   # the quickstart study (about 12 minutes on 2 CPU cores)
  qatune run examples/study.yaml --dry-run     # validate a study file and print its plan
  QATUNE_DATA_DIR=../shared/data/squad qatune run examples/quickstart.yaml"""


def add_run_parser(sub: argparse._SubParsersAction[Parser], common: Parser) -> None:
    p = sub.add_parser(
        "run",
        parents=[common],
        help="run a whole study from a YAML file and write its report",
        description="Run a study: sweep, fine-tune, compare with the untuned model, answer "
        "questions, and write a Markdown/HTML report with tables and figures.",
        epilog=RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("study", nargs="?", help="study YAML file (default: the packaged quickstart)")
    p.add_argument("--dry-run", action="store_true", help="validate the study and print its plan; run nothing")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument(
        "--report-to",
        metavar="TRACKERS",
        help="log the sweep's trials and the experiments to these trackers: comma-separated tensorboard, "
        "mlflow, wandb, or none (default: the study file's report_to, else none)",
    )


def quickstart_path() -> Path:
    return Path(str(resources.files("qatune") / "resources" / "quickstart.yaml"))


def _starts_from_another(spec: StudySpec, name: str) -> bool:
    return any(e.name == name and e.from_experiment for e in spec.experiments)


def _plan(spec: StudySpec) -> list[str]:
    lines = [
        f"study {spec.name}: OK; report in {spec.report.dir} ({', '.join(spec.report.formats)})",
        f"data: train {spec.data.train}, test {spec.data.test}"
        + (" (embedded sample if not found)" if spec.data.allow_sample else ""),
    ]
    if spec.sweep:
        cap = spec.sweep.run_cap or spec.sweep_count or spec.sweep.grid_size
        lines.append(
            f"1. sweep: {spec.sweep.method} over {', '.join(spec.sweep.params)}, "
            f"{spec.sweep.metric.name} {spec.sweep.metric.goal}, {cap} trials"
        )
    for e in spec.experiments:
        shown = {
            **({"model": f"the model of {e.from_experiment}"} if e.from_experiment else {}),
            **{k: v for k, v in e.settings.items() if k not in ("train_data", "eval_data")},
            **{k: f"from_sweep {v}" for k, v in e.from_sweep.items()},
        }
        lines.append(f"2. fine-tune {e.name}: " + ", ".join(f"{k}={v}" for k, v in shown.items()))
    compare = spec.compare
    if compare:
        lines.append(
            f"3. evaluate every experiment on {compare.data or spec.data.test} "
            f"({compare.sample or compare.limit or 'all'} questions) and on {compare.train_sample} of its "
            f"training questions; {compare.experiment} against "
            + ("the model it starts from" if _starts_from_another(spec, compare.experiment) else "its untuned model")
            + (f"; also on {', '.join(compare.also_data)}" if compare.also_data else "")
        )
    if spec.questions:
        lines.append(f"4. ask {len(spec.questions.items)} questions to every model (top {spec.questions.top_k})")
    lines.append("5. report")
    return lines


def cmd_run(args: argparse.Namespace) -> int:
    import dataclasses

    from qatune.study import load_study, run_study
    from qatune.study.run import check_study_folder
    from qatune.training.trackers import parse_report_to

    spec = load_study(args.study or quickstart_path())
    if args.report_to is not None:
        spec = dataclasses.replace(spec, report_to=",".join(parse_report_to(args.report_to)) or "none")
    check_study_folder(spec)
    if args.dry_run:
        print("\n".join(_plan(spec)))
        return 0
    results = run_study(spec, progress_bar=not args.quiet)
    if args.json:
        emit(results.to_dict(), default=str)
        return 0
    print(f"study {spec.name} done in {results.seconds} s")
    for path in results.files:
        print(f"  {path}")
    return 0

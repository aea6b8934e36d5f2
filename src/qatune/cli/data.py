"""`qatune data`: check a data file; make v2-style negatives; convert annotation exports; split without leakage.

qatune data FILE [--negatives F --output OUT]       check (and extend) a SQuAD / JSON Lines file
qatune data convert IN --output OUT.json            Label Studio, doccano, CSV, broken SQuAD -> SQuAD
qatune data split IN --dev 0.1 --output-dir DIR     DIR/train.json and DIR/dev.json, no shared context
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from qatune.cli.common import Parser, emit, finite_float, seed_int
from qatune.errors import ConfigError

if TYPE_CHECKING:
    from qatune.data.formats import Summary

ACTIONS = ("convert", "split")
EXAMPLES = """examples:
  qatune data dev-v1.1.json --negatives 0.5 --seed 1 --output dev-v2-style.json
  qatune data convert label-studio-export.json --output mine.json
  qatune data convert faq.csv --output mine.json        (columns context, question, answer)
  qatune data split mine.json --dev 0.1 --seed 0 --output-dir mine/"""


def add_data_parser(sub: argparse._SubParsersAction[Parser], common: Parser) -> None:
    """The `data` parser: `spec` is FILE, or `convert FILE` / `split FILE`."""
    from qatune.data.formats import FORMATS
    from qatune.data.negatives import DEFAULT_KINDS

    p = sub.add_parser(
        "data",
        parents=[common],
        help="check a data file; add v2-style negatives; convert annotation exports and spreadsheets; split",
        description=__doc__,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("spec", nargs="+", metavar="[convert|split] FILE", help="a file or data spec, after the action")
    p.add_argument("--skip-invalid", action="store_true", help="drop questions with bad answer offsets")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--negatives",
        type=finite_float,
        help="turn this fraction (0-1] of the questions into unanswerable ones of --negative-kinds; needs --output",
    )
    p.add_argument(
        "--negative-kinds",
        default=DEFAULT_KINDS,
        metavar="KINDS",
        help=f"comma-separated kinds of --negatives (default: {DEFAULT_KINDS}): article (another paragraph of "
        "the same article without its answers), entity (a name of the question swapped for a same-type name "
        "its paragraph never mentions), number (a number changed), antonym (largest -> smallest ...), "
        "negation ('not' inserted)",
    )
    p.add_argument(
        "--mined-negatives",
        type=finite_float,
        help="add this fraction (0-1] of unanswerable questions: each paired with the paragraph BM25 ranks "
        "highest for it among those (of any article) that hold none of its answers; needs --output",
    )
    p.add_argument(
        "--restated",
        type=finite_float,
        help="add this fraction (0-1] of answerable questions whose paragraph no longer states a name or number "
        "of the question (a phrase such as 'in 1888' taken out, the answer kept); needs --output",
    )
    p.add_argument("--output", help="write the data set here as SQuAD JSON (v2.0 when some are unanswerable)")
    p.add_argument(
        "--seed",
        type=seed_int,
        default=0,
        help="seed of --negatives, --mined-negatives, --restated and of split (default: 0)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--format", choices=FORMATS, default="auto", help="convert: the input's format (default: auto)")
    p.add_argument("--dev", type=finite_float, help="split: the share of questions in dev, e.g. 0.1")
    p.add_argument("--by", choices=("context", "title"), default="context", help="split: what dev never shares")
    p.add_argument("--output-dir", help="split: the folder of train.json and dev.json")


def cmd_data(args: argparse.Namespace) -> int:
    action = args.spec[0] if args.spec[0] in ACTIONS and len(args.spec) > 1 else None
    files = args.spec[1:] if action else args.spec
    if len(files) != 1:
        raise ConfigError(f"give one data file{f' after {action}' if action else ''}, got {len(files)}: {files}")
    unused = {
        "convert": ("negatives", "mined_negatives", "restated", "dev", "output_dir"),
        "split": ("negatives", "mined_negatives", "restated", "output"),
        None: ("dev", "output_dir"),
    }[action]
    given = [f"--{n.replace('_', '-')}" for n in unused if getattr(args, n) is not None]
    if given:
        raise ConfigError(f"{' '.join(given)}: not an option of `qatune data {action or 'FILE'}`; see qatune data -h")
    return {"convert": _convert, "split": _split, None: _check}[action](args, files[0])


def _convert(args: argparse.Namespace, path: str) -> int:
    from qatune.data.formats import convert
    from qatune.data.squad import to_squad
    from qatune.io import atomic_write_json, output_target
    from qatune.paths import check_output_file

    if not args.output:
        raise ConfigError("convert writes a SQuAD file: give --output OUT.json")
    stream = output_target(args.output).stream
    if not stream:
        _not_the_input(Path(args.output), path, "--output")
    target = check_output_file(args.output, "--output", args.overwrite)
    if not stream and not target.name.endswith(".json"):
        raise ConfigError(f"--output {args.output}: convert writes SQuAD JSON; give a name ending in .json")
    dataset, summary = convert(path, args.format)
    atomic_write_json(args.output, to_squad(dataset))
    with contextlib.redirect_stdout(sys.stderr) if stream else contextlib.nullcontext():
        _print_summary(summary, path, args)  # the data went to stdout: the summary goes to stderr
    return 0


def _print_summary(summary: Summary, path: str, args: argparse.Namespace) -> None:
    if args.json:
        emit({**summary.to_dict(), "output": args.output})
        return
    a = summary.answers
    print(
        f"{path} ({summary.format}): {summary.questions} questions on {summary.contexts} contexts "
        f"({summary.unanswerable} unanswerable) -> {args.output}\n"
        f"answers: {a['exact']} at their offset, {a['located']} located by their text, {a['resolved']} "
        f"resolved among several places, {a['ambiguous']} ambiguous, {a['missing']} missing"
    )
    if summary.moved:
        print(
            f"moved {summary.moved} answers whose offset disagreed with their text to where the text is "
            f"(first: {summary.first_moved}); check them if the text, not the offset, was wrong"
        )
    for reason, n in summary.skipped.most_common():
        print(f"skipped {n}: {reason} (first: {summary.examples[reason]})")
    if not summary.skipped:
        print("skipped: none")


def _split(args: argparse.Namespace, path: str) -> int:
    from qatune.data.sources import load_data
    from qatune.data.split import split
    from qatune.data.squad import to_squad
    from qatune.io import atomic_write_json
    from qatune.paths import check_output_file

    if args.dev is None or not args.output_dir:
        raise ConfigError("split needs --dev FRACTION and --output-dir DIR")
    out = Path(args.output_dir)
    for name in ("train.json", "dev.json"):
        _not_the_input(out / name, path, "--output-dir")  # before "exists: pass --overwrite", which would not do
    targets = [check_output_file(out / name, "--output-dir", args.overwrite) for name in ("train.json", "dev.json")]
    train, dev = split(load_data(path, "train", skip_invalid=args.skip_invalid), args.dev, args.seed, args.by)
    out.mkdir(parents=True, exist_ok=True)
    for target, part in zip(targets, (train, dev)):
        atomic_write_json(target, to_squad(part))
    info = {
        "source": path,
        "by": args.by,
        "train": {"questions": len(train), "contexts": len({e.context for e in train})},
        "dev": {"questions": len(dev), "contexts": len({e.context for e in dev})},
        "shared_contexts": len({e.context for e in train} & {e.context for e in dev}),
        "output_dir": str(out),
    }
    if args.json:
        emit(info)
        return 0
    print(
        f"{path}: train {info['train']['questions']} questions on {info['train']['contexts']} contexts, dev "
        f"{info['dev']['questions']} on {info['dev']['contexts']} (no {args.by} in both) -> {out}/train.json, "
        f"{out}/dev.json"
    )
    return 0


def _not_the_input(target: Path, source: str, flag: str) -> None:
    """Refuse to write over the file being read, even with --overwrite: it is the user's data, not ours."""
    if Path(source).is_file() and target.resolve() == Path(source).resolve():
        raise ConfigError(f"{flag}: {target} is the input file; write beside it (qatune never replaces its input)")


def _check(args: argparse.Namespace, spec: str) -> int:
    from qatune.data.negatives import DEFAULT_KINDS, add_mined_negatives, add_negatives, parse_kinds
    from qatune.data.restated import add_restated
    from qatune.data.sources import load_data
    from qatune.data.squad import to_squad
    from qatune.io import atomic_write_json
    from qatune.models.embedding import perturber_for
    from qatune.paths import check_output_file

    made = (("--negatives", args.negatives), ("--mined-negatives", args.mined_negatives), ("--restated", args.restated))
    for flag, value in made:
        if value is not None and not args.output:
            raise ConfigError(f"{flag} makes a new data set: give --output FILE to write it to")
    kinds = parse_kinds(args.negative_kinds)
    if args.negatives is None and args.negative_kinds != DEFAULT_KINDS:
        raise ConfigError("--negative-kinds says which kinds --negatives makes: give --negatives FRACTION too")
    if args.output:
        _not_the_input(Path(args.output), spec, "--output")
        check_output_file(args.output, "--output", args.overwrite)
    dataset = load_data(spec, "train", skip_invalid=args.skip_invalid)
    if args.negatives is not None:
        perturber = perturber_for(dataset.examples, kinds)
        dataset = add_negatives(dataset, args.negatives, args.seed, kinds=kinds, perturber=perturber)
    if args.mined_negatives is not None:
        dataset = add_mined_negatives(dataset, args.mined_negatives, args.seed + 2)
    if args.restated is not None:
        dataset = add_restated(dataset, args.restated, args.seed + 6)
    if args.output:
        atomic_write_json(args.output, to_squad(dataset))
    info = {
        "source": dataset.source,
        "questions": len(dataset),
        "contexts": len({e.context for e in dataset}),
        "unanswerable": sum(e.is_impossible for e in dataset),
        "skipped": dataset.skipped,
        "notes": dataset.notes,
    }
    if args.json:
        emit(info)
    else:
        print(
            f"{info['source']}: {info['questions']} questions on {info['contexts']} contexts, "
            f"{info['unanswerable']} unanswerable, {info['skipped']} skipped: OK"
        )
    return 0

"""The `qatune` command line: parses arguments, calls the library, prints, and picks the exit code.

Errors the library raises on purpose (QatuneError) become one `error: ...` line and exit code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
import typing

from qatune import __version__
from qatune.cli.answer import add_ask_parser, cmd_ask
from qatune.cli.common import Parser, emit, finite_float, float_or_model, int_in
from qatune.cli.data import add_data_parser, cmd_data
from qatune.cli.documents import add_index_parser, cmd_index
from qatune.cli.evaluate import add_calibrate_parser, add_evaluate_parser, cmd_calibrate, cmd_evaluate
from qatune.cli.serve import add_export_parser, add_push_parser, add_serve_parser, cmd_export, cmd_push, cmd_serve
from qatune.cli.settings import command_settings
from qatune.cli.study import add_run_parser, cmd_run
from qatune.cli.sweep import add_sweep_parser, cmd_sweep
from qatune.errors import QatuneError, TrainingInterrupted
from qatune.hardware import MAX_THREADS

DESCRIPTION = (
    "Turn a pre-trained transformer encoder into an extractive question-answering model: "
    "fine-tune, sweep hyperparameters, evaluate with official SQuAD metrics, answer with confidence."
)
EPILOG = """examples:
  qatune train --train-data squad:train --train-sample 2000 --output runs/minilm
  qatune train --model runs/minilm --train-data mine/train.json --eval-data mine/dev.json \\
               --mix squad:train:1 --output runs/mine      # further on your own data, SQuAD mixed in
  qatune evaluate --model runs/minilm --data squad:validation --limit 500
  qatune ask --model runs/minilm --context "Vin is a Mistborn of great power and skill." \\
             --question "What is Vin's speciality?"
  qatune sweep examples/sweep_f1.yaml && qatune sweep show sweep_f1
  qatune run                      # the whole study (quickstart): sweep, fine-tunes, comparison, report

data specs: a file (.json/.json.gz SQuAD, .jsonl rows), sample[:validation] (embedded set), or
squad[:split] / squad_v2[:split], looked up in $QATUNE_DATA_DIR, then the Hugging Face hub or its cache.
models: default (embedded all-MiniLM-L6-v2), a local model folder, or a hub id such as bert-base-cased."""

THREADS_HELP = (
    "compute threads (default: $OMP_NUM_THREADS, else the CPUs this process may use: its affinity, e.g. "
    "taskset, capped by a container's CPU quota)"
)

VERBOSE_HELP = "also debug lines, and what the libraries qatune calls log (hidden by default)"

TRAIN_HELP = {
    "model": "pre-trained model: default, a folder (also one `qatune train` wrote: fine-tune it further), or a hub id",
    "train_data": "training data spec (see `qatune --help`)",
    "eval_data": "dev data evaluated every --eval-steps; 'none' to skip",
    "output_dir": "folder for the fine-tuned model, metrics.jsonl and checkpoints",
    "train_limit": "use the first N training questions",
    "train_sample": "use a seeded random N training questions",
    "eval_limit": "evaluate on the first N dev questions",
    "eval_sample": "evaluate on a seeded random N dev questions",
    "train_batch_size": "questions windows per optimizer step (reached by gradient accumulation)",
    "micro_batch_size": "windows per forward pass (default: on a CPU the largest divisor of the batch "
    "up to 8, on a GPU the whole batch)",
    "num_train_epochs": "passes over the training windows (may be fractional)",
    "max_steps": "stop after N optimizer steps (overrides epochs)",
    "doc_stride": "OVERLAP in tokens between consecutive windows of a long context (as in HF)",
    "max_query_length": "questions are cut to this many tokens",
    "use_title": "read each question with its document's title in front ('TITLE: question'; SQuAD's article "
    "titles, a documents index's file titles, `ask --title`), so a question naming what its paragraph only calls "
    "'she' or 'the city' is not taken for unanswerable; saved with the model (README, Unanswerable questions)",
    "eval_steps": "evaluate on the dev slice every N optimizer steps",
    "save_steps": "checkpoint every N steps (default: eval_steps); a rerun resumes from the last one",
    "eval_at_start": "also evaluate the untuned model at step 0 (the baseline)",
    "group_by_length": "batch windows of similar length together (less padding, faster)",
    "skip_invalid": "drop questions whose answer_start does not match the text, with a count",
    "precision": "auto (bf16 on CPUs with AMX or AVX512-BF16, CUDA autocast on GPUs, else fp32), fp32, or bf16 "
    "(mixed precision: bfloat16 compute, float32 weights and optimizer)",
    "negatives": "turn this fraction of the training questions into unanswerable ones of --negative-kinds "
    "(SQuAD v2-style; README, Unanswerable questions); the held-out calibration questions get them too",
    "negative_kinds": "comma-separated kinds of --negatives: article (another paragraph of the same article), "
    "entity (a name of the question swapped for a same-type name the paragraph never mentions), number (a "
    "number changed), antonym (largest -> smallest, first -> last ...), negation ('not' inserted; noisy: "
    "README)",
    "mined_negatives": "add this fraction of unanswerable questions, each paired with the paragraph of the training "
    "file that BM25 ranks highest for it among those without its answers (what a retriever hands a reader of "
    "`ask --index`; may be combined with --negatives)",
    "restated": "add this fraction of answerable questions whose paragraph no longer states a name or number of "
    "the question (a phrase such as 'in 1888' taken out, the answer kept), so that --negatives' entity and number "
    "kinds do not teach 'a name the paragraph lacks: no answer' (README, Unanswerable questions)",
    "mix": "SPEC[:RATIO]: add RATIO questions of data SPEC per training question, e.g. squad:train:0.5 (one "
    "SQuAD question for every two of yours; default ratio 1), so fine-tuning on your own data does not forget "
    "SQuAD; a seeded sample, added after --negatives (README, Your own labelled data)",
    "dropout": "dropout probability of every dropout layer while training, or 'model' for the model's own "
    "(0.1 for BERT-style models); 0 is faster on CPUs and scored higher in one-epoch fine-tunes (README, Speed)",
    "attention_dropout": "dropout of the attention probabilities only (default: as --dropout); 0 lets attention "
    "run as one fused kernel",
    "span_loss": "separate (HF's: a cross-entropy over start tokens plus one over end tokens) or joint (one softmax "
    "over every span of the window and the null answer, the probability answers are given with; README, Unanswerable "
    "questions)",
    "load_best_model_at_end": "save the weights of the best evaluation (--metric-for-best-model), not the last",
    "metric_for_best_model": "f1, exact_match, correct or eval_loss: what 'best' means for the two settings around it",
    "early_stopping_patience": "stop after N evaluations without improvement of --metric-for-best-model",
    "report_to": "log every record (loss, learning rate, windows/s, each evaluation) and the settings to "
    "trackers: comma-separated tensorboard (event files in OUTPUT/tensorboard), mlflow ($MLFLOW_TRACKING_URI, "
    "else ./mlflow.db), wandb (WANDB_MODE=offline works), or none",
    "calibration_questions": "after training, fit the confidence calibration on up to N training questions "
    "left out of training (0: off); with --mix, up to half of them the mix's",
}


def _add_train_args(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field, so the CLI and the config never drift apart."""
    from qatune.training.config import TrainConfig

    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        flag = "--output" if f.name == "output_dir" else "--" + f.name.replace("_", "-")
        default = f.default
        if isinstance(default, bool):
            parser.add_argument(
                flag,
                dest=f.name,
                action=argparse.BooleanOptionalAction,
                default=default,
                help=TRAIN_HELP.get(f.name, ""),
            )
            continue
        hint = hints[f.name]
        kind = next((a for a in typing.get_args(hint) if a is not type(None)), hint)
        optional_float = kind is float and type(None) in typing.get_args(hint)
        parser.add_argument(
            flag,
            dest=f.name,
            type=float_or_model if optional_float else {float: finite_float}.get(kind, kind),
            default=default,
            metavar=f.name.split("_")[-1].upper(),
            help=f"{TRAIN_HELP.get(f.name, f.name.replace('_', ' '))} (default: {default})",
        )


def build_parser() -> argparse.ArgumentParser:
    """The whole `qatune` parser: global flags, then one sub-parser per command, in `--help` order."""
    parser = Parser(
        prog="qatune", description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"qatune {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors on stderr")
    parser.add_argument("-v", "--verbose", action="store_true", help=VERBOSE_HELP)
    parser.add_argument("--threads", type=int_in(1, MAX_THREADS), default=None, metavar="N", help=THREADS_HELP)
    common = _common_parser()
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _add_train_parser(sub, common)

    add_evaluate_parser(sub, common)
    add_calibrate_parser(sub, common)
    add_ask_parser(sub, common)
    add_index_parser(sub, common)

    add_sweep_parser(sub, common)
    add_run_parser(sub, common)

    add_export_parser(sub, common)
    add_serve_parser(sub, common)

    add_push_parser(sub, common)

    add_data_parser(sub, common)
    return parser


def _common_parser() -> Parser:
    """The flags every command takes, so that -q and --threads may also follow the command.

    SUPPRESS defaults: a flag not repeated after the command keeps the value given before it.
    """
    common = Parser(add_help=False)
    common.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=argparse.SUPPRESS,
        help="only warnings and errors on stderr, no progress bars",
    )
    common.add_argument(
        "--threads", type=int_in(1, MAX_THREADS), default=argparse.SUPPRESS, metavar="N", help=THREADS_HELP
    )
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP)
    return common


def _add_train_parser(sub: argparse._SubParsersAction[Parser], common: Parser) -> None:
    """`qatune train`: one flag per TrainConfig field, plus what only the command line needs."""
    p = sub.add_parser(
        "train",
        parents=[common],
        help="fine-tune a model for extractive QA (resumable)",
        description="Fine-tune a pre-trained encoder on SQuAD-style data, evaluating on a dev slice.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_train_args(p)
    p.add_argument("--overwrite", action="store_true", help="start over even if --output holds a run")
    p.add_argument("--json", action="store_true", help="print the run summary as JSON")


def cmd_train(args: argparse.Namespace) -> int:
    from qatune.training.config import TrainConfig
    from qatune.training.trainer import train

    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)}
    if str(values["eval_data"]).lower() in {"none", ""}:
        values["eval_data"] = None
    command = shlex.join(["qatune", *args.argv])
    summary = train(
        TrainConfig.from_dict(values), overwrite=args.overwrite, progress_bar=not args.quiet, command=command
    )
    if summary is None:  # a process of a distributed launch other than the first: it saved nothing
        return 0
    if args.json:
        emit(summary.to_dict())
        return 0
    print(f"model saved to {args.output_dir} ({summary.steps} steps, {summary.seconds} s)")
    if summary.final_eval:
        m = summary.final_eval.scores
        print(
            f"dev: EM {m.exact_match:.2f}  F1 {m.f1:.2f}  correct {m.correct}  "
            f"similar {m.similar}  incorrect {m.incorrect}  (of {m.total})"
        )
    return 0


CHECKPOINTING = {"train", "sweep", "run"}  # SIGTERM stops them like Ctrl-C: they checkpoint first

COMMANDS = {
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "calibrate": cmd_calibrate,
    "push": cmd_push,
    "ask": cmd_ask,
    "index": cmd_index,
    "data": cmd_data,
    "sweep": cmd_sweep,
    "run": cmd_run,
    "export": cmd_export,
    "serve": cmd_serve,
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.quiet and args.verbose:
        parser.error("-q (fewer lines) and -v (more lines) contradict each other; give one")
    args.argv = list(sys.argv[1:] if argv is None else argv)  # the command as typed, for model cards
    try:
        settings = command_settings(
            args.threads, sigterm=args.command in CHECKPOINTING, quiet=args.quiet, verbose=args.verbose
        )
        with settings:
            return COMMANDS[args.command](args)
    except TrainingInterrupted as exc:
        print(f"interrupted: {exc}", file=sys.stderr)
        return 130
    except QatuneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a disk or permission failure the library did not name itself
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

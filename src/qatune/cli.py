"""The `qatune` command line: parses arguments, calls the library, prints, and picks the exit code.

Errors the library raises on purpose (QatuneError) become one `error: ...` line and exit code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import shlex
import sys
import typing
from pathlib import Path
from typing import Any

from qatune import __version__
from qatune.calibration import TARGETS
from qatune.cli_common import (
    Parser,
    add_window_args,
    emit,
    finite_float,
    float_or_model,
    int_in,
    model_window,
    positive_int,
)
from qatune.cli_serve import add_export_parser, add_serve_parser, cmd_export, cmd_serve
from qatune.cli_study import add_run_parser, cmd_run
from qatune.cli_sweep import add_sweep_parser, cmd_sweep
from qatune.errors import ConfigError, DataError, QatuneError, TrainingInterrupted

DESCRIPTION = (
    "Turn a pre-trained transformer encoder into an extractive question-answering model: "
    "fine-tune, sweep hyperparameters, evaluate with official SQuAD metrics, answer with confidence."
)
EPILOG = """examples:
  qatune train --train-data squad:train --train-sample 2000 --output runs/minilm
  qatune evaluate --model runs/minilm --data squad:validation --limit 500
  qatune ask --model runs/minilm --context "Vin is a Mistborn of great power and skill." \\
             --question "What is Vin's speciality?"
  qatune sweep examples/sweep_f1.yaml && qatune sweep show sweep_f1
  qatune run                      # the whole study (quickstart): sweep, fine-tunes, comparison, report

data specs: a file (.json/.json.gz SQuAD, .jsonl rows), sample[:validation] (embedded set), or
squad[:split] / squad_v2[:split], looked up in $QATUNE_DATA_DIR, then the Hugging Face hub or its cache.
models: default (embedded all-MiniLM-L6-v2), a local model folder, or a hub id such as bert-base-cased."""

TRAIN_HELP = {
    "model": "pre-trained model: default, a folder, or a hub id",
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
    "eval_steps": "evaluate on the dev slice every N optimizer steps",
    "save_steps": "checkpoint every N steps (default: eval_steps); a rerun resumes from the last one",
    "eval_at_start": "also evaluate the untuned model at step 0 (the baseline)",
    "group_by_length": "batch windows of similar length together (less padding, faster)",
    "skip_invalid": "drop questions whose answer_start does not match the text, with a count",
    "precision": "auto (bf16 on CPUs with AMX or AVX512-BF16, CUDA autocast on GPUs, else fp32), fp32, or bf16 "
    "(mixed precision: bfloat16 compute, float32 weights and optimizer)",
    "negatives": "add this fraction of unanswerable questions to the training data, each paired with another "
    "paragraph of its article that holds none of its answers (SQuAD v2-style; README, Unanswerable questions)",
    "dropout": "dropout probability of every dropout layer while training, or 'model' for the model's own "
    "(0.1 for BERT-style models); 0 is faster on CPUs and scored higher in one-epoch fine-tunes (README, Speed)",
    "attention_dropout": "dropout of the attention probabilities only (default: as --dropout); 0 lets attention "
    "run as one fused kernel",
    "load_best_model_at_end": "save the weights of the best evaluation (--metric-for-best-model), not the last",
    "metric_for_best_model": "f1, exact_match, correct or eval_loss: what 'best' means for the two settings around it",
    "early_stopping_patience": "stop after N evaluations without improvement of --metric-for-best-model",
    "report_to": "log every record (loss, learning rate, windows/s, each evaluation) and the settings to "
    "trackers: comma-separated tensorboard (event files in OUTPUT/tensorboard), mlflow ($MLFLOW_TRACKING_URI, "
    "else ./mlflow.db), wandb (WANDB_MODE=offline works), or none",
    "calibration_questions": "after training, fit the confidence calibration on up to N training questions "
    "left out of training (0: off)",
}


def _add_train_args(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field, so the CLI and the config never drift apart."""
    from qatune.config import TrainConfig

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
    parser = Parser(
        prog="qatune", description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"qatune {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors on stderr")
    common = Parser(add_help=False)  # lets -q also follow the command
    common.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=argparse.SUPPRESS,
        help="only warnings and errors on stderr, no progress bars",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

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

    p = sub.add_parser(
        "evaluate", parents=[common], help="EM/F1 and correct/similar/incorrect of a model on a data set"
    )
    p.add_argument("--model", default="default", help="model: default, a folder, or a hub id")
    p.add_argument("--data", default="squad:validation", help="data spec (default: squad:validation)")
    p.add_argument("--limit", type=positive_int, help="first N questions")
    p.add_argument("--sample", type=positive_int, help="seeded random N questions")
    p.add_argument("--batch-size", type=positive_int, default=64, help="windows per forward pass (default: 64)")
    p.add_argument(
        "--dtype",
        choices=["float32", "bfloat16"],
        default="float32",
        help="weights for inference; bfloat16 is faster on CPUs with AMX and GPUs (default: float32)",
    )
    p.add_argument("--predictions", help="write predictions (JSON, id -> answer) here")
    p.add_argument("--metrics", help="write the metrics JSON here")
    p.add_argument(
        "--report",
        metavar="DIR",
        help="write a report folder: evaluation.json, predictions.json, and the calibration of the confidence "
        "(reliability.csv and reliability.png: exact match against the top-1 probability)",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace existing --predictions / --metrics files or --report folder"
    )
    p.add_argument(
        "--update-card",
        action="store_true",
        help="add this result (EM, F1) to the model folder's model card (README.md, Hub model-index)",
    )
    p.add_argument("--skip-invalid", action="store_true", help="drop questions with bad answer offsets")
    add_window_args(p)

    p = sub.add_parser(
        "calibrate",
        parents=[common],
        help="fit a model's confidence calibration on held-out questions",
        description="Fit the temperature that makes a model's answer probabilities match how often its answers "
        "are right, on questions it was neither trained nor evaluated on, and save it in the model folder "
        "(calibration.json), where ask, evaluate, serve and export use it. `qatune train` does this itself "
        "(--calibration-questions); use this for a model trained elsewhere or before.",
        epilog="examples:\n  qatune calibrate --model runs/my-model            # its own held-out training questions\n"
        "  qatune calibrate --model bert-qa --data held-out.json --sample 1000 --target exact_match",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", required=True, help="a model folder (the calibration is saved into it)")
    p.add_argument(
        "--data",
        help="held-out questions: a data file or spec, not your test set (default, for a model qatune trained: "
        "--sample questions of its training file that it was not trained on)",
    )
    p.add_argument(
        "--target",
        choices=TARGETS,
        default="auto",
        help="what the probability predicts: exact_match (matching one of a question's answers), f1 (token F1 "
        "with them, which on one-answer questions estimates what several annotators would accept), or auto: "
        "exact_match where most questions have several answers, else f1 (default: auto)",
    )
    p.add_argument("--limit", type=positive_int, help="first N questions")
    p.add_argument("--sample", type=positive_int, default=1000, help="seeded random N questions (default: 1000)")
    p.add_argument("--batch-size", type=positive_int, default=64, help="windows per forward pass (default: 64)")
    p.add_argument("--skip-invalid", action="store_true", help="drop questions with bad answer offsets")
    add_window_args(p)

    p = sub.add_parser(
        "ask", parents=[common], help="answer a question about a context: top-k answers with probabilities"
    )
    p.add_argument("--model", default="default", help="model: default, a folder, or a hub id")
    p.add_argument("--context", help="the context text (else --context-file, else stdin)")
    p.add_argument("--context-file", help="read the context from this file")
    p.add_argument("--question", help="the question")
    p.add_argument("--questions", help="JSON file: a list of {context, question} objects (batch mode)")
    p.add_argument("--top-k", type=int_in(1, 20), default=3, help="answers per question, 1..20 (default: 3)")
    p.add_argument(
        "--max-context-chars",
        type=positive_int,
        help="refuse longer contexts (default: $QATUNE_MAX_CONTEXT_CHARS, else 100000)",
    )
    p.add_argument("--compare-with", help="a second model to answer the same questions, side by side")
    add_window_args(p)

    add_sweep_parser(sub, common)
    add_run_parser(sub, common)

    add_export_parser(sub, common)
    add_serve_parser(sub, common)

    p = sub.add_parser(
        "push",
        parents=[common],
        help="upload a model folder (or an export) to the Hugging Face Hub",
        description="Upload a trained model folder or an ONNX export to the Hub with huggingface_hub, with its "
        "model card (README.md); checkpoints stay behind. The token comes from HF_TOKEN or `hf auth login`.",
        epilog="example: qatune push runs/minilm --repo-id my-user/minilm-squad --private",
    )
    p.add_argument("model", help="the model folder to upload")
    p.add_argument("--repo-id", required=True, help="USER/NAME of the model repository (created if missing)")
    p.add_argument("--private", action="store_true", help="create the repository as private")

    p = sub.add_parser(
        "data",
        parents=[common],
        help="validate a data file and print its counts; make a SQuAD v2-style file from a v1.1 one",
        epilog="example: qatune data dev-v1.1.json --negatives 0.5 --output dev-v2-style.json",
    )
    p.add_argument("spec", help="file or data spec")
    p.add_argument("--skip-invalid", action="store_true", help="drop questions with bad answer offsets")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--negatives",
        type=finite_float,
        help="add this fraction (0-1] of unanswerable questions: each paired with another paragraph of the "
        "same article that holds none of its answers (easier than SQuAD v2's adversarial ones); needs --output",
    )
    p.add_argument("--output", help="write the (v2-style) data set here as SQuAD v2.0 JSON")
    p.add_argument("--seed", type=int, default=0, help="seed of --negatives (default: 0)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --output file")
    return parser


def cmd_train(args: argparse.Namespace) -> int:
    from qatune.config import TrainConfig
    from qatune.train import train

    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)}
    if str(values["eval_data"]).lower() in {"none", ""}:
        values["eval_data"] = None
    command = shlex.join(["qatune", *args.argv])
    summary = train(
        TrainConfig.from_dict(values), overwrite=args.overwrite, progress_bar=not args.quiet, command=command
    )
    if args.json:
        emit(summary)
        return 0
    final = summary.get("final_eval") or {}
    print(f"model saved to {args.output_dir} ({summary.get('steps')} steps, {summary.get('seconds')} s)")
    if final:
        print(
            f"dev: EM {final['exact_match']:.2f}  F1 {final['f1']:.2f}  correct {final['correct']}  "
            f"similar {final['similar']}  incorrect {final['incorrect']}  (of {final['total']})"
        )
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from qatune.card import add_result, read_card
    from qatune.inference import evaluate
    from qatune.io import atomic_write_json
    from qatune.layout import EVAL_REPORT, RELIABILITY_FIGURE
    from qatune.models import load_model
    from qatune.paths import check_output_file, check_output_folder
    from qatune.report.evaluation import write_evaluation_report
    from qatune.sources import load_data

    outputs = [
        check_output_file(path, flag, args.overwrite)
        for path, flag in ((args.predictions, "--predictions"), (args.metrics, "--metrics"))
        if path
    ]  # before the work
    if len({p.resolve() for p in outputs}) < len(outputs):
        raise ConfigError("--predictions and --metrics name the same file; give two names")
    if args.report:
        check_output_folder(args.report, "--report", (EVAL_REPORT,), "an evaluation report", args.overwrite)
    if args.update_card:
        read_card(Path(args.model))  # a missing or damaged card is an error before the work, not after
    window = model_window(args.model, args)
    dataset = load_data(args.data, "validation", skip_invalid=args.skip_invalid)
    dataset = dataset.select(args.limit, args.sample, args.seed)
    loaded = load_model(args.model, seed=args.seed, dtype=args.dtype)
    result = evaluate(loaded, dataset, window, args.batch_size, progress_bar=not args.quiet)
    report = {
        "model": args.model,
        "data": dataset.source,
        "fresh_head": loaded.fresh_head,
        "notes": dataset.notes,
        **result.metrics,
    }
    if args.predictions:
        atomic_write_json(args.predictions, result.predictions)
    if args.metrics:
        atomic_write_json(args.metrics, report)
    if args.report:
        write_evaluation_report(Path(args.report), report, result, dataset)
    if args.update_card:
        add_result(Path(args.model), result.metrics, dataset.source)
    if args.json:
        emit(report)
        return 0
    m = result.metrics
    print(
        f"{args.model} on {dataset.source} ({m['total']} questions, {m['seconds']:.1f} s, "
        f"{m['questions_per_second']:.1f} q/s)"
    )
    print(f"  EM {m['exact_match']:.2f}  F1 {m['f1']:.2f}  eval loss {m['eval_loss']:.3f}")
    print(f"  correct {m['correct']}  similar {m['similar']}  incorrect {m['incorrect']}")
    print(
        f"  calibration error (ECE, 10 bins) {m['ece']:.3f}"
        + ("" if loaded.temperature == 1.0 else f" (uncalibrated {m['ece_raw']:.3f})")
    )
    if args.report:
        print(f"report: {args.report}/ ({EVAL_REPORT}, {RELIABILITY_FIGURE})")
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from qatune.calibration import write_calibration
    from qatune.inference import calibrate
    from qatune.layout import CALIBRATION_FILE
    from qatune.models import load_model
    from qatune.paths import check_output_file
    from qatune.sources import load_data

    folder = Path(args.model)
    if not folder.is_dir():
        raise ConfigError(f"--model {args.model}: not a model folder; the calibration is saved into the model's folder")
    check_output_file(folder / CALIBRATION_FILE, "--model", overwrite=True)  # writable; refitting replaces it
    if args.data is None:
        from qatune.train import held_out_questions

        dataset = held_out_questions(folder, args.limit or args.sample)
    else:
        dataset = load_data(args.data, "train", skip_invalid=args.skip_invalid).select(
            args.limit, args.sample, args.seed
        )
    loaded = load_model(args.model, seed=0)
    window = model_window(args.model, args)
    calibration = calibrate(loaded, dataset, window, args.batch_size, progress_bar=not args.quiet, target=args.target)
    path = write_calibration(folder, calibration)
    if args.json:
        emit(dataclasses.asdict(calibration))
        return 0
    print(
        f"calibrated {args.model} on {calibration.questions} questions of {dataset.source}: temperature "
        f"{calibration.temperature:.3f}, calibration error (ECE) {calibration.ece_before:.3f} -> "
        f"{calibration.ece_after:.3f} against {calibration.target} (EM {calibration.exact_match:.1f}); saved {path}"
    )
    return 0


def _questions(args: argparse.Namespace) -> list[tuple[str, str]]:
    """(context, question) pairs from --questions, or the single --context/--question."""
    if args.questions:
        from qatune.data import read_text
        from qatune.io import parse_json

        items = parse_json(read_text(Path(args.questions)), args.questions, DataError)
        try:
            pairs = [(item["context"], item["question"]) for item in items]
        except (TypeError, KeyError) as exc:
            raise DataError(
                f'{args.questions}: expected a JSON list of {{"context", "question"}} objects '
                f"({type(exc).__name__}: {exc})"
            ) from None
        if not pairs:
            raise DataError(f'{args.questions}: no questions in it; give a list of {{"context", "question"}} objects')
    else:
        if args.context is not None:
            context = args.context
        elif args.context_file:
            from qatune.data import read_text

            context = read_text(Path(args.context_file))
        elif not sys.stdin.isatty():
            context = sys.stdin.read()
        else:
            raise DataError("no context: pass --context TEXT, --context-file FILE, or pipe it on stdin")
        if args.question is None:
            raise DataError("no question: pass --question TEXT (or --questions FILE)")
        pairs = [(context, args.question)]
    return pairs


def _prediction_json(prediction) -> dict[str, Any]:
    out = prediction.to_dict()
    for answer in out["answers"]:
        for key in ("probability", "raw_probability", "score"):
            answer[key] = round(answer[key], 6)
    out["no_answer_probability"] = round(out["no_answer_probability"], 6)
    return out


def _answerer(model: str, args: argparse.Namespace):
    from qatune.answering import open_answerer

    answerer, _ = open_answerer(
        model, window=model_window(model, args), seed=args.seed, max_context_chars=args.max_context_chars
    )
    return answerer


def cmd_ask(args: argparse.Namespace) -> int:
    from qatune.data import question_examples

    pairs = _questions(args)
    question_examples(pairs, args.max_context_chars)  # every pair checked (empty, size) before a model loads
    models = [args.model] + ([args.compare_with] if args.compare_with else [])
    results = {m: _answerer(m, args).predict_many(pairs, args.top_k) for m in models}
    objects = []
    for i, (_, question) in enumerate(pairs):
        obj: dict[str, Any] = {"question": question, **_prediction_json(results[args.model][i]), "model": args.model}
        if args.compare_with:
            obj["compare"] = {"model": args.compare_with, **_prediction_json(results[args.compare_with][i])}
        objects.append(obj)
    if args.json:
        if args.questions:
            emit(objects)
        else:
            del objects[0]["question"]
            emit(objects[0])
        return 0
    for obj in objects:
        print(f"Q: {obj['question']}")
        for block in [obj] + ([obj["compare"]] if "compare" in obj else []):
            print(f"  {block['model']}:")
            for rank, a in enumerate(block["answers"], start=1):
                shown = repr(a["text"]) if a["text"] else "no answer in this context"
                print(f"    {rank}. {shown}  p={a['probability']:.4f}  [{a['start']}:{a['end']}]")
            if block["no_answer_probability"] > 0.5:
                print(
                    f"    (the context may not answer this: no-answer probability {block['no_answer_probability']:.2f})"
                )
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    from qatune.push import push

    url = push(args.model, args.repo_id, args.private)
    print(f"pushed {args.model} to https://huggingface.co/{args.repo_id} ({url})")
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from qatune.io import atomic_write_json
    from qatune.negatives import add_negatives, to_squad_v2
    from qatune.paths import check_output_file
    from qatune.sources import load_data

    if args.negatives is not None and not args.output:
        raise ConfigError("--negatives makes a new data set: give --output FILE to write it to")
    if args.output:
        check_output_file(args.output, "--output", args.overwrite)
    dataset = load_data(args.spec, "train", skip_invalid=args.skip_invalid)
    if args.negatives is not None:
        dataset = add_negatives(dataset, args.negatives, args.seed)
    if args.output:
        atomic_write_json(args.output, to_squad_v2(dataset))
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


COMMANDS = {
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "calibrate": cmd_calibrate,
    "push": cmd_push,
    "ask": cmd_ask,
    "data": cmd_data,
    "sweep": cmd_sweep,
    "run": cmd_run,
    "export": cmd_export,
    "serve": cmd_serve,
}


def _setup_logging(quiet: bool) -> None:
    class Format(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            prefix = "warning: " if record.levelno >= logging.WARNING else ""
            return prefix + record.getMessage()

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(Format())
    root = logging.getLogger("qatune")
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING if quiet else logging.INFO)
    root.propagate = False


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # the command as typed, for model cards
    _setup_logging(args.quiet)
    try:
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

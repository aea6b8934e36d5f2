"""`qatune evaluate`, `calibrate` and `ask`: scoring a model and asking it questions (the CLI side only)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from qatune.cli.common import (
    Parser,
    add_window_args,
    answerer_for,
    emit,
    float_in,
    int_in,
    model_window,
    positive_int,
)
from qatune.documents.records import RETRIEVAL_WEIGHT
from qatune.errors import ConfigError, DataError
from qatune.io import JsonObject
from qatune.models.settings import TARGETS

if TYPE_CHECKING:
    from qatune.answering.decoding import Prediction


def add_evaluate_parser(sub: argparse._SubParsersAction[Parser], common: Parser) -> None:
    p = sub.add_parser(
        "evaluate", parents=[common], help="EM/F1 and correct/similar/incorrect of a model on a data set"
    )
    p.add_argument(
        "--model", default="default", help="model: default, a folder, an export (onnxruntime; int8 too), or a hub id"
    )
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


def add_calibrate_parser(sub: argparse._SubParsersAction[Parser], common: Parser) -> None:
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
        "--sample questions of its training file that it was not trained on, up to half of them its --mix's)",
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


def add_ask_parser(sub: argparse._SubParsersAction[Parser], common: Parser) -> None:
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
    p.add_argument(
        "--max-windows",
        type=positive_int,
        help="refuse a question whose context makes more model windows than this, counted after "
        "tokenising: what the model's time grows with (default: $QATUNE_MAX_WINDOWS, else 1024, about 40 s "
        "on 2 CPU cores; 100,000 characters make about 140 windows of English, 650 of Chinese)",
    )
    p.add_argument("--compare-with", help="a second model to answer the same questions, side by side")
    p.add_argument(
        "--index",
        help="answer from this document index (`qatune index`: a folder or a postgresql:// URL) instead of a "
        "context: cited answers",
    )
    p.add_argument(
        "--passages",
        type=int_in(1, 100),
        default=10,
        help="with --index: passages retrieved and read per question (default: 10)",
    )
    p.add_argument(
        "--retrieval",
        choices=["fused", "bm25", "dense"],
        default="fused",
        help="with --index: how passages are retrieved (default: fused, BM25 and embeddings, each side's "
        "scores standardised and averaged)",
    )
    p.add_argument(
        "--retrieval-weight",
        type=float_in(0, 100),
        default=RETRIEVAL_WEIGHT,
        help="with --index: how much an answer's passage's retrieval score counts beside the reader's "
        f"(default: {RETRIEVAL_WEIGHT:g}, chosen on open SQuAD; 0: the reader alone)",
    )
    add_window_args(p)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from qatune.answering.factory import open_answerer
    from qatune.answering.onnx_backend import is_exported
    from qatune.data.sources import load_data
    from qatune.evaluation.scoring import evaluate
    from qatune.io import atomic_write_json, output_target
    from qatune.layout import EVAL_REPORT
    from qatune.paths import check_output_file, check_output_folder
    from qatune.report.evaluation import report_lines, write_evaluation_report
    from qatune.training.card import add_result, check_card

    outputs = [
        check_output_file(path, flag, args.overwrite)
        for path, flag in ((args.predictions, "--predictions"), (args.metrics, "--metrics"))
        if path
    ]  # before the work
    files = [p.resolve() for p in outputs if not output_target(p).stream]  # streams (/dev/null, -) may repeat
    if len(set(files)) < len(files):
        raise ConfigError("--predictions and --metrics name the same file; give two names")
    if args.report:
        check_output_folder(args.report, "--report", (EVAL_REPORT,), "an evaluation report", args.overwrite)
    if args.update_card:  # a missing, damaged or read-only card is an error before the work, not after
        check_card(Path(args.model), "--update-card")
    window = model_window(args.model, args)
    dataset = load_data(args.data, "validation", skip_invalid=args.skip_invalid)
    dataset = dataset.select(args.limit, args.sample, args.seed)
    if is_exported(args.model) and args.dtype != "float32":  # as `ask` and `serve` answer with it
        print(f"warning: --dtype {args.dtype} is for torch models; {args.model} runs as exported", file=sys.stderr)
    answerer, _ = open_answerer(args.model, window=window, seed=args.seed, dtype=args.dtype, batch_size=args.batch_size)
    result = evaluate(answerer, dataset, progress_bar=not args.quiet)
    fresh_head, temperature = answerer.fresh_head, answerer.decoding.temperature
    report = {"model": args.model, "data": dataset.source, "fresh_head": fresh_head, "notes": dataset.notes}
    report.update(result.metrics)
    if args.predictions:
        atomic_write_json(args.predictions, result.predictions)
    if args.metrics:
        atomic_write_json(args.metrics, report)
    if args.report:
        write_evaluation_report(Path(args.report), report, result, dataset)
    if args.update_card:
        add_result(Path(args.model), result.scores, dataset.source)
    if args.json:
        emit(report)
        return 0
    m = result.scores
    print(
        f"{args.model} on {dataset.source} ({m.total} questions, {m.seconds:.1f} s, {m.questions_per_second:.1f} q/s)"
    )
    loss = "" if m.eval_loss is None else f"  eval loss {m.eval_loss:.3f}"
    print(f"  EM {m.exact_match:.2f}  F1 {m.f1:.2f}{loss}")
    print(f"  correct {m.correct}  similar {m.similar}  incorrect {m.incorrect}")
    uncalibrated = "" if temperature == 1.0 else f" (uncalibrated {m.ece_raw:.3f})"
    print(f"  calibration error (ECE, 10 bins) {m.ece:.3f}{uncalibrated}")
    if args.report:
        print("\n".join(report_lines(Path(args.report))))
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from qatune.answering.onnx_backend import is_exported
    from qatune.answering.torch_backend import Answerer
    from qatune.data.sources import load_data
    from qatune.evaluation.calibration import calibrate
    from qatune.models.loading import load_model
    from qatune.training.card import check_calibration_folder, save_calibration

    folder = Path(args.model)
    if not folder.is_dir():
        raise ConfigError(f"--model {args.model}: not a model folder; the calibration is saved into the model's folder")
    if is_exported(folder):
        raise ConfigError(
            f"--model {args.model}: an ONNX export carries the calibration of the model it came from; calibrate "
            f"that model and export it again"
        )
    check_calibration_folder(folder, "--model")  # what refitting rewrites can be written; the old fit is not read
    if args.data is None:
        from qatune.training.setup import held_out_questions

        dataset = held_out_questions(folder, args.limit or args.sample)
    else:
        dataset = load_data(args.data, "train", skip_invalid=args.skip_invalid).select(
            args.limit, args.sample, args.seed
        )
    loaded = load_model(args.model, seed=0, calibrated=False)  # a damaged calibration.json is what this replaces
    answerer = Answerer(loaded, model_window(args.model, args), batch_size=args.batch_size)
    calibration = calibrate(answerer, dataset, progress_bar=not args.quiet, target=args.target)
    path = save_calibration(folder, calibration)  # with qatune.json and the model card, under the folder's lock
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
        from qatune.data.squad import read_text
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
            from qatune.data.squad import read_text

            context = read_text(Path(args.context_file))
        elif not sys.stdin.isatty():
            context = sys.stdin.read()
        else:
            raise DataError("no context: pass --context TEXT, --context-file FILE, or pipe it on stdin")
        if args.question is None:
            raise DataError("no question: pass --question TEXT (or --questions FILE)")
        pairs = [(context, args.question)]
    return pairs


def _prediction_json(prediction: Prediction) -> JsonObject:
    out: JsonObject = prediction.to_dict()
    for answer in out["answers"]:
        for key in ("probability", "raw_probability", "score"):
            answer[key] = round(answer[key], 6)
    out["no_answer_probability"] = round(out["no_answer_probability"], 6)
    return out


def _predict(model: str, pairs: list[tuple[str, str]], args: argparse.Namespace) -> list[Prediction]:
    """Each question's prediction by `model`, all in one batched pass; the window bound holds per question,
    and a question over it is an error naming it."""
    from qatune.answering.answerer import Query
    from qatune.errors import QatuneError

    results = answerer_for(model, args).predict_queries([Query([pair], args.top_k) for pair in pairs])
    for i, result in enumerate(results):
        if isinstance(result, QatuneError):
            raise type(result)(f"{args.questions}: question {i + 1}: {result}" if args.questions else str(result))
    return [result[0] for result in results if not isinstance(result, QatuneError)]


def cmd_ask(args: argparse.Namespace) -> int:
    from qatune.data.squad import question_examples

    if args.index:
        from qatune.cli.documents import cmd_ask_index

        return cmd_ask_index(args)

    pairs = _questions(args)
    question_examples(pairs, args.max_context_chars)  # every pair checked (empty, size) before a model loads
    models = [args.model] + ([args.compare_with] if args.compare_with else [])
    results = {m: _predict(m, pairs, args) for m in models}
    objects = []
    for i, (_, question) in enumerate(pairs):
        obj: JsonObject = {"question": question, **_prediction_json(results[args.model][i]), "model": args.model}
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

"""`qatune evaluate` and `calibrate`: scoring a model and fitting its confidence (the CLI side only)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from qatune.cli.common import Parser, add_window_args, emit, float_in, model_window, positive_int
from qatune.errors import ConfigError, ModelError
from qatune.models.settings import TARGETS

if TYPE_CHECKING:
    from qatune.evaluation.results import Scores

CALIBRATION_SAMPLE = 1000  # held-out questions a fit uses by default


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
        "--na-probs",
        metavar="FILE",
        help="write each question's no-answer probability here (JSON, id -> probability: the official SQuAD "
        "v2.0 script's --na-prob-file); for models that can answer 'no answer'",
    )
    p.add_argument(
        "--report",
        metavar="DIR",
        help="write a report folder: evaluation.json, predictions.json, and the calibration of the confidence "
        "(reliability.csv and reliability.png: exact match against the top-1 probability); for a model that "
        "can answer 'no answer' also na_probs.json and thresholds.csv (the scores at no-answer thresholds "
        "0, 0.05, ..., 1, the saved one and the best one)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace existing --predictions / --metrics / --na-probs files or --report folder",
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
        "(--calibration-questions); use this for a model trained elsewhere or before. A model that can answer "
        "'no answer' also gets the no-answer threshold with the best F1 on those questions; --null-threshold P "
        "sets one by hand instead, without fitting.",
        epilog="examples:\n  qatune calibrate --model runs/my-model            # its own held-out training questions\n"
        "  qatune calibrate --model bert-qa --data held-out.json --sample 1000 --target exact_match\n"
        "  qatune calibrate --model runs/v2-model --null-threshold 0.6   # a threshold from thresholds.csv",
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
        help="what the probability predicts: exact_match (matching one of a question's answers), f1 (token F1 "
        "with them, which on one-answer questions estimates what several annotators would accept), or auto: "
        "exact_match where most questions have several answers, else f1 (default: auto)",
    )
    p.add_argument("--limit", type=positive_int, help="first N questions")
    p.add_argument("--sample", type=positive_int, help=f"seeded random N questions (default: {CALIBRATION_SAMPLE})")
    p.add_argument("--batch-size", type=positive_int, default=64, help="windows per forward pass (default: 64)")
    p.add_argument("--skip-invalid", action="store_true", help="drop questions with bad answer offsets")
    p.add_argument(
        "--null-threshold",
        type=float_in(0, 1),
        metavar="P",
        help="instead of fitting: keep the saved temperature and set the no-answer threshold to P, for a model "
        "that can answer 'no answer' (it abstains when its no-answer probability is over P; `evaluate --report` "
        "writes thresholds.csv, what each threshold scores); refit to choose it on held-out questions again",
    )
    add_window_args(p)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from qatune.answering.factory import open_answerer
    from qatune.answering.onnx_backend import is_exported
    from qatune.data.sources import load_data
    from qatune.evaluation.scoring import evaluate
    from qatune.io import atomic_write_json
    from qatune.report.evaluation import evaluation_summary, write_evaluation_report
    from qatune.training.card import add_result

    _check_outputs(args)
    window = model_window(args.model, args)
    dataset = load_data(args.data, "validation", skip_invalid=args.skip_invalid)
    dataset = dataset.select(args.limit, args.sample, args.seed)
    if is_exported(args.model) and args.dtype != "float32":  # as `ask` and `serve` answer with it
        print(f"warning: --dtype {args.dtype} is for torch models; {args.model} runs as exported", file=sys.stderr)
    answerer, _ = open_answerer(args.model, window=window, seed=args.seed, dtype=args.dtype, batch_size=args.batch_size)
    if args.na_probs and not answerer.decoding.with_null:
        raise ConfigError(
            f"--na-probs: {args.model} cannot answer 'no answer' (it was not trained on unanswerable questions); "
            f"drop --na-probs, or train with --negatives or on SQuAD v2-style data"
        )
    result = evaluate(answerer, dataset, progress_bar=not args.quiet)
    fresh_head, temperature = answerer.fresh_head, answerer.decoding.temperature
    report = evaluation_summary(args.model, dataset, result, fresh_head)
    if args.predictions:
        atomic_write_json(args.predictions, result.predictions)
    if args.metrics:
        atomic_write_json(args.metrics, report)
    if args.na_probs:
        atomic_write_json(args.na_probs, result.no_answer)
    if args.report:
        write_evaluation_report(Path(args.report), report, result, dataset)
    if args.update_card:
        add_result(Path(args.model), result.scores, dataset.source)
    if args.json:
        emit(report)
    else:
        _print_scores(args, dataset.source, result.scores, temperature)
    return 0


def _check_outputs(args: argparse.Namespace) -> None:
    """Refuse, before the work, output files and folders that hold someone else's work, the same file
    named twice, and a model card that cannot take the result."""
    from qatune.io import output_target
    from qatune.layout import EVAL_REPORT
    from qatune.paths import check_output_file, check_output_folder
    from qatune.training.card import check_card

    named = [
        (flag, path)
        for flag, path in (
            ("--predictions", args.predictions),
            ("--metrics", args.metrics),
            ("--na-probs", args.na_probs),
        )
        if path is not None
    ]
    files: dict[Path, list[str]] = {}
    to_stdout = ["--json"] if args.json else []
    for flag, path in named:
        target = output_target(check_output_file(path, flag, args.overwrite))
        if not target.stream:  # streams (/dev/null) may repeat
            files.setdefault(target.path, []).append(flag)
        elif target.kind == "stdout" or target.fd == 1:
            to_stdout.append(flag)
        if args.report and not target.stream and target.path.parent == Path(args.report).resolve():
            raise ConfigError(
                f"{flag} {path}: inside the --report folder, which evaluate fills; give a path outside it"
            )
    for flags in files.values():
        if len(flags) > 1:
            raise ConfigError(f"{' and '.join(flags)} name the same file; give each its own name")
    if len(to_stdout) > 1:
        raise ConfigError(f"{' and '.join(to_stdout)} would each write to stdout; give files to all but one")
    if args.report:
        check_output_folder(args.report, "--report", (EVAL_REPORT,), "an evaluation report", args.overwrite)
    if args.update_card:  # a missing, damaged or read-only card is an error before the work, not after
        check_card(Path(args.model), "--update-card")


def _print_scores(args: argparse.Namespace, source: str, m: Scores, temperature: float) -> None:
    """The human-readable summary of `evaluate`."""
    from qatune.report.evaluation import report_lines

    print(f"{args.model} on {source} ({m.total} questions, {m.seconds:.1f} s, {m.questions_per_second:.1f} q/s)")
    loss = "" if m.eval_loss is None else f"  eval loss {m.eval_loss:.3f}"
    print(f"  EM {m.exact_match:.2f}  F1 {m.f1:.2f}{loss}")
    print(f"  correct {m.correct}  similar {m.similar}  incorrect {m.incorrect}")
    uncalibrated = "" if temperature == 1.0 else f" (uncalibrated {m.ece_raw:.3f})"
    print(f"  calibration error (ECE, 10 bins) {m.ece:.3f}{uncalibrated}")
    if args.report:
        print("\n".join(report_lines(Path(args.report))))


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
    if args.null_threshold is not None:
        return _set_null_threshold(folder, args)
    sample = CALIBRATION_SAMPLE if args.sample is None else args.sample
    if args.data is None:
        from qatune.training.setup import held_out_questions

        dataset = held_out_questions(folder, args.limit or sample)
    else:
        dataset = load_data(args.data, "train", skip_invalid=args.skip_invalid).select(args.limit, sample, args.seed)
    loaded = load_model(args.model, seed=0, calibrated=False)  # a damaged calibration.json is what this replaces
    answerer = Answerer(loaded, model_window(args.model, args), batch_size=args.batch_size)
    calibration = calibrate(answerer, dataset, progress_bar=not args.quiet, target=args.target or "auto")
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


def _set_null_threshold(folder: Path, args: argparse.Namespace) -> int:
    """`calibrate --null-threshold P`: the saved calibration with the threshold P, set by hand."""
    from transformers.utils import CONFIG_NAME

    from qatune.io import read_json
    from qatune.models.settings import read_calibration
    from qatune.training.card import folder_lock, save_calibration

    fitting = ("data", "target", "limit", "sample", "max_seq_length", "doc_stride", "max_query_length")
    given = [f"--{name.replace('_', '-')}" for name in fitting if getattr(args, name) is not None]
    given += ["--skip-invalid"] if args.skip_invalid else []
    if given:
        raise ConfigError(
            f"--null-threshold sets the threshold without fitting, so {', '.join(given)} would do nothing; "
            f"drop {'it' if len(given) == 1 else 'them'} (or --null-threshold, to refit)"
        )
    config = read_json(folder / CONFIG_NAME, "the model's config", ModelError)
    if not (isinstance(config, dict) and config.get("qatune_with_null")):
        raise ConfigError(
            f"--null-threshold: {args.model} cannot answer 'no answer' (it was not trained on unanswerable "
            f"questions), so it has no threshold to set"
        )
    with folder_lock(folder, "its calibration"):  # read and replaced under one lock: no refit in between
        saved = read_calibration(folder)
        if saved is None:
            raise ConfigError(
                f"--model {args.model}: no calibration.json to set the threshold in; run `qatune calibrate --model "
                f"{args.model}` first"
            )
        calibration = dataclasses.replace(saved, null_threshold=args.null_threshold, null_threshold_f1=None)
        path = save_calibration(folder, calibration)
    if args.json:
        emit(dataclasses.asdict(calibration))
    else:
        print(
            f"{args.model}: no-answer threshold {saved.null_threshold!r} -> {args.null_threshold!r} (set by hand); "
            f"saved {path}"
        )
    return 0

"""`qatune ask`: asking a model questions about a context or a document index (the CLI side only)."""

from __future__ import annotations

import argparse
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

if TYPE_CHECKING:
    from qatune.answering.decoding import Prediction


def add_ask_parser(sub: argparse._SubParsersAction[Parser], common: Parser) -> None:
    p = sub.add_parser(
        "ask", parents=[common], help="answer a question about a context: top-k answers with probabilities"
    )
    p.add_argument("--model", default="default", help="model: default, a folder, or a hub id")
    p.add_argument("--context", help="the context text (else --context-file, else stdin)")
    p.add_argument("--context-file", help="read the context from this file")
    p.add_argument("--question", help="the question")
    p.add_argument(
        "--title",
        default="",
        help="the title of the context's document (an article's name): a model trained with --use-title reads "
        "it in front of the question; others ignore it",
    )
    p.add_argument(
        "--questions", help="JSON file: a list of {context, question} objects, each with an optional title (batch mode)"
    )
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


def _questions(args: argparse.Namespace) -> tuple[list[tuple[str, str]], list[str]]:
    """(context, question) pairs and their titles from --questions, or the single --context/--question/--title."""
    if args.questions:
        from qatune.data.squad import read_text
        from qatune.io import parse_json

        if args.title:
            raise ConfigError("--title is for one --question: give each of --questions' objects its own title")
        items = parse_json(read_text(Path(args.questions)), args.questions, DataError)
        try:
            pairs = [(item["context"], item["question"]) for item in items]
            titles = [item.get("title", "") for item in items]
        except (TypeError, KeyError, AttributeError) as exc:
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
        pairs, titles = [(context, args.question)], [args.title]
    return pairs, titles


def _prediction_json(prediction: Prediction) -> JsonObject:
    out: JsonObject = prediction.to_dict()
    for answer in out["answers"]:
        for key in ("probability", "raw_probability", "score"):
            answer[key] = round(answer[key], 6)
    out["no_answer_probability"] = round(out["no_answer_probability"], 6)
    return out


def _predict(model: str, pairs: list[tuple[str, str]], titles: list[str], args: argparse.Namespace) -> list[Prediction]:
    """Each question's prediction by `model`, all in one batched pass; the window bound holds per question,
    and a question over it is an error naming it."""
    from qatune.answering.answerer import Query
    from qatune.errors import QatuneError

    queries = [Query([pair], args.top_k, titles=[title]) for pair, title in zip(pairs, titles)]
    results = answerer_for(model, args).predict_queries(queries)
    for i, result in enumerate(results):
        if isinstance(result, QatuneError):
            raise type(result)(f"{args.questions}: question {i}: {result}" if args.questions else str(result))
    return [result[0] for result in results if not isinstance(result, QatuneError)]


def _warn_about_titles(models: list[str], titles: list[str], args: argparse.Namespace) -> None:
    """A warning where titles and the models disagree: titles a model ignores, or a titled model asked
    without them (it answers worse: HasAns F1 77.4 -> 74.9 on the README's adversarial dev set)."""
    untitled = sum(not t.strip() for t in titles)
    readers = [m for m in models if model_window(m, args).use_title]
    if untitled < len(titles) and not readers:
        print("warning: titles are read only by models trained with --use-title; these ignore them", file=sys.stderr)
    if not untitled:
        return
    for model in readers:
        print(
            f"warning: {model} was trained with --use-title and answers best given each context's title; "
            f"{untitled} of {len(titles)} questions have none (--title, or a 'title' in --questions)",
            file=sys.stderr,
        )


def cmd_ask(args: argparse.Namespace) -> int:
    from qatune.data.squad import question_examples

    if args.index:
        from qatune.cli.documents import cmd_ask_index

        return cmd_ask_index(args)

    pairs, titles = _questions(args)
    try:  # every pair checked (empty, size) before a model loads
        question_examples(pairs, args.max_context_chars, titles)
    except DataError as e:
        raise DataError(f"{args.questions}: {e}" if args.questions else str(e)) from None
    models = [args.model] + ([args.compare_with] if args.compare_with else [])
    _warn_about_titles(models, titles, args)
    results = {m: _predict(m, pairs, titles, args) for m in models}
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

"""`qatune export` and `qatune serve`: putting a model to use (the CLI side only)."""

from __future__ import annotations

import argparse
import os
import sys

from qatune.cli_common import add_window_args, emit, window_from_args
from qatune.errors import DataError


def add_export_parser(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("export", parents=[common], help="export a model to ONNX for fast answering without torch",
                       description="Export a QA model to ONNX (+ tokenizer.json). `qatune ask --model DIR` then "
                                   "answers with onnxruntime, tokenizers and numpy only, starting in well under a "
                                   "second.")
    p.add_argument("model", help="model: default, a folder, or a hub id")
    p.add_argument("--output", required=True, help="folder to write (replaced atomically)")
    p.add_argument("--quantize", action="store_true", help="int8 dynamic quantisation (faster, check its EM)")
    p.add_argument("--max-answer-length", type=int, default=30, help="longest answer in tokens (default: 30)")
    add_window_args(p)


def add_serve_parser(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("serve", parents=[common], help="HTTP API (/v1/answer, docs at /docs) and a web page at /",
                       description="Serve a model over HTTP: POST /v1/answer, /v1/answer:batch, GET /v1/models, "
                                   "/healthz; OpenAPI docs at /docs; a page to ask questions at /.")
    p.add_argument("--model", default="default", help="model: default, a folder (torch or exported), or a hub id")
    p.add_argument("--compare-with", help="a second model answering every request side by side")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    p.add_argument("--api-key", default=os.environ.get("QATUNE_API_KEY"),
                   help="require this key (X-API-Key or Authorization: Bearer); also $QATUNE_API_KEY")
    p.add_argument("--cors-origin", action="append", default=[], help="allow this browser origin (repeatable)")
    p.add_argument("--max-context-chars", type=int, default=20_000, help="longest context (default: 20000)")
    p.add_argument("--max-question-chars", type=int, default=1_000, help="longest question (default: 1000)")
    p.add_argument("--max-batch", type=int, default=32, help="most questions in one batch request (default: 32)")
    p.add_argument("--max-body-bytes", type=int, default=1_000_000, help="largest request body (default: 1000000)")
    p.add_argument("--seed", type=int, default=0, help="seed for a fresh QA head (default: 0)")


def cmd_export(args: argparse.Namespace) -> int:
    from qatune.export import export_onnx

    meta = export_onnx(args.model, args.output, window=window_from_args(args), seed=args.seed,
                       max_answer_length=args.max_answer_length, quantize=args.quantize)
    if args.json:
        emit(meta)
        return 0
    print(f"exported {args.model} to {args.output} in {meta['seconds']} s "
          f"({'int8' if meta['quantized'] else 'fp32'}; max logit difference to torch {meta['max_logit_difference']:.2g})")
    print(f"answer with: qatune ask --model {args.output} --context TEXT --question TEXT")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from qatune.serve import ServeConfig, create_app

    for flag in ("port", "max_context_chars", "max_question_chars", "max_batch", "max_body_bytes"):
        if getattr(args, flag) < 1:
            raise DataError(f"--{flag.replace('_', '-')} must be > 0, got {getattr(args, flag)}")
    config = ServeConfig(model=args.model, compare_with=args.compare_with, api_key=args.api_key,
                         cors_origins=args.cors_origin, max_context_chars=args.max_context_chars,
                         max_question_chars=args.max_question_chars, max_batch=args.max_batch,
                         max_body_bytes=args.max_body_bytes, seed=args.seed)
    app = create_app(config)
    print(f"serving {args.model} on http://{args.host}:{args.port}/ (API docs at /docs)", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning" if args.quiet else "info")
    return 0

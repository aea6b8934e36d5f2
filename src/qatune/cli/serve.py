"""`qatune export`, `serve` and `push`: putting a model to use (the CLI side only)."""

from __future__ import annotations

import argparse
import os
import sys

from qatune.cli.common import (
    Parser,
    add_window_args,
    emit,
    float_in,
    from_args,
    int_in,
    model_window,
    positive_int,
    seed_int,
)
from qatune.errors import ConfigError


def add_export_parser(sub: argparse._SubParsersAction[Parser], common: Parser) -> None:
    p = sub.add_parser(
        "export",
        parents=[common],
        help="export a model to ONNX for fast answering without torch",
        description="Export a QA model to ONNX (+ tokenizer.json). `qatune ask --model DIR` then "
        "answers with onnxruntime, tokenizers and numpy only, starting in well under a "
        "second.",
    )
    p.add_argument("model", help="model: default, a folder, or a hub id")
    p.add_argument(
        "--output",
        required=True,
        help="folder to write: new, empty, or an earlier export (replaced only once the new one is complete)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --output that is not an export")
    p.add_argument(
        "--quantize",
        action="store_true",
        help="int8 weights (per channel) and dynamic int8 activations: the fast path on CPUs without AMX; "
        "the headline model lost 0.48 EM with it (check yours with bench/quality.py)",
    )
    p.add_argument("--max-answer-length", type=positive_int, default=30, help="longest answer in tokens (default: 30)")
    add_window_args(p)


def add_serve_parser(sub: argparse._SubParsersAction[Parser], common: Parser) -> None:
    p = sub.add_parser(
        "serve",
        parents=[common],
        help="HTTP API (/v1/answer, docs at /docs) and a web page at /",
        description="Serve a model over HTTP: POST /v1/answer, /v1/answer:batch, GET /v1/models, "
        "/healthz; OpenAPI docs at /docs; a page to ask questions at /. POST / and /v1/hf speak the "
        "Hugging Face inference format, so huggingface_hub.InferenceClient(model='http://HOST:PORT')"
        ".question_answering(question=..., context=...) works. Concurrent requests are answered "
        "together in micro-batches (--batch-questions, --batch-wait-ms).",
    )
    p.add_argument("--model", default="default", help="model: default, a folder (torch or exported), or a hub id")
    p.add_argument("--compare-with", help="a second model answering every request side by side")
    p.add_argument(
        "--index",
        help="a document index (`qatune index`: a folder, or a postgresql:// URL several servers share): "
        "POST /v1/ask answers questions from it, cited",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int_in(1, 65535), default=8000, help="port (default: 8000)")
    p.add_argument(
        "--api-key",
        default=os.environ.get("QATUNE_API_KEY"),
        help="require this key (X-API-Key: KEY or Authorization: Bearer KEY); also $QATUNE_API_KEY. "
        "Printable ASCII; an empty key is an error; without either, anyone who reaches the port may ask",
    )
    p.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="allow this browser origin, scheme://host[:port] as browsers send it, e.g. http://localhost:3000 "
        "(repeatable); * allows any page, with a warning",
    )
    _add_limit_args(p)


def _add_limit_args(p: argparse.ArgumentParser) -> None:
    """What one request may cost, how concurrent requests share a forward pass, the weights' dtype and seed."""
    p.add_argument("--max-context-chars", type=positive_int, default=20_000, help="longest context (default: 20000)")
    p.add_argument("--max-question-chars", type=positive_int, default=1_000, help="longest question (default: 1000)")
    p.add_argument(
        "--max-batch", type=positive_int, default=32, help="most questions in one batch request (default: 32)"
    )
    p.add_argument(
        "--max-body-bytes", type=positive_int, default=1_000_000, help="largest request body (default: 1000000)"
    )
    p.add_argument(
        "--max-request-chars",
        type=positive_int,
        default=100_000,
        help="most characters of contexts and questions in one request (default: 100000)",
    )
    p.add_argument(
        "--max-request-windows",
        type=positive_int,
        default=256,
        help="most model windows (--max-seq-length tokens each) the contexts of one request may make, "
        "counted after tokenising: what bounds how long one request holds the model; over it, 422 "
        "(default: 256, about 10 s on 2 CPU cores for the default model; 20,000 characters make 28 windows "
        "of English, 131 of Chinese)",
    )
    p.add_argument(
        "--batch-questions",
        type=positive_int,
        default=32,
        help="most questions of concurrent requests answered in one forward pass; 1 answers requests "
        "one at a time (default: 32)",
    )
    p.add_argument(
        "--batch-wait-ms",
        type=float_in(0, 1000),
        default=20.0,
        help="longest a forward pass waits for more requests to join it: it waits only for those it "
        "expects (the last pass's callers and any that queued meanwhile), so a lone caller never waits "
        "(default: 20)",
    )
    p.add_argument(
        "--dtype",
        choices=["auto", "float32", "bfloat16"],
        default="auto",
        help="weights of a torch model; auto: bfloat16 where the CPU has AMX/AVX512-BF16 or on a GPU, "
        "else float32 (default: auto; exported ONNX folders keep their own)",
    )
    p.add_argument("--seed", type=seed_int, default=0, help="seed for a fresh QA head (default: 0)")


def cmd_export(args: argparse.Namespace) -> int:
    from qatune.publishing.export import export_onnx

    meta = export_onnx(
        args.model,
        args.output,
        window=model_window(args.model, args),
        seed=args.seed,
        max_answer_length=args.max_answer_length,
        quantize=args.quantize,
        overwrite=args.overwrite,
    )
    if args.json:
        emit(meta)
        return 0
    print(
        f"exported {args.model} to {args.output} in {meta['seconds']} s "
        f"({'int8' if meta['quantized'] else 'fp32'}; max logit difference to torch {meta['max_logit_difference']:.2g})"
    )
    print(f"answer with: qatune ask --model {args.output} --context TEXT --question TEXT")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from qatune.serving.app import create_app
    from qatune.serving.config import ServeConfig
    from qatune.serving.models import Models

    config = from_args(ServeConfig, args, cors_origins=args.cors_origin).check()
    check_port(args.host, args.port)  # before the model loads: a busy port is an error: line, not a log
    if config.api_key is None and args.host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"warning: serving on {args.host} without --api-key: anyone who can reach this port may ask",
            file=sys.stderr,
        )
    from qatune.answering.onnx_backend import is_exported

    for model in filter(None, (config.model, config.compare_with)):
        if config.dtype != "auto" and is_exported(model):
            print(f"warning: --dtype {config.dtype} is for torch models; {model} runs as exported", file=sys.stderr)
    models = Models()
    models.load(config)  # here, not in uvicorn's startup: a bad model is one error: line, not a traceback
    app = create_app(config, models)
    print(f"serving {args.model} on http://{args.host}:{args.port}/ (API docs at /docs)", file=sys.stderr)
    # uvicorn's start-up and access lines are other libraries' logs: shown with -v, like the rest (README)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info" if args.verbose else "warning")
    return 0


def check_port(host: str, port: int) -> None:
    """Fail early, with one line, when `host:port` cannot be listened on (in use, or no such address)."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"--host {host}: not an address of this machine ({exc.strerror})") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            probe.bind(address)
        except OSError as exc:
            raise ConfigError(
                f"--port {port}: cannot listen on {host}:{port} ({exc.strerror}); choose another "
                f"--port or stop what uses it"
            ) from None


def add_push_parser(sub: argparse._SubParsersAction[Parser], common: Parser) -> None:
    p = sub.add_parser(
        "push",
        parents=[common],
        help="upload a model folder (or an export) to the Hugging Face Hub",
        description="Upload a trained model folder or an ONNX export to the Hub with huggingface_hub, with its "
        "model card (README.md); other files (checkpoints, your notes) stay behind. The token comes from HF_TOKEN "
        "or `hf auth login`.",
        epilog="example: qatune push runs/minilm --repo-id my-user/minilm-squad --private",
    )
    p.add_argument("model", help="the model folder to upload")
    p.add_argument("--repo-id", required=True, help="USER/NAME of the model repository (created if missing)")
    p.add_argument("--private", action="store_true", help="create the repository as private")


def cmd_push(args: argparse.Namespace) -> int:
    from qatune.publishing.push import push

    url = push(args.model, args.repo_id, args.private)
    print(f"pushed {args.model} to https://huggingface.co/{args.repo_id} ({url})")
    return 0

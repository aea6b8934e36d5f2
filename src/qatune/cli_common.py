"""Pieces shared by the CLI modules: window flags, and JSON output."""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_window_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-seq-length", type=int, default=256, help="tokens per window (default: 256)")
    parser.add_argument("--doc-stride", type=int, default=96, help="overlap in tokens between windows (default: 96)")
    parser.add_argument("--max-query-length", type=int, default=64, help="questions cut to N tokens (default: 64)")
    parser.add_argument("--seed", type=int, default=0, help="seed for a fresh QA head and sampling (default: 0)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def emit(obj: Any) -> None:
    print(json.dumps(obj, indent=2, ensure_ascii=False))


def window_from_args(args: argparse.Namespace):
    from qatune.windows import WindowConfig

    return WindowConfig(args.max_seq_length, args.doc_stride, args.max_query_length)

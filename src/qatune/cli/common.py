"""Pieces shared by the CLI modules: the parser class, number types, window flags, and JSON output."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

from qatune.io import dumps
from qatune.training.config import SEED_MAX

if TYPE_CHECKING:
    from qatune.answering.answerer import SpanAnswerer
    from qatune.data.windows import WindowConfig


class Parser(argparse.ArgumentParser):
    """argparse with qatune's error contract: one `error:` line, exit code 2 (no usage block)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def int_in(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer in [low, high], e.g. `--limit` >= 1 or `--port` 1..65535."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low or (high is not None and value > high):
            bound = f"between {low} and {high}" if high is not None else f">= {low}"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {value}")
        return value

    parse.__name__ = "integer"
    return parse


seed_int = int_in(0, SEED_MAX)  # an argparse type for --seed


positive_int = int_in(1)


def finite_float(text: str) -> float:
    """An argparse type: a finite number (no nan, no inf)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value + 0.0  # -0 is 0: a saved or printed "-0.0" reads as a bug


def float_in(low: float, high: float) -> Callable[[str], float]:
    """An argparse type: a finite number in [low, high]."""

    def parse(text: str) -> float:
        value = finite_float(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low:g} and {high:g}, got {value:g}")
        return value

    parse.__name__ = "number"
    return parse


def float_or_model(text: str) -> float | None:
    """An argparse type: a finite number, or `model` (None: the model's own value)."""
    return None if text.strip().lower() == "model" else finite_float(text)


def add_window_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-seq-length",
        type=positive_int,
        help="tokens per window (default: the model's own, saved when it was trained, else 256)",
    )
    parser.add_argument(
        "--doc-stride", type=int_in(0), help="overlap in tokens between windows (default: the model's own, else 96)"
    )
    parser.add_argument(
        "--max-query-length", type=positive_int, help="questions cut to N tokens (default: the model's own, else 64)"
    )
    parser.add_argument("--seed", type=seed_int, default=0, help="seed for a fresh QA head and sampling (default: 0)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def emit(obj: Any, default: Callable[[Any], Any] | None = None) -> None:
    """`obj` as strict JSON on stdout (--json); `default` turns other objects into JSON values."""
    print(dumps(obj, indent=2, ensure_ascii=False, default=default))


def from_args(cls: Any, args: argparse.Namespace, **given: Any) -> Any:
    """A config dataclass from the parsed flags named like its fields (`given` values win)."""
    import dataclasses

    return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)} | given)


def window_overrides(args: argparse.Namespace) -> dict[str, int | None]:
    """The window flags given on the command line (None: keep the model's own setting)."""
    return {
        "max_seq_length": args.max_seq_length,
        "doc_stride": args.doc_stride,
        "max_query_length": args.max_query_length,
    }


def model_window(model: str, args: argparse.Namespace) -> WindowConfig:
    """The window settings to answer `model` with: its saved ones, with the flags given on top."""
    from qatune.data.windows import saved_window

    window = saved_window(model).updated(**window_overrides(args))
    window.check()
    return window


def answerer_for(model: str, args: argparse.Namespace) -> SpanAnswerer:
    """The answerer `ask` uses for `model`: its window with the flags on top, the size and work bounds."""
    from qatune.answering.answerer import WindowLimit
    from qatune.answering.factory import open_answerer
    from qatune.data.windows import max_windows

    answerer, _ = open_answerer(
        model,
        window=model_window(model, args),
        seed=args.seed,
        max_context_chars=args.max_context_chars,
        max_windows=WindowLimit(args.max_windows or max_windows(), "--max-windows", "question"),
    )
    return answerer

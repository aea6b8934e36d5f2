"""Benchmark `ask`: warm latency of one question (p50/p95) and cold start of the CLI to a printed answer.

Variants: the torch Answerer (baseline), the exported ONNX model (fp32) and its int8 quantisation;
cold start: `qatune ask` on a torch model folder vs on the exported folder.

    python bench/ask.py [--model MODEL] [--calls 50] [--cold 5]
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA_DIR, median, percentile, save, table  # noqa: E402

QUESTION = "What is the name of the stadium?"


def paragraph() -> str:
    """A paragraph-length context: the first paragraph of SQuAD dev (else a fixed text)."""
    path = DATA_DIR / "dev-v1.1.json.gz"
    if path.exists():
        return json.loads(gzip.decompress(path.read_bytes()))["data"][0]["paragraphs"][0]["context"]
    return (
        "Super Bowl 50 was an American football game to determine the champion of the National Football "
        "League (NFL) for the 2015 season. The game was played on February 7, 2016, at Levi's Stadium in the "
        "San Francisco Bay Area at Santa Clara, California."
    ) * 2


def warm(answerer, context: str, calls: int) -> list[float]:
    for _ in range(5):
        answerer.ask(context, QUESTION)
    times = []
    for _ in range(calls):
        began = time.perf_counter()
        answerer.ask(context, QUESTION)
        times.append((time.perf_counter() - began) * 1000)
    return times


def cold(model: str, context: str, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "qatune.cli",
                "ask",
                "--model",
                model,
                "--context",
                context,
                "--question",
                QUESTION,
                "-q",
            ],
            check=True,
            capture_output=True,
        )
        times.append(time.perf_counter() - began)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--cold", type=int, default=5)
    args = parser.parse_args()
    from qatune.answering.onnx_backend import OnnxAnswerer
    from qatune.answering.torch_backend import Answerer
    from qatune.publishing.export import export_onnx

    context = paragraph()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        fp32, int8 = Path(tmp) / "fp32", Path(tmp) / "int8"
        export_onnx(args.model, fp32)
        export_onnx(args.model, int8, quantize=True)
        for name, answerer in (
            ("torch (baseline)", Answerer(args.model)),
            ("onnx fp32", OnnxAnswerer(fp32)),
            ("onnx int8", OnnxAnswerer(int8)),
        ):
            times = warm(answerer, context, args.calls)
            rows.append(
                {
                    "variant": name,
                    "p50_ms": median(times),
                    "p95_ms": percentile(times, 95),
                    "top_answer": answerer.ask(context, QUESTION)[0].text,
                }
            )
        base = rows[0]["p50_ms"]
        for row in rows:
            row["speedup_p50"] = base / row["p50_ms"]
        torch_folder = args.model
        cold_rows = []
        for name, model in (("qatune ask, torch model", torch_folder), ("qatune ask, exported fp32", str(fp32))):
            times = cold(model, context, args.cold)
            cold_rows.append({"variant": name, "median_s": median(times), "min_s": min(times), "max_s": max(times)})
    print(f"warm latency, one question on a {len(context.split())}-word paragraph ({args.calls} calls):")
    print(table(rows, ["variant", "p50_ms", "p95_ms", "speedup_p50", "top_answer"]))
    print(f"\ncold start, process start to printed answer ({args.cold} runs):")
    print(table(cold_rows, ["variant", "median_s", "min_s", "max_s"]))
    path = save("ask", {"model": args.model, "context_words": len(context.split()), "warm": rows, "cold": cold_rows})
    print(f"\nwritten {path}")


if __name__ == "__main__":
    main()

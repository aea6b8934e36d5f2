"""Shared helpers of the benchmarks: machine description, medians, result files, tables.

Benchmarks are scripts, not tests: they print measured figures (medians of repeated runs and
ratios to a baseline measured in the same run) and write them to bench/results/NAME.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

from qatune.hardware import compute_threads

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DATA_DIR = Path(os.environ.get("QATUNE_DATA_DIR") or ROOT.parent / "shared" / "data" / "squad")


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    import numpy
    import torch

    cpu = ""
    try:
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        cpu = platform.processor()
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "avx512": "avx512f" in flags,
        "vnni": "avx512_vnni" in flags,
        "amx": "amx_tile" in flags,
        "bf16_flags": sorted(set(flags.split()) & {"amx_bf16", "avx512_bf16"}),  # qatune's auto bf16 needs one
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "threads": torch.get_num_threads(),  # what torch computes with in this process
        "compute_threads": dataclasses.asdict(compute_threads()),  # what the CLI would choose, and why
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cuda": torch.cuda.is_available(),
        "load_average": os.getloadavg(),
    }


def median(values: list[float]) -> float:
    return statistics.median(values)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def fail(message: str) -> NoReturn:
    """One `error:` line and exit status 2."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def result_name(name: str) -> str:
    """An argparse type for --name: a plain file name, checked when the command starts, not after the run."""
    if not name or Path(name).name != name or name.startswith("."):
        raise argparse.ArgumentTypeError(f"{name!r}: give a plain file name (it is saved under bench/results)")
    return name


def save(name: str, payload: dict[str, Any]) -> Path:
    """bench/results/NAME.json with the machine description and the time of the run."""
    try:
        result_name(name)
    except argparse.ArgumentTypeError as exc:
        fail(f"--name {exc}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    body = {"benchmark": name, "when": time.strftime("%Y-%m-%dT%H:%M:%S"), "machine": machine(), **payload}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(body, indent=2) + "\n")
    tmp.replace(path)
    return path


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"
        return str(v)

    cells = [[fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def run_json(args: list[str], timeout: float = 3600) -> dict[str, Any]:
    """Run a child Python process that prints one JSON object as its last stdout line."""
    return run_json_with(sys.executable, args, timeout)


def run_json_with(python: str, args: list[str], timeout: float = 3600) -> dict[str, Any]:
    """`run_json` with another interpreter (e.g. a side venv)."""
    proc = subprocess.run(
        [python, *args], capture_output=True, text=True, timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])

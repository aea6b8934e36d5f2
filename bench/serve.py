"""Benchmark `qatune serve` under load: N concurrent clients for a fixed time; latency p50/p95, throughput, errors.

Starts a real server process per mode, then hammers POST /v1/answer with a paragraph-length
question. Modes, measured in the same run (alternating when --rounds > 1): `serialised` answers one
request per forward pass (`--batch-questions 1`, what the lock used to do), `batched` lets concurrent
requests share forward passes (the default), `serialised-fp32` is `serialised` in float32 whatever
`--dtype` says (the server before micro-batching and bfloat16). Ratios are to the first mode.

`--int8` adds the model's int8 ONNX export (`qatune export --quantize`), micro-batched: the fast path on
CPUs without AMX.

    python bench/serve.py [--model default] [--clients 8] [--seconds 60] [--rounds 1] [--dtype auto] [--int8]
        [--modes serialised-fp32,serialised,batched]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ask import QUESTION, paragraph  # noqa: E402
from common import median, percentile, save, table  # noqa: E402

# A mode's own --dtype (after --dtype DTYPE on the command line) wins: `serialised-fp32` is the server as it
# was before micro-batching and bfloat16 (one request per forward pass, float32 weights).
MODES = {
    "serialised-fp32": ["--batch-questions", "1", "--dtype", "float32"],
    "serialised": ["--batch-questions", "1"],
    "batched": [],
}


def start(model: str, flags: list[str]) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "qatune.cli", "serve", "--model", model, "--port", str(port), "-q", *flags],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            urllib.request.urlopen(url + "/healthz", timeout=2)
            return proc, url
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("server did not start")


def load(url: str, clients: int, seconds: float) -> dict:
    """`clients` threads posting one question after another for `seconds`: throughput and latency."""
    body = json.dumps({"context": paragraph(), "question": QUESTION, "top_k": 3}).encode()
    stop = time.time() + seconds

    def client() -> tuple[list[float], int]:
        latencies, errors = [], 0
        while time.time() < stop:
            request = urllib.request.Request(url + "/v1/answer", body, {"Content-Type": "application/json"})
            began = time.perf_counter()
            try:
                with urllib.request.urlopen(request, timeout=120) as response:
                    response.read()
                latencies.append((time.perf_counter() - began) * 1000)
            except (urllib.error.URLError, OSError):
                errors += 1
        return latencies, errors

    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        results = [f.result() for f in [pool.submit(client) for _ in range(clients)]]
    latencies = [t for r in results for t in r[0]]
    return {
        "requests": len(latencies),
        "errors": sum(r[1] for r in results),
        "requests_per_s": len(latencies) / seconds,
        "p50_ms": median(latencies),
        "p95_ms": percentile(latencies, 95),
        "max_ms": max(latencies),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--rounds", type=int, default=1, help="alternate the modes this many times")
    parser.add_argument("--dtype", default="auto", help="the server's --dtype (auto, float32, bfloat16)")
    parser.add_argument(
        "--modes", default="serialised,batched", help=f"comma-separated, of {', '.join(MODES)}; the first is the base"
    )
    parser.add_argument(
        "--int8", action="store_true", help="also serve the model's int8 export (qatune export --quantize), batched"
    )
    args = parser.parse_args()
    servers = {mode: (args.model, ["--dtype", args.dtype, *MODES[mode]]) for mode in args.modes.split(",")}
    with tempfile.TemporaryDirectory() as tmp:
        if args.int8:
            from qatune.publishing.export import export_onnx

            export_onnx(args.model, Path(tmp) / "int8", quantize=True)
            servers["batched, int8 export"] = (str(Path(tmp) / "int8"), [])
        runs: dict[str, list[dict]] = {mode: [] for mode in servers}
        for _ in range(args.rounds):
            for mode, (model, flags) in servers.items():
                proc, url = start(model, flags)
                try:
                    runs[mode].append(load(url, args.clients, args.seconds))
                finally:
                    proc.terminate()
                    proc.wait(30)
    rows = []
    for mode, measured in runs.items():
        row = {"mode": mode, "clients": args.clients, "seconds": args.seconds * len(measured)}
        row |= {key: median([m[key] for m in measured]) for key in measured[0]}
        row["errors"] = sum(m["errors"] for m in measured)
        rows.append(row)
    base = rows[0]["requests_per_s"]
    for row in rows:
        row["x_" + rows[0]["mode"]] = row["requests_per_s"] / base
    print(
        f"qatune serve --model {args.model} --dtype {args.dtype}: "
        f"{args.clients} concurrent clients, {args.rounds} round(s)"
    )
    print(table(rows, list(rows[0])))
    print(
        f"\nwritten {save('serve', {'model': args.model, 'dtype': args.dtype, 'rounds': args.rounds, 'result': rows})}"
    )


if __name__ == "__main__":
    main()

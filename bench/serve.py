"""Benchmark `qatune serve` under load: N concurrent clients for a fixed time; latency p50/p95, throughput, errors.

Starts a real server process, then hammers POST /v1/answer with a paragraph-length question.

    python bench/serve.py [--model default] [--clients 8] [--seconds 60]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ask import QUESTION, paragraph  # noqa: E402
from common import median, percentile, save, table  # noqa: E402


def start(model: str) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "qatune.cli", "serve", "--model", model, "--port", str(port), "-q"],
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()
    proc, url = start(args.model)
    body = json.dumps({"context": paragraph(), "question": QUESTION, "top_k": 3}).encode()
    stop = time.time() + args.seconds

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

    try:
        with concurrent.futures.ThreadPoolExecutor(args.clients) as pool:
            results = [f.result() for f in [pool.submit(client) for _ in range(args.clients)]]
    finally:
        proc.terminate()
        proc.wait(30)
    latencies = [t for r in results for t in r[0]]
    row = {
        "clients": args.clients,
        "seconds": args.seconds,
        "requests": len(latencies),
        "errors": sum(r[1] for r in results),
        "requests_per_s": len(latencies) / args.seconds,
        "p50_ms": median(latencies),
        "p95_ms": percentile(latencies, 95),
        "max_ms": max(latencies),
    }
    print(f"qatune serve --model {args.model}: {args.clients} concurrent clients for {args.seconds:.0f} s")
    print(table([row], list(row)))
    print(f"\nwritten {save('serve', {'model': args.model, 'result': row})}")


if __name__ == "__main__":
    main()

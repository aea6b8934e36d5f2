"""DDP: training runs under torchrun with 2 CPU processes (gloo) without code changes; ranks agree."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from safetensors.torch import load_file

from qatune.io import read_jsonl


def test_two_process_gloo_training_agrees(tiny_bert, tmp_path):
    out = tmp_path / "ddp"
    worker = Path(__file__).with_name("ddp_worker.py")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            "29533",
            str(worker),
            str(tiny_bert),
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = load_file(out / "rank0.safetensors"), load_file(out / "rank1.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        assert (a[name] - b[name]).abs().max() == 0, name
    final = load_file(out / "model.safetensors")
    assert (final["qa_outputs.weight"] - a["qa_outputs.weight"]).abs().max() == 0
    history = read_jsonl(out / "metrics.jsonl")
    train_records = [r for r in history if r["type"] == "train"]
    assert [r["step"] for r in train_records] == [1, 2, 3, 4]  # one record per step, from rank 0 only
    assert train_records[-1]["windows_seen"] == 4 * 4 * 2  # each step saw a batch from each of 2 ranks

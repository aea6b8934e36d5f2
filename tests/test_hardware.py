"""qatune.hardware and qatune.process: machine features and compute threads, and the settings the CLI applies."""

from __future__ import annotations

import platform
import shutil

import pytest

from qatune.hardware import Threads
from qatune.process import tune_allocator


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_glibc_accepts_the_allocator_settings():
    """mallopt refuses (returns 0 for) a threshold out of its range: both settings must take effect."""
    assert tune_allocator() is True


@pytest.mark.parametrize(
    ("flags", "dtype"), [({"avx512_bf16"}, "bfloat16"), ({"amx_bf16"}, "bfloat16"), (set(), "float32")]
)
def test_auto_inference_dtype_is_bfloat16_only_where_the_cpu_has_it(monkeypatch, flags, dtype):
    import qatune.hardware as hardware

    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset(flags | {"avx512f"}))
    assert hardware.inference_dtype("auto") == dtype
    assert hardware.inference_dtype("float32") == "float32"


def test_compute_threads_follow_the_flag_then_the_environment_then_the_cpus_this_process_may_use(tmp_path):
    import os

    from qatune.hardware import compute_threads

    mine = len(os.sched_getaffinity(0))
    no_cgroup = tmp_path / "none"
    assert compute_threads(3, {"OMP_NUM_THREADS": "5"}, no_cgroup) == Threads(3, "--threads")
    assert compute_threads(None, {"OMP_NUM_THREADS": "5"}, no_cgroup) == Threads(5, "OMP_NUM_THREADS")
    assert compute_threads(None, {"OMP_NUM_THREADS": "junk"}, no_cgroup) == Threads(
        mine, "affinity", "OMP_NUM_THREADS='junk'"
    )
    assert compute_threads(None, {"OMP_NUM_THREADS": "100000"}, no_cgroup).count == mine  # a typo, not 100000 threads
    assert compute_threads(None, {"OMP_NUM_THREADS": " "}, no_cgroup) == Threads(mine, "affinity")
    v2 = tmp_path / "v2"
    (v2 / "app" / "job").mkdir(parents=True)
    (v2 / "cpu.max").write_text("max 100000\n")
    own = tmp_path / "self-cgroup"
    own.write_text("0::/app/job\n")
    assert compute_threads(None, {}, v2, own) == Threads(mine, "affinity")
    (v2 / "app" / "cpu.max").write_text("50000 100000\n")  # half a CPU on the process's parent: one thread
    assert compute_threads(None, {}, v2, own) == Threads(1, "cpu quota")
    assert compute_threads(None, {}, v2, tmp_path / "unreadable") == Threads(mine, "affinity")  # only the root
    v1 = tmp_path / "v1"
    (v1 / "cpu,cpuacct" / "docker" / "c1").mkdir(parents=True)
    (v1 / "cpu,cpuacct" / "docker" / "c1" / "cpu.cfs_quota_us").write_text("50000\n")  # half a CPU, cgroup v1
    (v1 / "cpu,cpuacct" / "docker" / "c1" / "cpu.cfs_period_us").write_text("100000\n")
    own.write_text("4:memory:/docker/c1\n3:cpu,cpuacct:/docker/c1\n")
    assert compute_threads(None, {}, v1, own) == Threads(1, "cpu quota")
    (v1 / "cpu,cpuacct" / "docker" / "c1" / "cpu.cfs_quota_us").write_text("-1\n")  # unlimited
    assert compute_threads(None, {}, v1, own) == Threads(mine, "affinity")
    assert compute_threads(None, {"LOCAL_WORLD_SIZE": str(mine)}, no_cgroup).count == 1  # torchrun: shared


ASK_THREADS = """
import json, sys, torch
import qatune.answering.torch_backend as backend
seen, forward = [], backend.forward_windows
def spy(*args, **kwargs):
    seen.append(torch.get_num_threads())
    return forward(*args, **kwargs)
backend.forward_windows = spy
from qatune.cli.main import main
code = main(["ask", "--model", sys.argv[1], "--context", "Paris is in France.", "--question", "Where is Paris?",
             "-q", *sys.argv[2:]])
print("RESULT", json.dumps({"code": code, "threads": seen, "after": torch.get_num_threads()}))
"""


def _ask_threads(model, *args: str, prefix: tuple[str, ...] = (), env: dict | None = None) -> dict:
    import json
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"} | (env or {})
    proc = subprocess.run(
        [*prefix, sys.executable, "-c", ASK_THREADS, str(model), *args], capture_output=True, text=True, env=env
    )
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    assert line, proc.stderr[-2000:]
    return json.loads(line[len("RESULT ") :])


@pytest.mark.skipif(shutil.which("taskset") is None, reason="needs taskset (util-linux)")
def test_qatune_computes_with_one_thread_under_taskset_on_one_cpu(tiny_bert):
    """`taskset -c 0 qatune ask ...` answers with one torch thread, not one per host CPU."""
    seen = _ask_threads(tiny_bert, prefix=("taskset", "-c", "0"))
    assert seen["code"] == 0 and seen["threads"] == [1]


def test_threads_flag_and_omp_num_threads_set_the_compute_threads_of_one_command(tiny_bert):
    import os

    assert _ask_threads(tiny_bert, "--threads", "1")["threads"] == [1]
    assert _ask_threads(tiny_bert, env={"OMP_NUM_THREADS": "1"})["threads"] == [1]
    from qatune.hardware import compute_threads

    mine = compute_threads(None, {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}).count
    default = _ask_threads(tiny_bert)
    assert default["threads"] == [mine]
    assert default["after"] == len(os.sched_getaffinity(0))  # torch's own default, put back when the command ends

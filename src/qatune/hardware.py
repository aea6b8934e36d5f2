"""What the machine can do fast, detected at run time: bfloat16 on the CPU (AMX or AVX512-BF16), CUDA.

`resolve_precision` turns a requested precision (`auto`, `fp32`, `bf16`) into what training runs with,
so a CPU without native bfloat16 never gets the emulated (slower) path by default.
"""

from __future__ import annotations

import functools
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16")
BF16_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo flags of native bfloat16 matrix/vector units


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (Linux); empty where that file does not exist."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    line = next((ln for ln in text.splitlines() if ln.startswith(("flags", "Features"))), "")
    return frozenset(line.partition(":")[2].split())


@dataclass(frozen=True)
class Precision:
    """What a run computes in: `used` (fp32, bf16 or fp16) and accelerate's `mixed_precision` for it."""

    requested: str
    used: str
    device: str
    bf16_flags: tuple[str, ...]

    @property
    def mixed_precision(self) -> str:
        return "no" if self.used == "fp32" else self.used


def resolve_precision(
    requested: str, cuda: bool, cuda_bf16: bool = True, flags: frozenset[str] | None = None
) -> Precision:
    """`auto`: CUDA autocast (bf16, else fp16) on a GPU; bf16 on a CPU with native bfloat16; else fp32.
    An explicit `bf16` on a CPU without it runs emulated and is announced as slower."""
    found = tuple(f for f in BF16_FLAGS if f in (cpu_flags() if flags is None else flags))
    if cuda:
        used = "fp32" if requested == "fp32" else "bf16" if cuda_bf16 else "fp16"
        return Precision(requested, used, "cuda", found)
    if requested == "bf16" and not found:
        logger.warning(
            "bf16 requested, but this CPU has no native bfloat16 (AMX-BF16 or AVX512-BF16): it is "
            "emulated and slower than fp32; `--precision auto` picks fp32 here"
        )
    used = "bf16" if requested == "bf16" or (requested == "auto" and found) else "fp32"
    return Precision(requested, used, "cpu", found)


def inference_dtype(requested: str) -> str:
    """The weights' dtype for answering: `auto` is bfloat16 on a GPU or a CPU with native bfloat16
    (several times the float32 matmul rate there, EM within 0.5: bench/quality.py), else float32."""
    if requested != "auto":
        return requested
    import torch

    native = torch.cuda.is_available() or any(f in cpu_flags() for f in BF16_FLAGS)
    return "bfloat16" if native else "float32"


def package_versions(names: tuple[str, ...] = ("qatune", "torch", "transformers", "accelerate")) -> dict[str, str]:
    """Installed versions of `names`, read from their metadata (nothing imported): recorded with every run."""
    import importlib.metadata as md

    return {name: md.version(name) for name in names}


@dataclass(frozen=True)
class Threads:
    """How many compute threads to run (torch's intra-op pool, onnxruntime's) and what decided it."""

    count: int
    source: str  # --threads, OMP_NUM_THREADS, cpu quota, affinity or cpu count
    ignored: str | None = None  # an OMP_NUM_THREADS that is not a thread count, passed over (the CLI warns)


MAX_THREADS = 1024  # more is a typo: onnxruntime and OpenMP would start that many threads


def _quota(folder: Path) -> float | None:
    """The CPU quota set in one cgroup folder in CPUs (v2 cpu.max, v1 cfs quota/period), None if none."""
    try:
        quota, period = (folder / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = (folder / "cpu.cfs_quota_us").read_text().strip()
        period = (folder / "cpu.cfs_period_us").read_text().strip()
        return None if int(quota) <= 0 else int(quota) / int(period)
    except (OSError, ValueError):
        return None


def _cgroup_folders(root: Path, self_cgroup: Path) -> list[Path]:
    """This process's cgroup folders and their parents up to the hierarchy's root, v2 and v1 (cpu)
    hierarchies alike; just the roots where /proc/self/cgroup cannot be read."""
    try:
        lines = self_cgroup.read_text().splitlines()
    except OSError:
        lines = []
    bases = []
    for line in lines:
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        if controllers == "":  # v2
            bases.append((root, path))
        elif "cpu" in controllers.split(","):  # v1: mounted under its controller list (cpu or cpu,cpuacct)
            bases += [(root / "cpu", path), (root / controllers, path)]
    folders = [root, root / "cpu"]
    for base, path in bases:
        current = base / path.strip("/") if path.strip("/") else base
        folders += [current, *[p for p in current.parents if p.is_relative_to(base)]]
    return list(dict.fromkeys(folders))


def _cgroup_cpus(root: Path, self_cgroup: Path) -> float | None:
    """The tightest CPU quota on this process's cgroup path, in CPUs, or None if unlimited."""
    quotas = [q for q in map(_quota, _cgroup_folders(root, self_cgroup)) if q is not None]
    return min(quotas) if quotas else None


def compute_threads(
    requested: int | None = None,
    environ: Mapping[str, str] = os.environ,
    cgroup: Path = Path("/sys/fs/cgroup"),
    self_cgroup: Path = Path("/proc/self/cgroup"),
) -> Threads:
    """The threads this process should compute with: `requested` (--threads), else OMP_NUM_THREADS, else the
    CPUs it may run on: its affinity (taskset, cpusets), capped by a cgroup CPU quota (containers), shared
    among the processes of a torchrun launch on this machine. Never the host's CPU count: under
    `taskset -c 0` or a one-CPU quota, two threads per CPU only make every step slower."""
    if requested is not None:
        return Threads(requested, "--threads")
    omp = environ.get("OMP_NUM_THREADS", "").strip()
    if omp.isdigit() and 1 <= int(omp) <= MAX_THREADS:
        return Threads(int(omp), "OMP_NUM_THREADS")
    ignored = f"OMP_NUM_THREADS={omp!r}" if omp else None
    try:
        count, source = len(os.sched_getaffinity(0)), "affinity"
    except AttributeError:  # macOS, Windows
        count, source = os.cpu_count() or 1, "cpu count"
    quota = _cgroup_cpus(cgroup, self_cgroup)
    if quota is not None and math.floor(quota) < count:
        count, source = max(1, math.floor(quota)), "cpu quota"
    local = environ.get("LOCAL_WORLD_SIZE", "1")
    processes = int(local) if local.isdigit() and int(local) > 0 else 1
    return Threads(max(1, count // processes), source, ignored)

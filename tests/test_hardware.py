"""qatune.hardware: machine features read at run time, and the allocator settings the CLI applies."""

from __future__ import annotations

import platform

import pytest

from qatune.hardware import tune_allocator


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

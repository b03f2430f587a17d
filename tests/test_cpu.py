"""The kit's CPU settings: flushing subnormal floats and keeping freed memory."""

import ctypes.util
import sys

import pytest
import torch

from course_utils.cli import cpu


@pytest.fixture
def restore_denormals():
    yield
    torch.set_flush_denormal(False)


def test_flush_denormals_zeroes_subnormal_floats(restore_denormals):
    if not cpu.flush_denormals():
        pytest.skip("this CPU cannot flush subnormal floats")
    assert float(torch.tensor([1e-39], dtype=torch.float32)[0]) == 0.0
    torch.set_flush_denormal(False)
    assert float(torch.tensor([1e-39], dtype=torch.float32)[0]) > 0.0


def test_keep_freed_memory_reports_what_it_did(monkeypatch):
    on_glibc = sys.platform.startswith("linux") and "libc.so" in (ctypes.util.find_library("c") or "")
    assert cpu.keep_freed_memory() is on_glibc
    monkeypatch.setattr(sys, "platform", "darwin")
    assert cpu.keep_freed_memory() is False  # elsewhere: nothing changes, no error


def test_speed_up_cpu_names_both_settings(restore_denormals):
    done = cpu.speed_up_cpu()
    assert set(done) == {"flush_denormals", "keep_freed_memory"} and all(isinstance(v, bool) for v in done.values())
    x = torch.randn(64, 64)
    assert torch.equal(x @ x, x @ x)  # tensors still work after the allocator settings

"""The demo's thread choice: what is busy now decides, not the load average the install left behind."""

import os
import sys
import types

import pytest
import torch

from course_utils.cli import cpu


@pytest.fixture(autouse=True)
def restore_threads():
    saved = torch.get_num_threads()
    yield
    torch.set_num_threads(saved)


@pytest.fixture
def two_cores(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(os, "getloadavg", lambda: (6.0, 3.0, 1.0), raising=False)  # just after pip install
    torch.set_num_threads(2)


def fake_psutil(monkeypatch, percent):
    """psutil whose cpu_percent says ``percent`` % of all cores were busy over the interval."""
    calls = []

    def cpu_percent(interval=None):
        calls.append(interval)
        return percent

    monkeypatch.setitem(sys.modules, "psutil", types.SimpleNamespace(cpu_percent=cpu_percent))
    return calls


def test_idle_cores_are_all_used_whatever_the_load_average(two_cores, monkeypatch):
    calls = fake_psutil(monkeypatch, 7.0)
    said = cpu.choose_threads(0)
    assert said == "2 (2 cores)" and torch.get_num_threads() == 2
    assert calls and calls[0] > 0  # it measured over an interval, not the instant


def test_cores_busy_now_mean_one_thread_said_calmly(two_cores, monkeypatch):
    fake_psutil(monkeypatch, 90.0)
    said = cpu.choose_threads(0)
    assert torch.get_num_threads() == 1
    assert said == "1 (other programs are using 1.8 of the 2 cores now; --threads 2 to use them all)"


def test_a_request_is_obeyed_without_measuring(two_cores, monkeypatch):
    calls = fake_psutil(monkeypatch, 90.0)
    assert cpu.choose_threads(2) == "2 (as requested)" and torch.get_num_threads() == 2
    assert calls == []


def test_without_psutil_every_core_is_used(two_cores, monkeypatch):
    monkeypatch.setitem(sys.modules, "psutil", None)  # import psutil raises ImportError
    assert cpu.busy_cores() is None
    assert cpu.choose_threads(0) == "2 (2 cores)"


def test_busy_cores_measures_this_machine():
    busy = cpu.busy_cores(interval=0.05)
    assert busy is None or 0.0 <= busy <= (os.cpu_count() or 1)

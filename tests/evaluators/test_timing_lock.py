"""The host's timing lock: measurements exclude computing in other processes, and back.

Each test uses its own lock files (``PARETONAS_TIMING_LOCK`` under tmp_path), so a search
running on the same machine neither blocks these tests nor is blocked by them.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from evaluators import distill, hardware, timing_lock
from evaluators.timing_lock import computing, timing

MODULE = Path(timing_lock.__file__)

# Children load the module from its file: importing the package would import torch (seconds).
PRELUDE = f"""
import importlib.util, sys, time
spec = importlib.util.spec_from_file_location("timing_lock", {str(MODULE)!r})
lock = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lock)
"""


@pytest.fixture(autouse=True)
def private_lock(tmp_path, monkeypatch):
    monkeypatch.setenv(timing_lock.ENVIRONMENT, str(tmp_path / "timing"))
    yield tmp_path / "timing"


def child(body: str) -> subprocess.Popen:
    code = PRELUDE + textwrap.dedent(body)
    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, bufsize=1
    )


def expect(process: subprocess.Popen, line: str) -> None:
    got = process.stdout.readline().strip()
    assert got == line, f"child said {got!r}, expected {line!r} (exit code {process.poll()})"


def finish(process: subprocess.Popen) -> str:
    out, _ = process.communicate(timeout=30)
    assert process.returncode == 0
    return out


def _measurement_wait_beside_a_one_second_step(prelude: str = "") -> float:
    worker = child(
        prelude
        + """
        with lock.computing():
            print("in step", flush=True)
            time.sleep(1.0)
        """
    )
    expect(worker, "in step")
    start = time.monotonic()
    with timing():
        waited = time.monotonic() - start
    finish(worker)
    return waited


def waiting_child(kind: str) -> subprocess.Popen:
    """A process that, once ready, takes ``lock.<kind>()`` and prints how long it waited."""
    worker = child(
        f"""
        print("ready", flush=True)
        start = time.monotonic()
        with lock.{kind}():
            print(round(time.monotonic() - start, 3), flush=True)
        """
    )
    expect(worker, "ready")
    return worker


def test_a_measurement_waits_for_the_step_another_process_is_in():
    assert _measurement_wait_beside_a_one_second_step() >= 0.7


def test_a_step_waits_while_another_process_measures():
    with timing():
        worker = waiting_child("computing")
        time.sleep(0.6)
    waited = float(finish(worker).strip())
    assert waited >= 0.4


def test_a_stream_of_steps_from_three_processes_does_not_starve_a_measurement():
    # Without the turnstile the processes' shared holds overlap without a gap, and
    # flock lets each new one in ahead of the waiting measurement.
    body = """
        print("ready", flush=True)
        end = time.monotonic() + 6
        while time.monotonic() < end:
            with lock.computing():
                time.sleep(0.01)
        """
    workers = [child(body) for _ in range(3)]
    for worker in workers:
        expect(worker, "ready")
    time.sleep(0.3)
    start = time.monotonic()
    with timing():
        waited = time.monotonic() - start
    for worker in workers:
        finish(worker)
    assert waited < 1.0


def test_measuring_inside_this_process_own_step_keeps_its_shared_hold():
    with computing():
        with timing():
            pass
        # Still inside the step: another process's measurement must wait for it.
        worker = waiting_child("timing")
        time.sleep(0.6)
    assert float(finish(worker).strip()) >= 0.4


def test_off_measures_without_waiting(monkeypatch):
    monkeypatch.setenv(timing_lock.ENVIRONMENT, "off")
    off = """
        import os
        os.environ["PARETONAS_TIMING_LOCK"] = "off"
        """
    assert _measurement_wait_beside_a_one_second_step(off) < 0.5


class _Counting:
    def __init__(self):
        self.entered = 0

    @contextlib.contextmanager
    def __call__(self):
        self.entered += 1
        yield


def test_training_holds_the_lock_for_each_step_and_timing_for_the_runs(monkeypatch, tmp_path):
    steps = _Counting()
    monkeypatch.setattr(distill, "computing", steps)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    images, labels = torch.randn(40, 1, 4, 4), torch.randint(0, 3, (40,))
    config = distill.TrainConfig(epochs=2, batch_size=16)
    distill.train(model, images, labels, None, config, progress=False)
    assert steps.entered == 2 * 3

    measurements = _Counting()
    monkeypatch.setattr(hardware, "timing", measurements)
    path = hardware.export_onnx(model, (1, 4, 4), tmp_path / "m.onnx")
    hardware.measure_onnx_latency(path, (1, 4, 4), warmup=1, runs=3)
    assert measurements.entered == 1


def test_the_shared_hold_lasts_until_the_last_thread_of_the_process_leaves_its_step():
    first_in, first_may_leave, second_in, second_may_leave = (threading.Event() for _ in range(4))

    def step(entered: threading.Event, may_leave: threading.Event) -> None:
        with computing():
            entered.set()
            may_leave.wait(10)

    threads = [
        threading.Thread(target=step, args=(first_in, first_may_leave)),
        threading.Thread(target=step, args=(second_in, second_may_leave)),
    ]
    threads[0].start()
    first_in.wait(10)
    threads[1].start()
    second_in.wait(10)
    first_may_leave.set()
    threads[0].join(10)
    worker = waiting_child("timing")
    time.sleep(0.6)
    second_may_leave.set()
    threads[1].join(10)
    assert float(finish(worker).strip()) >= 0.4

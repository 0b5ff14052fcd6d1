"""--clock cpu: a --time-limit that counts this process's CPU time (a budget on a shared machine)."""

from __future__ import annotations

import time

from edgeseg.train.loop import LoopState


def test_cpu_clock_counts_work_not_waiting() -> None:
    cpu = LoopState(0, 1, time.process_time(), clock="cpu")
    wall = LoopState(0, 1, time.monotonic())
    time.sleep(0.3)  # waiting for the CPU (a loaded machine) is not training
    assert cpu.elapsed() < 0.15
    assert wall.elapsed() >= 0.3
    t = time.process_time()
    while time.process_time() - t < 0.2:  # busy
        pass
    assert cpu.elapsed() >= 0.2

"""Timing helpers shared by every benchmark.

Machines are noisy, so benchmarks report medians over repeats after a warm-up, and
always say what they ran on.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

from engine.device import machine_info

__all__ = ["machine_info", "median_seconds", "synchronize"]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(
    fn: Callable[[], object], *, repeats: int, warmup: int = 1, device: torch.device | None = None
) -> tuple[float, list[float]]:
    """Median wall time of `fn` over `repeats` runs after `warmup` untimed runs."""
    device = device or torch.device("cpu")
    for _ in range(warmup):
        fn()
    synchronize(device)
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize(device)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), samples

"""Timing helpers shared by every benchmark.

Machines are noisy, so benchmarks report medians over repeats after a warm-up, and
always say what they ran on.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable

import torch


def machine_info(device: torch.device | None = None) -> dict[str, object]:
    """What the numbers were measured on, stored next to every result."""
    info: dict[str, object] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "processor": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda_available": torch.cuda.is_available(),
    }
    if device is not None and device.type == "cuda":
        info["cuda_device"] = torch.cuda.get_device_name(device)
    return info


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


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

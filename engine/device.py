"""One place that turns a user's device choice into a torch.device, and describes it.

CUDA is used when present and asked for ("auto"); nothing else in the engine calls
`.cuda()`, so every code path also runs on CPU.
"""

from __future__ import annotations

import os
import platform

import torch

from engine.errors import ParameterError


def resolve_device(choice: str | torch.device | None = "auto") -> torch.device:
    """Map "auto" (CUDA if available, else CPU), "cpu", "cuda" or "cuda:N" to a device."""
    if isinstance(choice, torch.device):
        return choice
    if choice in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(choice)
    except RuntimeError as err:
        raise ParameterError("device", choice, "'auto', 'cpu', 'cuda' or 'cuda:N'") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ParameterError("device", choice, "'auto' or 'cpu' (no CUDA device is available)")
    if device.type not in ("cpu", "cuda"):
        raise ParameterError("device", choice, "'auto', 'cpu', 'cuda' or 'cuda:N'")
    return device


def resolve_dtype(choice: str | torch.dtype) -> torch.dtype:
    """Solvers run in float32 by default; float64 is offered for validation studies."""
    if isinstance(choice, torch.dtype):
        if choice in (torch.float32, torch.float64):
            return choice
    elif choice in ("float32", "float64"):
        return getattr(torch, choice)
    raise ParameterError("dtype", choice, "'float32' or 'float64'")


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

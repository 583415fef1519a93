"""`latentsim bench solvers`: cost of the ground truth.

Reports, per system at its default grid, the milliseconds per simulated frame (per
trajectory, with trajectories batched as data generation does), the time to the first
frame (initial condition plus any spin-up), and optionally the wall time to generate the
system's default dataset end to end.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engine.bench.common import machine_info, synchronize
from engine.device import resolve_device
from engine.errors import ParameterError
from engine.systems import SYSTEM_NAMES, get_system


def time_trajectories(
    system_name: str, *, batch: int, repeats: int, device: str = "cpu"
) -> dict[str, Any]:
    """Simulate `batch` default trajectories `repeats` times; medians of the timings."""
    system = get_system(system_name)
    torch_device = resolve_device(device)
    per_frame, first_frame, whole = [], [], []
    for repeat in range(repeats):
        seeds = [10_000 * (repeat + 1) + i for i in range(batch)]
        conditions = [system.sample_conditions(seed) for seed in seeds]
        # a batch shares its categorical choices (e.g. Euler's boundary), as in generation
        shared = {c.name: conditions[0][c.name] for c in system.spec.choices}
        conditions = [{**c, **shared} for c in conditions]
        start = time.perf_counter()
        stamps = []
        for _ in system.frames(conditions, seeds, device=torch_device):
            synchronize(torch_device)
            stamps.append(time.perf_counter())
        first_frame.append(stamps[0] - start)
        whole.append(stamps[-1] - start)
        per_frame.append((stamps[-1] - stamps[0]) / (len(stamps) - 1) / batch)
    spec = system.spec
    return {
        "grid": list(spec.grid.shape),
        "frames": spec.n_frames,
        "batch": batch,
        "ms_per_frame": 1e3 * statistics.median(per_frame),
        "s_to_first_frame_per_batch": statistics.median(first_frame),
        "s_per_trajectory": statistics.median(whole) / batch,
        "repeats": repeats,
    }


def time_default_dataset(
    system_name: str, *, workers: int, device: str = "cpu", keep_root: str | None = None
) -> dict[str, Any]:
    """Generate the default dataset from scratch and time it.

    Into a temporary directory, or into `keep_root` (which must not hold that dataset
    yet, since generation resumes and would time nothing) so the data can be used.
    """
    from engine.data.generate import DEFAULT_SPLITS, generate_dataset

    splits = DEFAULT_SPLITS[system_name]
    if keep_root is not None and (Path(keep_root) / system_name).exists():
        raise ParameterError(
            "data root",
            str(Path(keep_root) / system_name),
            "a location without this dataset (generation would resume, not be timed)",
        )
    with tempfile.TemporaryDirectory(prefix="latentsim-bench-") as scratch:
        root = keep_root or scratch
        start = time.perf_counter()
        generate_dataset(system_name, root, *splits, workers=workers, device=device, progress=False)
        seconds = time.perf_counter() - start
    return {
        "train_valid_test": list(splits),
        "workers": workers,
        "wall_s": seconds,
        "kept_in": keep_root,
    }


def bench_solvers(
    systems: Sequence[str] = SYSTEM_NAMES,
    *,
    batch: int = 16,
    repeats: int = 3,
    dataset: bool = True,
    workers: int = 2,
    device: str = "cpu",
    keep_root: str | None = None,
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name in systems:
        entry = time_trajectories(name, batch=batch, repeats=repeats, device=device)
        if dataset:
            entry["default_dataset"] = time_default_dataset(
                name, workers=workers, device=device, keep_root=keep_root
            )
        results[name] = entry
    return {
        "benchmark": "solvers",
        "machine": machine_info(resolve_device(device)),
        "systems": results,
    }

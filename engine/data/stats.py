"""Normalisation statistics in The Well's `stats.yaml` format, computed by streaming.

Keys: mean, std, rms, mean_delta, std_delta, rms_delta; one entry per field, a list of
per-component values for vector (and nested lists for rank-2) fields. Statistics are
float64, pooled over every training file, trajectory, frame and grid point (population
std, ddof=0); `delta` is the difference of consecutive frames within a trajectory.
Fields that do not vary in time get no delta entries, as in the_well's normalisation.

One trajectory of one field is in memory at a time; blocks are merged with Chan et al.'s
pairwise update, which stays accurate when the mean is large against the spread (where
the textbook E[x^2] - E[x]^2 cancels catastrophically).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from engine.data.atomic import atomic_open
from engine.data.well_reader import find_well_files, inspect_well_file, open_h5, read_field
from engine.errors import DataFormatError

STAT_KEYS = ("mean", "std", "rms", "mean_delta", "std_delta", "rms_delta")


@dataclass
class RunningMoments:
    """Count, mean and sum of squared deviations per component, mergeable by blocks."""

    count: int = 0
    mean: np.ndarray = field(default_factory=lambda: np.zeros(0))
    m2: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def update(self, values: np.ndarray, weight: int = 1) -> None:
        """Add a block of shape (n, K); `weight` repeats it (broadcast fields)."""
        values = np.asarray(values, dtype=np.float64)
        n = values.shape[0] * weight
        if n == 0:
            return
        mean = values.mean(axis=0)
        m2 = ((values - mean) ** 2).sum(axis=0) * weight
        if self.count == 0:
            self.count, self.mean, self.m2 = n, mean, m2
            return
        total = self.count + n
        delta = mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.m2 = self.m2 + m2 + delta**2 * (self.count * n / total)
        self.count = total

    def result(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(mean, std, rms) per component."""
        variance = self.m2 / self.count
        return self.mean, np.sqrt(variance), np.sqrt(variance + self.mean**2)


def compute_stats(path_or_dir: str | os.PathLike[str], split: str | None = None) -> dict:
    """Statistics of every field over the files that `path_or_dir` (and `split`) designate."""
    files = find_well_files(path_or_dir, split)
    moments: dict[str, tuple[RunningMoments, RunningMoments | None]] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    for path in files:
        info = inspect_well_file(path)
        with open_h5(path) as file:
            for field_info in info.fields:
                components = (len(info.spatial_dims),) * field_info.tensor_order
                if field_info.name not in moments:
                    delta = RunningMoments() if field_info.time_varying else None
                    moments[field_info.name] = (RunningMoments(), delta)
                    shapes[field_info.name] = components
                values_m, delta_m = moments[field_info.name]
                if shapes[field_info.name] != components:
                    raise DataFormatError(path, f"field {field_info.name} changes tensor order")
                n_k = int(np.prod(components))
                # A sample-constant field is read once and weighted by the trajectory count.
                blocks = range(info.n_trajectories) if field_info.sample_varying else [None]
                weight = 1 if field_info.sample_varying else info.n_trajectories
                for index in blocks:
                    samples = slice(None) if index is None else slice(index, index + 1)
                    values = read_field(file, info, field_info, samples)
                    full = (1, info.n_steps, *info.shape, *components)
                    values = np.broadcast_to(values, full)
                    values_m.update(values.reshape(-1, n_k), weight)
                    if delta_m is not None and info.n_steps > 1:
                        delta_m.update(np.diff(values, axis=1).reshape(-1, n_k), weight)
    return _as_yaml_tree(moments, shapes)


def _as_yaml_tree(
    moments: dict[str, tuple[RunningMoments, RunningMoments | None]],
    shapes: dict[str, tuple[int, ...]],
) -> dict[str, dict[str, Any]]:
    stats: dict[str, dict[str, Any]] = {key: {} for key in STAT_KEYS}
    for name, (values_m, delta_m) in moments.items():
        for suffix, running in (("", values_m), ("_delta", delta_m)):
            if running is None or running.count == 0:
                continue
            for key, value in zip(("mean", "std", "rms"), running.result(), strict=True):
                stats[key + suffix][name] = value.reshape(shapes[name]).tolist()
    return stats


def write_stats(path: str | os.PathLike[str], stats: dict) -> Path:
    """Write stats.yaml atomically."""
    path = Path(path)
    with atomic_open(path) as handle:
        yaml.safe_dump(stats, handle, sort_keys=False, default_flow_style=None)
    return path


def read_stats(path: str | os.PathLike[str]) -> dict:
    """Read a stats.yaml (ours or The Well's), checking it has every key."""
    path = Path(path)
    try:
        stats = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise DataFormatError(path, f"cannot read statistics: {err}") from err
    missing = [k for k in STAT_KEYS if not isinstance(stats, dict) or k not in stats]
    if missing:
        raise DataFormatError(path, f"statistics lack {', '.join(missing)}")
    return stats

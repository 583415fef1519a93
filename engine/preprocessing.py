"""Invertible per-channel preprocessing: log1p on positive fields, then a z-score.

Autoencoders train on preprocessed frames and emulator outputs are scored in physical
units, so the transform must be exactly invertible and its constants must travel with
every model file (the official code, PolymathicAI/lola, did not record them per run).
The constants are therefore plain data: a frozen dataclass that round-trips via JSON.

Frames are torch tensors with channels at dim -3, on any device and of any float dtype.

The Well's stats.yaml describes the *raw* fields, which are the wrong statistics for a
log-transformed channel; `fit_preprocessing` computes the statistics of the transformed
values instead (in float64), and `Preprocessing.from_stats` only accepts raw statistics
for channels that are not log-transformed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from engine.errors import ParameterError

# Positive fields that get log1p, per system (the paper, arXiv:2507.02608: Euler only).
LOG_CHANNELS: dict[str, tuple[str, ...]] = {
    "euler_quadrants": ("energy", "density", "pressure"),
    "rayleigh_benard": (),
    "kolmogorov": (),
}

Frames = np.ndarray | torch.Tensor


def default_log_channels(system_name: str) -> tuple[str, ...]:
    """The channels the paper log-transforms for a system (none for unknown systems)."""
    return LOG_CHANNELS.get(system_name, ())


@dataclass(frozen=True)
class Preprocessing:
    """Per channel, x -> (f(x) - mean) / std and back; f is log1p on log channels, else x."""

    channel_names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    log_channels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("channel_names", "log_channels"):
            object.__setattr__(self, name, tuple(str(v) for v in getattr(self, name)))
        for name in ("mean", "std"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
        n = len(self.channel_names)
        if n == 0 or len(set(self.channel_names)) != n:
            raise ParameterError("channel_names", self.channel_names, "distinct names")
        if len(self.mean) != n or len(self.std) != n:
            raise ParameterError(
                "mean/std lengths", (len(self.mean), len(self.std)), f"{n} each, one per channel"
            )
        for channel, mean, std in zip(self.channel_names, self.mean, self.std, strict=True):
            if not math.isfinite(mean):
                raise ParameterError(f"mean of {channel}", mean, "a finite number")
            if not (math.isfinite(std) and std > 0):
                raise ParameterError(f"std of {channel}", std, "a finite number > 0")
        unknown = sorted(set(self.log_channels) - set(self.channel_names))
        if unknown:
            raise ParameterError(
                "log channel", unknown[0], f"one of {', '.join(self.channel_names)}"
            )

    @property
    def log_indices(self) -> list[int]:
        return [i for i, name in enumerate(self.channel_names) if name in self.log_channels]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Physical frames -> network inputs."""
        self._check(x)
        indices = self.log_indices
        if indices:
            x = x.clone()
            x[..., indices, :, :] = torch.log1p(x[..., indices, :, :])
        mean, std = self._constants(x)
        return (x - mean) / std

    __call__ = forward

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        """Network outputs -> physical frames."""
        self._check(y)
        mean, std = self._constants(y)
        x = y * std + mean
        indices = self.log_indices
        if indices:
            x[..., indices, :, :] = torch.expm1(x[..., indices, :, :])
        return x

    def to_dict(self) -> dict[str, Any]:
        return {
            "transform": "log1p then z-score",
            "channel_names": list(self.channel_names),
            "log_channels": list(self.log_channels),
            "mean": list(self.mean),
            "std": list(self.std),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Preprocessing:
        keys = ("channel_names", "mean", "std", "log_channels")
        missing = [k for k in keys if k not in data]
        if missing:
            raise ParameterError("preprocessing", sorted(data), f"a mapping with keys {keys}")
        return cls(**{k: tuple(data[k]) for k in keys})

    @classmethod
    def from_stats(cls, stats: Mapping[str, Any], channel_names: Sequence[str]) -> Preprocessing:
        """z-score only, from a stats.yaml-like {"mean": {field: v or [vx, vy]}, "std": ...}.

        Vector fields are looked up as `field` and indexed by the `_x`/`_y` suffix. Raw
        statistics say nothing about log-transformed values, hence no log channels here.
        """
        mean = [_stat(stats, "mean", name) for name in channel_names]
        std = [_stat(stats, "std", name) for name in channel_names]
        return cls(channel_names=tuple(channel_names), mean=tuple(mean), std=tuple(std))

    def _check(self, x: torch.Tensor) -> None:
        if x.ndim < 3 or x.shape[-3] != len(self.channel_names):
            raise ParameterError(
                "frames shape",
                tuple(x.shape),
                f"(..., {len(self.channel_names)}, X, Y) with channels "
                f"{', '.join(self.channel_names)}",
            )

    def _constants(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        def column(values: tuple[float, ...]) -> torch.Tensor:
            return torch.tensor(values, dtype=x.dtype).view(-1, 1, 1).to(x.device)

        return column(self.mean), column(self.std)


def fit_preprocessing(
    data: Frames | Iterable[Frames],
    channel_names: Sequence[str],
    log_channels: Sequence[str] = (),
) -> Preprocessing:
    """Per-channel mean and std of the (log-transformed) values, accumulated in float64.

    `data` is one array (N, T, C, X, Y) or any array with channels at dim -3, or an
    iterable of such chunks (e.g. one trajectory at a time), merged with Chan's
    parallel update so that large datasets never sit in memory at once.
    """
    channel_names = tuple(channel_names)
    log_set = set(log_channels)
    unknown = sorted(log_set - set(channel_names))
    if unknown:
        raise ParameterError("log channel", unknown[0], f"one of {', '.join(channel_names)}")
    is_log = np.array([name in log_set for name in channel_names])
    chunks = [data] if isinstance(data, np.ndarray | torch.Tensor) else data
    count, mean, m2 = 0, np.zeros(len(channel_names)), np.zeros(len(channel_names))
    for chunk in chunks:
        values = _as_float64(chunk)
        if values.ndim < 3 or values.shape[-3] != len(channel_names):
            raise ParameterError(
                "data shape", values.shape, f"(..., {len(channel_names)}, X, Y) per chunk"
            )
        values = np.moveaxis(values, -3, 0).reshape(len(channel_names), -1)
        _check_values(values, channel_names, is_log)
        if is_log.any():
            values = values.copy()  # never modify the caller's array
            values[is_log] = np.log1p(values[is_log])
        n = values.shape[1]
        if n == 0:
            continue
        chunk_mean = values.mean(axis=1)
        chunk_m2 = np.square(values - chunk_mean[:, None]).sum(axis=1)
        delta = chunk_mean - mean
        total = count + n
        mean = mean + delta * (n / total)
        m2 = m2 + chunk_m2 + np.square(delta) * (count * n / total)
        count = total
    if count == 0:
        raise ParameterError("data", "no values", "at least one frame")
    std = np.sqrt(m2 / count)
    return Preprocessing(
        channel_names=channel_names,
        mean=tuple(mean.tolist()),
        std=tuple(std.tolist()),
        log_channels=tuple(name for name in channel_names if name in log_set),
    )


def _as_float64(chunk: Frames) -> np.ndarray:
    if isinstance(chunk, torch.Tensor):
        return chunk.detach().to("cpu", torch.float64).numpy()
    return np.asarray(chunk, dtype=np.float64)


def _check_values(values: np.ndarray, channel_names: tuple[str, ...], is_log: np.ndarray) -> None:
    for index, name in enumerate(channel_names):
        row = values[index]
        if not np.isfinite(row).all():
            raise ParameterError(f"values of {name}", "non-finite", "finite numbers")
        if is_log[index] and row.size and row.min() <= 0:
            raise ParameterError(
                f"minimum of log channel {name}", float(row.min()), "> 0 (a positive field)"
            )


def _stat(stats: Mapping[str, Any], kind: str, channel: str) -> float:
    table = stats.get(kind)
    if not isinstance(table, Mapping):
        raise ParameterError("stats", sorted(stats), f"a mapping with a {kind!r} table")
    if channel in table:
        value = table[channel]
    else:
        field, _, component = channel.rpartition("_")
        axis = {"x": 0, "y": 1}.get(component)
        if axis is None or field not in table:
            raise ParameterError(
                f"{kind} for channel", channel, f"a field among {', '.join(map(str, table))}"
            )
        value = table[field]
        if not isinstance(value, Sequence) or len(value) != 2:
            raise ParameterError(f"{kind} of vector field {field}", value, "a list [x, y]")
        value = value[axis]
    if isinstance(value, Sequence):
        raise ParameterError(f"{kind} of {channel}", value, "one number for a scalar field")
    return float(value)

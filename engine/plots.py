"""Static figures (PNG) for docs and reports, drawn with matplotlib's Agg backend.

Arrays follow the Well's [x, y] index order, so images are transposed and drawn with
origin="lower" to put x to the right and y up.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from engine.data.atomic import atomic_path
from engine.systems import get_system

# The field that shows each system's dynamics best, when present.
SHOWCASE_FIELDS = ("density", "buoyancy", "vorticity")


def showcase_channel(channel_names: Sequence[str]) -> int:
    for name in SHOWCASE_FIELDS:
        if name in channel_names:
            return list(channel_names).index(name)
    return 0


def draw_field(ax: plt.Axes, field: np.ndarray, extent: Sequence[float], **kwargs) -> None:
    """Draw an [x, y]-indexed field with x to the right and y up."""
    ax.imshow(field.T, origin="lower", extent=(0, extent[0], 0, extent[1]), **kwargs)
    ax.set_xticks([])
    ax.set_yticks([])


def systems_figure(system_names: Sequence[str], *, seed: int = 0, snapshots: int = 4) -> plt.Figure:
    """One row per system: its showcase field at evenly spaced times of one trajectory."""
    fig, axes = plt.subplots(
        len(system_names),
        snapshots,
        figsize=(2.6 * snapshots, 2.1 * len(system_names)),
        squeeze=False,
        layout="constrained",
    )
    for row, name in zip(axes, system_names, strict=True):
        system = get_system(name)
        spec = system.spec
        trajectory = system.simulate([system.sample_conditions(seed)], [seed])[0].numpy()
        channel = showcase_channel(spec.channel_names)
        frames = np.linspace(0, spec.n_frames - 1, snapshots).round().astype(int)
        values = trajectory[frames, channel]
        vmin, vmax = np.percentile(values, [1, 99])
        times = spec.frame_times()
        for ax, frame, field in zip(row, frames, values, strict=True):
            draw_field(ax, field, spec.grid.extent, cmap="viridis", vmin=vmin, vmax=vmax)
            ax.set_title(f"t = {times[frame]:.2f}", fontsize=9)
        row[0].set_ylabel(f"{name}\n{spec.channel_names[channel]}", fontsize=9)
    return fig


def save_figure(fig: plt.Figure, path: str | Path, dpi: int = 110) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format=Path(path).suffix.lstrip(".") or "png")
    plt.close(fig)
    return Path(path)

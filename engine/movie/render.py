"""Draw movie frames: one matplotlib figure, laid out once, whose images are updated per lead.

Laying a figure out (constrained layout, colour bars, titles) costs far more than
drawing it, so the layout is computed on the first frame and then frozen; each further
frame only swaps image data and the caption. The figure is a plain `Figure` on an Agg
canvas (no pyplot state), so frames can be drawn from the explorer's server threads.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import colorcet
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from engine.movie.panels import PANEL_SCALE, PANEL_TITLES, MovieData

DPI = 100
SLIDE_ASPECT = 16 / 9
MACRO_BLOCK = 16  # video encoders want frame sizes in multiples of 16 pixels
TITLE_PX, CAPTION_PX, PANEL_TITLE_PX = 34, 30, 26
COLORBAR_SHARE = 0.16  # of a cell's width


def layout(panels: int, extent: tuple[float, float]) -> tuple[int, int]:
    """(rows, columns) of the panel grid whose shape is closest to a 16:9 slide."""
    cell = extent[0] / extent[1] / (1 - COLORBAR_SHARE)

    def misfit(columns: int) -> float:
        rows = math.ceil(panels / columns)
        return abs(math.log(columns * cell / rows / SLIDE_ASPECT))

    columns = min(range(1, panels + 1), key=misfit)
    return math.ceil(panels / columns), columns


def frame_size(panels: int, extent: tuple[float, float], width: int) -> tuple[int, int]:
    """(width, height) in pixels for `panels` panels, both rounded up to multiples of 16."""
    rows, columns = layout(panels, extent)
    image_width = width / columns * (1 - COLORBAR_SHARE)
    height = rows * (image_width * extent[1] / extent[0] + PANEL_TITLE_PX)
    height += TITLE_PX + CAPTION_PX
    return _round_up(width), _round_up(math.ceil(height))


def _round_up(pixels: int) -> int:
    return -(-pixels // MACRO_BLOCK) * MACRO_BLOCK


class MovieRenderer:
    """Frames (H, W, 3) uint8 of `panels` of a MovieData, one per lead index."""

    def __init__(self, data: MovieData, panels: Sequence[str], width: int, title: str):
        self.data, self.panels = data, tuple(panels)
        self.size = frame_size(len(self.panels), data.extent, width)
        rows, columns = layout(len(self.panels), data.extent)
        self.figure = Figure(
            figsize=(self.size[0] / DPI, self.size[1] / DPI), dpi=DPI, layout="constrained"
        )
        self.canvas = FigureCanvasAgg(self.figure)
        axes = self.figure.subplots(rows, columns, squeeze=False).ravel()
        scales = data.scales()
        self.images = {}
        for ax, panel in zip(axes, self.panels, strict=False):
            scale = scales[PANEL_SCALE[panel]]
            image, extent = data.image(panel, 0)
            self.images[panel] = ax.imshow(
                image.T,
                origin="lower",
                extent=(0, extent[0], 0, extent[1]),
                cmap=colorcet.cm[scale.colormap],
                vmin=scale.low,
                vmax=scale.high,
                interpolation="nearest",
            )
            self.figure.colorbar(self.images[panel], ax=ax, shrink=0.9, pad=0.02)
            ax.set_title(self._panel_title(panel), fontsize=10)
            ax.set_xticks([])
            ax.set_yticks([])
        for ax in axes[len(self.panels) :]:
            ax.set_visible(False)
        self.figure.suptitle(title, fontsize=11)
        self.caption = self.figure.supxlabel(" ", fontsize=10)
        self._frozen = False

    def _panel_title(self, panel: str) -> str:
        count = self.data.members.shape[0]
        if panel in ("mean", "members") and count > 1:
            return f"{PANEL_TITLES[panel]} ({count})"
        return PANEL_TITLES[panel]

    def caption_text(self, t: int) -> str:
        data = self.data
        horizon = int(data.attrs.get("horizon", data.frames))
        return (
            f"{data.field} [{data.units}] · lead {int(data.lead[t])} of {horizon} · "
            f"t = {data.lead_time[t]:.3g} after the last context frame · "
            f"truth frame {int(data.frame[t])}"
        )

    def frame(self, t: int) -> np.ndarray:
        """The RGB frame at time index `t`."""
        for panel, artist in self.images.items():
            artist.set_data(self.data.image(panel, t)[0].T)
        self.caption.set_text(self.caption_text(t))
        self.canvas.draw()
        if not self._frozen:  # keep the first frame's layout: same boxes, faster frames
            self.figure.set_layout_engine("none")
            self._frozen = True
        rgb = np.asarray(self.canvas.buffer_rgba())[..., :3]
        width, height = self.size
        if rgb.shape[:2] != (height, width):  # a pixel lost to rounding: pad with white
            padded = np.full((height, width, 3), 255, np.uint8)
            rows, columns = min(height, rgb.shape[0]), min(width, rgb.shape[1])
            padded[:rows, :columns] = rgb[:rows, :columns]
            return padded
        return np.ascontiguousarray(rgb)

    def close(self) -> None:
        self.figure.clear()


def movie_title(attrs: dict) -> str:
    """The model's name and the settings that made the rollout, from its attributes."""
    parts = [str(attrs.get("emulator", "rollout"))]
    members = attrs.get("members")
    if attrs.get("emulator_kind") == "diffusion":
        parts.append(f"{attrs.get('sampler')} {attrs.get('steps')} steps")
        if members is not None:
            parts.append(f"{members} members")
    if "seed" in attrs:
        parts.append(f"seed {attrs['seed']}")
    return " · ".join(parts)

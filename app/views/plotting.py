"""Bokeh building blocks shared by the views: built once, then only their data changes.

Figures are plain Bokeh models inside `pn.pane.Bokeh`: an update assigns new arrays to a
ColumnDataSource (float32 travels as a binary buffer) and never re-creates a figure, so
zoom, pan and hover survive streaming. Images share colour mappers (one scale per field
for truth, reconstruction, mean and members) and ranges (linked zoom).
"""

from __future__ import annotations

from collections.abc import Sequence

import colorcet as cc
import numpy as np
import panel as pn
from bokeh.models import (
    ColorBar,
    ColumnDataSource,
    HoverTool,
    LinearColorMapper,
    Range1d,
    Span,
)
from bokeh.palettes import Category10_10
from bokeh.plotting import figure

TRANSPARENT = "rgba(0, 0, 0, 0)"
FIELD_PALETTE = cc.rainbow4
STD_PALETTE = cc.fire
ERROR_PALETTE = cc.coolwarm
LINE_COLORS = Category10_10
TOOLS = "pan,wheel_zoom,box_zoom,reset,save"
EMPTY = np.full((1, 1), np.nan, np.float32)


def mapper(palette: Sequence[str], low: float = 0.0, high: float = 1.0) -> LinearColorMapper:
    return LinearColorMapper(palette=list(palette), low=low, high=high, nan_color=TRANSPARENT)


def shared_ranges() -> tuple[Range1d, Range1d]:
    return Range1d(0, 1), Range1d(0, 1)


class ImagePanel:
    """One titled image with a colour bar and hover values, updated in place."""

    def __init__(
        self,
        title: str,
        color_mapper: LinearColorMapper,
        css_class: str,
        x_range: Range1d | None = None,
        y_range: Range1d | None = None,
    ):
        x_range, y_range = x_range or Range1d(0, 1), y_range or Range1d(0, 1)
        # The CSS hooks go on the figure itself: pn.pane.Bokeh renders the figure as its
        # own root, so classes given to the pane never reach the page.
        self.figure = figure(
            title=title,
            x_range=x_range,
            y_range=y_range,
            tools=TOOLS,
            frame_width=280,
            frame_height=280,
            toolbar_location="above",
            css_classes=["ls-image", css_class],
        )
        self.figure.toolbar.autohide = True
        self.figure.title.text_font_size = "11pt"
        self.source = ColumnDataSource(
            {"image": [EMPTY], "x": [0.0], "y": [0.0], "dw": [1.0], "dh": [1.0]}
        )
        renderer = self.figure.image(
            image="image",
            x="x",
            y="y",
            dw="dw",
            dh="dh",
            color_mapper=color_mapper,
            source=self.source,
        )
        self.figure.add_tools(
            HoverTool(
                renderers=[renderer],
                tooltips=[("x", "$x{0.000}"), ("y", "$y{0.000}"), ("value", "@image{0.0000}")],
            )
        )
        self.figure.add_layout(ColorBar(color_mapper=color_mapper, width=8, padding=3), "right")
        self.pane = pn.pane.Bokeh(self.figure)

    def show(
        self, image: np.ndarray | None, extent: tuple[float, float], title: str | None = None
    ) -> None:
        """Show an [x, y]-ordered array over (0..Lx, 0..Ly); None blanks the panel."""
        array = EMPTY if image is None else np.ascontiguousarray(image.T, dtype=np.float32)
        self.source.data = {
            "image": [array],
            "x": [0.0],
            "y": [0.0],
            "dw": [float(extent[0])],
            "dh": [float(extent[1])],
        }
        if title is not None:
            self.figure.title.text = title

    def hide_axes(self) -> None:
        """For tiled images (members, latent channels), whose axes would mean nothing."""
        self.figure.axis.visible = False
        self.figure.grid.visible = False

    def resize(self, width: int, height: int) -> None:
        self.figure.frame_width, self.figure.frame_height = width, height


def frame_size(extent: tuple[float, float], width: int) -> tuple[int, int]:
    """(frame width, frame height) keeping the physical aspect ratio, height >= 60 px."""
    return width, max(60, round(width * extent[1] / extent[0]))


def line_figure(
    title: str,
    y_label: str,
    *,
    log_x: bool = False,
    log_y: bool = False,
    x_label: str = "lead time",
) -> figure:
    fig = figure(
        title=title,
        tools=TOOLS,
        height=260,
        sizing_mode="stretch_width",
        x_axis_label=x_label,
        y_axis_label=y_label,
        toolbar_location="above",
        x_axis_type="log" if log_x else "linear",
        y_axis_type="log" if log_y else "linear",
    )
    fig.toolbar.autohide = True
    return fig


def legend_below(fig: figure) -> None:
    """Move the figure's legend under the plot, where it hides no curve."""
    legend = fig.legend[0]
    fig.center = [item for item in fig.center if item is not legend]
    legend.update(
        orientation="horizontal",
        label_text_font_size="8pt",
        padding=2,
        margin=0,
        border_line_alpha=0,
    )
    fig.add_layout(legend, "below")


def time_marker(fig: figure) -> Span:
    """A vertical line at the lead time currently shown in the field views."""
    span = Span(location=0, dimension="height", line_color="#888888", line_dash="dashed")
    fig.add_layout(span)
    return span


def bokeh_pane(fig: figure, css_class: str) -> pn.pane.Bokeh:
    """A stretching pane of `fig` with the CSS hook `css_class` (on the figure: see
    ImagePanel)."""
    fig.css_classes = [*fig.css_classes, css_class]
    return pn.pane.Bokeh(fig, sizing_mode="stretch_width")

"""HoloViews charts: curves with overlays and legends whose data is streamed in.

A chart is a `DynamicMap` over a `Pipe`: the overlay is declared once from the data it
is sent, and HoloViews then updates the Bokeh data sources in place on every `send`, so
zoom and pan survive streaming like in the plain Bokeh figures of plotting.py. Columns
are named "x" and "y" whatever the axis labels say, so every line figure of the page
reads the same in a browser.

Direct Bokeh stays where a measurement says the event loop cannot afford HoloViews: one
`send` of a three-curve overlay costs a median 18-24 ms of server time against 0.13 ms for
assigning three ColumnDataSources (40 updates, 2 repeats, on the 2-core development
machine, headless documents: `python -m tools.chart_update_cost`). The
Diagnostics tab redraws three score plots and the rank histogram on every block while
the event loop also serialises frames to every browser, so those stay Bokeh
(plotting.py), like the field images; the spectrum and the comparison chart, one chart
per update, are HoloViews.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import holoviews as hv
import panel as pn

from app.views.plotting import TOOLS

hv.extension("bokeh", logo=False)

X = "x"
Y = "y"
HEIGHT = 260


def dims(x_label: str, y_label: str) -> tuple[hv.Dimension, hv.Dimension]:
    """The x and y dimensions of a chart, labelled for the axes."""
    return hv.Dimension(X, label=x_label), hv.Dimension(Y, label=y_label)


def line_options(
    title: str,
    css_class: str,
    *,
    log_x: bool = False,
    log_y: bool = False,
    legend: str = "bottom",
) -> list[hv.Options]:
    """Options shared by the charts: the page's look, a compact legend (`legend`: "bottom"
    under the plot, or a corner inside it), axes that follow each update (framewise), and
    the CSS hook on the figure itself (see ImagePanel)."""

    def hook(plot: Any, _: Any) -> None:
        figure = plot.state
        if css_class not in figure.css_classes:
            figure.css_classes = [*figure.css_classes, css_class]
        figure.toolbar.autohide = True

    return [
        hv.opts.Curve(framewise=True),
        hv.opts.Path(framewise=True, show_legend=True),
        hv.opts.Overlay(
            title=title,
            height=HEIGHT,
            responsive=True,
            logx=log_x,
            logy=log_y,
            legend_position=legend,
            legend_cols=4 if legend == "bottom" else 1,
            legend_opts={
                "label_text_font_size": "8pt",
                "padding": 2,
                "margin": 0,
                "spacing": 0,
                "border_line_alpha": 0,
                "background_fill_alpha": 0.7,
            },
            default_tools=[],
            tools=TOOLS.split(","),
            toolbar="above",
            hooks=[hook],
            framewise=True,
        ),
    ]


class StreamedChart:
    """A chart drawn by `draw(data)` (an Overlay), redrawn in place on `send(data)`."""

    def __init__(self, draw: Callable[[Any], hv.Overlay], data: Any, css_class: str):
        self.pipe = hv.streams.Pipe(data=data)
        self.dmap = hv.DynamicMap(draw, streams=[self.pipe])
        # The class is on the pane for Panel and, through line_options' hook, on the figure
        # the browser draws.
        self.pane = pn.pane.HoloViews(
            self.dmap,
            sizing_mode="stretch_width",
            backend="bokeh",
            linked_axes=False,
            css_classes=[css_class],
        )

    def send(self, data: Any) -> None:
        self.pipe.send(data)

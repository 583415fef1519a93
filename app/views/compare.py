"""Comparison rows: several compression rates, or several samplers / step counts, side by
side on the same initial condition and conditions.

Each row shows the ensemble mean, spread and error at the time shown (same colour
scales and linked zoom as the field views) and its cost; one chart overlays the rows'
VRMSE against lead time, with each latent row's autoencoder floor dashed. Rows are built
when a job starts (their number depends on the job) and updated in place afterwards.
"""

from __future__ import annotations

from typing import Any

import holoviews as hv
import numpy as np
import panel as pn
import param

from app.source_runner import WITHOUT_MODEL
from app.store import Series, ensemble_stats
from app.views.base import TabView
from app.views.charts import StreamedChart, dims, line_options
from app.views.fields import FieldViews
from app.views.plotting import (
    LINE_COLORS,
    ImagePanel,
    frame_size,
)

CHART_CLASS = "ls-compare-chart"
EMPTY = np.zeros(0)
HELP = (
    "Pick **compare: compression rates** or **samplers / steps** in the sidebar and press "
    "**Run**: every row then rolls out from the same truth frames with the same conditions "
    "and seed, so differences come from the model or the sampler alone."
)


class _Row:
    def __init__(self, series: Series, fields: FieldViews, width: int, height: int):
        self.key = series.spec.key
        linked = {"x_range": fields.x_range, "y_range": fields.y_range}
        self.mean = ImagePanel("mean", fields.field_mapper, "ls-compare-mean", **linked)
        self.std = ImagePanel("std", fields.std_mapper, "ls-compare-std", **linked)
        self.error = ImagePanel("error", fields.error_mapper, "ls-compare-error", **linked)
        for panel in (self.mean, self.std, self.error):
            panel.resize(width, height)
        self.text = pn.pane.Markdown("", width=220, css_classes=["ls-compare-label"])
        self.layout = pn.Row(
            self.text,
            self.mean.pane,
            self.std.pane,
            self.error.pane,
            css_classes=["ls-compare-row"],
        )


class ComparisonView(TabView):
    fields = param.ClassSelector(class_=FieldViews)

    def __init__(self, **params: Any):
        super().__init__(**params)
        self.header = pn.pane.Markdown(HELP, css_classes=["ls-compare-help"])
        self.rows = pn.Column(sizing_mode="stretch_width")
        self.chart = pn.Column(sizing_mode="stretch_width")
        self._layout = pn.Column(
            self.header,
            self.chart,
            self.rows,
            css_classes=["ls-compare"],
            sizing_mode="stretch_width",
        )
        self._request = None
        self._rows: list[_Row] = []
        self._curves: StreamedChart | None = None
        self.state.param.watch(self.refresh, ["field", "time_index"])
        self.store.param.watch(self.refresh, ["revision"])

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

    def _rebuild(self) -> None:
        store = self.store
        request, spec = store.request, store.spec
        self._request = request
        keys = [k for k in request.compare_keys if k in store.series]
        extent = spec.grid.extent
        size = frame_size(extent, 300 if extent[0] >= 2 * extent[1] else 180)
        self._rows = [_Row(store.series[k], self.fields, *size) for k in keys]
        self.rows.objects = [row.layout for row in self._rows]
        # The rows change with each request, so does the overlay: one chart per request.
        labels = tuple(store.series[key].spec.label for key in keys)
        self._curves = StreamedChart(
            lambda data: vrmse_overlay(labels, data),
            {"x": EMPTY, "rows": {}, "lead": 0.0},
            CHART_CLASS,
        )
        self.chart.objects = [self._curves.pane]
        space = store.main.space if store.main is not None else ""
        self.header.object = (
            f"**No comparison rows**: they run several models from the same start, and "
            f"{WITHOUT_MODEL[space]}."
            if space in WITHOUT_MODEL
            else HELP
            if not keys
            else (
                f"Comparing **{request.compare}** on the same initial condition (seed "
                f"{request.seed}); dashed lines: each row's autoencoder floor."
            )
        )

    def redraw(self) -> None:
        store, state = self.store, self.state
        if store.request is None or store.spec is None:
            return
        if store.request is not self._request:
            self._rebuild()
        if not self._rows:
            return
        spec = store.spec
        name = state.field if state.field in spec.channel_names else spec.channel_names[0]
        c = spec.channel_names.index(name)
        index = min(state.time_index, store.request.horizon - 1)
        _, truth = store.truth_frame_for(index)
        extent = spec.grid.extent
        stride = store.request.main.frame_stride
        x = (np.arange(store.request.horizon) + 1) * spec.frame_dt * stride
        for row in self._rows:
            series = store.series[row.key]
            members = series.members_at(index)
            if members is None:
                for panel in (row.mean, row.std, row.error):
                    panel.show(None, extent)
            else:
                mean, std = ensemble_stats(members[:, c])
                row.mean.show(mean, extent, f"mean, {name}")
                row.std.show(std, extent, "std")
                row.error.show(None if truth is None else mean - truth[c], extent, "error")
            speed = (
                f"{series.seconds_per_frame:.3g} s/frame"
                if np.isfinite(series.seconds_per_frame)
                else "–"
            )
            row.text.object = (
                f"**{series.spec.label}**  \n{series.members} member"
                f"{'s' * (series.members > 1)} · {speed} · {series.nfe} NFE  \n"
                f"{series.ready}/{store.request.horizon} frames, {series.status}"
            )
        rows = {
            store.series[row.key].spec.label: (
                store.series[row.key].scores["vrmse"][:, c],
                store.series[row.key].floor["vrmse"][:, c],
            )
            for row in self._rows
        }
        self._curves.send({"x": x, "rows": rows, "lead": float(x[index])})


def vrmse_overlay(labels: tuple[str, ...], data: dict[str, Any]) -> hv.Overlay:
    """Each row's VRMSE against lead time (solid) and its autoencoder floor (dashed, same
    colour), with a marker at the lead time shown."""
    x_dim, y_dim = dims("lead time", "VRMSE")
    x, rows = data["x"], data["rows"]
    layers = []
    for i, label in enumerate(labels):
        color = LINE_COLORS[i % len(LINE_COLORS)]
        vrmse, floor = rows.get(label, (EMPTY, EMPTY))
        xs = x if len(vrmse) else EMPTY
        layers.append(
            hv.Curve((xs, vrmse), x_dim, y_dim, label=label).opts(color=color, line_width=2)
        )
        layers.append(
            hv.Curve((xs, floor), x_dim, y_dim, group="Floor", label=label).opts(
                color=color, line_dash="dashed", line_width=1.5, show_legend=False
            )
        )
    marker = hv.VLine(data["lead"]).opts(color="#888888", line_dash="dashed", line_width=1)
    return hv.Overlay([*layers, marker]).opts(
        *line_options("VRMSE of the ensemble mean by row", CHART_CLASS)
    )

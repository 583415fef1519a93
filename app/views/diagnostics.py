"""Diagnostics: scores against lead time, the power spectrum now, the rank histogram.

The score curves compare the selected emulator with the other kind at the same rate
(diffusion vs deterministic) and with the autoencoder floor (the error of a perfect
emulator at this rate), for the selected field. Lines are fixed renderers whose data
is replaced as blocks arrive; the dashed marker follows the time shown in the fields.
"""

from __future__ import annotations

from typing import Any

import holoviews as hv
import numpy as np
import panel as pn
from bokeh.core.properties import value
from bokeh.models import ColumnDataSource, Span

from app.store import Series
from app.views.base import TabView
from app.views.charts import StreamedChart, dims, line_options
from app.views.plotting import LINE_COLORS, bokeh_pane, legend_below, line_figure, time_marker

METRICS = {
    "vrmse": ("VRMSE of the ensemble mean", "VRMSE (1 = spatial mean)", "ls-metric-vrmse"),
    "ssr": ("Spread–skill ratio", "spread / RMSE (1 = calibrated)", "ls-metric-ssr"),
    "crps": ("CRPS (fair; MAE for one member)", "CRPS [field units]", "ls-metric-crps"),
}
SPECTRUM_TITLE = "Power spectrum at the time shown"
EMPTY = np.zeros(0)
NO_SPECTRUM = {"k": EMPTY, "members": np.zeros((0, 0)), "truth": EMPTY, "recon": None}
LINES = {  # line key -> (colour, dash)
    "main": (LINE_COLORS[0], "solid"),
    "reference": (LINE_COLORS[1], "solid"),
    "floor": ("#444444", "dashed"),
}


class MetricPlot:
    """One score against lead time: selected emulator, the other kind, the AE floor.

    Plain Bokeh on purpose: three of these redraw on every block, and a HoloViews overlay
    costs about 20 ms of event-loop time per update against 0.13 ms here (measured, see
    app/views/charts.py).
    """

    def __init__(self, metric: str):
        title, y_label, css = METRICS[metric]
        self.metric = metric
        self.figure = line_figure(title, y_label)
        self.sources: dict[str, ColumnDataSource] = {}
        self.renderers = {}
        for key, (color, dash) in LINES.items():
            source = ColumnDataSource({"x": [], "y": []})
            self.renderers[key] = self.figure.line(
                "x", "y", source=source, color=color, line_dash=dash, line_width=2, legend_label=key
            )
            self.sources[key] = source
        if metric in ("vrmse", "ssr"):
            self.figure.add_layout(Span(location=1.0, dimension="width", line_color="#bbbbbb"))
        legend_below(self.figure)
        self.marker = time_marker(self.figure)
        self.pane = bokeh_pane(self.figure, css)

    def show(self, lines: dict[str, tuple[str, np.ndarray, np.ndarray] | None]) -> None:
        """lines: key -> (legend label, x, y) or None to hide."""
        for item in self.figure.legend.items:
            key = next(k for k, r in self.renderers.items() if r in item.renderers)
            line = lines.get(key)
            self.renderers[key].visible = line is not None
            item.visible = line is not None
            if line is not None:
                label, x, y = line
                item.label = value(label)
                self.sources[key].data = {"x": x, "y": y}


class DiagnosticsView(TabView):
    """Score curves, the spectrum at the time shown and the rank histogram."""

    def __init__(self, **params: Any):
        super().__init__(**params)
        self.plots = {metric: MetricPlot(metric) for metric in METRICS}
        self.spectrum = StreamedChart(spectrum_overlay, NO_SPECTRUM, "ls-spectrum")
        self.rank = line_figure(
            "Rank histogram of the truth among the members", "frequency", x_label="rank"
        )
        self.rank_source = ColumnDataSource({"x": [], "top": []})
        self.rank.vbar(x="x", top="top", width=0.9, source=self.rank_source, color=LINE_COLORS[0])
        self.rank_flat = Span(location=0, dimension="width", line_color="black", line_dash="dashed")
        self.rank.add_layout(self.rank_flat)
        self.note = pn.pane.Markdown("", css_classes=["ls-diagnostics-note"])
        self._layout = pn.Column(
            self.note,
            pn.Row(*[plot.pane for plot in self.plots.values()], sizing_mode="stretch_width"),
            pn.Row(
                self.spectrum.pane,
                bokeh_pane(self.rank, "ls-rank-histogram"),
                sizing_mode="stretch_width",
            ),
            css_classes=["ls-metrics"],
            sizing_mode="stretch_width",
        )
        self.state.param.watch(self.refresh, ["field", "time_index"])
        self.store.param.watch(self.refresh, ["revision"])
        self.refresh()

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

    def redraw(self) -> None:
        store, state = self.store, self.state
        spec, request = store.spec, store.request
        if spec is None or request is None:
            return
        name = state.field if state.field in spec.channel_names else spec.channel_names[0]
        c = spec.channel_names.index(name)
        index = min(state.time_index, request.horizon - 1)
        main = store.series.get("main")
        reference = store.series.get("reference")
        dt = self._lead_dt()
        x = (np.arange(request.horizon) + 1) * dt
        for metric, plot in self.plots.items():
            lines = {
                "main": _line(main, metric, c, x),
                "reference": _line(reference, metric, c, x),
                "floor": None,
            }
            if metric in main.floor and main.space == "latent":
                floor = main.floor[metric][:, c]
                if np.isfinite(floor).any():
                    lines["floor"] = (f"AE floor ×{main.rate:.0f}", x, floor)
            plot.show(lines)
            plot.marker.location = float((index + 1) * dt)
        self._spectrum(index, name)
        self._rank(name, main)
        missing = (
            "**No truth in this source**: the scores, spectra and rank histogram compare "
            "a prediction with its truth (docs/sources.md says how a rollout file names "
            "it). "
            if store.truth is None
            else "**No prediction**: this source holds the truth only. "
            if main is None or main.space == "truth"
            else ""
        )
        self.note.object = missing + (
            f"Field **{name}**. Scores per lead time against the truth; dashed: "
            "the autoencoder alone (encode → decode the truth), the floor no latent "
            "emulator at this rate can beat. Rank histogram: flat = calibrated, "
            "U-shaped = too little spread, dome = too much, sloped = biased."
        )

    def _lead_dt(self) -> float:
        store = self.store
        stride = store.request.main.frame_stride
        return store.spec.frame_dt * stride

    def _spectrum(self, index: int, name: str) -> None:
        spectra = self.store.spectra("main", index, name)
        self.spectrum.send(NO_SPECTRUM if spectra is None else spectra)

    def _rank(self, name: str, main: Series | None) -> None:
        counts = self.store.rank_counts("main", name)
        if counts is None:
            self.rank_source.data = {"x": [], "top": []}
            self.rank.title.text = "Rank histogram (needs ≥ 2 members)"
            return
        self.rank_source.data = {"x": np.arange(len(counts)), "top": counts}
        self.rank_flat.location = 1.0 / len(counts)
        self.rank.title.text = f"Rank histogram, {name}, leads 1–{main.ready}"


def spectrum_overlay(data: dict[str, Any]) -> hv.Overlay:
    """The members' power spectra, their mean, the truth's and the reconstruction's
    (`data` as RunStore.spectra gives them; "recon" is None in pixel space)."""
    x, y = dims("wavenumber [cycles / pixel]", "power")
    k, members, recon = data["k"], data["members"], data["recon"]
    mean = members.mean(axis=0) if len(members) else k
    return (
        hv.Path([np.column_stack([k, m]) for m in members], kdims=[x, y], label="members").opts(
            color=LINE_COLORS[0], alpha=0.25
        )
        * hv.Curve((k, mean), x, y, label="member mean").opts(color=LINE_COLORS[0], line_width=2)
        * hv.Curve((k, data["truth"]), x, y, label="truth").opts(color="black", line_width=2)
        * hv.Curve(
            (k[:0], k[:0]) if recon is None else (k, recon), x, y, label="AE reconstruction"
        ).opts(color="#444444", line_dash="dashed", line_width=2)
    ).opts(
        *line_options(SPECTRUM_TITLE, "ls-spectrum", log_x=True, log_y=True, legend="bottom_left")
    )


def _line(series: Series | None, metric: str, c: int, x: np.ndarray):
    if series is None or not series.blocks:
        return None
    y = series.scores[metric][:, c]
    if not np.isfinite(y).any():
        return None
    return series.spec.label, x, y

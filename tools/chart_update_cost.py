"""Server-side cost of one update of a three-curve line chart: HoloViews against Bokeh.

`python -m tools.chart_update_cost` prints the median milliseconds of a `Pipe.send` to a
HoloViews DynamicMap overlay (app/views/charts.py) and of assigning three Bokeh
ColumnDataSources (app/views/plotting.py), each rendered into a headless document. It is
the measurement behind which app charts are HoloViews and which stay plain Bokeh.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import holoviews as hv
import numpy as np
from bokeh.document import Document
from bokeh.models import ColumnDataSource

from app.views.charts import StreamedChart, dims, line_options
from app.views.plotting import bokeh_pane, line_figure

LEADS = 40
KEYS = ("main", "reference", "floor")
UPDATES = 40
REPEATS = 2


def _overlay(data: dict[str, np.ndarray]) -> hv.Overlay:
    x, y = dims("lead time", "VRMSE")
    curves = [hv.Curve((data["x"], data[key]), x, y, label=key) for key in KEYS]
    return hv.Overlay(curves).opts(*line_options("VRMSE", "ls-cost"))


def _data(n: int) -> dict[str, np.ndarray]:
    x = np.arange(1, n + 1, dtype=float)
    return {"x": x, **{key: np.random.rand(n) for key in KEYS}}


def _median_ms(update: Callable[[int], object]) -> float:
    samples = []
    for i in range(UPDATES):
        start = time.perf_counter()
        update(i % LEADS + 1)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e3


def main() -> None:
    chart = StreamedChart(_overlay, _data(0), "ls-cost")
    chart.pane.get_root(Document())
    figure = line_figure("VRMSE", "VRMSE")
    sources = {key: ColumnDataSource({"x": [], "y": []}) for key in KEYS}
    for key, source in sources.items():
        figure.line("x", "y", source=source, legend_label=key)
    bokeh_pane(figure, "ls-cost").get_root(Document())

    def assign(n: int) -> None:
        data = _data(n)
        for key, source in sources.items():
            source.data = {"x": data["x"], "y": data[key]}

    for _ in range(REPEATS):
        holoviews_ms = _median_ms(lambda n: chart.send(_data(n)))
        bokeh_ms = _median_ms(assign)
        print(
            f"one update of {len(KEYS)} curves: HoloViews {holoviews_ms:.2f} ms, "
            f"Bokeh {bokeh_ms:.3f} ms (median of {UPDATES})"
        )


if __name__ == "__main__":
    main()

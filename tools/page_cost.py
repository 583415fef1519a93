"""What one session of the explorer costs its browser, and why.

`python -m tools.page_cost` serves the app (the shipped zoo unless --assets says otherwise),
opens the default page in Debian's headless chromium --repeats times (a seed of its own
each, so nothing is replayed), waits for the default rollout and reports, per page, as
JSON: seconds to the controls and to the end of the rollout; the renderer's main-thread
seconds (all tasks; of which JavaScript, style recalculation and layout, from Chrome's
Performance.getMetrics); and the whole-page layouts Bokeh ran, with what started each
(model type and CSS classes).

Why the layouts: in Bokeh 3 a change to a figure's size, a layout's visibility or
children (any LayoutDOM property that may move things) re-lays out the *whole page*, 0.2 to
0.5 s of a browser's CPU each on the explorer's page on the 2-core machine. A
classroom's browsers on one machine spend most of its CPU in their pages (docs/app.md,
"Many sessions at once"), so a view that changes sizes while streaming shows up here
first. The counter hooks Bokeh's `invalidate_layout` once the first views exist; the
layouts of the first render are not counted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tools.app_bench import (
    VIEWPORT,
    launch_chromium,
    machine_info,
    print_report,
    record,
    serve_app,
    wait_status,
)

# Counts root layouts by the view whose change started them (model type#css classes).
# Installed before the page loads; hooks the prototypes once Bokeh's first views exist.
LAYOUT_COUNTER_JS = """
(() => {
  window.lsLayouts = [];
  let depth = 0, origin = '';
  const owner = (obj, name) => {
    while (obj && !Object.hasOwn(obj, name)) obj = Object.getPrototypeOf(obj);
    return obj;
  };
  const timer = setInterval(() => {
    const views = window.Bokeh && Bokeh.index ? Object.values(Bokeh.index) : [];
    const proto = views.map(view => owner(view, 'invalidate_layout')).find(p => p);
    if (!proto) return;
    clearInterval(timer);
    const original = proto.invalidate_layout;
    proto.invalidate_layout = function () {
      if (depth === 0) origin = this.model.type + '#' + (this.model.css_classes || []).join('.');
      depth++;
      try {
        const root = !(this.parent && this.parent.invalidate_layout);
        const start = performance.now();
        const result = original.call(this);
        if (root) window.lsLayouts.push([origin, performance.now() - start, start]);
        return result;
      } finally { depth--; }
    };
  }, 10);
})();
"""
METRICS = {
    "main_thread_s": "TaskDuration",
    "script_s": "ScriptDuration",
    "style_s": "RecalcStyleDuration",
    "layout_s": "LayoutDuration",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="pages, one after another")
    parser.add_argument("--assets", type=Path, default=None, help="another zoo (assets dir)")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds per rollout")
    parser.add_argument("--output", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    return args


def layouts_by_origin(layouts: list[list[Any]]) -> dict[str, dict[str, float]]:
    """{origin: {"count": n, "ms": total}}, most expensive first."""
    count: Counter[str] = Counter()
    ms: Counter[str] = Counter()
    for origin, duration, _ in layouts:
        count[origin] += 1
        ms[origin] += duration
    return {o: {"count": count[o], "ms": round(ms[o], 1)} for o, _ in ms.most_common()}


def measure_page(browser: Any, url: str, timeout_s: float) -> dict[str, Any]:
    """One page from navigation to the end of its default rollout."""
    page = browser.new_page(viewport=VIEWPORT)
    try:
        page.add_init_script(LAYOUT_COUNTER_JS)
        cdp = page.context.new_cdp_session(page)
        cdp.send("Performance.enable")
        start = time.monotonic()
        page.goto(url)
        page.locator(".ls-run button").wait_for(state="visible", timeout=timeout_s * 1000)
        controls = time.monotonic() - start
        record(page)
        final = wait_status(page, "done", timeout_s)
        done = time.monotonic() - start
        metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
        layouts = page.evaluate("() => window.lsLayouts")
    finally:
        page.close()
    return {
        "controls_s": round(controls, 2),
        "rollout_s": round(done, 2),
        "status": final,
        **{key: round(metrics[name], 3) for key, name in METRICS.items()},
        "page_layouts": len(layouts),
        "page_layout_s": round(sum(d for _, d, _ in layouts) / 1000, 3),
        "page_layouts_by_origin": layouts_by_origin(layouts),
    }


def summary(pages: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("controls_s", "rollout_s", *METRICS, "page_layouts", "page_layout_s")
    return {key: statistics.median(p[key] for p in pages) for key in keys}


def main(argv: list[str] | None = None) -> None:
    from playwright.sync_api import sync_playwright

    args = parse_args(argv)
    with serve_app(args.assets) as url, sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        pages = [
            measure_page(browser, f"{url}?seed={seed}", args.timeout)
            for seed in range(1, args.repeats + 1)
        ]
        browser.close()
    report = {
        "command": "python -m tools.page_cost " + " ".join(sys.argv[1:] if argv is None else argv),
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "machine": machine_info(),
        "median": summary(pages),
        "pages": pages,
    }
    print_report(report, args.output)


if __name__ == "__main__":
    main()

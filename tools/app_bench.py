"""Performance of the served explorer, measured the way a user meets it: in a browser.

`python -m tools.app_bench [--output FILE] [--screenshot PNG]` serves the app (`panel serve app`,
in a subprocess, on the shipped zoo unless --assets says otherwise), drives Debian's
headless chromium with playwright and prints JSON with
- the time from clicking Run to the first predicted frame on screen (median of repeats),
- the time from clicking Run to the end of the full default rollout,
- the time a fifth browser session's page takes to show its widgets (the Run button),
  and its field images, while four other sessions run rollouts at once (median of
  repeats),
plus the machine (cores, load average, torch) and the settings used. The targets
on 2 cores: first frame <= 2 s, full rollout <= 20 s, fifth page <= 3 s.

It measures whatever else the machine is doing too: quote the load with the numbers.
The serving and browser helpers here are shared with tests/app/test_browser.py.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from app.shared_runs import KEEP_VARIABLE

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("LATENTSIM_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1400, "height": 1000}
SERVER_START_S = 90.0

# Records every change of the status, the time caption and the progress bar, with the
# page's clock, from DOM mutations inside their shadow roots (Panel renders each pane in
# an open shadow root). Polling could miss a state that lasts less than a poll; a
# MutationObserver sees each one. `window.lsLog` holds [ms, class, text] entries;
# `window.lsFind(cls)` finds the host element of a class through the shadow roots.
RECORDER_JS = """
() => {
  if (window.lsLog) return;
  window.lsLog = [];
  const find = window.lsFind = (cls) => {
    const roots = [document];
    while (roots.length) {
      const root = roots.pop();
      const hit = root.querySelector('.' + cls);
      if (hit && hit.shadowRoot) return hit;
      for (const el of root.querySelectorAll('*')) if (el.shadowRoot) roots.push(el.shadowRoot);
    }
    return null;
  };
  const read = (host, cls) => {
    if (cls === 'ls-progress') {
      const bar = host.shadowRoot.querySelector('progress');
      return bar ? bar.getAttribute('value') : '';
    }
    const div = host.shadowRoot.querySelector('div');
    return div ? div.innerText.trim() : '';
  };
  for (const cls of ['ls-status', 'ls-time-caption', 'ls-progress']) {
    const host = find(cls);
    if (!host) throw new Error('no element with class ' + cls);
    let last = null;
    const note = () => {
      const text = read(host, cls);
      if (text !== last) { last = text; window.lsLog.push([performance.now(), cls, text]); }
    };
    note();
    new MutationObserver(note).observe(host.shadowRoot,
      {subtree: true, childList: true, characterData: true, attributes: true});
  }
}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serve_app(
    assets: Path | None = None, log: Path | None = None, env: Mapping[str, str] | None = None
) -> Iterator[str]:
    """`panel serve app` in a subprocess; yields the app's URL once it answers.

    `assets` points the server at another zoo (LATENTSIM_ASSETS); the server's output goes
    to `log` (and is quoted if it dies before answering); `env`: more environment
    variables for the server."""
    port = free_port()
    panel = Path(sys.executable).with_name("panel")
    command = [
        str(panel),
        "serve",
        "app",
        "--address",
        "127.0.0.1",
        "--port",
        str(port),
        f"--allow-websocket-origin=127.0.0.1:{port}",
    ]
    with serve_command(command, port, cwd=REPO, assets=assets, log=log, env=env) as url:
        yield url


@contextmanager
def serve_command(
    command: list[str],
    port: int,
    *,
    cwd: Path,
    assets: Path | None = None,
    log: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Iterator[str]:
    """Run a command that serves the app on `port`; yield its URL once it answers, and stop
    it afterwards (its output goes to `log`, quoted if it dies before answering)."""
    env = {**os.environ, **(env or {})}
    if assets is not None:
        env["LATENTSIM_ASSETS"] = str(assets)
    log = log if log is not None else Path(os.devnull)
    with open(log, "wb") as out:
        server = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/app"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            try:
                with urllib.request.urlopen(url, timeout=10):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    text = log.read_text(errors="replace")[-3000:] if log.exists() else ""
                    raise RuntimeError(f"{command[0]} did not answer at {url}:\n{text}") from None
                time.sleep(0.25)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def check_chromium() -> None:
    if not os.access(CHROMIUM, os.X_OK):
        raise RuntimeError(
            f"no chromium at {CHROMIUM}: install Debian's (`make test` does: apt-get install "
            "chromium) or set LATENTSIM_CHROMIUM; never `playwright install`"
        )


def launch_chromium(playwright: Any) -> Any:
    check_chromium()
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def open_app(browser: Any, url: str, timeout_s: float = 30.0) -> tuple[Any, float]:
    """A new session's page and the seconds until its Run button is visible."""
    page = browser.new_page(viewport=VIEWPORT)
    start = time.monotonic()
    page.goto(url)
    page.locator(".ls-run button").wait_for(state="visible", timeout=timeout_s * 1000)
    return page, time.monotonic() - start


def seconds_until_visible(page: Any, selector: str, timeout_s: float = 60.0) -> float:
    """Wait until `selector` is visible; the page's clock then (seconds since navigation)."""
    page.locator(selector).first.wait_for(state="visible", timeout=timeout_s * 1000)
    return page.evaluate("() => performance.now()") / 1000


def status(page: Any) -> str:
    return page.locator(".ls-status div").first.inner_text().strip()


# The newest status the recorder saw (JavaScript expression).
LAST_STATUS = "(window.lsLog.filter(e => e[1] === 'ls-status').pop() || [0, 0, ''])[2]"
FINISHED = ("done", "cancelled", "failed")


def last_status(page: Any) -> str:
    return page.evaluate(f"() => {LAST_STATUS}")


def wait_status(page: Any, prefix: str, timeout_s: float) -> str:
    """Wait until the recorded status starts with `prefix` (e.g. "done"); return it."""
    page.wait_for_function(
        f"prefix => {LAST_STATUS}.startsWith(prefix)",
        arg=prefix,
        timeout=timeout_s * 1000,
        polling=100,
    )
    return last_status(page)


def record(page: Any) -> None:
    page.evaluate(RECORDER_JS)


def log_entries(page: Any, since_ms: float = 0.0) -> list[tuple[float, str, str]]:
    return [tuple(e) for e in page.evaluate("() => window.lsLog") if e[0] >= since_ms]


# Clicks Run from inside the page, so the time it returns is the click's (needs `record`).
CLICK_RUN_JS = """
() => { const button = window.lsFind('ls-run').shadowRoot.querySelector('button');
        const t = performance.now(); button.click(); return t; }
"""

# The first predicted frame of a new run: the caption (same message as the images)
# says "predicted so far: 0" when the run resets the view, then n >= 1.
FIRST_FRAME_JS = """
t0 => { let reset = false;
  for (const [t, cls, text] of window.lsLog) {
    if (t < t0 || cls !== 'ls-time-caption') continue;
    const m = text.match(/predicted so far: (\\d+)/);
    if (!m) continue;
    if (+m[1] === 0) reset = true; else if (reset) return t;
  }
  return null; }
"""
DONE_JS = """
t0 => { for (const [t, cls, text] of window.lsLog)
          if (t > t0 && cls === 'ls-status' && /^(done|failed|cancelled)/.test(text))
            return [t, text];
        return null; }
"""


def timed_run(page: Any, timeout_s: float = 120.0) -> dict[str, Any]:
    """Click Run; seconds to the first predicted frame on screen and to the end."""
    record(page)
    t0 = page.evaluate(CLICK_RUN_JS)
    first = page.wait_for_function(
        FIRST_FRAME_JS, arg=t0, timeout=timeout_s * 1000, polling=50
    ).json_value()
    done_at, final = page.wait_for_function(
        DONE_JS, arg=t0, timeout=timeout_s * 1000, polling=100
    ).json_value()
    return {
        "first_frame_s": (first - t0) / 1000,
        "rollout_s": (done_at - t0) / 1000,
        "status": final,
    }


def main_view_screenshot(page: Any, path: Path) -> None:
    """The main view (sidebar, fields) once nothing is loading any more."""
    page.wait_for_function("() => !document.querySelector('.pn-loading')", timeout=30_000)
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path))


# -- the benchmark ------------------------------------------------------------------------
def machine_info() -> dict[str, Any]:
    """The machine and library versions a benchmark ran on, for its JSON report."""
    import bokeh
    import panel
    import torch

    return {
        "cpu_count": os.cpu_count(),
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "torch": torch.__version__,
        "torch_threads_in_app": int(os.environ.get("LATENTSIM_APP_TORCH_THREADS", "1")),
        "panel": panel.__version__,
        "bokeh": bokeh.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "chromium": subprocess.run(
            [CHROMIUM, "--version"], capture_output=True, text=True
        ).stdout.strip(),
    }


def _summary(values: list[float]) -> dict[str, Any]:
    return {"median_s": round(statistics.median(values), 3), "all_s": [round(v, 3) for v in values]}


def bench(url: str, repeats: int, fifth_repeats: int, screenshot: Path | None) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    results: dict[str, Any] = {}
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            # (a), (b): one session; its automatic first run loads the models (cold).
            page, load_s = open_app(browser, url)
            results["first_page_images_visible_s"] = round(
                seconds_until_visible(page, ".ls-view-truth"), 3
            )
            record(page)
            cold = wait_status(page, "done", 180)
            results["first_page_load_s"] = round(load_s, 3)
            results["settings"] = {"url": page.url, "first_run_status": cold}
            runs = [timed_run(page) for _ in range(repeats)]
            results["run_to_first_frame"] = _summary([r["first_frame_s"] for r in runs])
            results["run_to_full_rollout"] = _summary([r["rollout_s"] for r in runs])
            results["run_statuses"] = sorted({r["status"] for r in runs})
            if screenshot is not None:
                main_view_screenshot(page, screenshot)
                results["screenshot"] = str(screenshot)
            page.close()
            results["fifth_page_load"] = _fifth_page(browser, url, fifth_repeats)
        finally:
            browser.close()
    return results


def _fifth_page(browser: Any, url: str, repeats: int) -> dict[str, Any]:
    """Four sessions stream rollouts; open (and close) a fifth page `repeats` times.

    The four run on seeds of their own: identical requests would share one computation
    (app/shared_runs.py), and this measures a page load beside four of them."""
    busy = [open_app(browser, f"{url}?seed={seed}")[0] for seed in range(1, 5)]
    for page in busy:
        record(page)
    times, images, running = [], [], []
    for _ in range(repeats):
        for page in busy:  # keep all four streaming: restart those that finished
            if last_status(page).startswith(FINISHED):
                page.evaluate(CLICK_RUN_JS)
        for page in busy:
            page.wait_for_function(
                f"() => / frames/.test({LAST_STATUS})", timeout=180_000, polling=100
            )
        page, seconds = open_app(browser, url)
        times.append(seconds)
        images.append(seconds_until_visible(page, ".ls-view-truth"))
        running.append(sum(not last_status(p).startswith(FINISHED) for p in busy))
        page.close()
    for page in busy:
        page.close()
    return {
        **_summary(times),
        "busy_sessions_still_running_after_load": running,
        "field_images_visible": _summary(images),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, help="also write the JSON here")
    parser.add_argument(
        "--screenshot", type=Path, help="PNG of the main view after a default rollout"
    )
    parser.add_argument("--assets", type=Path, help="zoo to serve (default: the shipped one)")
    parser.add_argument("--repeats", type=int, default=3, help="timed Run clicks")
    parser.add_argument("--fifth-repeats", type=int, default=5, help="fifth-page loads")
    args = parser.parse_args(argv)
    check_chromium()
    machine_before = machine_info()
    started = time.time()
    # No finished run is kept: every timed Run computes, as it did before runs were shared.
    with serve_app(
        args.assets,
        log=Path(os.environ.get("TMPDIR", "/tmp")) / "app-bench.log",
        env={KEEP_VARIABLE: "0"},
    ) as url:
        results = bench(url, args.repeats, args.fifth_repeats, args.screenshot)
    report = {
        "command": "python -m tools.app_bench " + " ".join(sys.argv[1:] if argv is None else argv),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(started)),
        "wall_s": round(time.time() - started, 1),
        "targets_s": {
            "run_to_first_frame": 2.0,
            "run_to_full_rollout": 20.0,
            "fifth_page_load": 3.0,
        },
        "assets": str(args.assets or REPO / "assets"),
        "machine": machine_before,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        **results,
    }
    print_report(report, args.output)


def print_report(report: dict[str, Any], output: Path | None) -> None:
    """Print the JSON report and, if asked, write it to `output` too."""
    text = json.dumps(report, indent=1, ensure_ascii=False)
    print(text)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text + "\n")


if __name__ == "__main__":
    main()

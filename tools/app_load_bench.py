"""The explorer under load: many browser sessions opened at once, as in a classroom.

`python -m tools.app_load_bench --sessions 1 4 8 16` serves the app (`panel serve app`,
the shipped zoo unless --assets says otherwise) once per N, opens N pages of Debian's
headless chromium at once, each starting the default rollout by itself, and reports per
session: the seconds from navigation to the controls (the Run button), to the first
predicted frame and to the end of the default rollout, its final status and whether it
shared its run with other sessions; plus the server's memory (RSS of the web process and
of its compute workers) when idle (after one warm-up session came and went), with the N
sessions open, and again after they closed; and the CPU seconds that the web process,
the workers and the browsers used from opening the pages until every page showed its
controls, and until every session was done: one page's CPU until its controls (N = 1),
times N over the machine's cores, is the soonest the last of N pages opened at once
could show its controls on this machine, however fast the server.
`--workers 0 2` serves once per setting of
LATENTSIM_APP_WORKERS (0: models on the web process's thread, as before the workers),
alternating the order from one N to the next, so the two are compared in one run.
`--nice-browsers` runs the browsers at nice 19 once the pages are open: on one machine
they otherwise take most of its CPU (the JSON shows how much), while in a classroom
each student's browser runs on a machine of its own.

By default every session opens the same page, so their requests are identical and one
computation serves them all (app/shared_runs.py): a classroom opening the page.
`--distinct-seeds` gives each session a seed of its own in the URL, so nothing is
shared: the worst case. The warm-up session (models loaded, caches filled) runs on a
seed no session uses, so no finished run is there to replay.

Prints JSON. It measures whatever else the machine does: the load is reported.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.cluster import WORKERS_VARIABLE
from tools.app_bench import (
    RECORDER_JS,
    REPO,
    VIEWPORT,
    check_chromium,
    launch_chromium,
    print_report,
    serve_app,
)

WARM_UP_SEED = 2**31 - 1  # the largest seed the app takes; sessions use 1..N
# Bokeh destroys a session some seconds after its websocket closed (it checks every 17 s).
AFTER_CLOSE_S = 40.0

# Installed in every page before it loads: notes when the Run button appears, and starts
# tools.app_bench's status/caption recorder as soon as those elements exist.
WATCH_JS = (
    """
(() => {
  window.lsBench = {};
  const record = """
    + RECORDER_JS
    + """;
  const timer = setInterval(() => {
    if (!window.lsRecording) {  // the recorder throws until its elements exist
      try { record(); window.lsRecording = true; } catch (e) { window.lsLog = undefined; return; }
    }
    const run = window.lsFind('ls-run');
    if (run && run.shadowRoot.querySelector('button')) {
      window.lsBench.controls = performance.now();
      clearInterval(timer);
    }
  }, 50);
})();
"""
)
# From the recorded changes (page clock, ms since navigation): controls, first predicted
# frame, end of the first run, its final status, and whether it followed a shared run.
RESULT_JS = """
() => { let first = null, done = null, text = '', shared = false;
  for (const [t, cls, value] of (window.lsLog || [])) {
    const m = cls === 'ls-time-caption' && value.match(/predicted so far: (\\d+)/);
    if (m && +m[1] >= 1 && first === null) first = t;
    if (cls === 'ls-status' && /^joined |^this run was computed already| · shared by /.test(value))
      shared = true;
    if (cls === 'ls-status' && /^(done|failed|cancelled)/.test(value) && done === null) {
      done = t; text = value; }
  }
  const ms = {controls_s: window.lsBench.controls || null, first_frame_s: first, rollout_s: done};
  return {ms, done, status: text, shared}; }
"""
MEASURES = ("controls_s", "first_frame_s", "rollout_s")


def session_urls(url: str, count: int, distinct_seeds: bool) -> list[str]:
    """The page each session opens: the same default page, or one seed each (1..N)."""
    if distinct_seeds:
        return [f"{url}?seed={seed}" for seed in range(1, count + 1)]
    return [url] * count


@dataclass(frozen=True)
class Process:
    parent: int
    rss_mb: float
    cpu_s: float  # user + system time so far
    command: bytes


def _processes() -> dict[int, Process]:
    """Every process we can read, by pid."""
    found = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            command = (entry / "cmdline").read_bytes()
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        rss = int(fields["VmRSS"].split()[0]) / 1024 if "VmRSS" in fields else 0.0
        cpu = (int(stat[11]) + int(stat[12])) / tick  # utime, stime
        found[int(entry.name)] = Process(int(fields["PPid"]), rss, cpu, command)
    return found


def _descendants(processes: dict[int, Process], root: int) -> list[int]:
    found, frontier = [], [root]
    while frontier:
        frontier = [pid for pid, p in processes.items() if p.parent in frontier]
        found += frontier
    return found


def _parts(processes: dict[int, Process]) -> tuple[int, list[int], list[int]]:
    """The `panel serve` process this bench started, its descendants (compute workers and
    their nannies) and this bench's other descendants (chromium, playwright's driver)."""
    servers = [
        pid for pid, p in processes.items() if p.parent == os.getpid() and b"serve" in p.command
    ]
    if not servers:
        raise RuntimeError("no `panel serve` child process found")
    server = servers[0]
    workers = _descendants(processes, server)
    browsers = sorted(set(_descendants(processes, os.getpid())) - {server, *workers})
    return server, workers, browsers


def usage() -> dict[str, dict[str, float]]:
    """RSS (MB) and CPU seconds so far of the web process (with the Dask scheduler in
    it) and of its workers, and CPU seconds of the browsers (see `_parts`)."""
    processes = _processes()
    server, workers, browsers = _parts(processes)
    web = processes[server]
    return {
        "web": {"rss_mb": web.rss_mb, "cpu_s": web.cpu_s},
        "workers": {
            "rss_mb": sum(processes[pid].rss_mb for pid in workers),
            "cpu_s": sum(processes[pid].cpu_s for pid in workers),
        },
        "browsers": {"cpu_s": sum(processes[pid].cpu_s for pid in browsers)},
    }


def nice_browsers() -> None:
    """Give every thread of the browsers the lowest CPU priority (nice 19): the server
    then gets the cores first, as if the students' browsers ran on their own machines,
    while the pages still render (late) in what the server leaves."""
    for pid in _parts(_processes())[2]:
        for task in Path(f"/proc/{pid}/task").glob("*"):
            with contextlib.suppress(OSError):  # gone meanwhile
                os.setpriority(os.PRIO_PROCESS, int(task.name), 19)


def server_rss_mb() -> dict[str, float]:
    """The server's memory: its web process, its compute workers and their total."""
    now = usage()
    web, workers = now["web"]["rss_mb"], now["workers"]["rss_mb"]
    return {"web": round(web, 1), "workers": round(workers, 1), "total": round(web + workers, 1)}


def cpu_seconds(before: dict, after: dict) -> dict[str, float]:
    """CPU seconds each part used between two `usage()` readings."""
    return {part: round(after[part]["cpu_s"] - before[part]["cpu_s"], 1) for part in after}


def summary(count: int, per_session: list[dict[str, Any]], memory: dict[str, Any]) -> dict:
    """One N's result: per session, the worst of each measure, whether all finished."""
    return {
        "sessions": count,
        "per_session": per_session,
        "worst": {
            key: max((r[key] for r in per_session if r.get(key) is not None), default=None)
            for key in MEASURES
        },
        "all_done": all(r.get("status", "").startswith("done") for r in per_session),
        "shared": sum(bool(r.get("shared")) for r in per_session),
        "memory_mb": memory,
    }


def _wait_done(page: Any, timeout_s: float) -> None:
    page.wait_for_function(
        f"() => ({RESULT_JS})().done !== null", timeout=timeout_s * 1000, polling=500
    )


def _wait_controls(pages: list[Any], deadline: float) -> None:
    """Until every page shows its controls, or `deadline` (time.monotonic) passes: a page
    that never shows them has no controls time in its result."""
    for page in pages:
        with contextlib.suppress(Exception):
            page.wait_for_function(
                "() => window.lsBench && window.lsBench.controls",
                timeout=max(deadline - time.monotonic(), 1.0) * 1000,
                polling=100,
            )


def _spent(start: float, before: dict) -> dict[str, float]:
    """Wall seconds since `start` and each part's CPU seconds since `before` (usage())."""
    return {"wall_s": round(time.monotonic() - start, 1), **cpu_seconds(before, usage())}


def _result(page: Any, timeout_s: float) -> dict[str, Any]:
    try:
        _wait_done(page, timeout_s)
    except Exception as err:  # a session that never finished is a result too
        return {"error": f"{type(err).__name__}: {str(err)[:200]}"}
    raw = page.evaluate(RESULT_JS)
    return {
        **{key: None if ms is None else round(ms / 1000, 2) for key, ms in raw["ms"].items()},
        "status": raw["status"],
        "shared": raw["shared"],
    }


def _sessions(
    url: str, count: int, distinct_seeds: bool, timeout_s: float, niced: bool
) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            warm = browser.new_page(viewport=VIEWPORT)
            warm.add_init_script(WATCH_JS)
            warm.goto(f"{url}?seed={WARM_UP_SEED}")
            _wait_done(warm, timeout_s)
            warm.close()
            time.sleep(5)
            memory = {"idle": server_rss_mb()}
            before, start = usage(), time.monotonic()
            pages = []
            for address in session_urls(url, count, distinct_seeds):
                page = browser.new_page(viewport=VIEWPORT)
                page.add_init_script(WATCH_JS)
                page.goto(address, wait_until="commit")
                pages.append(page)
            if niced:
                nice_browsers()
            deadline = time.monotonic() + timeout_s
            _wait_controls(pages, deadline)
            controls = _spent(start, before)
            results = [_result(page, max(deadline - time.monotonic(), 1.0)) for page in pages]
            cpu = _spent(start, before)
            memory["with_sessions"] = server_rss_mb()
            for page in pages:
                page.close()
            time.sleep(AFTER_CLOSE_S)
            memory["after_close"] = server_rss_mb()
        finally:
            browser.close()
    return {
        **summary(count, results, memory),
        "cpu_s_until_all_controls": controls,
        "cpu_s_until_all_done": cpu,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument(
        "--distinct-seeds",
        action="store_true",
        help="one seed per session (nothing shared) instead of the same default page",
    )
    parser.add_argument("--assets", type=Path, help="zoo to serve (default: the shipped one)")
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        help="serve once per value of LATENTSIM_APP_WORKERS, alternating within each N "
        "(default: the server's default, one worker process per core)",
    )
    parser.add_argument(
        "--nice-browsers",
        action="store_true",
        help="run the sessions' browsers at nice 19, so the server is served first "
        "(closer to a classroom, where each student's browser has its own machine)",
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per N")
    parser.add_argument("--output", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    if min(args.sessions) < 1:
        parser.error(f"--sessions: each N must be >= 1, got {args.sessions}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    check_chromium()
    started = time.time()
    load_before = [round(x, 2) for x in os.getloadavg()]
    runs = []
    for index, count in enumerate(args.sessions):
        settings = args.workers or [None]
        for workers in settings if index % 2 == 0 else settings[::-1]:
            log = Path(os.environ.get("TMPDIR", "/tmp")) / f"app-load-bench-{count}.log"
            env = {} if workers is None else {WORKERS_VARIABLE: str(workers)}
            with serve_app(args.assets, log=log, env=env) as url:
                runs.append(
                    _sessions(url, count, args.distinct_seeds, args.timeout, args.nice_browsers)
                )
            runs[-1]["workers"] = "default" if workers is None else workers
            print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
    report = {
        "command": "python -m tools.app_load_bench "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(started)),
        "wall_s": round(time.time() - started, 1),
        "requests": "one seed per session" if args.distinct_seeds else "identical (default page)",
        "browsers": "nice 19" if args.nice_browsers else "same priority as the server",
        "cpu_count": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "assets": str(args.assets or REPO / "assets"),
        "results": runs,
    }
    print_report(report, args.output)


if __name__ == "__main__":
    main()

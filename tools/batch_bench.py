"""Cross-session batching, measured: member-frames per second with and without it.

`python -m tools.batch_bench --sessions 1 4 8 16` starts the explorer's model compute as
a served app does (a local Dask cluster, `--workers` processes of one thread), then for
each N runs N sessions' default rollouts at once, each on its own seed (nothing shared
between them, the case batching is for), once with each session's blocks sent alone and
once batched (app/batching.py), alternating which goes first. No browser: this is the
compute side of the load, what the web process waits for.

Per N and mode it reports the wall time until every session is done and the
member-frames per second: members x frames over all series of all sessions (the default
page runs the 8-member diffusion emulator and the 1-member deterministic reference, 40
frames each), divided by that wall time; plus the batch sizes sent. Prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from app.cluster import ComputeSettings, DaskCompute
from app.models import current_zoo
from app.runner import Runner
from app.shared_runs import SharedRuns
from app.state import ExplorerState, RunRequest, ZooMenus
from app.store import RunStore
from app.work import batcher_of
from tools.app_bench import print_report


def default_request(zoo: Any, seed: int) -> RunRequest:
    """The page's default run (what every session starts) on `seed`."""
    state = ExplorerState(ZooMenus(zoo), seed=seed)
    return state.request()[0]


def member_frames(request: RunRequest) -> int:
    """Members x frames over the request's series; a deterministic emulator runs one."""
    return sum(
        (s.members if s.kind == "diffusion" else 1) * request.horizon for s in request.series
    )


def run_sessions(compute: DaskCompute, requests: list[RunRequest], zoo: Any) -> dict[str, Any]:
    """Run `requests` as concurrent sessions; wall time, throughput, batch sizes."""
    batcher = batcher_of(compute)
    sent_before = len(batcher.sizes)
    runners = [
        Runner(RunStore(), zoo=lambda: zoo, compute=compute, runs=SharedRuns(keep=0))
        for _ in requests
    ]

    async def together() -> None:
        await asyncio.gather(*(r.start(q) for r, q in zip(runners, requests, strict=True)))

    start = time.perf_counter()
    asyncio.run(together())
    wall = time.perf_counter() - start
    statuses = [runner.store.status for runner in runners]
    if not all(status.startswith("done") for status in statuses):
        raise RuntimeError(f"not every session finished: {statuses}")
    work = sum(member_frames(request) for request in requests)
    sizes = batcher.sizes[sent_before:]
    return {
        "wall_s": round(wall, 2),
        "member_frames": work,
        "member_frames_per_s": round(work / wall, 1),
        "batch_size_median": statistics.median(sizes) if sizes else None,
        "batch_size_max": max(sizes) if sizes else None,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--output", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    if min(args.sessions) < 1 or args.workers < 1:
        parser.error(f"--sessions and --workers must be >= 1: {args.sessions}, {args.workers}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    zoo = current_zoo()
    compute = DaskCompute.start(ComputeSettings(workers=args.workers))
    started = time.time()
    load_before = [round(x, 2) for x in os.getloadavg()]
    seeds = iter(range(1000, 2**31))
    try:
        warm = [default_request(zoo, next(seeds)) for _ in range(args.workers)]
        run_sessions(compute, warm, zoo)  # every worker loads the models once
        results = []
        for index, count in enumerate(args.sessions):
            modes = ("unbatched", "batched") if index % 2 == 0 else ("batched", "unbatched")
            row: dict[str, Any] = {"sessions": count, "order": list(modes)}
            for mode in modes:
                compute.batch = mode == "batched"
                requests = [default_request(zoo, next(seeds)) for _ in range(count)]
                row[mode] = run_sessions(compute, requests, zoo)
            row["batched_over_unbatched"] = round(
                row["batched"]["member_frames_per_s"] / row["unbatched"]["member_frames_per_s"], 2
            )
            results.append(row)
            print(row, file=sys.stderr, flush=True)
    finally:
        compute.close()
    report = {
        "command": "python -m tools.batch_bench "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(started)),
        "cpu_count": os.cpu_count(),
        "workers": args.workers,
        "load_average_before": load_before,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "results": results,
    }
    print_report(report, args.output)


if __name__ == "__main__":
    main()

"""A user's own data in the explorer, end to end, for docs/app.md's screenshot.

    .venv/bin/python -m tools.sources_demo --out /tmp/demo \
        --screenshot docs/img/app-sources.png --diagnostics docs/img/app-sources-diagnostics.png

1. `latentsim generate`'s code writes a small Well-format dataset (Rayleigh–Bénard, one
   test trajectory) — stands for a user's dataset;
2. a shipped emulator rolls out from its first frame, and the rollout is written as a
   NetCDF file that names its truth (`truth_file`, `truth_split`, `truth_trajectory`) —
   stands for a user's own rollout;
3. `latentsim view` serves both; headless chromium takes the screenshot.

`serve_view` is also what tests/app/test_browser_sources.py starts its server with.
"""

from __future__ import annotations

import argparse
import sys
from contextlib import AbstractContextManager
from pathlib import Path

from tools.app_bench import (
    VIEWPORT,
    free_port,
    launch_chromium,
    main_view_screenshot,
    serve_command,
)


def serve_view(
    paths: list[str], *, cwd: Path, log: Path, assets: Path | None = None
) -> AbstractContextManager[str]:
    """`latentsim view PATH...` in a subprocess; yields the URL once it answers."""
    port = free_port()
    command = [sys.executable, "-m", "engine.cli", "view", *paths, "--port", str(port)]
    return serve_command(command, port, cwd=cwd, assets=assets, log=log)


def make_data(out: Path, emulator: str, members: int, horizon: int) -> tuple[Path, Path]:
    """(dataset root, rollout file) under `out`."""
    from engine.data.generate import generate_dataset
    from engine.rollout import RolloutConfig, rollout
    from engine.sources import WellSource
    from engine.zoo import load_zoo

    root = generate_dataset("rayleigh_benard", out, 0, 0, 1, seed=11, progress=False)
    source = WellSource(root)
    truth = source.frames("test", 0)
    pipeline = load_zoo().pipeline(emulator, device="cpu")
    conditions = {
        k: v for k, v in source.parameters("test", 0).items() if k in pipeline.spec.parameter_names
    }
    config = RolloutConfig(members=members, horizon=horizon, seed=0)
    dataset = rollout(pipeline, truth.values[:1], conditions, config, context_start=0)
    dataset.attrs.update(truth_file="rayleigh_benard", truth_split="test", truth_trajectory=0)
    path = out / "my-rollout.nc"
    dataset.to_netcdf(path, engine="h5netcdf")
    return root, path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--screenshot", type=Path, required=True)
    parser.add_argument("--diagnostics", type=Path, help="also a screenshot of that tab")
    parser.add_argument("--emulator", default="rayleigh_benard-diffusion-ae64")
    parser.add_argument("--members", type=int, default=8)
    parser.add_argument("--horizon", type=int, default=40)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    root, rollout_path = make_data(args.out, args.emulator, args.members, args.horizon)
    from playwright.sync_api import sync_playwright

    with (
        serve_view([rollout_path.name, root.name], cwd=args.out, log=args.out / "view.log") as url,
        sync_playwright() as playwright,
    ):
        browser = launch_chromium(playwright)
        page = browser.new_context(viewport=VIEWPORT).new_page()
        page.goto(url)
        page.locator(".ls-source-status", has_text="done:").wait_for(timeout=120_000)
        page.locator(".ls-source-note").scroll_into_view_if_needed()
        main_view_screenshot(page, args.screenshot)
        if args.diagnostics is not None:
            page.locator(".bk-tab", has_text="Diagnostics").click()
            page.locator(".ls-metrics").wait_for(timeout=60_000)
            page.wait_for_timeout(3000)  # the charts' first draw
            page.locator(".ls-tabs").scroll_into_view_if_needed()
            main_view_screenshot(page, args.diagnostics)
        browser.close()
    print(f"{url}: screenshot {args.screenshot}")


if __name__ == "__main__":
    main()

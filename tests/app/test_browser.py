"""The served explorer in a real browser (Debian's headless chromium, playwright).

One `panel serve app` subprocess per module, on the tiny untrained zoo of app_zoo.py
(LATENTSIM_ASSETS), so runs take a second or two. Every wait is an explicit condition
with a timeout; streaming is checked from the recorded sequence of status, caption and
progress changes (tools.app_bench's recorder), not by sleeping.

The browser is this module's own (playwright's sync API), not pytest-playwright's
session-wide one: that one keeps an asyncio loop running for the rest of the session,
and the headless app tests after this module call asyncio.run().
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray
from browser_helpers import (
    FAST,
    TIMEOUT_MS,
    caption,
    click_tab,
    expect_done,
    figure_data,
    open_app,
    query_of,
    recorded,
    run,
    select,
    select_and_run,
    selected,
    status,
    wait_figure,
    wait_query,
)
from playwright.sync_api import Page, expect

from tools.app_bench import VIEWPORT, main_view_screenshot, serve_app
from tools.page_cost import LAYOUT_COUNTER_JS


@pytest.fixture(scope="module")
def app_url(zoo_root, tmp_path_factory):
    log = tmp_path_factory.mktemp("server") / "panel-serve.log"
    with serve_app(zoo_root, log=log) as url:
        yield url


@pytest.fixture
def context(browser):
    context = browser.new_context(viewport=VIEWPORT)
    yield context
    context.close()


@pytest.fixture
def page(context) -> Page:
    return context.new_page()


def frames_of(texts: list[str], pattern: str) -> list[int]:
    return [int(m.group(1)) for t in texts if (m := re.search(pattern, t))]


def test_the_first_rollout_appears_without_user_action(page: Page, app_url, tmp_path):
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    open_app(page, app_url)
    expect(caption(page)).to_have_text(re.compile(r"predicted so far: [1-9]"), timeout=TIMEOUT_MS)
    expect_done(page, "diffusion, latent ×8, ab 16 steps")
    expect(caption(page)).to_contain_text("lead 40 of 40")
    mean = figure_data(page, "Ensemble mean (8 members)")
    assert mean and len(mean[0]) == 32 * 16, "the ensemble mean image is not on the page"
    assert np.ptp(mean[0]) > 0
    assert figure_data(page, "Ground truth (solver), frame 40")
    # Offline-safe: the page needs nothing but the app's own server.
    outside = [
        url
        for url in requests
        if not url.startswith(app_url.rsplit("/", 1)[0]) and not url.startswith(("data:", "blob:"))
    ]
    assert outside == []
    shots = [tmp_path / "app.png"]
    if os.environ.get("LATENTSIM_SCREENSHOT"):
        shots.append(Path(os.environ["LATENTSIM_SCREENSHOT"]))
    main_view_screenshot(page, shots[0])
    for path in shots[1:]:
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shots[0], path)
    assert shots[0].stat().st_size > 20_000


def test_a_run_lays_out_the_page_again_only_for_its_text(page: Page, app_url):
    # Each layout of the whole page costs a browser 0.2-0.5 s on the 2-core machine: the
    # figures are sized before they join the page and keep their size while a run
    # streams (the tiny zoo's coarse grids resize the mosaic once, on the first run).
    page.add_init_script(LAYOUT_COUNTER_JS)
    open_app(page, app_url, {"seed": "3"})
    expect_done(page)
    page.locator(".ls-seed input").fill("4")  # a new computation, streamed block by block
    page.locator(".ls-seed input").press("Enter")
    wait_query(page, seed="4")
    page.evaluate("() => { window.lsLayouts.length = 0; }")
    assert run(page).startswith("done")
    assert "this run was computed already" not in " ".join(recorded(page, "ls-status"))
    origins = page.evaluate("() => window.lsLayouts.map(layout => layout[0])")
    assert origins, "the layout counter saw nothing: it is not measuring"
    assert {origin.split("#")[0] for origin in origins} == {"panel.models.markup.HTML"}


def test_changed_system_rate_and_sampler_run_stream_frames_and_scores(page: Page, app_url):
    open_app(page, app_url, FAST)
    expect_done(page, "diffusion, latent ×8, euler 2 steps")

    select(page, ".ls-system", "kolmogorov")
    wait_query(page, system="kolmogorov")
    expect(page.locator(".ls-rate option")).to_have_text(["latent ×6"])
    assert run(page) == "done: 6 frames of deterministic, latent ×6"
    expect(caption(page)).to_contain_text("vorticity")

    select(page, ".ls-system", "rayleigh_benard")
    select(page, ".ls-rate", "latent ×16")
    wait_query(page, system="rayleigh_benard", rate="16")
    # Run in the same turn as the sampler change, while it is still pending on the
    # server: the click must still start a job, with the new sampler.
    assert select_and_run(page, "ls-sampler", "ddim") == (
        "done: 6 frames of diffusion, latent ×16, ddim 2 steps"
    )
    # Streamed: frames came block by block (2 per emulator call), each shown on arrival.
    statuses = recorded(page, "ls-status")
    assert frames_of(statuses, r"ddim 2 steps: (\d+)/6 frames")[:3] == [2, 4, 6], statuses
    shown = frames_of(recorded(page, "ls-time-caption"), r"predicted so far: (\d+)")
    reset = len(shown) - shown[::-1].index(0)  # the old frames stay until the new run starts
    assert shown[reset:] == [2, 4, 6], shown
    progress = [int(v) for v in recorded(page, "ls-progress") if v]
    assert progress == sorted(progress) and len(set(progress)) >= 3 and progress[-1] == 1000
    assert "lead 6 of 6" in caption(page).inner_text()
    for view in ("truth", "recon", "mean", "mosaic", "std", "error"):  # the CSS hooks
        expect(page.locator(f".ls-image.ls-view-{view}")).to_be_visible()
    expect(page.locator(".ls-view-member")).to_be_hidden()  # mosaic mode

    click_tab(page, "Diagnostics")
    expect(page.locator(".ls-diagnostics-note div").first).to_contain_text(
        "buoyancy", timeout=TIMEOUT_MS
    )
    for hook in (
        "ls-metric-vrmse",
        "ls-metric-ssr",
        "ls-metric-crps",
        "ls-spectrum",
        "ls-rank-histogram",
    ):
        expect(page.locator(f".{hook}")).to_be_visible()
    for title in ("VRMSE of the ensemble mean", "CRPS", "Spread–skill ratio"):
        lines = wait_figure(page, title, 6)
        assert all(np.all(np.asarray(v) >= 0) for v in lines)
    vrmse = figure_data(page, "VRMSE of the ensemble mean")
    assert sum(len(v) == 6 for v in vrmse) == 2  # the rollout and the AE floor (the tiny
    # zoo has no deterministic emulator at ×16 to compare with)
    assert wait_figure(page, "Power spectrum", 8)


def test_cancel_stops_a_running_rollout(page: Page, app_url):
    open_app(page, app_url, {**FAST, "steps": "32", "members": "16", "horizon": "40"})
    expect(status(page)).to_have_text(re.compile(r"frames"), timeout=TIMEOUT_MS)
    expect(page.locator(".ls-cancel button")).to_be_enabled()
    page.locator(".ls-cancel button").click()
    expect(status(page)).to_have_text(
        re.compile(r"^cancelled after \d+ frames"), timeout=TIMEOUT_MS
    )
    kept = int(re.search(r"after (\d+)", status(page).inner_text()).group(1))
    assert 0 < kept < 40
    expect(page.locator(".ls-cancel button")).to_be_disabled()
    assert int(page.locator("progress.ls-progress").get_attribute("value")) < 1000
    assert f"predicted so far: {kept}" in caption(page).inner_text()


def test_rollout_and_truth_download_as_netcdf(page: Page, app_url, tmp_path):
    open_app(page, app_url, {**FAST, "seed": "3"})
    expect_done(page)
    click_tab(page, "Share")
    button = page.locator(".ls-download-rollout button")
    expect(button).to_be_enabled(timeout=TIMEOUT_MS)
    with page.expect_download() as download:
        button.click()
    assert download.value.suggested_filename == "rayleigh_benard-diffusion-ae8-seed3-rollout.nc"
    path = tmp_path / "rollout.nc"
    download.value.save_as(path)
    with xarray.open_dataset(path, engine="h5netcdf") as rollout:
        assert dict(rollout.sizes) == {"member": 3, "time": 6, "x": 32, "y": 16}
        assert set(rollout.data_vars) == {"buoyancy", "pressure", "velocity_x", "velocity_y"}
        attrs = rollout.attrs
        assert (attrs["seed"], attrs["sampler"], attrs["steps"], attrs["members"]) == (
            3,
            "euler",
            2,
            3,
        )
        assert attrs["complete"] == 1 and attrs["horizon"] == 6
        assert np.isfinite(rollout["buoyancy"].values).all()

    with page.expect_download() as download:
        page.locator(".ls-download-truth button").click()
    assert download.value.suggested_filename == "rayleigh_benard-seed3-truth.nc"
    download.value.save_as(tmp_path / "truth.nc")
    with xarray.open_dataset(tmp_path / "truth.nc", engine="h5netcdf") as truth:
        assert truth.sizes["time"] >= 7 and (truth.sizes["x"], truth.sizes["y"]) == (32, 16)
        assert truth.attrs["seed"] == 3


def test_a_url_reproduces_the_state_and_the_rollout(page: Page, app_url, context):
    open_app(page, app_url, FAST)
    expect_done(page)
    select(page, ".ls-rate", "latent ×16")
    page.locator(".ls-seed input").fill("5")
    page.locator(".ls-seed input").press("Enter")
    page.locator(".ls-field button", has_text="pressure").click()
    wait_query(page, rate="16", seed="5", field="pressure")
    assert run(page) == "done: 6 frames of diffusion, latent ×16, euler 2 steps"
    query = query_of(page.url)
    mean = figure_data(page, "Ensemble mean (3 members)")

    again = context.new_page()
    open_app(again, page.url)
    expect_done(again, "diffusion, latent ×16, euler 2 steps")
    assert query_of(again.url) == query
    expect(again.locator(".ls-alert")).to_be_hidden()  # the URL was read without complaint
    assert selected(again, ".ls-rate") == "latent ×16"
    assert again.locator(".ls-seed input").input_value() == "5"
    expect(again.locator(".ls-field button.bk-active")).to_have_text("pressure")
    expect(caption(again)).to_contain_text("pressure")
    assert figure_data(again, "Ensemble mean (3 members)") == mean  # same seed, same rollout


def test_a_bad_url_parameter_is_reported_and_the_app_still_works(page: Page, app_url):
    open_app(page, app_url, {**FAST, "members": "999", "system": "nope"})
    alert = page.locator(".ls-alert div").first
    expect(alert).to_be_visible(timeout=TIMEOUT_MS)
    expect(alert).to_contain_text("URL: ignored system='nope'")
    expect(alert).to_contain_text("members")
    expect_done(page, "diffusion, latent ×8, euler 2 steps")
    query = query_of(page.url)
    assert (query["system"], query["members"]) == ("rayleigh_benard", "8")
    assert run(page).startswith("done: 6 frames")  # and it runs again on request

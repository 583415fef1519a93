"""`latentsim view` in a real browser: a rollout NetCDF and a Well dataset of a user's
own (The Well's dummy writer, xarray), their fields and diagnostics.

The server is the real command (`python -m engine.cli view PATH...`) on the tiny zoo;
the browser is Debian's chromium (tests/app/conftest.py).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from browser_helpers import TIMEOUT_MS, click_tab, figure_data, wait_figure
from playwright.sync_api import Page, expect

from tests.sources.files import rollout_of_dummy, the_wells_dummy
from tools.app_bench import VIEWPORT, main_view_screenshot
from tools.sources_demo import serve_view


@pytest.fixture(scope="module")
def view_url(zoo_root, tmp_path_factory):
    data = tmp_path_factory.mktemp("mydata")
    well = the_wells_dummy(data / "dummy.hdf5")
    rollout_of_dummy(data / "my-rollout.nc", well)
    log = tmp_path_factory.mktemp("server") / "view.log"
    with serve_view(["my-rollout.nc", "dummy.hdf5"], cwd=data, log=log, assets=zoo_root) as url:
        assert f"latentsim view: {url}" in log.read_text()  # the command prints the URL
        yield url


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport=VIEWPORT)
    yield context.new_page()
    context.close()


def source_status(page: Page):
    return page.locator(".ls-source-status div").first


def test_a_rollout_file_shows_fields_and_diagnostics(page: Page, view_url, tmp_path):
    page.goto(view_url)
    expect(source_status(page)).to_have_text(
        re.compile(r"^done: 8 frames of my-rollout\.nc"), timeout=TIMEOUT_MS
    )
    expect(page.locator(".ls-source-note")).to_contain_text("4 members, 8 leads")
    mean = wait_figure(page, "Ensemble mean (4 members)", 32 * 32)
    assert mean[0]
    assert figure_data(page, "Ground truth (file), frame")
    assert figure_data(page, "Error of the mean")
    assert "source=" in page.url and "my-rollout.nc" in page.url
    shots = [tmp_path / "sources.png"]
    if os.environ.get("LATENTSIM_SCREENSHOT_SOURCES"):
        shots.append(Path(os.environ["LATENTSIM_SCREENSHOT_SOURCES"]))
    main_view_screenshot(page, shots[0])
    for path in shots[1:]:
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shots[0], path)
    click_tab(page, "Diagnostics")
    vrmse = wait_figure(page, "VRMSE of the ensemble mean", 8)
    assert any(len(v) == 8 for v in vrmse)
    assert figure_data(page, "Rank histogram, ")
    click_tab(page, "Latents")
    expect(page.locator(".ls-latents")).to_contain_text("No latents")


def test_a_well_dataset_is_chosen_and_opened(page: Page, view_url):
    page.goto(view_url)
    expect(source_status(page)).to_have_text(re.compile(r"^done"), timeout=TIMEOUT_MS)
    page.locator(".ls-source select").select_option(label="mydata0/dummy.hdf5")
    expect(page.locator(".ls-source-note")).to_contain_text("Well dataset", timeout=TIMEOUT_MS)
    expect(page.locator(".ls-source-note")).to_contain_text("a = 0.25")
    page.locator(".ls-source-open button").click()
    expect(source_status(page)).to_have_text(
        re.compile(r"^done: truth of mydata0/dummy\.hdf5"), timeout=TIMEOUT_MS
    )
    assert wait_figure(page, "Ground truth (file), frame 0", 32 * 32)
    click_tab(page, "Diagnostics")
    expect(page.locator(".ls-metrics")).to_contain_text("No prediction")


def test_a_url_path_outside_the_offered_sources_is_refused(page: Page, view_url):
    page.goto(view_url + "?source=/etc/passwd")
    expect(page.locator(".ls-alert")).to_contain_text("URL: ignored source='/etc/passwd'")
    expect(source_status(page)).to_have_text(
        re.compile(r"^done: 8 frames of my-rollout\.nc"), timeout=TIMEOUT_MS
    )

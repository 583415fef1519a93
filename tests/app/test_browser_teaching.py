"""The teaching kit in a real browser (Debian's chromium): a lesson button and the movie
download, on the shipped zoo (the lessons name its models), served by `panel serve app`.

The cost lesson is the one clicked: it is short (8 leads, no reference run), so the test
takes seconds; every lesson's state is run headless in test_lessons.py.
"""

from __future__ import annotations

import re

import imageio.v3 as iio
import pytest
from browser_helpers import TIMEOUT_MS, click_tab, expect_done, open_app, query_of, status
from playwright.sync_api import Page, expect

from engine.paths import REPO_ROOT
from tools.app_bench import VIEWPORT, serve_app

QUICK = {"horizon": "2", "members": "2", "steps": "2", "reference": "false"}


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    log = tmp_path_factory.mktemp("server") / "panel-serve.log"
    with serve_app(REPO_ROOT / "assets", log=log) as url:
        yield url


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    yield context.new_page()
    context.close()


def test_a_lesson_button_sets_the_url_runs_and_a_movie_downloads(page: Page, app_url, tmp_path):
    open_app(page, app_url, QUICK)
    expect_done(page)
    click_tab(page, "Lessons")
    expect(page.locator(".ls-lesson")).to_have_count(7, timeout=TIMEOUT_MS)
    expect(page.locator(".ls-lesson-scaling-plot")).to_be_visible()
    page.locator(".ls-lesson-cost button").click()
    expect(status(page)).to_have_text(
        re.compile(r"^done: 8 frames of diffusion, latent ×1024, ab 16 steps"),
        timeout=TIMEOUT_MS * 2,
    )
    query = query_of(page.url)
    assert (query["rate"], query["members"], query["horizon"], query["seed"]) == (
        "1024",
        "16",
        "8",
        "3",
    )
    expect(page.locator(".ls-speed div").first).to_contain_text("solver")
    expect(page.locator(".ls-alert")).to_be_hidden()  # the lesson's state was accepted

    click_tab(page, "Share")
    button = page.locator(".ls-download-movie button")
    expect(button).to_be_enabled(timeout=TIMEOUT_MS)
    with page.expect_download(timeout=TIMEOUT_MS * 2) as download:
        button.click()
    assert download.value.suggested_filename == (
        "rayleigh_benard-diffusion-ae1024-seed3-buoyancy.mp4"
    )
    path = tmp_path / "movie.mp4"
    download.value.save_as(path)
    frames = iio.imread(path, index=None, plugin="FFMPEG")
    assert frames.shape[0] == 8 and frames.shape[2] == 1280
    assert frames[-1].std() > 10

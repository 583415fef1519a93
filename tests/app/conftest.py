"""Fixtures for the app tests: the tiny zoo, loaded once per test session."""

from __future__ import annotations

import os

import pytest
from app_zoo import build_zoo
from playwright.sync_api import sync_playwright

from app.cluster import ComputeSettings, start_model_compute, stop_model_compute
from app.state import ExplorerState, ZooMenus
from engine.zoo import Zoo, load_zoo
from tools.app_bench import CHROMIUM, launch_chromium


@pytest.fixture(scope="session")
def zoo_root(tmp_path_factory):
    return build_zoo(tmp_path_factory.mktemp("assets"))


@pytest.fixture(scope="session")
def tiny_zoo(zoo_root) -> Zoo:
    return load_zoo(zoo_root)


@pytest.fixture
def request_for(tiny_zoo):
    """RunRequests of the explorer on the tiny zoo, small enough to run in a test: 3
    members, 2 euler steps, 6 frames (3 blocks of 2), plus any `changes`."""

    def make(**changes):
        state = ExplorerState(ZooMenus(tiny_zoo))
        settings = {"members": 3, "steps": 2, "sampler": "euler", "horizon": 6}
        state.param.update(**{**settings, **changes})
        return state.request()[0]

    return make


@pytest.fixture(scope="module")
def browser():
    """Debian's headless chromium through playwright's sync API, one per test module."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"the browser tests need Debian's chromium at {CHROMIUM} (`make test` "
            "installs it: apt-get install chromium; or set LATENTSIM_CHROMIUM)"
        )
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session", autouse=True)
def in_process_model_compute():
    """Headless tests run models on the local compute thread (LATENTSIM_APP_WORKERS=0);
    servers started as subprocesses keep the default, Dask workers (tests/app/test_cluster.py
    covers those)."""
    yield start_model_compute(ComputeSettings(workers=0))
    stop_model_compute()

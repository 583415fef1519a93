"""Fixtures for the app tests: the tiny zoo, loaded once per test session."""

from __future__ import annotations

import os

import pytest
from app_zoo import build_zoo
from playwright.sync_api import sync_playwright

from app.cluster import ComputeSettings, start_model_compute, stop_model_compute
from engine.zoo import Zoo, load_zoo
from tools.app_bench import CHROMIUM, launch_chromium


@pytest.fixture(scope="session")
def zoo_root(tmp_path_factory):
    return build_zoo(tmp_path_factory.mktemp("assets"))


@pytest.fixture(scope="session")
def tiny_zoo(zoo_root) -> Zoo:
    return load_zoo(zoo_root)


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

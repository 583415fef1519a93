"""Fixtures for the app tests: the tiny zoo, loaded once per test session."""

from __future__ import annotations

import pytest
from app_zoo import build_zoo

from engine.zoo import Zoo, load_zoo


@pytest.fixture(scope="session")
def zoo_root(tmp_path_factory):
    return build_zoo(tmp_path_factory.mktemp("assets"))


@pytest.fixture(scope="session")
def tiny_zoo(zoo_root) -> Zoo:
    return load_zoo(zoo_root)

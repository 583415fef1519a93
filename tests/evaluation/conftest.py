"""Fixtures for the evaluation tests: one tiny dataset and zoo per session, read-only."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from evaluation_zoo import make_dataset, make_zoo, plan

from engine.evaluation import selection


@pytest.fixture(scope="session")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    return make_dataset(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="session")
def zoo_root(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The whole tiny plan, published (tests must not modify it)."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("zoo")
    return make_zoo(root / "assets", root / "runs", data_root)


@pytest.fixture
def tiny_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the tiny zoo's plan the one the CLI expects (default: the shipped zoo's)."""
    monkeypatch.setattr(selection, "zoo_plan", plan)

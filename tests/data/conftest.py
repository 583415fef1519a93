"""Shared fixtures: a toy system and one small generated dataset reused read-only."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.data.generate import generate_dataset

from .toy_system import ToyAdvection

# Generated once per session; tests must not modify it (copy it or generate their own).
TOY_COUNTS = {"n_train": 6, "n_valid": 3, "n_test": 3}
TOY_SEED = 7
TOY_BATCH = 2


@pytest.fixture(scope="session")
def toy() -> ToyAdvection:
    return ToyAdvection()


@pytest.fixture(scope="session")
def toy_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("toy_root")
    return generate_dataset(
        ToyAdvection(), root, **TOY_COUNTS, seed=TOY_SEED, batch_size=TOY_BATCH, progress=False
    )

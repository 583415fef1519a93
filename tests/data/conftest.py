"""Shared fixtures: a toy system and one small generated dataset reused read-only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from engine.data.generate import generate_dataset

from .toy_system import ToyAdvection

# Generated once per session; tests must not modify it (copy it or generate their own).
TOY_COUNTS = {"n_train": 6, "n_valid": 3, "n_test": 3}
TOY_SEED = 7
TOY_BATCH = 2


@pytest.fixture(scope="session", autouse=True)
def _single_thread_torch() -> Iterator[None]:
    """On 16x16 grids intra-op threads only contend for the shared cores (10x slower)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def toy() -> ToyAdvection:
    return ToyAdvection()


@pytest.fixture(scope="session")
def toy_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("toy_root")
    return generate_dataset(
        ToyAdvection(), root, **TOY_COUNTS, seed=TOY_SEED, batch_size=TOY_BATCH, progress=False
    )

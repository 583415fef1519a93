"""Suite-wide settings.

Tests use one intra-op torch thread: their tensors are small, bitwise comparisons
(resume, batch independence) need a fixed reduction order, and on a 2-core machine a
second OpenMP thread mostly busy-waits on other work (measured 10-100x slowdowns under
load). OMP_WAIT_POLICY must be set before torch initialises OpenMP, i.e. here.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def isolated_emulator_registry():
    """Emulators a test registers are gone after it (the registry is process-wide)."""
    from engine.sources import emulators

    saved = dict(emulators._REGISTRY)
    yield
    emulators._REGISTRY.clear()
    emulators._REGISTRY.update(saved)

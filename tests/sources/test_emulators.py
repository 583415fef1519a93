"""Your own emulator: the protocol's checks, the registry, entry points, the docs example."""

from __future__ import annotations

import importlib.metadata
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.errors import ParameterError
from engine.sources import emulators as registry
from engine.sources import load_entry_points, register_emulator, run_emulator
from engine.sources.emulators import EmulatorEntry, EmulatorError, import_emulator_modules
from tests.sources.files import the_wells_dummy

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "tiny_emulator.py"
CONTEXT = np.random.default_rng(0).random((2, 3, 8, 6), dtype=np.float32)  # (c, C, X, Y)


pytestmark = pytest.mark.usefixtures("isolated_emulator_registry")


def persistence(context: torch.Tensor, conditions: dict, members: int) -> torch.Tensor:
    return context[:, -1:].repeat(1, 3, 1, 1, 1)  # three frames per call


def test_blocks_until_the_horizon_and_the_window_slides() -> None:
    calls = []

    def shifted(context, conditions, members):
        calls.append(context.clone())
        return context[:, -1:] + 1.0

    entry = register_emulator("shift", shifted, target="toy", context=2)
    blocks = list(run_emulator(entry, CONTEXT, {}, horizon=3))
    assert [b.shape for b in blocks] == [(1, 1, 3, 8, 6)] * 3
    np.testing.assert_allclose(blocks[-1][0, 0], CONTEXT[-1] + 3)
    assert calls[1].shape == (1, 2, 3, 8, 6)  # the last two frames so far
    np.testing.assert_allclose(calls[1][0, 0].numpy(), CONTEXT[-1])


def test_a_block_is_cut_at_the_horizon_and_members_only_for_ensembles() -> None:
    entry = register_emulator("persist", persistence, target="*")
    blocks = list(run_emulator(entry, CONTEXT, {}, horizon=4, members=5))
    assert [b.shape[:2] for b in blocks] == [(1, 3), (1, 1)]  # deterministic: one member
    ensemble = register_emulator("persist-ens", persistence, target="*", ensemble=True)
    assert next(run_emulator(ensemble, CONTEXT, {}, horizon=4, members=5)).shape[0] == 5


def test_wrong_shape_nan_and_exceptions_name_the_emulator() -> None:
    cases = {
        "flat": (lambda c, k, m: c[0, -1], r"returned shape \(3, 8, 6\); expected \(1, n >= 1"),
        "grid": (lambda c, k, m: c[..., :4], r"returned shape \(1, 1, 3, 8, 4\)"),
        "nan": (lambda c, k, m: c * np.nan, "returned NaN or inf"),
        "list": (lambda c, k, m: [1, 2], "returned list, not a tensor"),
        "boom": (lambda c, k, m: 1 / 0, "raised ZeroDivisionError"),
    }
    for name, (function, message) in cases.items():
        entry = register_emulator(name, function, target="*")
        with pytest.raises(EmulatorError, match=f"emulator '{name}': {message}"):
            next(run_emulator(entry, CONTEXT, {}, horizon=2))
    with pytest.raises(ParameterError, match="emulator"):
        register_emulator("not-callable", 3, target="*")


def test_entry_points_register_and_broken_ones_are_reported(monkeypatch) -> None:
    good = EmulatorEntry("from-package", persistence, target="toy")

    class Point:
        def __init__(self, name, value, loaded):
            self.name, self.value, self._loaded = name, value, loaded

        def load(self):
            if isinstance(self._loaded, Exception):
                raise self._loaded
            return self._loaded

    points = [
        Point("good", "pkg:entry", good),
        Point("factory", "pkg:make", lambda: [EmulatorEntry("made", persistence, target="*")]),
        Point("broken", "missing_pkg:thing", ModuleNotFoundError("No module named 'missing_pkg'")),
        Point("wrong", "pkg:value", lambda: [42]),
    ]
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: points)
    problems = load_entry_points()
    assert {"from-package", "made"} <= set(registry.registered_emulators())
    assert set(problems) == {"broken", "wrong"}
    assert "missing_pkg:thing (latentsim.emulators): ModuleNotFoundError" in problems["broken"]
    assert "not an EmulatorEntry" in problems["wrong"]
    assert [e.name for e in registry.emulators_for("toy")] == ["from-package", "made"]


def test_the_docs_example_registers_and_runs(tmp_path: Path) -> None:
    assert import_emulator_modules([str(EXAMPLE)]) == {}
    entry = registry.registered_emulators()["tiny-stencil"]
    blocks = list(run_emulator(entry, CONTEXT, {}, horizon=5, members=3))
    assert [b.shape[:2] for b in blocks] == [(3, 2), (3, 2), (3, 1)]
    assert np.ptp(blocks[0][:, 0], axis=0).max() > 0  # members differ
    missing = str(tmp_path / "missing.py")
    assert "FileNotFoundError" in import_emulator_modules([missing])[missing]
    dataset = the_wells_dummy(tmp_path / "dummy.hdf5")
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), str(dataset)], capture_output=True, text=True, check=True
    )
    assert "tiny-stencil on" in done.stdout and "field_x:" in done.stdout
    runpy.run_path(str(EXAMPLE))  # importable twice (re-registers under the same name)

"""Condition labels: log10 for every log-scaled parameter, training range -> [-1, 1],
one-hot choices, and a card round trip."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from engine.emulator import LabelSpec, condition_label, condition_labels, label_dim
from engine.errors import DataFormatError, ParameterError
from engine.systems import SYSTEM_NAMES, get_system
from engine.systems.base import ChoiceSpec, GridSpec, ParameterSpec, SystemSpec


def _spec(parameters=(), choices=()) -> SystemSpec:
    return SystemSpec(
        name="toy",
        title="toy",
        fields=(),
        parameters=tuple(parameters),
        grid=GridSpec((16, 16), (1.0, 1.0)),
        frame_dt=1.0,
        n_frames=2,
        choices=tuple(choices),
    )


def _reference(value: float, lo: float, hi: float, log: bool) -> float:
    """The label written out with numpy, independently of ParameterSpec.label."""
    f = np.log10 if log else (lambda v: v)
    return float(2 * (f(value) - f(lo)) / (f(hi) - f(lo)) - 1)


@pytest.mark.parametrize("system", SYSTEM_NAMES)
def test_every_log_scaled_parameter_of_every_system_is_log10_transformed(system):
    """The official code (PolymathicAI/lola) skipped T0; here every parameter is checked.

    For a log-scaled parameter the geometric mean of the training range maps to 0 and the
    arithmetic mean does not; for a linear one it is the other way round.
    """
    spec = get_system(system).spec
    for index, p in enumerate(spec.parameters):
        lo, hi = p.train_range
        for value in (lo, hi, math.sqrt(lo * hi), (lo + hi) / 2, p.valid_range[1]):
            label = condition_label(spec, {p.name: value})
            assert label[index].item() == pytest.approx(
                _reference(value, lo, hi, p.log_scale), abs=1e-6
            ), (p.name, value)
        middle = math.sqrt(lo * hi) if p.log_scale else (lo + hi) / 2
        other = (lo + hi) / 2 if p.log_scale else math.sqrt(lo * hi)
        assert condition_label(spec, {p.name: middle})[index].item() == pytest.approx(0, abs=1e-6)
        assert abs(condition_label(spec, {p.name: other})[index].item()) > 0.05


def test_known_log_scaled_parameters_are_flagged():
    """Numbers that span decades must be log-scaled, whatever their names' case."""
    flagged = {
        p.name: p.log_scale for name in SYSTEM_NAMES for p in get_system(name).spec.parameters
    }
    assert flagged["Reynolds"] and flagged["Rayleigh"] and flagged["Prandtl"]
    assert not flagged["gamma"]


def test_mixed_case_log_parameter_is_transformed():
    """A parameter named like TGC's 'T0' gets log10 because of its flag, not its name."""
    t0 = ParameterSpec("T0", "temperature", (1e2, 1e4), (1e1, 1e5), 1e3, log_scale=True)
    label = condition_label(_spec([t0]), {"T0": 1e3})
    assert label.tolist() == pytest.approx([0.0], abs=1e-7)  # log10: 3 is halfway 2..4
    assert condition_label(_spec([t0]), {"T0": 1e5}).tolist() == pytest.approx([2.0])


def test_layout_range_mapping_and_one_hot():
    gamma = ParameterSpec("gamma", "ratio", (1.1, 1.8), (1.01, 3.0), 1.4)
    ra = ParameterSpec("Ra", "Rayleigh", (1e5, 1e7), (1e3, 1e9), 1e6, log_scale=True)
    boundary = ChoiceSpec("boundary", "bc", ("periodic", "open", "wall"), "periodic")
    spec = _spec([gamma, ra], [boundary])
    assert label_dim(spec) == 5
    assert LabelSpec.from_system(spec).names == (
        "gamma",
        "Ra",
        "boundary=periodic",
        "boundary=open",
        "boundary=wall",
    )
    label = condition_label(spec, {"gamma": 1.8, "Ra": 1e3, "boundary": "open"})
    assert label.dtype == torch.float32
    # Out of the training range (valid though): outside [-1, 1], as it should be.
    assert label.tolist() == pytest.approx([1.0, -3.0, 0.0, 1.0, 0.0], abs=1e-6)
    defaults = condition_label(spec, {})
    assert defaults.tolist() == pytest.approx([-1 + 2 * 0.3 / 0.7, 0.0, 1.0, 0.0, 0.0])
    batch = condition_labels(spec, [{"gamma": 1.1}, {"boundary": "wall"}])
    assert batch.shape == (2, 5)
    assert batch[0, 0].item() == pytest.approx(-1.0) and batch[1, 4].item() == 1.0


def test_bad_conditions_are_refused():
    gamma = ParameterSpec("gamma", "ratio", (1.1, 1.8), (1.01, 3.0), 1.4)
    boundary = ChoiceSpec("boundary", "bc", ("periodic", "open"), "periodic")
    spec = _spec([gamma], [boundary])
    with pytest.raises(ParameterError, match="gamma"):
        condition_label(spec, {"gamma": 5.0})  # outside the valid range
    with pytest.raises(ParameterError, match="boundary"):
        condition_label(spec, {"boundary": "wall"})
    with pytest.raises(ParameterError, match="mach"):
        condition_label(spec, {"mach": 1.0})
    flat = ParameterSpec("k", "k", (2.0, 2.0), (1.0, 3.0), 2.0)
    with pytest.raises(ParameterError, match="train_range"):
        label_dim(_spec([flat]))


def test_label_spec_round_trip_and_mismatch():
    spec = get_system("rayleigh_benard").spec
    labels = LabelSpec.from_system(spec)
    restored = LabelSpec.from_dict(json.loads(json.dumps(labels.to_dict())))
    assert restored == labels
    conditions = {"Rayleigh": 2e6, "Prandtl": 0.7}
    torch.testing.assert_close(restored.encode(conditions), condition_label(spec, conditions))
    other = LabelSpec.from_system(get_system("kolmogorov").spec)
    with pytest.raises(DataFormatError, match="Rayleigh"):
        labels.check_matches(other, "card")
    with pytest.raises(ParameterError, match="dim"):
        LabelSpec.from_dict({**labels.to_dict(), "dim": 7})

"""VMSE against a hand computation."""

from __future__ import annotations

import pytest
import torch

from engine.errors import ParameterError
from engine.losses import vmse


def test_vmse_by_hand():
    # Sample 0, channel 0: target [[0, 2], [0, 2]] has mean 1 and variance 1; predicting
    # 1 everywhere gives MSE 1, so 1 / (1 + 0.01).
    # Sample 0, channel 1: a constant target (variance 0) missed by 0.1 everywhere:
    # MSE 0.01, so 0.01 / (0 + 0.01) = 1.
    # Sample 1: the target times 10 and the same error times 10, so variance and MSE
    # both grow 100x: 100 / (100 + 0.01) and 1 / (0 + 0.01) = 100.
    target = torch.tensor([[[[0.0, 2.0], [0.0, 2.0]], [[3.0, 3.0], [3.0, 3.0]]]])
    prediction = torch.tensor([[[[1.0, 1.0], [1.0, 1.0]], [[3.1, 3.1], [3.1, 3.1]]]])
    target = torch.cat([target, 10 * target]).double()
    prediction = torch.cat([prediction, 10 * prediction]).double()
    expected = (1 / 1.01 + 1.0 + 100 / 100.01 + 1.0 / 0.01) / 4
    torch.testing.assert_close(vmse(prediction, target), torch.tensor(expected).double())


def test_vmse_eps_and_perfect_prediction():
    target = torch.randn(3, 2, 8, 8)
    assert vmse(target, target) == 0
    prediction = target + 1.0
    variance = target.var(dim=(-2, -1), correction=0)
    torch.testing.assert_close(vmse(prediction, target, eps=0.5), (1 / (variance + 0.5)).mean())


def test_vmse_refuses_mismatched_shapes():
    with pytest.raises(ParameterError, match="prediction shape"):
        vmse(torch.zeros(1, 2, 4, 4), torch.zeros(1, 3, 4, 4))

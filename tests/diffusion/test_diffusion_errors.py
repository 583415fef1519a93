"""Bad input raises the project's errors, naming the value and the valid range."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from engine.diffusion import (
    SAMPLER_NAMES,
    Denoiser,
    LogLogitSchedule,
    get_sampler,
    leading_context_mask,
    sample_context_lengths,
)
from engine.errors import ParameterError, UnknownNameError


def test_unknown_sampler_lists_the_valid_names():
    with pytest.raises(UnknownNameError) as info:
        get_sampler("dpm++")
    message = str(info.value)
    assert "'dpm++'" in message
    for name in SAMPLER_NAMES:
        assert name in message


@pytest.mark.parametrize(
    ("name", "options", "field", "valid"),
    [
        ("ab", {"steps": 0}, "steps", "integer >= 1"),
        ("euler", {"steps": -3}, "steps", "integer >= 1"),
        ("heun", {"steps": 2.5}, "steps", "integer >= 1"),
        ("ddpm", {"steps": True}, "steps", "integer >= 1"),
        ("ddim", {"eta": -0.1}, "eta", "[0, 1]"),
        ("ddim", {"eta": 1.5}, "eta", "[0, 1]"),
        ("ab", {"order": 0}, "order", "1..3"),
        ("lms", {"order": 4}, "order", "1..3"),
        ("dpmpp", {"order": 5}, "order", "1..3"),
        ("pc", {"corrections": -1}, "corrections", "integer >= 0"),
        ("pc", {"delta": 0.0}, "delta", "(0, 1]"),
        ("pc", {"delta": 1.5}, "delta", "(0, 1]"),
    ],
)
def test_out_of_range_sampler_options(name, options, field, valid):
    with pytest.raises(ParameterError) as info:
        get_sampler(name, **options)
    message = str(info.value)
    assert message.startswith(f"{field}={next(iter(options.values()))!r}")
    assert valid in message


def test_option_a_sampler_does_not_have():
    with pytest.raises(ParameterError, match=r"'eta'.*steps, schedule"):
        get_sampler("euler", eta=0.5)


def test_nfe_rejects_bad_steps():
    with pytest.raises(ParameterError, match="steps=0"):
        get_sampler("ab").nfe(0)


def test_schedule_rejects_inverted_or_non_positive_range():
    for bad in [(1.0, 1.0), (10.0, 1.0), (0.0, 1.0), (1e-3, float("inf"))]:
        with pytest.raises(ParameterError, match="sigma_min < sigma_max"):
            LogLogitSchedule(*bad)
    with pytest.raises(ParameterError, match="steps=0"):
        LogLogitSchedule().sampling_sigmas(0)
    with pytest.raises(ParameterError, match="n=-1"):
        LogLogitSchedule().sample_training_sigmas(-1)


class Zero(nn.Module):
    def forward(self, x_in, log_sigma, condition, context_mask):
        return torch.zeros_like(x_in)


def test_denoiser_rejects_inconsistent_context_and_sigma():
    denoiser = Denoiser(Zero())
    x_t = torch.zeros(2, 3)
    mask = torch.tensor([[True, False, False]] * 2)
    with pytest.raises(ParameterError, match="context=None"):
        denoiser(x_t, 1.0, context_mask=mask)
    with pytest.raises(ParameterError, match="context_mask=None"):
        denoiser(x_t, 1.0, context=x_t)
    with pytest.raises(ParameterError, match=r"context_mask\.dtype=torch\.float32"):
        denoiser(x_t, 1.0, context=x_t, context_mask=mask.float())
    with pytest.raises(ParameterError, match=r"sigma\.shape=\(3,\).*\(2,\)"):
        denoiser(x_t, torch.ones(3))


def test_context_helpers_reject_bad_sizes():
    with pytest.raises(ParameterError, match="max_context=0"):
        sample_context_lengths(4, max_context=0)
    with pytest.raises(ParameterError, match=r"lengths=\(0, 6\).*\[0, 5\]"):
        leading_context_mask(torch.tensor([0, 6]), 5)
    with pytest.raises(ParameterError, match="frames=0"):
        leading_context_mask(torch.tensor([0]), 0)

"""TrainConfig: validation, JSON round trip, resume compatibility, and the LR schedule."""

from __future__ import annotations

import json
import math
import warnings

import pytest
import torch

from engine.errors import ParameterError
from engine.training import TrainConfig


def test_json_round_trip_preserves_every_field() -> None:
    config = TrainConfig(steps=100, batch_size=16, betas=(0.8, 0.95), grad_clip=None, seed=3)
    restored = TrainConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert restored == config
    assert restored.betas == (0.8, 0.95)


@pytest.mark.parametrize(
    ("overrides", "name"),
    [
        ({"steps": 0}, "steps"),
        ({"optimizer": "sgd"}, "optimizer"),
        ({"batch_size": 0}, "batch_size"),
        ({"lr": -1e-3}, "lr"),
        ({"lr": math.nan}, "lr"),
        ({"betas": (1.0, 0.9)}, "betas"),
        ({"weight_decay": -0.1}, "weight_decay"),
        ({"warmup_steps": 11}, "warmup_steps"),
        ({"grad_clip": 0.0}, "grad_clip"),
        ({"checkpoint_every": -1}, "checkpoint_every"),
        ({"keep_checkpoints": 0}, "keep_checkpoints"),
        ({"log_every": 0}, "log_every"),
        ({"seed": -1}, "seed"),
        ({"device": "tpu"}, "device"),
        ({"steps": 2.5}, "steps"),
    ],
)
def test_invalid_values_name_the_field_and_the_valid_range(overrides: dict, name: str) -> None:
    settings = {"steps": 10, **overrides}
    with pytest.raises(ParameterError) as info:
        TrainConfig(**settings)
    assert info.value.name == name
    assert "valid" in str(info.value)


def test_from_dict_rejects_unknown_keys() -> None:
    with pytest.raises(ParameterError, match="'num_workers'"):
        TrainConfig.from_dict({"steps": 10, "num_workers": 4})


def test_trajectory_mismatches_name_field_and_both_values() -> None:
    saved = TrainConfig(steps=10, batch_size=8, log_every=5)
    assert TrainConfig(steps=10, batch_size=8, log_every=1).trajectory_mismatches(saved) == []
    problems = TrainConfig(steps=10, batch_size=16, lr=1e-3).trajectory_mismatches(saved)
    assert problems == ["batch_size (checkpoint 8, now 16)", "lr (checkpoint 0.0001, now 0.001)"]


def test_schedule_hits_closed_form_values() -> None:
    # lr = 1, 4 warmup updates, 8 cosine updates: 0.5 (1 + cos(pi k / 8)) after warmup.
    config = TrainConfig(steps=12, lr=1.0, warmup_steps=4)
    expected = {
        0: 0.25,
        1: 0.5,
        2: 0.75,
        3: 1.0,
        4: 1.0,
        6: 0.5 * (1 + math.sqrt(0.5)),
        8: 0.5,
        10: 0.5 * (1 - math.sqrt(0.5)),
        12: 0.0,
    }
    for step, value in expected.items():
        assert config.lr_at(step) == pytest.approx(value, abs=1e-15), step


@pytest.mark.parametrize("warmup", [0, 1, 5])
def test_schedule_matches_torch_linear_then_cosine_schedulers(warmup: int) -> None:
    """torch's own LinearLR + CosineAnnealingLR is an independent implementation."""
    steps, base = 30, 3e-4
    config = TrainConfig(steps=steps, lr=base, warmup_steps=warmup)
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=base)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps - warmup)
    if warmup:
        linear = torch.optim.lr_scheduler.LinearLR(
            optimizer, start_factor=1 / warmup, end_factor=1.0, total_iters=warmup - 1
        )
        scheduler = torch.optim.lr_scheduler.SequentialLR(
            optimizer, [linear, cosine], milestones=[warmup]
        )
    else:
        scheduler = cosine
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "optimizer.step() before lr_scheduler.step()"
        for step in range(steps):
            assert config.lr_at(step) == pytest.approx(optimizer.param_groups[0]["lr"], rel=1e-12)
            optimizer.step()
            scheduler.step()

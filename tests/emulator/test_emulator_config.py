"""Backbone config: validation, JSON round trip, presets and their sizes."""

from __future__ import annotations

import json

import pytest
import torch

from engine.emulator import PRESETS, BackboneConfig, DiffusionEmulator, preset_config
from engine.errors import ParameterError, UnknownNameError


def test_round_trip_through_json():
    config = preset_config("small", patch=8, positions="rope+absolute", dropout=0.1)
    restored = BackboneConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert restored == config
    assert (restored.patch, restored.positions, restored.dropout) == (8, "rope+absolute", 0.1)


def test_defaults_follow_the_paper():
    config = BackboneConfig(width=64, depth=2, heads=4)
    assert (config.mlp_ratio, config.dropout, config.patch, config.window) == (4, 0.05, 1, 5)
    assert (config.cond_dim, config.positions) == (256, "mixed-rope")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("width", 0),
        ("width", 100),  # not a multiple of heads=8
        ("width", 32),  # head dim 4 < 6: not one rotary pair per axis
        ("depth", 0),
        ("heads", 0),
        ("heads", 2.0),
        ("mlp_ratio", 0),
        ("dropout", 1.0),
        ("dropout", -0.1),
        ("dropout", True),
        ("patch", 0),
        ("window", 1),
        ("cond_dim", 33),
        ("positions", "sincos"),
    ],
)
def test_bad_values_are_refused_with_their_name(field, value):
    settings = {"width": 256, "depth": 2, "heads": 8, field: value}
    with pytest.raises(ParameterError, match=field):
        BackboneConfig(**settings)


def test_from_dict_refuses_unknown_and_missing_keys():
    with pytest.raises(ParameterError, match="bogus"):
        BackboneConfig.from_dict({"width": 64, "depth": 2, "heads": 4, "bogus": 1})
    with pytest.raises(ParameterError, match="heads"):
        BackboneConfig.from_dict({"width": 64, "depth": 2})
    with pytest.raises(UnknownNameError, match="huge"):
        preset_config("huge")
    with pytest.raises(ParameterError, match="bogus"):
        preset_config("small", bogus=1)


def _parameters_on_meta(config: BackboneConfig) -> int:
    with torch.device("meta"):
        return DiffusionEmulator(config, 16, (16, 16), 3).parameter_count()


def test_preset_sizes():
    """Hand count: each block has 12 W^2 weights and 9 W biases in attention and MLP,
    2 x head_dim QK-norm gains, 3 x heads x head_dim/2 rotary frequencies and a
    cond_dim -> 6W modulation; the paper's denoiser is about 224M parameters."""
    for name, expected in (("small", 3.6e6), ("paper", 224e6)):
        config = preset_config(name)
        w, c, d = config.width, config.cond_dim, config.depth
        block = 12 * w * w + 9 * w + 2 * config.head_dim + 3 * w // 2 + (c + 1) * 6 * w
        embeddings = 3 * (c * c + c) + (3 * c + c)  # noise c->c->c, label 3->c->c
        ends = (32 + 1) * w + (c + 1) * 2 * w + (w + 1) * 16
        assert _parameters_on_meta(config) == d * block + embeddings + ends
        assert abs(_parameters_on_meta(config) / expected - 1) < 0.05
    assert set(PRESETS) == {"small", "compact", "paper"}

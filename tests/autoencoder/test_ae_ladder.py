"""Compression ladders, latent shapes and configs against the paper's numbers."""

from __future__ import annotations

import json

import pytest
from ae_specs import SYSTEMS, boundaries, make_spec

from engine.autoencoder import (
    LADDERS,
    PRESETS,
    AutoencoderConfig,
    autoencoder_config,
    ladder,
    latent_shape,
    periodic_axes,
    reachable_rates,
)
from engine.autoencoder.config import preset_spatial_factor
from engine.errors import ParameterError, UnknownNameError

# arXiv:2507.02608: every ladder is 16 / 4 / 1 latent channels on a x16 grid.
PAPER_LATENT_CHANNELS = (16, 4, 1)
CASES = [(name, rung) for name in sorted(SYSTEMS) for rung in range(3)]


def test_ladders_are_the_papers():
    assert LADDERS == {
        "euler_quadrants": (80, 320, 1280),
        "rayleigh_benard": (64, 256, 1024),
        "kolmogorov": (48, 192, 768),
    }
    with pytest.raises(UnknownNameError, match="gray_scott"):
        ladder("gray_scott")


@pytest.mark.parametrize(("name", "rung"), CASES)
def test_latent_shape_gives_the_ladder_rate(name, rung):
    spec = make_spec(name)
    rate = ladder(name)[rung]
    c, h, w = latent_shape(spec, rate)
    x, y = spec.grid.shape
    assert (h, w) == (x // 16, y // 16)
    assert c == PAPER_LATENT_CHANNELS[rung]
    assert len(spec.channel_names) * x * y / (c * h * w) == rate


@pytest.mark.parametrize("name", sorted(SYSTEMS))
def test_ladder_holds_on_larger_grids(name):
    """The rate 256 C / c does not depend on the grid, so larger grids keep the ladder."""
    spec = make_spec(name, grid=(256, 128))
    assert [latent_shape(spec, r) for r in ladder(name)] == [
        (c, 16, 8) for c in PAPER_LATENT_CHANNELS
    ]


def test_explicit_channels_and_grid():
    assert latent_shape((5, (64, 64)), 80) == (16, 4, 4)
    names = ("energy", "density", "pressure", "momentum_x", "momentum_y")
    assert latent_shape((names, (64, 64)), 320) == (4, 4, 4)
    # A fractional rate that a whole number of channels gives exactly is accepted.
    assert latent_shape((5, (64, 64)), 1280 / 3) == (3, 4, 4)
    # x8 gives 8x8 latents: 320 is the most it can reach on such a field.
    assert latent_shape((5, (64, 64)), 320, spatial_factor=8) == (1, 8, 8)


def test_reachable_rates_are_the_divisors():
    # 64x64x5 with x16: rate = 20480 / (16 c) = 1280 / c; whole ones divide 1280 = 2^8 * 5.
    assert reachable_rates((5, (64, 64))) == [
        1280,
        640,
        320,
        256,
        160,
        128,
        80,
        64,
        40,
        32,
        20,
        16,
        10,
        8,
        5,
        4,
        2,
        1,
    ]
    assert reachable_rates((3, (64, 64)))[:4] == [768, 384, 256, 192]


def test_unreachable_rate_lists_the_reachable_ones():
    spec = make_spec("rayleigh_benard")
    with pytest.raises(ParameterError) as info:
        latent_shape(spec, 80)  # Euler's rate: 16384 / (16 * 80) = 12.8 channels
    message = str(info.value)
    assert "rate=80" in message
    assert "1024, 512, 256, 128, 64, 32, 16, 8, 4, 2, 1" in message
    assert "x16" in message
    with pytest.raises(ParameterError, match="320"):
        latent_shape((5, (64, 64)), 2560)  # would need half a channel
    for bad in (0, -80, float("nan"), "80"):
        with pytest.raises(ParameterError):
            latent_shape((5, (64, 64)), bad)


def test_grid_must_be_divisible_by_the_factor():
    with pytest.raises(ParameterError, match="multiples of the spatial factor 16"):
        latent_shape((5, (72, 64)), 80)
    with pytest.raises(ParameterError, match="power of two"):
        latent_shape((5, (64, 64)), 80, spatial_factor=12)


def test_periodic_axes_per_axis_and_combined():
    assert periodic_axes(("periodic", "wall")) == (True, False)
    assert periodic_axes(("periodic", "periodic")) == (True, True)
    # One AE over Euler's periodic and open files must not wrap either axis.
    assert periodic_axes([("periodic", "periodic"), ("open", "open")]) == (False, False)
    with pytest.raises(ParameterError, match="wal"):
        periodic_axes(("periodic", "wal"))
    with pytest.raises(ParameterError):
        periodic_axes([])


@pytest.mark.parametrize(("name", "rung"), CASES)
@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_autoencoder_config_for_each_system_and_rate(name, rung, preset):
    spec = make_spec(name)
    factor = preset_spatial_factor(preset)
    if PAPER_LATENT_CHANNELS[rung] * factor**2 < 16**2:
        # A finer latent grid cannot reach the top rate: fewer than one channel per cell.
        with pytest.raises(ParameterError, match="whole-number rates"):
            autoencoder_config(spec, ladder(name)[rung], preset, boundaries=boundaries(name))
        return
    config = autoencoder_config(spec, ladder(name)[rung], preset, boundaries=boundaries(name))
    assert config.spatial_factor == factor
    assert config.in_channels == len(spec.channel_names)
    # The paper's channel counts are for factor 16; a finer latent grid holds the same
    # number of values in proportionally fewer channels.
    assert config.latent_channels == PAPER_LATENT_CHANNELS[rung] * factor**2 // 16**2
    # Rayleigh-Benard's walls are never wrapped (unlike the official code, PolymathicAI/lola).
    assert config.periodic == ((True, False) if name == "rayleigh_benard" else (True, True))


def test_presets():
    assert PRESETS["small"]["blocks_per_level"] in (1, 2)
    assert max(PRESETS["small"]["widths"]) <= 128
    assert PRESETS["paper"]["widths"] == (64, 128, 256, 512, 1024)
    assert PRESETS["paper"]["blocks_per_level"] == 3
    with pytest.raises(UnknownNameError, match="huge"):
        autoencoder_config(make_spec("kolmogorov"), 48, "huge", boundaries=("open", "open"))


def test_config_round_trips_through_json():
    config = AutoencoderConfig(4, 16, (8, 16, 32), 2, dropout=0.1, periodic=(True, False))
    assert config.levels == 3 and config.spatial_factor == 4
    data = json.loads(json.dumps(config.to_dict()))
    assert AutoencoderConfig.from_dict(data) == config


@pytest.mark.parametrize(
    ("changes", "name"),
    [
        ({"in_channels": 0}, "in_channels"),
        ({"widths": ()}, "widths"),
        ({"widths": (8, -1)}, "widths"),
        ({"dropout": 1.0}, "dropout"),
        ({"periodic": (True,)}, "periodic"),
        ({"kernel": 4}, "kernel"),
        ({"blocks_per_level": 1.5}, "blocks_per_level"),
    ],
)
def test_config_rejects_bad_values(changes, name):
    values = {"in_channels": 3, "latent_channels": 4, "widths": (8, 16), "blocks_per_level": 1}
    with pytest.raises(ParameterError, match=name):
        AutoencoderConfig(**{**values, **changes})


def test_config_from_dict_rejects_unknown_and_missing_keys():
    data = AutoencoderConfig(3, 4, (8, 16), 1).to_dict()
    with pytest.raises(ParameterError, match="attention"):
        AutoencoderConfig.from_dict({**data, "attention": True})
    del data["widths"]
    with pytest.raises(ParameterError, match="widths"):
        AutoencoderConfig.from_dict(data)

"""The autoencoder network: shapes, bounds, initialisation, padding, and that it trains."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from ae_specs import SYSTEMS, boundaries, make_spec

from engine.autoencoder import Autoencoder, AutoencoderConfig, autoencoder_config, ladder
from engine.autoencoder.model import (
    Conv,
    Downsample,
    ResidualBlock,
    Upsample,
    bound_latent,
    channel_layer_norm,
)
from engine.errors import ParameterError
from engine.losses import vmse

TINY = {"widths": (8, 8, 8, 8, 8), "blocks_per_level": 1}  # x16, cheap


@pytest.mark.parametrize("name", sorted(SYSTEMS))
def test_small_preset_shapes_for_every_rate(name):
    spec = make_spec(name)
    x = torch.randn(1, len(spec.channel_names), *spec.grid.shape)
    for rate in ladder(name):
        config = autoencoder_config(spec, rate, "small", boundaries=boundaries(name))
        model = Autoencoder(config).eval()
        with torch.no_grad():
            z = model.encode(x)
            assert z.numel() * rate == x.numel()
            assert model.decode(z).shape == x.shape


def test_bounding_map():
    z = torch.tensor([-1e6, -5.0, -1.0, 0.0, 0.5, 3.0, 1e6], dtype=torch.float64)
    expected = torch.tensor(
        [v / math.sqrt(1 + (v / 5) ** 2) for v in z.tolist()], dtype=torch.float64
    )
    torch.testing.assert_close(bound_latent(z), expected)
    assert bound_latent(z).abs().max() < 5


def test_latents_stay_inside_the_bound():
    torch.manual_seed(0)
    model = Autoencoder(AutoencoderConfig(3, 4, **TINY)).eval()
    with torch.no_grad():
        latent = model.encode(1e4 * torch.randn(2, 3, 32, 32))
    assert latent.abs().max() < 5
    assert latent.abs().max() > 1  # the big input did reach the squashing part


def test_channel_layer_norm_standardises_each_pixel():
    x = 3 + 2 * torch.randn(2, 16, 4, 4, dtype=torch.float64)
    y = channel_layer_norm(x)
    torch.testing.assert_close(y.mean(dim=1), torch.zeros(2, 4, 4, dtype=torch.float64))
    torch.testing.assert_close(
        y.var(dim=1, correction=0), torch.ones(2, 4, 4, dtype=torch.float64), atol=1e-4, rtol=0
    )


def _config(periodic=(True, True), **changes) -> AutoencoderConfig:
    return AutoencoderConfig(3, 4, **{**TINY, **changes}, periodic=periodic, dropout=0.0)


@pytest.mark.parametrize(("in_width", "out_width"), [(16, 32), (16, 96), (8, 8)])
def test_downsample_starts_near_identity(in_width, out_width):
    torch.manual_seed(0)
    down = Downsample(in_width, out_width, _config())
    weight = down.conv.weight.detach()
    n = min(4 * in_width, out_width)
    eye = torch.zeros_like(weight)
    eye[range(n), range(n), 1, 1] = 1
    assert (weight - eye).abs().max() < 1e-3  # only tiny random weights around the taps
    x = torch.randn(2, in_width, 16, 16)
    with torch.no_grad():
        y = down(x)
    unshuffled = F.pixel_unshuffle(x, 2)
    torch.testing.assert_close(y[:, :n], unshuffled[:, :n], atol=0.05, rtol=0)
    if n < out_width:  # channels without an identity tap start near 0
        assert y[:, n:].abs().max() < 0.05


@pytest.mark.parametrize(("in_width", "out_width"), [(32, 16), (128, 96), (8, 8)])
def test_upsample_starts_near_identity(in_width, out_width):
    torch.manual_seed(0)
    up = Upsample(in_width, out_width, _config())
    x = torch.randn(2, in_width, 8, 8)
    with torch.no_grad():
        y = up(x)
    assert y.shape == (2, out_width, 16, 16)
    n = min(in_width, 4 * out_width)
    padded = torch.zeros(2, 4 * out_width, 8, 8)
    padded[:, :n] = x[:, :n]
    torch.testing.assert_close(y, F.pixel_shuffle(padded, 2), atol=0.05, rtol=0)


def test_residual_blocks_start_near_zero():
    torch.manual_seed(0)
    block = ResidualBlock(32, _config()).eval()
    x = torch.randn(4, 32, 16, 16)
    with torch.no_grad():
        branch = block(x) - x
    assert branch.square().mean().sqrt() < 1e-2 * x.square().mean().sqrt()
    assert branch.abs().max() > 0  # but not dead: gradients can grow it


def test_conv_pads_circularly_only_on_periodic_axes():
    """A one-cell shift kernel wraps around x (periodic) and sees zeros along y (wall)."""
    conv = Conv(1, 1, _config(periodic=(True, False)))
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.zero_()
        conv.weight[0, 0, 0, 1] = 1  # out[i, j] = in[i - 1, j]
    x = torch.randn(1, 1, 6, 5)
    torch.testing.assert_close(conv(x), torch.roll(x, 1, dims=-2))
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, 1, 0] = 1  # out[i, j] = in[i, j - 1]
    expected = torch.roll(x, 1, dims=-1)
    expected[..., 0] = 0
    torch.testing.assert_close(conv(x), expected)


def test_latent_rolls_with_the_input_only_along_periodic_axes():
    """Rolling by one latent cell (16 px) rolls the latent exactly on a periodic axis.

    Along Rayleigh-Benard's wall axis the zero padding breaks that symmetry at the
    walls, which is the point: the network knows where the walls are.
    """
    torch.manual_seed(0)
    model = Autoencoder(_config(periodic=(True, False))).eval()
    x = torch.randn(1, 3, 64, 32)
    with torch.no_grad():
        z = model.encode(x)
        rolled_x = model.encode(torch.roll(x, 16, dims=-2))
        rolled_y = model.encode(torch.roll(x, 16, dims=-1))
    torch.testing.assert_close(rolled_x, torch.roll(z, 1, dims=-2), atol=1e-5, rtol=0)
    assert (rolled_y - torch.roll(z, 1, dims=-1)).abs().max() > 1e-3


def test_fully_periodic_model_is_roll_equivariant_both_ways():
    torch.manual_seed(0)
    model = Autoencoder(_config(periodic=(True, True))).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        z = model.encode(x)
        shifted = model.encode(torch.roll(x, (16, -16), dims=(-2, -1)))
        recon = model.decode(z)
        recon_shifted = model.decode(torch.roll(z, 1, dims=-1))
    torch.testing.assert_close(shifted, torch.roll(z, (1, -1), dims=(-2, -1)), atol=1e-5, rtol=0)
    torch.testing.assert_close(recon_shifted, torch.roll(recon, 16, dims=-1), atol=1e-5, rtol=0)


def test_bad_inputs_are_refused():
    model = Autoencoder(_config())
    with pytest.raises(ParameterError, match="frames shape"):
        model.encode(torch.zeros(1, 5, 32, 32))
    with pytest.raises(ParameterError, match="spatial factor 16"):
        model.encode(torch.zeros(1, 3, 40, 32))
    with pytest.raises(ParameterError, match="latents shape"):
        model.decode(torch.zeros(1, 3, 2, 2))


def test_parameter_counts_add_up():
    model = Autoencoder(_config())
    counts = model.parameter_counts()
    assert counts["total"] == sum(p.numel() for p in model.parameters())
    assert counts["encoder"] + counts["decoder"] == counts["total"]


def test_tiny_autoencoder_overfits_a_few_frames():
    """Training works end to end: VMSE on four smooth frames falls 10x in 50 steps,
    through a 6x compressing bottleneck (3x32x32 -> 2x16x16)."""
    torch.manual_seed(0)
    grid = torch.linspace(0, 2 * math.pi, 33)[:-1]
    xx, yy = torch.meshgrid(grid, grid, indexing="ij")
    frames = torch.stack(
        [
            torch.stack(
                [
                    torch.sin(k * xx + p) * torch.cos(yy),
                    torch.cos(xx - k * yy + p),
                    torch.sin(xx + yy) * k / 3,
                ]
            )
            for k, p in ((1, 0.0), (2, 1.0), (3, 2.0), (1, 3.0))
        ]
    )
    model = Autoencoder(AutoencoderConfig(3, 2, (16, 32), 1, dropout=0.0, periodic=(True, True)))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(50):
        optimizer.zero_grad()
        loss = vmse(model(frames), frames)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 10, losses[::10]

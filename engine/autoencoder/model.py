"""A DC-AE-style convolutional autoencoder for single frames (arXiv:2507.02608).

Design points, each of which the paper found to matter:

- fully convolutional, no attention, so one model serves any grid that the spatial
  factor divides;
- resampling by pixel-(un)shuffle plus a 3x3 conv that starts near the identity, and
  residual branches that start near zero, so at initialisation every level passes its
  input on almost unchanged and training starts from a well-conditioned deep network;
- latents bounded to (-5, 5) by z / sqrt(1 + (z/5)^2) instead of a KL penalty;
- padding chosen per axis: circular where the physics is periodic, zeros elsewhere
  (the official code wraps Rayleigh-Benard's walls; we do not).

Tensors are (B, C, X, Y) in the Well's [x, y] order: dim -2 is x, dim -1 is y.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from engine.autoencoder.config import AutoencoderConfig
from engine.errors import ParameterError

LATENT_BOUND = 5.0
INIT_SCALE = 1e-2  # residual output convs and the random part of resampling convs
NORM_EPS = 1e-5


def pad_periodic(x: torch.Tensor, width: int, periodic: tuple[bool, bool]) -> torch.Tensor:
    """Wrap-around padding of `width` cells on the periodic axes (dim -2 is x, -1 is y).

    Non-periodic axes are left alone: `Conv` zero-pads them itself, which saves a copy
    of every activation (the small preset on CPU spends much of its time moving memory).
    """
    if width == 0 or not any(periodic):
        return x
    pad_x = (width, width) if periodic[0] else (0, 0)
    pad_y = (width, width) if periodic[1] else (0, 0)
    return F.pad(x, (*pad_y, *pad_x), mode="circular")


def bound_latent(z: torch.Tensor) -> torch.Tensor:
    """Smoothly squash to (-5, 5); near-identity for |z| << 5."""
    return z * torch.rsqrt(1 + (z / LATENT_BOUND).square())


def channel_layer_norm(x: torch.Tensor) -> torch.Tensor:
    """Standardise each pixel's channel vector (LayerNorm over dim 1, no affine)."""
    # Two plain means: on CPU, torch.var_mean over a non-innermost dim is ~4x slower.
    centred = x - x.mean(dim=1, keepdim=True)
    return centred * torch.rsqrt(centred.square().mean(dim=1, keepdim=True) + NORM_EPS)


class Conv(nn.Conv2d):
    """A 'same' convolution padded per axis: circular if periodic, zeros otherwise."""

    def __init__(self, in_channels: int, out_channels: int, config: AutoencoderConfig):
        half = config.kernel // 2
        zeros = tuple(0 if periodic else half for periodic in config.periodic)
        super().__init__(in_channels, out_channels, config.kernel, padding=zeros)
        self.periodic = config.periodic

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(pad_periodic(x, self.kernel_size[0] // 2, self.periodic))


def near_identity_(conv: nn.Conv2d) -> nn.Conv2d:
    """Tiny random weights plus a centre tap mapping channel i to channel i.

    Only the first min(in, out) channels get an identity tap: the rest start near zero.
    """
    with torch.no_grad():
        conv.weight.mul_(INIT_SCALE)
        conv.bias.zero_()
        n = min(conv.in_channels, conv.out_channels)
        centre = [k // 2 for k in conv.kernel_size]
        index = torch.arange(n)
        conv.weight[index, index, centre[0], centre[1]] += 1.0
    return conv


class ResidualBlock(nn.Module):
    """x + conv(dropout(SiLU(conv(LN(x))))), with the last conv scaled to ~0 at init."""

    def __init__(self, width: int, config: AutoencoderConfig):
        super().__init__()
        self.conv1 = Conv(width, width, config)
        self.dropout = nn.Dropout(config.dropout)
        self.conv2 = Conv(width, width, config)
        with torch.no_grad():
            self.conv2.weight.mul_(INIT_SCALE)
            self.conv2.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(channel_layer_norm(x))
        return x + self.conv2(self.dropout(F.silu(h)))


class Downsample(nn.Module):
    """2x space-to-depth, then a near-identity conv to the next level's width."""

    def __init__(self, in_width: int, out_width: int, config: AutoencoderConfig):
        super().__init__()
        self.conv = near_identity_(Conv(4 * in_width, out_width, config))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pixel_unshuffle(x, 2))


class Upsample(nn.Module):
    """A near-identity conv to 4x the next width, then 2x depth-to-space."""

    def __init__(self, in_width: int, out_width: int, config: AutoencoderConfig):
        super().__init__()
        self.conv = near_identity_(Conv(in_width, 4 * out_width, config))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(self.conv(x), 2)


def _blocks(width: int, config: AutoencoderConfig) -> list[nn.Module]:
    return [ResidualBlock(width, config) for _ in range(config.blocks_per_level)]


class Encoder(nn.Module):
    def __init__(self, config: AutoencoderConfig):
        super().__init__()
        widths = config.widths
        layers: list[nn.Module] = [Conv(config.in_channels, widths[0], config)]
        for level, width in enumerate(widths):
            layers += _blocks(width, config)
            if level + 1 < len(widths):
                layers.append(Downsample(width, widths[level + 1], config))
        layers.append(Conv(widths[-1], config.latent_channels, config))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return bound_latent(self.layers(x))


class Decoder(nn.Module):
    def __init__(self, config: AutoencoderConfig):
        super().__init__()
        widths = config.widths
        layers: list[nn.Module] = [Conv(config.latent_channels, widths[-1], config)]
        for level in reversed(range(len(widths))):
            layers += _blocks(widths[level], config)
            if level > 0:
                layers.append(Upsample(widths[level], widths[level - 1], config))
        layers.append(Conv(widths[0], config.in_channels, config))
        self.layers = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.layers(z)


class Autoencoder(nn.Module):
    """Frames (B, C, X, Y) <-> bounded latents (B, latent_channels, X/f, Y/f)."""

    def __init__(self, config: AutoencoderConfig):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x, self.config.in_channels, self.config.spatial_factor, "frames")
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        self._check_input(z, self.config.latent_channels, 1, "latents")
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The reconstruction decode(encode(x))."""
        return self.decode(self.encode(x))

    def parameter_counts(self) -> dict[str, int]:
        encoder = sum(p.numel() for p in self.encoder.parameters())
        decoder = sum(p.numel() for p in self.decoder.parameters())
        return {"encoder": encoder, "decoder": decoder, "total": encoder + decoder}

    @staticmethod
    def _check_input(x: torch.Tensor, channels: int, factor: int, what: str) -> None:
        if x.ndim != 4 or x.shape[1] != channels:
            raise ParameterError(f"{what} shape", tuple(x.shape), f"(batch, {channels}, X, Y)")
        if x.shape[-2] % factor or x.shape[-1] % factor:
            raise ParameterError(
                f"{what} grid", tuple(x.shape[-2:]), f"multiples of the spatial factor {factor}"
            )

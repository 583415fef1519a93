"""The emulator network: a transformer over the tokens of a whole window of frames.

One token per (frame, p x p patch): with patch 1 in latent space every latent cell of every
frame is a token (arXiv:2507.02608). Attention is full spatio-temporal, through
`F.scaled_dot_product_attention` only (no xformers, section 11).

Design, and why:

- Input: the frames (B, L, C, h, w) concatenated with the context mask broadcast over the
  channels (2C channels), patchified and linearly projected. The mask tells clean context
  from a slightly noisy frame, which the values alone cannot at small σ.
- Positions: rotary embedding (RoPE) over (t, x, y), in every attention layer, so the
  attention logits depend on relative offsets only (the network is translation-equivariant
  in space and time up to the grid's edges). Each pair of a head's dimensions turns at
  angle ω·(t, x, y) for a frequency vector ω. Initial ω are axial: the pairs are split
  evenly between the three axes, with per-axis magnitudes 100^(-k/n), k < n (periods from
  2π ≈ 6 to a few hundred tokens: positions are token indices, a few dozen per axis at
  most, so the usual base of 10^4 would waste most pairs on frequencies that never turn);
  leftover pairs (head_dim/2 not divisible by 3) stay unrotated.
  With axial ω a logit is a sum of one term per axis, and a sum of per-axis terms cannot
  single out a space-time diagonal Δx = v·Δt, i.e. follow something that moves: a tiny
  deterministic model with fixed axial ω plateaued at 9-26% of the persistence error on
  frames translating one cell per frame, whereas with ω learned per layer and head
  ("mixed-rope", the paper's learned mixed-axis RoPE, the default) the same model reached
  0.2% in the same 300 steps (2 blocks of width 32, AdamW; random initial directions, as
  in RoPE-Mixed, did as well as the axial start, which we keep because it resolves every
  axis from the first step).
  "+absolute" adds, as the paper does, per-axis sinusoidal features of the absolute
  position through a learned projection that starts at zero, so the model can learn where
  walls and open boundaries are while starting equivariant.
- QK RMS-norm (per head, with a learned gain shared by the heads) bounds the attention
  logits by gain²·√head_dim, the usual guard against logit growth in deep transformers.
- Conditioning vector (cond_dim) = MLP(sinusoidal embedding of 10·log σ) + MLP(label); the
  deterministic model has no noise input, so only the label MLP (or, with an empty label,
  nothing: the modulation biases then act as learned constants).
- Blocks modulated adaLN-style: h = (1+a)·LN(x) + b feeds attention (then the MLP), and the
  residual is the gated variance-preserving x <- (x + c·h)/√(1+c²), with (a, b, c) from
  the conditioning vector. The modulation layers start at zero, so every block starts as
  the identity, and so does the output projection: the network starts at F = 0 (the
  denoiser then returns c_skip·x_t, the deterministic model zeros). The paper's extra gated
  skip from the input tokens is left out: with identity-initialised blocks the input
  already reaches every layer.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.emulator.config import BackboneConfig
from engine.errors import ParameterError, check_integer

ROPE_BASE = 100.0
ABSOLUTE_FREQUENCIES = 8  # per axis, for positions="rope+absolute"
NOISE_SCALE = 10.0  # the paper embeds 10·log σ
NOISE_MAX_PERIOD = 1e4
INPUT_BIAS_STD = 0.1


def patchify(x: Tensor, patch: int) -> Tensor:
    """(B, L, C, H, W) -> (B, L·(H/p)·(W/p), C·p·p), tokens in (t, x, y) order."""
    b, frames, c, h, w = x.shape
    x = x.reshape(b, frames, c, h // patch, patch, w // patch, patch)
    x = x.permute(0, 1, 3, 5, 2, 4, 6)
    return x.reshape(b, frames * (h // patch) * (w // patch), c * patch * patch)


def unpatchify(tokens: Tensor, grid: tuple[int, int, int], channels: int, patch: int) -> Tensor:
    """Inverse of `patchify` for a token grid (L, H/p, W/p)."""
    frames, gh, gw = grid
    b = tokens.shape[0]
    x = tokens.reshape(b, frames, gh, gw, channels, patch, patch)
    x = x.permute(0, 1, 4, 2, 5, 3, 6)
    return x.reshape(b, frames, channels, gh * patch, gw * patch)


def token_positions(grid: tuple[int, int, int], device: torch.device) -> Tensor:
    """(N, 3) float (t, x, y) index of every token, in `patchify` order."""
    axes = [torch.arange(n, device=device, dtype=torch.float32) for n in grid]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, 3)


def axial_frequencies(pairs: int, base: float = ROPE_BASE) -> Tensor:
    """(3, pairs) angular frequency of each rotary pair along t, x and y.

    Pairs are split into three equal groups (t, x, y); within a group ω_k = base^(-k/n).
    A pair outside every group (the remainder) has frequency 0 on all axes: unrotated.
    """
    per_axis = pairs // 3
    omega = base ** (-torch.arange(per_axis, dtype=torch.float64) / max(per_axis, 1))
    table = torch.zeros(3, pairs, dtype=torch.float64)
    for axis in range(3):
        table[axis, axis * per_axis : (axis + 1) * per_axis] = omega
    return table.float()


def rotary_angles(positions: Tensor, frequencies: Tensor) -> Tensor:
    """Angles Σ_axis position·ω, (N, *frequencies.shape[1:]), from (N, 3) positions.

    A 3-term sum, written out rather than as a matmul so that FLOP counts only show the
    network's real matrix products.
    """
    shape = (positions.shape[0], 3) + (1,) * (frequencies.ndim - 1)
    return (positions.reshape(shape) * frequencies).sum(dim=1)


def rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate the pairs (x[..., j], x[..., j + d/2]) by angles whose cos and sin broadcast
    against x[..., :d/2]."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


def sinusoidal_embedding(values: Tensor, dim: int, max_period: float = NOISE_MAX_PERIOD) -> Tensor:
    """(B,) -> (B, dim): [sin(v ω_k), cos(v ω_k)], ω_k geometric from 1 to 1/max_period."""
    half = dim // 2
    omega = torch.exp(
        -math.log(max_period) * torch.arange(half, device=values.device, dtype=values.dtype) / half
    )
    angles = values[:, None] * omega
    return torch.cat((angles.sin(), angles.cos()), dim=-1)


def gated_residual(x: Tensor, h: Tensor, gate: Tensor) -> Tensor:
    """(x + c·h)/√(1+c²): unit variance in, unit variance out for independent x and h.

    c is per sample and channel (B, 1, W), so the coefficients are computed at that size
    and the full-size work is two passes.
    """
    scale = torch.rsqrt(1 + gate.square())
    return torch.addcmul(x * scale, h, gate * scale)


def _mlp(in_features: int, hidden: int, out_features: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_features, hidden), nn.SiLU(), nn.Linear(hidden, out_features))


class Attention(nn.Module):
    """Multi-head self-attention with QK RMS-norm and rotary positions.

    Queries and keys are normalised and rotated together, as one (B, N, 2, H, d) tensor:
    on CPU these element-wise passes cost about as much as the matrix products.
    """

    def __init__(self, width: int, heads: int, positions: str):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        # RMS-norm gains for queries (row 0) and keys (row 1), shared across heads.
        self.qk_gain = nn.Parameter(torch.ones(2, 1, width // heads))
        self.out = nn.Linear(width, width)
        pairs = width // heads // 2
        axial = axial_frequencies(pairs)[:, None]  # (3, 1, pairs): the same for every head
        if positions.startswith("mixed-rope"):
            # Learned per head, starting axial: free to turn towards space-time diagonals.
            self.frequencies = nn.Parameter(axial.repeat(1, heads, 1))
        else:
            self.register_buffer("frequencies", axial, persistent=False)

    def forward(self, x: Tensor, positions: Tensor) -> Tensor:
        b, n, width = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, -1)
        qk = F.rms_norm(qkv[:, :, :2], qkv.shape[-1:]) * self.qk_gain
        # cos and sin in float32 whatever the compute dtype: angles reach tens of radians.
        angles = rotary_angles(positions, self.frequencies)[:, None]  # (N, 1, H or 1, d/2)
        cos, sin = angles.cos().to(qk.dtype), angles.sin().to(qk.dtype)
        q, k = rotate(qk, cos, sin).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, qkv[:, :, 2].transpose(1, 2))
        return self.out(y.transpose(1, 2).reshape(b, n, width))


class AbsolutePositions(nn.Module):
    """Per-axis sinusoidal features of each token's (t, x, y) index, through a learned
    projection that starts at zero (positions="...+absolute")."""

    def __init__(self, width: int):
        super().__init__()
        self.register_buffer(
            "frequencies", axial_frequencies(3 * ABSOLUTE_FREQUENCIES), persistent=False
        )
        self.projection = nn.Linear(6 * ABSOLUTE_FREQUENCIES, width)

    def forward(self, positions: Tensor) -> Tensor:
        angles = rotary_angles(positions, self.frequencies)
        return self.projection(torch.cat((angles.sin(), angles.cos()), dim=-1))


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """(1 + a)·x + b, per sample and channel, in one pass."""
    return torch.addcmul(shift, x, 1 + scale)


class Block(nn.Module):
    """adaLN-modulated attention and MLP, each behind a gated variance-preserving residual.

    Dropout acts on the MLP branch's output (width channels) rather than on its hidden
    layer (4x wider): the same regularisation at a quarter of the random draws, which on
    CPU otherwise cost a tenth of a training step.
    """

    def __init__(self, config: BackboneConfig):
        super().__init__()
        width = config.width
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False)
        self.attention = Attention(width, config.heads, config.positions)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False)
        self.mlp = nn.Sequential(
            nn.Linear(width, config.mlp_ratio * width),
            nn.SiLU(),
            nn.Linear(config.mlp_ratio * width, width),
            nn.Dropout(config.dropout),
        )
        self.modulation = nn.Linear(config.cond_dim, 6 * width)

    def forward(self, x: Tensor, cond: Tensor, positions: Tensor) -> Tensor:
        a1, b1, c1, a2, b2, c2 = self.modulation(cond)[:, None].chunk(6, dim=-1)
        x = gated_residual(x, self.attention(modulate(self.norm1(x), b1, a1), positions), c1)
        return gated_residual(x, self.mlp(modulate(self.norm2(x), b2, a2)), c2)


class Backbone(nn.Module):
    """network(x_in, log_sigma, condition, context_mask) -> F, shaped like x_in.

    `noise_conditioning` says whether the network takes a noise level (the diffusion
    denoiser) or not (the deterministic solver, which must be given log_sigma=None).
    """

    def __init__(
        self, config: BackboneConfig, channels: int, label_dim: int, *, noise_conditioning: bool
    ):
        super().__init__()
        check_integer("channels", channels, 1)
        check_integer("label_dim", label_dim, 0)
        self.config, self.channels, self.label_dim = config, channels, label_dim
        width, cond_dim, patch = config.width, config.cond_dim, config.patch
        self.proj_in = nn.Linear(2 * channels * patch * patch, width)
        self.absolute = AbsolutePositions(width) if config.positions.endswith("+absolute") else None
        self.noise_embedding = _mlp(cond_dim, cond_dim, cond_dim) if noise_conditioning else None
        self.label_embedding = _mlp(label_dim, cond_dim, cond_dim) if label_dim else None
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.depth))
        self.final_norm = nn.LayerNorm(width, elementwise_affine=False)
        self.final_modulation = nn.Linear(cond_dim, 2 * width)
        self.proj_out = nn.Linear(width, channels * patch * patch)
        self._initialise()

    @property
    def noise_conditioning(self) -> bool:
        return self.noise_embedding is not None

    def _initialise(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        zero = [self.final_modulation, self.proj_out]
        zero += [block.modulation for block in self.blocks]
        if self.absolute is not None:
            zero.append(self.absolute.projection)
        for module in zero:
            nn.init.zeros_(module.weight)
        # The input bias is the embedding of a token whose frame is unknown and zero (the
        # deterministic model's frames to generate). It must not start at zero: a stream
        # of all-zero tokens is a saddle point, since LayerNorm maps it to zero and then
        # no gradient reaches the output projection, the gates or the attention.
        nn.init.normal_(self.proj_in.bias, std=INPUT_BIAS_STD)

    def forward(
        self,
        x_in: Tensor,
        log_sigma: Tensor | None,
        condition: Tensor | None,
        context_mask: Tensor | None,
    ) -> Tensor:
        grid = self._check_frames(x_in)
        batch = x_in.shape[0]
        mask = (
            torch.zeros_like(x_in)
            if context_mask is None
            else context_mask.expand(x_in.shape).to(x_in.dtype)
        )
        patch = self.config.patch
        h = self.proj_in(patchify(torch.cat((x_in, mask), dim=2), patch))
        positions = token_positions(grid, x_in.device)
        if self.absolute is not None:
            h = h + self.absolute(positions).to(h.dtype)
        cond = F.silu(self._condition(log_sigma, condition, batch, h))
        for block in self.blocks:
            h = block(h, cond, positions)
        shift, scale = self.final_modulation(cond)[:, None].chunk(2, dim=-1)
        h = self.proj_out(modulate(self.final_norm(h), shift, scale))
        return unpatchify(h, grid, self.channels, patch)

    def _check_frames(self, x: Tensor) -> tuple[int, int, int]:
        patch = self.config.patch
        if x.ndim != 5 or x.shape[2] != self.channels:
            raise ParameterError("frames.shape", tuple(x.shape), f"(B, L, {self.channels}, h, w)")
        frames, height, width = x.shape[1], x.shape[3], x.shape[4]
        if height % patch or width % patch:
            raise ParameterError(
                "frame grid", (height, width), f"multiples of the patch size {patch}"
            )
        return frames, height // patch, width // patch

    def _condition(
        self, log_sigma: Tensor | None, condition: Tensor | None, batch: int, like: Tensor
    ) -> Tensor:
        """The (B, cond_dim) conditioning vector, before its SiLU."""
        cond = like.new_zeros(batch, self.config.cond_dim)
        if self.noise_embedding is None:
            if log_sigma is not None:
                raise ParameterError("log_sigma", "a tensor", "None (no noise input here)")
        else:
            if log_sigma is None or log_sigma.shape != (batch,):
                shape = None if log_sigma is None else tuple(log_sigma.shape)
                raise ParameterError("log_sigma.shape", shape, f"({batch},)")
            embedded = sinusoidal_embedding(NOISE_SCALE * log_sigma.to(like.dtype), cond.shape[1])
            cond = cond + self.noise_embedding(embedded)
        if self.label_embedding is None:
            if condition is not None and condition.numel():
                raise ParameterError("label.shape", tuple(condition.shape), f"({batch}, 0) or None")
        else:
            if condition is None or condition.shape != (batch, self.label_dim):
                shape = None if condition is None else tuple(condition.shape)
                raise ParameterError("label.shape", shape, f"({batch}, {self.label_dim})")
            cond = cond + self.label_embedding(condition.to(like.dtype))
        return cond

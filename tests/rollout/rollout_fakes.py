"""Tiny stand-ins for the rollout tests (imported as `rollout_fakes`).

- `Drift`: a System whose tracer translates by a whole number of cells per frame on a
  periodic grid, so its exact dynamics are a `torch.roll`.
- Fake emulators that follow docs/dev/EMULATOR_INTERFACE.md exactly (kind, space,
  window, generate(context, label, *, sampler, generator), nfe(sampler)) and count calls.
- `UnshuffleAutoencoder`: pixel-unshuffle by 2, an exactly invertible "autoencoder" with
  a real config (12 latent channels on an 8x8 grid for 3 channels on 16x16).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.autoencoder.config import AutoencoderConfig
from engine.diffusion import Sampler
from engine.diffusion.noise import randn
from engine.pipeline import Pipeline
from engine.preprocessing import Preprocessing
from engine.systems.base import (
    ChoiceSpec,
    Conditions,
    FieldSpec,
    ParameterSpec,
    System,
    SystemSpec,
)

SPEED = ParameterSpec("speed", "drift speed in cells per frame", (1.0, 3.0), (0.0, 4.0), 1.0)
AXIS = ChoiceSpec("axis", "drift axis", ("x", "y"), "x")


class Drift(System):
    """tracer(x, t) = tracer(x - speed·t/frame_dt cells, 0) along `axis`; velocity constant."""

    default_grid = (16, 16)
    default_extent = (1.0, 2.0)

    def __init__(self, grid=None):
        super().__init__(grid)
        self.advances = 0
        self.spec = SystemSpec(
            name="drift",
            title="Drifting tracer",
            fields=(
                FieldSpec("velocity", "drift velocity", units="m s-1", tensor_order=1),
                FieldSpec("tracer", "tracer density", units="kg m-3", positive=True),
            ),
            parameters=(SPEED,),
            choices=(AXIS,),
            grid=self.grid,
            frame_dt=0.5,
            n_frames=12,
            source="torch.roll (test fake)",
        )

    def initial_state(self, conditions, generators, device, dtype):
        shape = self.grid.shape
        tracer = torch.stack([1 + torch.rand(shape, generator=g) for g in generators])
        return {"tracer": tracer.to(device, dtype), "t": 0.0}

    def advance(self, state, conditions: Conditions, t0: float, t1: float):
        self.advances += 1
        dim = 0 if conditions.choices["axis"] == "x" else 1  # of one (X, Y) tracer
        steps = round((t1 - t0) / self.spec.frame_dt)
        shifts = [round(float(s)) * steps for s in conditions.parameters["speed"]]
        rows = zip(state["tracer"], shifts, strict=True)
        tracer = torch.stack([torch.roll(row, shift, dim) for row, shift in rows])
        return {"tracer": tracer, "t": t1}

    def observe(self, state, conditions: Conditions) -> Tensor:
        tracer = state["tracer"]
        speed = conditions.parameters["speed"].to(tracer)
        velocity = torch.zeros(tracer.shape[0], 2, *tracer.shape[1:], dtype=tracer.dtype)
        axis = 0 if conditions.choices["axis"] == "x" else 1
        cell = self.grid.spacing[axis]
        velocity[:, axis] = (speed * cell / self.spec.frame_dt)[:, None, None]
        return torch.cat([tracer[:, None], velocity.to(tracer.device)], dim=1)


CHANNELS = ("tracer", "velocity_x", "velocity_y")
IDENTITY = Preprocessing(CHANNELS, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
# Not the identity: log1p on the tracer and a z-score with odd constants.
SKEWED = Preprocessing(CHANNELS, (0.7, -0.1, 0.2), (0.3, 2.0, 0.5), log_channels=("tracer",))


class UnshuffleAutoencoder(nn.Module):
    """Frames (B, 3, X, Y) <-> latents (B, 12, X/2, Y/2) by pixel-(un)shuffle: lossless."""

    def __init__(self):
        super().__init__()
        self.config = AutoencoderConfig(
            in_channels=3, latent_channels=12, widths=(4, 4), blocks_per_level=0
        )

    def encode(self, x: Tensor) -> Tensor:
        return F.pixel_unshuffle(x, 2)

    def decode(self, z: Tensor) -> Tensor:
        return F.pixel_shuffle(z, 2)


class FakeEmulator(nn.Module):
    """Counts generate() calls and records the contexts it was given."""

    kind = "deterministic"
    label_dim = 3  # Drift: speed, then the one-hot axis

    def __init__(self, space: str = "pixel", window: int = 5):
        super().__init__()
        self.space, self.window = space, window
        self.calls = 0
        self.contexts: list[Tensor] = []

    def generate(
        self,
        context: Tensor,
        label: Tensor,
        *,
        sampler: Sampler | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        assert torch.is_inference_mode_enabled()
        assert label.shape == (context.shape[0], self.label_dim)
        assert (sampler is None) == (self.kind == "deterministic")
        self.calls += 1
        self.contexts.append(context.clone())
        return self.step(context, label, sampler, generator, self.window - context.shape[1])

    def nfe(self, sampler: Sampler | None = None) -> int:
        return 1 if sampler is None else sampler.nfe()

    def step(self, context, label, sampler, generator, n: int) -> Tensor:
        raise NotImplementedError


class Persistence(FakeEmulator):
    """Every new frame is the last context frame."""

    def step(self, context, label, sampler, generator, n):
        return context[:, -1:].repeat(1, n, 1, 1, 1)


class Ramp(FakeEmulator):
    """New frame k (1-based) is the last context frame + k: lead ℓ is context + ℓ."""

    def __init__(self, kind: str = "deterministic", **kwargs):
        super().__init__(**kwargs)
        self.kind = kind

    def step(self, context, label, sampler, generator, n):
        k = torch.arange(1, n + 1, dtype=context.dtype).view(1, n, 1, 1, 1)
        return context[:, -1:] + k


class DriftOracle(FakeEmulator):
    """The exact Drift dynamics in (preprocessed) pixel space, read from the label.

    The label maps the speed's training range [1, 3] to [-1, 1] and one-hot encodes the
    axis (engine.emulator.labels); a per-channel transform commutes with the roll.
    """

    def step(self, context, label, sampler, generator, n):
        lo, hi = SPEED.train_range
        frames = []
        for row, entries in zip(context, label, strict=True):
            speed = round(lo + (float(entries[0]) + 1) / 2 * (hi - lo))
            dim = 1 if float(entries[1]) == 1.0 else 2  # of one (C, X, Y) frame
            shifted = [torch.roll(row[-1], speed * k, dim) for k in range(1, n + 1)]
            frames.append(torch.stack(shifted))
        return torch.stack(frames)


class GaussianDiffusion(FakeEmulator):
    """Frames ~ N(last context frame, SCALE²) per entry, sampled with the given sampler.

    The exact denoiser of that law is E[x | x_t] = μ + s²/(s²+σ²)(x_t − μ), so the
    samplers run for real on an analytic model.
    """

    kind = "diffusion"
    stacked_noise = True  # its noise comes from engine.diffusion.noise.randn
    SCALE = 0.5

    def step(self, context, label, sampler, generator, n):
        mean = context[:, -1:].expand(-1, n, -1, -1, -1)
        s2 = self.SCALE**2

        def denoise(x_t: Tensor, sigma: Tensor) -> Tensor:
            return mean + s2 / (s2 + sigma**2) * (x_t - mean)

        noise = randn(mean.shape, generator, mean.device, mean.dtype)
        return sampler.sample(denoise, sampler.schedule.sigma_max * noise, generator)


class Poisoned(Persistence):
    """Persistence, except one entry is NaN on call `call` (from 1) at (member, frame)."""

    def __init__(self, call: int, member: int, frame: int, **kwargs):
        super().__init__(**kwargs)
        self.poison = (call, member, frame)

    def step(self, context, label, sampler, generator, n):
        out = super().step(context, label, sampler, generator, n)
        call, member, frame = self.poison
        if self.calls == call:
            out[member, frame, 0, 3, 5] = math.nan
        return out


def drift_pipeline(
    emulator: FakeEmulator, preprocessing: Preprocessing = IDENTITY, latent: bool = False
) -> Pipeline:
    autoencoder = UnshuffleAutoencoder() if latent else None
    emulator.space = "latent" if latent else "pixel"
    return Pipeline(Drift().spec, preprocessing, emulator, autoencoder, device="cpu")

"""`latentsim bench emulator`: what sampling an emulator costs per frame, and why.

For each system (on its latent grid at the lowest compression rate of its ladder, e.g.
16 x 4 x 4 latents for Kolmogorov at 48x), times one emulator call (c = 1 context frame,
L - c = 4 generated frames) by sampler, number of steps and ensemble size, and reports:

- seconds per member-frame (one generated frame of one ensemble member) and network
  evaluations (NFE) per frame;
- achieved FLOP/s (matrix products, counted by engine.emulator.flops) against the
  machine's matmul peak, measured in the same run with a large float32 torch.matmul;
- the cost of latent diffusion per frame relative to the same diffusion emulator on
  pixels (patch 16), the latent side including decoding with the system's autoencoder.

The models are untrained (fresh initialisation): the time of a network evaluation does
not depend on the values of its weights, only on shapes, so no model file is needed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from engine.autoencoder.ladder import autoencoder_config, ladder, latent_shape
from engine.autoencoder.model import Autoencoder
from engine.bench.autoencoder import _forward_gflops
from engine.bench.common import machine_info, median_seconds
from engine.device import resolve_device
from engine.diffusion import Sampler, get_sampler
from engine.emulator import (
    KINDS,
    Emulator,
    build_emulator,
    emulator_flops,
    label_dim,
    preset_config,
)
from engine.emulator.config import DEFAULT_PATCH
from engine.errors import ParameterError, check_integer
from engine.systems import System, get_system

NOTE = (
    "untrained models: the time of a network evaluation depends on shapes, not on the "
    "values of the weights"
)
CONTEXT = 1  # context frames per call; the other L - 1 frames of the window are generated
MATMUL_SIZE = 2048


def bench_emulator(
    systems: Sequence[str] = ("kolmogorov",),
    *,
    samplers: Sequence[str] = ("ab", "euler", "heun"),
    steps: Sequence[int] = (8, 16),
    members: Sequence[int] = (1, 4, 16),
    repeats: int = 3,
    preset: str = "small",
    backbone_overrides: Mapping[str, Any] | None = None,
    autoencoder_preset: str = "small",
    compare_members: int = 4,
    matmul_size: int | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """Time `preset` emulators (fields replaced by `backbone_overrides`) for each system;
    see the module docstring. The latent-vs-pixel comparison runs the first sampler at
    the largest step count with `compare_members` members. `matmul_size` defaults to
    MATMUL_SIZE."""
    matmul_size = MATMUL_SIZE if matmul_size is None else matmul_size
    for name, values in (("steps", steps), ("members", members)):
        if not values or any(
            isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values
        ):
            raise ParameterError(name, list(values), "one or more integers >= 1")
    for name, value in (
        ("repeats", repeats),
        ("compare_members", compare_members),
        ("matmul_size", matmul_size),
    ):
        check_integer(name, value, 1)
    if not samplers:
        raise ParameterError("samplers", list(samplers), "one or more sampler names")
    for name in samplers:
        get_sampler(name)  # fail fast on an unknown name
    overrides = dict(backbone_overrides or {})
    if "patch" in overrides:
        raise ParameterError("backbone override", "patch", "another field (latent patch is 1)")
    target = resolve_device(device)
    peak = _matmul_peak(matmul_size, repeats, target)
    settings = {
        "samplers": samplers,
        "steps": steps,
        "members": members,
        "repeats": repeats,
        "preset": preset,
        "overrides": overrides,
        "autoencoder_preset": autoencoder_preset,
        "compare_members": compare_members,
        "device": target,
        "peak": peak,
    }
    return {
        "benchmark": "emulator",
        "note": NOTE,
        "preset": preset,
        "backbone": preset_config(preset, **overrides).to_dict(),
        "context_frames": CONTEXT,
        "repeats": repeats,
        "machine": machine_info(target),
        "load_average": list(os.getloadavg()),
        "matmul_peak": peak,
        "results": [_bench_system(get_system(name), **settings) for name in systems],
    }


def _bench_system(
    system: System,
    *,
    samplers: Sequence[str],
    steps: Sequence[int],
    members: Sequence[int],
    repeats: int,
    preset: str,
    overrides: Mapping[str, Any],
    autoencoder_preset: str,
    compare_members: int,
    device: torch.device,
    peak: Mapping[str, float],
) -> dict[str, Any]:
    spec = system.spec
    rate = ladder(spec.name)[0]
    shape = latent_shape(spec, rate)
    labels = label_dim(spec)
    backbone = preset_config(preset, **overrides)
    torch.manual_seed(0)
    latent = {
        kind: build_emulator(kind, backbone, shape[0], shape[1:], labels, "latent").to(device)
        for kind in KINDS
    }

    def row(emulator: Emulator, sampler: Sampler | None, count: int) -> dict[str, Any]:
        return _row(emulator, sampler, count, repeats, device, peak)

    diffusion = {
        (name, size, count): row(latent["diffusion"], get_sampler(name, steps=size), count)
        for count in members
        for name in samplers
        for size in steps
    }
    # Latent against pixel diffusion, same sampler, steps and members.
    compared = (samplers[0], max(steps), compare_members)
    sampler = get_sampler(compared[0], steps=compared[1])
    latent_row = diffusion.get(compared) or row(latent["diffusion"], sampler, compare_members)
    patch = DEFAULT_PATCH
    pixel = build_emulator(
        "diffusion",
        preset_config(preset, **{**overrides, "patch": patch}),
        len(spec.channel_names),
        spec.grid.shape,
        labels,
        "pixel",
    ).to(device)
    boundaries = system.boundary_conditions({c.name: c.default for c in spec.choices})
    decoder = Autoencoder(autoencoder_config(spec, rate, autoencoder_preset, boundaries=boundaries))
    decode_seconds = _decode_seconds_per_frame(
        decoder.to(device).eval(),
        shape,
        compare_members * (backbone.window - CONTEXT),
        repeats,
        device,
    )
    frame = (len(spec.channel_names), *spec.grid.shape)
    return {
        "system": spec.name,
        "rate": rate,
        "latent_shape": list(shape),
        "tokens_per_window": backbone.window * shape[1] * shape[2],
        "parameters": latent["diffusion"].parameter_count(),
        "diffusion": [
            {"sampler": name, "steps": size, **result}
            for (name, size, _), result in diffusion.items()
        ],
        "deterministic": [row(latent["deterministic"], None, count) for count in members],
        "latent_vs_pixel": {
            "sampler": compared[0],
            "steps": compared[1],
            "members": compare_members,
            "patch": patch,
            "pixel_tokens_per_window": pixel.window * (frame[1] // patch) * (frame[2] // patch),
            **_compare(
                latent_row,
                row(pixel, sampler, compare_members),
                decode_seconds,
                _forward_gflops(decoder.cpu(), frame)["decode"],
            ),
        },
    }


def _matmul_peak(size: int, repeats: int, device: torch.device) -> dict[str, float]:
    """FLOP/s of a size x size float32 matmul: the machine's practical ceiling."""
    generator = torch.Generator().manual_seed(0)
    a, b = (torch.randn(size, size, generator=generator).to(device) for _ in range(2))
    seconds, _ = median_seconds(lambda: a @ b, repeats=repeats, warmup=1, device=device)
    return {"size": size, "seconds": seconds, "gflop_per_s": 2 * size**3 / seconds / 1e9}


def _row(
    emulator: Emulator,
    sampler: Sampler | None,
    members: int,
    repeats: int,
    device: torch.device,
    peak: Mapping[str, float],
) -> dict[str, Any]:
    """Time one generate() call of `members` rows (c = CONTEXT) and derive the per-frame
    costs; `sampler` None for a deterministic emulator."""
    generator = torch.Generator().manual_seed(0)
    context = torch.randn(members, CONTEXT, emulator.channels, *emulator.grid, generator=generator)
    context, label = context.to(device), torch.zeros(members, emulator.label_dim, device=device)
    noise = torch.Generator(device=device).manual_seed(0)
    emulator.eval()
    with torch.inference_mode():
        seconds, _ = median_seconds(
            lambda: emulator.generate(context, label, sampler=sampler, generator=noise),
            repeats=repeats,
            warmup=1,
            device=device,
        )
    nfe = emulator.nfe(sampler)
    frames = members * (emulator.window - CONTEXT)
    flops = emulator_flops(emulator, batch=members) * nfe
    return {
        "members": members,
        "nfe_per_call": nfe,
        "nfe_per_frame": nfe / (emulator.window - CONTEXT),
        "seconds_per_call": seconds,
        "seconds_per_member_frame": seconds / frames,
        "gflop_per_member_frame": flops / frames / 1e9,
        "achieved_gflop_per_s": flops / seconds / 1e9,
        "fraction_of_matmul_peak": flops / seconds / 1e9 / peak["gflop_per_s"],
    }


def _decode_seconds_per_frame(
    decoder: Autoencoder,
    shape: tuple[int, int, int],
    frames: int,
    repeats: int,
    device: torch.device,
) -> float:
    z = torch.randn(frames, *shape, generator=torch.Generator().manual_seed(0)).to(device)
    with torch.inference_mode():
        seconds, _ = median_seconds(
            lambda: decoder.decode(z), repeats=repeats, warmup=1, device=device
        )
    return seconds / frames


def _compare(
    latent_row: Mapping[str, Any],
    pixel_row: Mapping[str, Any],
    decode_seconds: float,
    decode_gflop: float,
) -> dict[str, Any]:
    """Pixel-space over latent-space cost per member-frame, decoding included."""
    latent_seconds = latent_row["seconds_per_member_frame"] + decode_seconds
    latent_gflop = latent_row["gflop_per_member_frame"] + decode_gflop
    return {
        "latent": dict(latent_row),
        "pixel": dict(pixel_row),
        "decode_seconds_per_frame": decode_seconds,
        "decode_gflop_per_frame": decode_gflop,
        "latent_seconds_per_member_frame_with_decoding": latent_seconds,
        "pixel_over_latent_time": pixel_row["seconds_per_member_frame"] / latent_seconds,
        "pixel_over_latent_flop": pixel_row["gflop_per_member_frame"] / latent_gflop,
    }

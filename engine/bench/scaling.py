"""`latentsim bench scaling`: when is an emulator faster than the solver it imitates?

Seconds per simulated frame against grid size N (N x N Kolmogorov flow) for
- the solver: one trajectory, pseudo-spectral with CFL-adaptive steps (its cost grows
  about as N^3 log N: N^2 log N per step, and N times more steps);
- latent diffusion, per member-frame of an ensemble of 16: encode + sample + decode;
- pixel-space diffusion, per member-frame of an ensemble of 16.

Shapes follow the paper's ladders (paper.md sections 3, 4, 7) at the zoo's compact scale:
a x32 autoencoder (the paper's spatial factor; the zoo's small widths plus one level) at
the lowest rate of the Kolmogorov ladder (x48), a patch-1 latent transformer (the zoo's
compact width 128), and a pixel transformer on 16-pixel patches twice as wide (the paper's
pixel baseline is 2048 wide against 1024 for the latent denoiser). Both sample with the
same sampler and steps. Models are freshly initialised: the time of a network evaluation
depends on shapes, not on the values of the weights.

Sampling time is measured as one network evaluation (NFE) on `members` rows, times the
sampler's NFE per call, divided by the frames a call makes (window - 1 context frame).
Where an evaluation of all members would not fit, fewer rows are timed and the per-row
time is used (flagged "timed_members"); a size whose evaluation does not fit in memory at
all is reported and skipped.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import torch

from engine.autoencoder.config import AutoencoderConfig
from engine.autoencoder.ladder import ladder, latent_shape
from engine.autoencoder.model import Autoencoder
from engine.bench.common import machine_info, median_seconds
from engine.device import resolve_device
from engine.diffusion import get_sampler
from engine.emulator import build_emulator, label_dim, preset_config
from engine.errors import ParameterError
from engine.systems import get_system

SYSTEM = "kolmogorov"
DEFAULT_SIZES = (64, 128, 256, 512)
AE_WIDTHS = (8, 16, 32, 64, 128, 256)  # six levels: x32, the paper's spatial factor
PIXEL_PATCH = 16
PIXEL_WIDTH_FACTOR = 2
CONTEXT = 1
NOTE = (
    "untrained models (time depends on shapes, not weights); solver timed from its initial "
    "condition (no spin-up) on one trajectory; emulator costs per member-frame of an "
    "ensemble, sampling = NFE per call x one timed evaluation / frames per call"
)
# Skip a configuration whose estimated peak memory exceeds this share of what is free.
MEMORY_SHARE = 0.5


def bench_scaling(
    sizes: Sequence[int] = DEFAULT_SIZES,
    *,
    members: int = 16,
    sampler: str = "ab",
    steps: int = 16,
    repeats: int = 2,
    preset: str = "compact",
    device: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Time solver, latent and pixel diffusion at each N x N grid; see the module docstring.

    `device=None` runs on the CPU and also on CUDA when one is available.
    """
    for name, value in (("members", members), ("steps", steps), ("repeats", repeats)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ParameterError(name, value, "an integer >= 1")
    if not sizes or any(
        isinstance(n, bool) or not isinstance(n, int) or n < 32 or n % 32 for n in sizes
    ):
        raise ParameterError("sizes", list(sizes), "grid sizes that are multiples of 32 (>= 32)")
    devices = [resolve_device(device)] if device is not None else _default_devices()
    sampler_object = get_sampler(sampler, steps=steps)
    say = progress or (lambda _: None)
    results = {}
    for target in devices:
        rows = []
        for n in sorted(sizes):
            say(f"{target.type}: {n}x{n}")
            rows.append(_bench_size(n, members, sampler_object, repeats, preset, target))
        results[target.type] = {"rows": rows, "crossovers": crossovers(rows)}
    return {
        "benchmark": "scaling",
        "note": NOTE,
        "system": SYSTEM,
        "members": members,
        "sampler": sampler,
        "steps": steps,
        "nfe_per_call": sampler_object.nfe(),
        "rate": ladder(SYSTEM)[0],
        "autoencoder_widths": list(AE_WIDTHS),
        "emulator_preset": preset,
        "pixel_patch": PIXEL_PATCH,
        "pixel_width_factor": PIXEL_WIDTH_FACTOR,
        "repeats": repeats,
        "machine": machine_info(devices[-1]),
        "load_average": list(os.getloadavg()),
        "devices": results,
    }


def _default_devices() -> list[torch.device]:
    cuda = [torch.device("cuda")] if torch.cuda.is_available() else []
    return [torch.device("cpu"), *cuda]


def _bench_size(
    n: int, members: int, sampler, repeats: int, preset: str, device: torch.device
) -> dict[str, Any]:
    system = get_system(SYSTEM, (n, n))
    spec = system.spec
    row: dict[str, Any] = {"grid": n}
    row["solver"] = _guard(lambda: _solver(system, repeats, device))
    rate = ladder(SYSTEM)[0]
    shape = latent_shape(spec, rate, 2 ** (len(AE_WIDTHS) - 1))
    backbone = preset_config(preset)
    labels = label_dim(spec)
    channels = len(spec.channel_names)

    def latent() -> dict[str, Any]:
        config = AutoencoderConfig(
            in_channels=channels,
            latent_channels=shape[0],
            widths=AE_WIDTHS,
            blocks_per_level=1,
            periodic=(True, True),
        )
        autoencoder = Autoencoder(config).to(device).eval()
        coder = _autoencoder_seconds(autoencoder, (channels, n, n), members, repeats, device)
        emulator = build_emulator("diffusion", backbone, shape[0], shape[1:], labels, "latent")
        sampling = _sampling(emulator, members, sampler, repeats, device)
        total = coder["encode"] + sampling["seconds_per_member_frame"] + coder["decode"]
        return {
            "latent_shape": list(shape),
            **sampling,
            "encode_seconds_per_frame": coder["encode"],
            "decode_seconds_per_frame": coder["decode"],
            "seconds_per_frame": total,
        }

    def pixel() -> dict[str, Any]:
        config = preset_config(
            preset,
            patch=PIXEL_PATCH,
            width=backbone.width * PIXEL_WIDTH_FACTOR,
            heads=backbone.heads * PIXEL_WIDTH_FACTOR,
        )
        emulator = build_emulator("diffusion", config, channels, (n, n), labels, "pixel")
        sampling = _sampling(emulator, members, sampler, repeats, device)
        return {**sampling, "seconds_per_frame": sampling["seconds_per_member_frame"]}

    row["latent_diffusion"] = _guard(latent)
    row["pixel_diffusion"] = _guard(pixel)
    return row


def _guard(measure: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The measurement, or why it was skipped (memory)."""
    try:
        return measure()
    except _TooLarge as err:
        return {"skipped": str(err)}
    except (RuntimeError, MemoryError) as err:
        if isinstance(err, MemoryError) or "memory" in str(err).lower() or "alloc" in str(err):
            return {"skipped": f"out of memory: {str(err).splitlines()[0][:200]}"}
        raise


class _TooLarge(Exception):
    pass


def _solver(system, repeats: int, device: torch.device) -> dict[str, Any]:
    """Seconds per stored frame of one trajectory, after one untimed frame."""
    spec = system.spec
    conditions = system.validate_conditions([system.default_conditions()])
    generator = [torch.Generator().manual_seed(0)]
    with torch.no_grad():
        state = system.initial_state(conditions, generator, device, torch.float32)
        t = 0.0

        def step() -> None:
            nonlocal state, t
            state = system.advance(state, conditions, t, t + spec.frame_dt)
            t += spec.frame_dt

        seconds, _ = median_seconds(step, repeats=repeats, warmup=1, device=device)
    return {"seconds_per_frame": seconds}


def _autoencoder_seconds(
    model: Autoencoder,
    shape: tuple[int, int, int],
    members: int,
    repeats: int,
    device: torch.device,
) -> dict[str, float]:
    batch = _fitting_rows(members, _conv_bytes(model, shape), device)
    x = torch.randn(batch, *shape, generator=torch.Generator().manual_seed(0)).to(device)
    with torch.inference_mode():
        z = model.encode(x)
        encode, _ = median_seconds(lambda: model.encode(x), repeats=repeats, device=device)
        decode, _ = median_seconds(lambda: model.decode(z), repeats=repeats, device=device)
    return {"encode": encode / batch, "decode": decode / batch}


def _sampling(
    emulator, members: int, sampler, repeats: int, device: torch.device
) -> dict[str, Any]:
    """One NFE on the rows that fit (all `members` if they do), scaled to the sampler."""
    emulator = emulator.to(device).eval()
    tokens = emulator.window * math.prod(g // emulator.config.patch for g in emulator.grid)
    # attention scores of one layer (unfused attention) + activations, float32
    per_row = 4 * tokens * (emulator.config.heads * tokens + 16 * emulator.config.width)
    rows = _fitting_rows(members, per_row, device)
    one_nfe = get_sampler("euler", steps=1)
    context = torch.randn(
        rows, CONTEXT, emulator.channels, *emulator.grid, generator=torch.Generator().manual_seed(0)
    ).to(device)
    label = torch.zeros(rows, emulator.label_dim, device=device)
    noise = torch.Generator(device=device).manual_seed(0)
    with torch.inference_mode():
        seconds, _ = median_seconds(
            lambda: emulator.generate(context, label, sampler=one_nfe, generator=noise),
            repeats=repeats,
            warmup=1,
            device=device,
        )
    frames_per_call = emulator.window - CONTEXT
    per_member_frame = seconds / rows * sampler.nfe() / frames_per_call
    return {
        "tokens_per_window": tokens,
        "timed_members": rows,
        "seconds_per_nfe": seconds,
        "seconds_per_member_frame": per_member_frame,
        "parameters": sum(p.numel() for p in emulator.parameters()),
    }


def _conv_bytes(model: Autoencoder, shape: tuple[int, int, int]) -> int:
    """Rough peak activation bytes of one frame through the autoencoder."""
    return 4 * 6 * model.config.widths[0] * shape[1] * shape[2]


def _fitting_rows(members: int, bytes_per_row: int, device: torch.device) -> int:
    """How many of `members` rows fit in MEMORY_SHARE of free memory (at least 1)."""
    free = _free_bytes(device) * MEMORY_SHARE
    if bytes_per_row > free:
        raise _TooLarge(
            f"needs about {bytes_per_row / 2**30:.1f} GiB for one member, "
            f"{free / 2**30:.1f} GiB usable ({MEMORY_SHARE:.0%} of free memory)"
        )
    return max(1, min(members, int(free // bytes_per_row)))


def _free_bytes(device: torch.device) -> float:
    if device.type == "cuda":
        return float(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    return 8.0 * 2**30


def crossovers(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Where latent diffusion becomes cheaper per frame than the solver and than pixel
    diffusion: the first measured grid where it is, and the crossing N interpolated
    log-log between the two grids around it (None if it never crosses in range)."""

    def series(key: str) -> dict[int, float]:
        return {
            r["grid"]: r[key]["seconds_per_frame"]
            for r in rows
            if "seconds_per_frame" in r.get(key, {})
        }

    latent = series("latent_diffusion")
    return {
        f"latent_vs_{name}": _crossing(latent, series(key))
        for name, key in (("solver", "solver"), ("pixel", "pixel_diffusion"))
    }


def _crossing(faster: dict[int, float], slower: dict[int, float]) -> dict[str, Any]:
    grids = sorted(set(faster) & set(slower))
    ratio = {n: slower[n] / faster[n] for n in grids}  # > 1: `faster` is cheaper
    result: dict[str, Any] = {
        "ratio_by_grid": {str(n): ratio[n] for n in grids},
        "first_grid_cheaper": None,
        "crossing_grid": None,
    }
    for previous, n in zip([None, *grids], grids, strict=False):
        if ratio[n] > 1:
            result["first_grid_cheaper"] = n
            if previous is None:
                result["crossing_grid"] = f"<= {n}"
            else:  # log-log interpolation of the ratio between the two grids
                a, b = math.log(ratio[previous]), math.log(ratio[n])
                fraction = -a / (b - a)
                result["crossing_grid"] = round(
                    math.exp(math.log(previous) + fraction * math.log(n / previous))
                )
            break
    return result

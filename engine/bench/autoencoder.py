"""`latentsim bench autoencoder`: what one autoencoder costs, per system and rate.

Reports parameter counts, forward FLOPs per frame (a machine-independent cost that
stays meaningful on a busy shared CPU), encode and decode milliseconds per frame in
eval mode, and training throughput (frames/s for forward + VMSE + backward) in float32
and under the trainer's bf16 autocast, which pays only on CPUs with bfloat16 instructions.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from engine.autoencoder.config import preset_spatial_factor
from engine.autoencoder.ladder import autoencoder_config, ladder, latent_shape, reachable_rates
from engine.autoencoder.model import Autoencoder
from engine.bench.common import machine_info, median_seconds
from engine.device import resolve_device
from engine.errors import ParameterError
from engine.losses import vmse
from engine.systems import SYSTEM_NAMES, System, get_system
from engine.training.precision import cpu_has_native_bf16


def bench_autoencoder(
    systems: Sequence[str | System] = SYSTEM_NAMES,
    rates: Sequence[float] | None = None,
    *,
    preset: str = "small",
    batch: int = 16,
    repeats: int = 5,
    device: str | None = None,
) -> dict[str, Any]:
    """Time a freshly initialised `preset` autoencoder for each system x rate.

    `rates=None` benches each system's paper ladder, less the rates the preset cannot
    reach (a factor-8 preset has no one-channel 4x4 latent: listed under "skipped"); rates
    given explicitly must all be reachable. `device=None` runs on the CPU and also on CUDA
    when one is available; otherwise only the device given.
    """
    if batch < 1 or repeats < 1:
        raise ParameterError("batch/repeats", (batch, repeats), "integers >= 1")
    devices = _devices(device)
    factor = preset_spatial_factor(preset)
    results, skipped = [], []
    for entry in systems:
        system = get_system(entry) if isinstance(entry, str) else entry
        spec = system.spec
        boundaries = system.boundary_conditions({c.name: c.default for c in spec.choices})
        reachable = reachable_rates(spec, factor)
        for rate in ladder(spec.name) if rates is None else rates:
            if rates is None and rate not in reachable:
                skipped.append({"system": spec.name, "rate": rate, "spatial_factor": factor})
                continue
            config = autoencoder_config(spec, rate, preset, boundaries=boundaries)
            torch.manual_seed(0)
            model = Autoencoder(config)
            shape = (len(spec.channel_names), *spec.grid.shape)
            timings = {
                d.type if d.index is None else str(d): _time(model, shape, batch, repeats, d)
                for d in devices
            }
            results.append(
                {
                    "system": spec.name,
                    "rate": rate,
                    "grid": list(spec.grid.shape),
                    "periodic": list(config.periodic),
                    "latent_shape": list(latent_shape(spec, rate, config.spatial_factor)),
                    "parameters": model.parameter_counts(),
                    "gflops_per_frame": _forward_gflops(model.cpu(), shape),
                    "devices": timings,
                }
            )
    return {
        "benchmark": "autoencoder",
        "preset": preset,
        "batch": batch,
        "repeats": repeats,
        "machine": {**machine_info(devices[-1]), "cpu_native_bf16": cpu_has_native_bf16()},
        "results": results,
        "skipped": skipped,
    }


def _devices(choice: str | None) -> list[torch.device]:
    if choice is not None:
        return [resolve_device(choice)]
    cuda = [torch.device("cuda")] if torch.cuda.is_available() else []
    return [torch.device("cpu"), *cuda]


def _time(
    model: Autoencoder,
    shape: tuple[int, int, int],
    batch: int,
    repeats: int,
    device: torch.device,
) -> dict[str, float]:
    """Median ms/frame for encode and decode, and training frames/s (float32 and bf16
    autocast, timed alternately so both see the same machine load), on one device."""
    model = model.to(device)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch, *shape, generator=generator).to(device)

    def timed(fn: Callable[[], object]) -> float:
        return median_seconds(fn, repeats=repeats, warmup=1, device=device)[0]

    model.eval()
    with torch.inference_mode():
        z = model.encode(x)
        encode = timed(lambda: model.encode(x))
        decode = timed(lambda: model.decode(z))

    def train_step(bf16: bool) -> None:
        model.zero_grad(set_to_none=True)
        with torch.autocast(device.type, torch.bfloat16, enabled=bf16):
            loss = vmse(model(x), x)
        loss.backward()

    model.train()
    train: dict[bool, list[float]] = {False: [], True: []}
    for bf16 in train:
        train_step(bf16)  # warm-up
    for _ in range(repeats):
        for bf16, samples in train.items():
            step = partial(train_step, bf16)
            samples.append(median_seconds(step, repeats=1, warmup=0, device=device)[0])
    model.zero_grad(set_to_none=True)
    return {
        "encode_ms_per_frame": 1e3 * encode / batch,
        "decode_ms_per_frame": 1e3 * decode / batch,
        "train_frames_per_s": batch / statistics.median(train[False]),
        "train_frames_per_s_bf16": batch / statistics.median(train[True]),
    }


def _forward_gflops(model: Autoencoder, shape: tuple[int, int, int]) -> dict[str, float]:
    """Forward FLOPs of one frame (2 per multiply-add), counted by torch."""
    x = torch.zeros(1, *shape)
    counts = {}
    with torch.inference_mode():
        for name, fn, arg in (
            ("encode", model.encode, x),
            ("decode", model.decode, model.encode(x)),
        ):
            counter = FlopCounterMode(display=False)
            with counter:
                fn(arg)
            counts[name] = counter.get_total_flops() / 1e9
    return counts

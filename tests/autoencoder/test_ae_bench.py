"""The autoencoder benchmark on a stand-in system (no solver needed)."""

from __future__ import annotations

import json

import pytest
import torch
from ae_specs import make_spec

from engine.autoencoder import Autoencoder, autoencoder_config
from engine.bench.autoencoder import bench_autoencoder
from engine.errors import ParameterError
from engine.systems.base import System


class StandIn(System):
    """Rayleigh-Benard's spec and boundaries on a small grid; never simulated."""

    default_grid = (32, 16)
    default_extent = (2.0, 1.0)

    def __init__(self):
        super().__init__()
        self.spec = make_spec("rayleigh_benard", grid=self.grid.shape)

    def boundary_conditions(self, choices):
        return ("periodic", "wall")

    def initial_state(self, conditions, generators, device, dtype):
        raise AssertionError("the benchmark must not run the solver")

    advance = observe = initial_state


def conv_flops(model: Autoencoder, x: torch.Tensor, part: str) -> float:
    """2 x multiply-adds of every convolution, counted from the layer shapes."""
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        total += 2 * output.numel() * module.in_channels * module.kernel_size[0] ** 2

    handles = [
        m.register_forward_hook(hook) for m in model.modules() if isinstance(m, torch.nn.Conv2d)
    ]
    with torch.no_grad():
        getattr(model, part)(x)
    for handle in handles:
        handle.remove()
    return total / 1e9


def test_bench_autoencoder_reports_costs():
    system = StandIn()
    result = bench_autoencoder([system], [64, 1024], batch=2, repeats=1, device="cpu")
    json.dumps(result, allow_nan=False)
    assert result["benchmark"] == "autoencoder" and result["preset"] == "small"
    assert [(r["system"], r["rate"]) for r in result["results"]] == [
        ("rayleigh_benard", 64),
        ("rayleigh_benard", 1024),
    ]
    for entry, channels in zip(result["results"], (16, 1), strict=True):
        assert entry["latent_shape"] == [channels, 2, 1]
        assert entry["periodic"] == [True, False]
        config = autoencoder_config(system.spec, entry["rate"], boundaries=("periodic", "wall"))
        model = Autoencoder(config)
        assert entry["parameters"] == model.parameter_counts()
        x = torch.zeros(1, 4, 32, 16)
        flops = entry["gflops_per_frame"]
        assert abs(flops["encode"] - conv_flops(model, x, "encode")) < 1e-3 * flops["encode"]
        z = model.encode(x)
        assert abs(flops["decode"] - conv_flops(model, z, "decode")) < 1e-3 * flops["decode"]
        timings = entry["devices"]["cpu"]
        assert set(timings) == {
            "encode_ms_per_frame",
            "decode_ms_per_frame",
            "train_frames_per_s",
            "train_frames_per_s_bf16",
        }
        assert all(v > 0 for v in timings.values())
    assert isinstance(result["machine"]["cpu_native_bf16"], bool)


def test_bench_autoencoder_skips_ladder_rates_the_preset_cannot_reach():
    result = bench_autoencoder(
        ["euler_quadrants"], preset="wide8", batch=1, repeats=1, device="cpu"
    )
    assert [r["rate"] for r in result["results"]] == [80, 320]
    assert result["skipped"] == [{"system": "euler_quadrants", "rate": 1280, "spatial_factor": 8}]
    with pytest.raises(ParameterError, match="rate=1280"):
        bench_autoencoder(["euler_quadrants"], [1280], preset="wide8", batch=1, repeats=1)

"""`latentsim bench emulator` on a tiny backbone: the documented keys, positive timings,
network evaluations per frame from each sampler's definition, and FLOPs that match an
independent count (every nn.Linear's 2·in·out per row, plus the two attention matmuls)."""

from __future__ import annotations

import json

import pytest
import torch

from engine.bench import emulator as bench
from engine.cli import main
from engine.emulator import build_emulator, preset_config
from engine.emulator.config import PRESETS
from engine.errors import ParameterError, UnknownNameError

TINY = {"width": 32, "depth": 1, "heads": 2, "cond_dim": 32}
ROW_KEYS = {
    "members",
    "nfe_per_call",
    "nfe_per_frame",
    "seconds_per_call",
    "seconds_per_member_frame",
    "gflop_per_member_frame",
    "achieved_gflop_per_s",
    "fraction_of_matmul_peak",
}


def linear_and_attention_flops(kind: str, patch: int, channels: int, grid) -> int:
    """FLOPs of one evaluation of a batch of one window, counted from the layer shapes."""
    config = preset_config("small", **TINY, patch=patch)
    model = build_emulator(kind, config, channels, grid, 1, "latent" if patch == 1 else "pixel")
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        rows = inputs[0].numel() // module.in_features
        total += 2 * rows * module.in_features * module.out_features

    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            module.register_forward_hook(hook)
    context, label = torch.zeros(1, 1, channels, *grid), torch.zeros(1, 1)
    with torch.no_grad():
        if kind == "diffusion":
            model.generate(context, label, sampler=bench.get_sampler("euler", steps=1))
        else:
            model.generate(context, label)
    tokens = config.window * grid[0] * grid[1] // patch**2
    return total + config.depth * 4 * tokens**2 * config.width  # q·k and attention·v


def test_bench_emulator_reports_costs_per_frame():
    result = bench.bench_emulator(
        samplers=("ab", "heun"),
        steps=(2,),
        members=(1, 2),
        repeats=1,
        backbone_overrides=TINY,
        compare_members=2,
        matmul_size=128,
    )
    json.dumps(result, allow_nan=False)
    assert result["benchmark"] == "emulator" and "weights" in result["note"]
    assert result["backbone"]["width"] == 32 and result["context_frames"] == 1
    assert result["matmul_peak"]["gflop_per_s"] > 0 and len(result["load_average"]) == 3
    (entry,) = result["results"]
    assert (entry["system"], entry["rate"], entry["latent_shape"]) == ("kolmogorov", 48, [16, 4, 4])
    assert entry["tokens_per_window"] == 80
    assert [(r["sampler"], r["steps"], r["members"]) for r in entry["diffusion"]] == [
        ("ab", 2, 1),
        ("heun", 2, 1),
        ("ab", 2, 2),
        ("heun", 2, 2),
    ]
    latent_flops = linear_and_attention_flops("diffusion", 1, 16, (4, 4))
    for row in entry["diffusion"]:
        assert set(row) == ROW_KEYS | {"sampler", "steps"}
        assert row["seconds_per_call"] > 0 and row["achieved_gflop_per_s"] > 0
        # AB: one evaluation per step; Heun: two. Four frames per call (c = 1, L = 5).
        per_step = 1 if row["sampler"] == "ab" else 2
        assert row["nfe_per_frame"] == per_step * 2 / 4
        expected = latent_flops * row["nfe_per_call"] / 4 / 1e9
        assert row["gflop_per_member_frame"] == pytest.approx(expected, rel=1e-9)
    assert [r["members"] for r in entry["deterministic"]] == [1, 2]
    for row in entry["deterministic"]:
        assert set(row) == ROW_KEYS and row["nfe_per_frame"] == 0.25
        assert row["seconds_per_member_frame"] > 0
    compared = entry["latent_vs_pixel"]
    # The first sampler at the largest step count, reusing that row of the latent table.
    assert (compared["sampler"], compared["steps"], compared["members"]) == ("ab", 2, 2)
    assert compared["latent"] == {
        k: v for k, v in entry["diffusion"][2].items() if k not in ("sampler", "steps")
    }
    # The paper's 16-pixel patches: as many tokens per frame as the x16 latent grid.
    assert compared["patch"] == 16 and compared["pixel_tokens_per_window"] == 5 * 4 * 4
    pixel_flops = linear_and_attention_flops("diffusion", 16, 3, (64, 64))
    assert compared["pixel"]["gflop_per_member_frame"] == pytest.approx(
        pixel_flops * 2 / 4 / 1e9, rel=1e-9
    )
    assert compared["decode_seconds_per_frame"] > 0 and compared["decode_gflop_per_frame"] > 0
    latent = compared["latent_seconds_per_member_frame_with_decoding"]
    assert latent == pytest.approx(
        compared["latent"]["seconds_per_member_frame"] + compared["decode_seconds_per_frame"]
    )
    assert compared["pixel_over_latent_time"] == pytest.approx(
        compared["pixel"]["seconds_per_member_frame"] / latent
    )


def test_cli_bench_emulator_writes_json(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(PRESETS, "compact", TINY)
    monkeypatch.setattr(bench, "MATMUL_SIZE", 128)
    out = tmp_path / "bench.json"
    code = main(
        [
            "bench",
            "emulator",
            "--members",
            "1",
            "--steps",
            "2",
            "--samplers",
            "euler",
            "--repeats",
            "1",
            "--threads",
            "1",
            "--output",
            str(out),
        ]
    )
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert json.loads(out.read_text()) == printed
    assert printed["matmul_peak"]["size"] == 128 and printed["backbone"]["width"] == 32
    assert printed["machine"]["torch_threads"] == 1


def test_bad_bench_options_are_refused():
    with pytest.raises(ParameterError, match=r"members=\[0\]"):
        bench.bench_emulator(members=(0,))
    with pytest.raises(UnknownNameError, match="sampler 'rk9'"):
        bench.bench_emulator(samplers=("rk9",))

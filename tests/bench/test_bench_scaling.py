"""`latentsim bench scaling` on tiny grids: the JSON's shape, skipped sizes, crossings, plot."""

from __future__ import annotations

import json

import pytest

import engine.bench.scaling as scaling
from engine.bench.scaling import bench_scaling, crossovers
from engine.cli import main
from engine.errors import ParameterError


def test_each_grid_has_solver_latent_and_pixel_costs():
    result = bench_scaling([32, 64], members=2, steps=2, repeats=1, device="cpu")
    rows = result["devices"]["cpu"]["rows"]
    assert [r["grid"] for r in rows] == [32, 64]
    for row in rows:
        latent = row["latent_diffusion"]
        assert latent["latent_shape"][1:] == [row["grid"] // 32] * 2  # the paper's x32
        assert latent["seconds_per_frame"] == pytest.approx(
            latent["encode_seconds_per_frame"]
            + latent["seconds_per_member_frame"]
            + latent["decode_seconds_per_frame"]
        )
        assert row["pixel_diffusion"]["tokens_per_window"] == 5 * (row["grid"] // 16) ** 2
        assert row["solver"]["seconds_per_frame"] > 0
    assert set(result["devices"]["cpu"]["crossovers"]) == {"latent_vs_solver", "latent_vs_pixel"}


def test_a_grid_that_does_not_fit_in_memory_is_reported_and_skipped(monkeypatch):
    monkeypatch.setattr(scaling, "_free_bytes", lambda device: 1e5)
    row = bench_scaling([32], members=2, steps=1, repeats=1, device="cpu")["devices"]["cpu"][
        "rows"
    ][0]
    assert "GiB" in row["pixel_diffusion"]["skipped"]
    assert "skipped" in row["latent_diffusion"]


def test_crossings_are_interpolated_log_log_between_grids():
    def row(n, solver, latent, pixel):
        return {
            "grid": n,
            "solver": {"seconds_per_frame": solver},
            "latent_diffusion": {"seconds_per_frame": latent},
            "pixel_diffusion": {"seconds_per_frame": pixel},
        }

    found = crossovers([row(64, 1.0, 2.0, 4.0), row(256, 8.0, 4.0, 40.0)])
    assert found["latent_vs_solver"]["first_grid_cheaper"] == 256
    assert found["latent_vs_solver"]["crossing_grid"] == 128  # ratio 0.5 -> 2: the middle
    assert found["latent_vs_pixel"]["crossing_grid"] == "<= 64"
    none = crossovers([row(64, 1.0, 2.0, 1.0)])
    assert none["latent_vs_solver"]["crossing_grid"] is None


def test_bad_sizes_are_refused_and_the_plot_is_redrawn_from_json(tmp_path, capsys):
    with pytest.raises(ParameterError, match="multiples of 32"):
        bench_scaling([100])
    data = tmp_path / "scaling.json"
    assert (
        main(
            [
                "bench",
                "scaling",
                "--sizes",
                "32",
                "--members",
                "2",
                "--steps",
                "1",
                "--repeats",
                "1",
                "--device",
                "cpu",
                "--output",
                str(data),
            ]
        )
        == 0
    )
    assert json.loads(data.read_text())["benchmark"] == "scaling"
    capsys.readouterr()
    assert (
        main(
            ["bench", "scaling", "--from-json", str(data), "--plot", str(tmp_path / "scaling.png")]
        )
        == 0
    )
    assert (tmp_path / "scaling.png").stat().st_size > 10_000

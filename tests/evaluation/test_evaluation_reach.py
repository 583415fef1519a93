"""`latentsim diagnose-spread`: the split of ensemble spread by the output layer's reach."""

from __future__ import annotations

import json
import re

import pytest
import torch
from evaluation_zoo import SYSTEM

from engine.cli import main
from engine.evaluation.reach import split_variance

MEMBERS = 16


def test_split_variance_separates_a_known_span():
    generator = torch.Generator().manual_seed(0)
    basis, _ = torch.linalg.qr(torch.randn(40, 8, generator=generator, dtype=torch.float64))
    inside = torch.randn(20000, 8, generator=generator, dtype=torch.float64) * 2.0 @ basis.T
    outside = torch.randn(20000, 40, generator=generator, dtype=torch.float64) * 0.5
    outside -= outside @ basis @ basis.T  # remove its in-span part
    split = split_variance(inside + outside, basis)
    assert split["inside_per_direction"] == pytest.approx(4.0, rel=0.02)
    assert split["outside_per_direction"] == pytest.approx(0.25, rel=0.02)


def test_edm_spread_outside_the_reach_is_unit_noise_whatever_the_weights(
    data_root, zoo_root, tmp_path
):
    """The tiny pixel diffusion model (4x4x3 = 48 values per token, width 12, random
    weights): members differ by unit-variance noise in the 36 unreachable directions, so
    (member − mean) has variance (M−1)/M there, as the denoiser's ODE argument predicts."""
    output = tmp_path / "spread.json"
    code = main(
        [
            "diagnose-spread",
            f"{SYSTEM}-diffusion-pixel",
            "--assets",
            str(zoo_root),
            "--data",
            str(data_root),
            "--members",
            str(MEMBERS),
            "--starts",
            "0",
            "3",
            "--device",
            "cpu",
            "--output",
            str(output),
        ]
    )
    assert code == 0
    result = json.loads(output.read_text())
    assert (result["values_per_token"], result["reachable_directions"]) == (48, 12)
    assert result["prediction"] == "edm"
    for start in ("0", "3"):
        spread = result["by_start_frame"][start]["member_minus_mean"]
        assert spread["outside_per_direction"] == pytest.approx((MEMBERS - 1) / MEMBERS, rel=0.1)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--members", "1"], "members=1.*>= 2"),
        (["--starts", "7"], r"start=7.*0\.\.6"),
        (["--trajectory", "9"], r"trajectory=9.*0\.\.2"),
    ],
)
def test_bad_input_names_the_value_and_the_range(data_root, zoo_root, capsys, options, message):
    code = main(
        [
            "diagnose-spread",
            f"{SYSTEM}-diffusion-pixel",
            "--assets",
            str(zoo_root),
            "--data",
            str(data_root),
            "--device",
            "cpu",
            *options,
        ]
    )
    assert code == 2
    assert re.search(message, capsys.readouterr().err)


def test_a_deterministic_emulator_has_no_spread(data_root, zoo_root, capsys):
    code = main(
        [
            "diagnose-spread",
            f"{SYSTEM}-deterministic-pixel",
            "--assets",
            str(zoo_root),
            "--data",
            str(data_root),
            "--device",
            "cpu",
        ]
    )
    assert code == 2 and "diffusion" in capsys.readouterr().err

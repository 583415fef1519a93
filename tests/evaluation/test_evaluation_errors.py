"""Bad input is refused before any rollout, naming the value and the valid range."""

from __future__ import annotations

import pytest
from evaluation_zoo import SYSTEM, plan

from engine.cli import main
from engine.errors import ParameterError, UnknownNameError
from engine.evaluation.runner import EvaluationSettings, evaluate
from engine.zoo import load_zoo


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"horizon": 0}, ParameterError, r"horizon=0 is invalid; valid: an integer >= 3"),
        ({"horizon": 2}, ParameterError, r"horizon=2 .*\(one lead per short/mid/long bucket\)"),
        ({"members": 0}, ParameterError, r"members=0 is invalid; valid: an integer >= 1"),
        ({"trajectories": 0}, ParameterError, r"trajectories=0 .* an integer >= 1"),
        ({"context": 0}, ParameterError, r"context=0 .* an integer >= 1"),
        ({"steps": 0}, ParameterError, r"steps=0 .* an integer >= 1"),
        ({"seed": -1}, ParameterError, r"seed=-1 .* an integer >= 0"),
        ({"sampler": "magic"}, UnknownNameError, r"unknown sampler 'magic'; valid choices: ab"),
        ({"device": "tpu"}, ParameterError, r"device='tpu'"),
    ],
)
def test_settings_are_checked(options, error, message):
    with pytest.raises(error, match=message):
        EvaluationSettings(**options)


def test_the_order_only_goes_to_samplers_that_take_one():
    assert EvaluationSettings(sampler="dpmpp", order=2).sampler_options() == {"order": 2}
    assert EvaluationSettings(sampler="euler").sampler_options() == {}


def _evaluate(zoo_root, data_root, systems=(SYSTEM,), models=()):
    return evaluate(
        list(systems),
        EvaluationSettings(card_check=False, device="cpu"),
        zoo=load_zoo(zoo_root),
        data_root=data_root,
        models=models,
        plan=plan(),
        log=lambda line: None,
    )


def test_unknown_systems_and_models_name_the_valid_ones(zoo_root, data_root):
    with pytest.raises(
        UnknownNameError,
        match=r"unknown system 'nope'; valid choices: "
        r"euler_quadrants, kolmogorov, rayleigh_benard",
    ):
        _evaluate(zoo_root, data_root, systems=["nope"])
    with pytest.raises(
        UnknownNameError,
        match=r"unknown zoo model 'kolmogorov-diffusion-ae7'; "
        r"valid choices: kolmogorov-ae12, ",
    ):
        _evaluate(zoo_root, data_root, models=["kolmogorov-diffusion-ae7"])
    with pytest.raises(ParameterError, match=r"model='kolmogorov-ae6' .* an emulator"):
        _evaluate(zoo_root, data_root, models=["kolmogorov-ae6"])
    with pytest.raises(
        ParameterError,
        match=r"a model of rayleigh_benard \(it is a "
        r"kolmogorov model\)",
    ):
        _evaluate(
            zoo_root, data_root, systems=["rayleigh_benard"], models=["kolmogorov-diffusion-ae6"]
        )
    with pytest.raises(ParameterError, match=r"systems=\[\]"):
        _evaluate(zoo_root, data_root, systems=[])


def test_no_available_emulator_is_refused_with_what_is_missing(tmp_path, data_root):
    (tmp_path / "assets").mkdir()
    with pytest.raises(
        ParameterError,
        match=r"available emulators='none for kolmogorov' .*"
        r"\(missing: kolmogorov-deterministic-ae12, ",
    ):
        _evaluate(tmp_path / "assets", data_root)


def test_trajectories_too_short_for_three_buckets_are_refused(tmp_path, zoo_root):
    from engine.data.generate import generate_dataset

    generate_dataset(SYSTEM, tmp_path, 1, 1, 1, n_frames=3, grid=(16, 16), progress=False)
    with pytest.raises(
        ParameterError,
        match=r"horizon=2 .* hold 3 frames, so at most 2 "
        r"after 1 context frame",
    ):
        _evaluate(zoo_root, tmp_path)


def test_cli_reports_errors_on_one_line_with_exit_code_2(capsys, zoo_root, data_root):
    common = ["--assets", str(zoo_root), "--data", str(data_root)]
    assert main(["evaluate", "nope", *common]) == 2
    assert "unknown system 'nope'" in capsys.readouterr().err
    assert main(["evaluate", SYSTEM, "--horizon", "0", *common]) == 2
    assert "horizon=0 is invalid; valid: an integer >= 3" in capsys.readouterr().err
    assert main(["evaluate", SYSTEM, "--members", "0", *common]) == 2
    assert "members=0 is invalid; valid: an integer >= 1" in capsys.readouterr().err
    assert main(["evaluate", "--all", SYSTEM, *common]) == 2
    assert "none together with --all" in capsys.readouterr().err
    assert main(["evaluate", *common]) == 2
    assert "one or more of euler_quadrants, rayleigh_benard, kolmogorov, or --all" in (
        capsys.readouterr().err
    )

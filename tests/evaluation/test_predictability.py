"""The predictability diagnosis: the solver restarted from nearly right first frames."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from engine.cli import main
from engine.data.generate import generate_dataset
from engine.errors import ParameterError
from engine.evaluation.predictability import (
    PredictabilitySettings,
    predictability,
    predictability_table,
)
from engine.stages.testset import load_test_trajectories
from engine.systems import get_system

SETTINGS = PredictabilitySettings(horizon=6, members=3, perturbation=1e-2, seed=1)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    generate_dataset("kolmogorov", root, 0, 0, 2, n_frames=8, batch_size=2, progress=False)
    return root


@pytest.fixture(scope="module")
def report(data_root) -> dict:
    test = load_test_trajectories(data_root / "kolmogorov", 2)
    frame_maps = {
        "identity": lambda frames: frames.clone(),
        "broken": lambda frames: torch.full_like(frames, float("nan")),
    }
    return predictability(get_system("kolmogorov"), test, SETTINGS, frame_maps)


def test_a_restart_from_the_stored_frame_reproduces_the_trajectory(report):
    rows = report["results"]
    for bucket in ("short", "mid", "long"):
        assert rows["restart"][bucket] < 1e-5
        assert rows["identity"][bucket] == pytest.approx(rows["restart"][bucket], abs=1e-7)


def test_perturbed_restarts_drift_and_their_mean_is_no_worse_than_a_member(report):
    rows = report["results"]
    members, mean = rows["perturbed members"], rows["perturbed ensemble mean"]
    for bucket in ("short", "mid", "long"):
        assert members[bucket] > 1e-4  # the noise is 1 % of each field's spread
        # VRMSE is a norm of the error, so the mean's is at most the members' average.
        assert mean[bucket] <= members[bucket] + 1e-7
    # the perturbation grows with lead in a chaotic flow, per lead
    assert members["per_lead"][-1] > members["per_lead"][0]
    assert all(rows["persistence"][b] > members[b] for b in ("short", "mid", "long"))


def test_a_restart_the_solver_refuses_is_counted_not_scored(report):
    broken = report["results"]["broken"]
    assert broken == {"trajectories": 0, "refused": 2}
    assert "| kolmogorov | broken | – | – | – | 0 (2) |" in predictability_table([report])


def test_report_states_its_protocol(report):
    assert report["horizon"] == 6
    assert [b["leads"] for b in report["buckets"]] == [[1, 1], [2, 4], [5, 6]]
    assert report["seeds"] == [2_000_000, 2_000_001]
    assert report["settings"]["perturbation"] == 1e-2


@pytest.mark.parametrize(
    ("field", "value"), [("members", 1), ("perturbation", 0.0), ("horizon", 2)]
)
def test_bad_settings_name_the_value(field, value):
    with pytest.raises(ParameterError, match=field):
        PredictabilitySettings(**{field: value})


def test_cli_writes_json_and_markdown(data_root, tmp_path, capsys):
    out, table = tmp_path / "p.json", tmp_path / "p.md"
    code = main(
        [
            "diagnose-predictability",
            "kolmogorov",
            "--data",
            str(data_root),
            "--no-autoencoders",
            "--trajectories",
            "1",
            "--horizon",
            "4",
            "--members",
            "2",
            "--output",
            str(out),
            "--markdown",
            str(table),
        ]
    )
    assert code == 0
    report = json.loads(out.read_text())
    assert report["trajectories"] == 1
    assert set(report["results"]) == {
        "restart",
        "perturbed members",
        "perturbed ensemble mean",
        "persistence",
    }
    assert "| kolmogorov | persistence |" in table.read_text()
    assert "restart" in capsys.readouterr().out

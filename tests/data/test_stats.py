"""stats.yaml: streaming float64 statistics equal a direct numpy computation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.data.stats import STAT_KEYS, RunningMoments, compute_stats, read_stats, write_stats
from engine.data.well_reader import load_array
from engine.errors import DataFormatError

from .well_files import write_well_style_file


def _direct(values: np.ndarray) -> tuple[float, float, float]:
    """mean, population std, rms over every element, in float64."""
    values = values.astype(np.float64)
    return values.mean(), values.std(), np.sqrt((values**2).mean())


def test_generated_stats_match_numpy_over_the_training_split(toy_dataset: Path) -> None:
    stats = read_stats(toy_dataset / "stats.yaml")
    assert stats == compute_stats(toy_dataset, "train")
    fields = load_array(toy_dataset, "train").fields  # (N, T, C, X, Y)
    deltas = np.diff(fields.astype(np.float64), axis=1)
    for key_suffix, data in (("", fields), ("_delta", deltas)):
        for channel, (name, component) in enumerate(
            [("tracer", None), ("velocity", 0), ("velocity", 1)]
        ):
            mean, std, rms = _direct(data[:, :, channel])
            for key, expected in (("mean", mean), ("std", std), ("rms", rms)):
                value = stats[key + key_suffix][name]
                value = value if component is None else value[component]
                assert value == pytest.approx(expected, rel=1e-10, abs=1e-15), (key, name)
    assert set(stats) == set(STAT_KEYS)
    assert isinstance(stats["mean"]["tracer"], float) and len(stats["std"]["velocity"]) == 2


def test_stats_cover_broadcast_and_constant_fields(tmp_path: Path) -> None:
    write_well_style_file(tmp_path / "a.hdf5", seed=3)
    write_well_style_file(tmp_path / "b.hdf5", n_traj=3, seed=4)
    stats = compute_stats(tmp_path)
    full = load_array(tmp_path).fields  # broadcast to (N, T, C, X, Y)
    channels = [("buoyancy", None), ("obstacle", None), ("profile", None)]
    channels += [("velocity", 0), ("velocity", 1)]
    for channel, (name, component) in enumerate(channels):
        for key, expected in zip(("mean", "std", "rms"), _direct(full[:, :, channel]), strict=True):
            value = stats[key][name] if component is None else stats[key][name][component]
            assert value == pytest.approx(expected, rel=1e-10), (key, name, component)
    # A field that does not vary in time has no delta statistics (as in the_well).
    assert "obstacle" not in stats["mean_delta"] and "profile" in stats["std_delta"]
    profile_delta = np.diff(full[:, :, 2].astype(np.float64), axis=1)
    assert stats["std_delta"]["profile"] == pytest.approx(profile_delta.std(), rel=1e-10)


def test_running_moments_stay_accurate_far_from_zero() -> None:
    rng = np.random.default_rng(0)
    values = 1e8 + rng.standard_normal((50_000, 2))  # E[x^2] - E[x]^2 would lose it all
    running = RunningMoments()
    for block in np.array_split(values, 37):
        running.update(block)
    mean, std, rms = running.result()
    np.testing.assert_allclose(mean, values.mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(std, values.std(axis=0), rtol=1e-8)
    np.testing.assert_allclose(rms, np.sqrt((values**2).mean(axis=0)), rtol=1e-14)


def test_weighted_update_equals_repeating_the_block() -> None:
    block = np.arange(12.0).reshape(6, 2)
    weighted, repeated = RunningMoments(), RunningMoments()
    weighted.update(block, weight=3)
    repeated.update(np.concatenate([block] * 3))
    for a, b in zip(weighted.result(), repeated.result(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-14)


def test_stats_yaml_round_trip_and_validation(tmp_path: Path) -> None:
    stats = {key: {"u": [1.0, 2.0], "p": 0.5} for key in STAT_KEYS}
    write_stats(tmp_path / "stats.yaml", stats)
    assert read_stats(tmp_path / "stats.yaml") == stats
    (tmp_path / "bad.yaml").write_text("mean: {u: 1.0}\n")
    with pytest.raises(DataFormatError, match=r"bad\.yaml: statistics lack std"):
        read_stats(tmp_path / "bad.yaml")

"""Tiny real datasets for every registered system, read by the_well and by our reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from the_well.data import WellDataset

from engine.cli import main
from engine.data.generate import SPLIT_SEED_OFFSETS, generate_dataset, metadata_path
from engine.data.stats import STAT_KEYS, read_stats
from engine.data.well_reader import BC_CODES, load_array, open_well
from engine.systems import SYSTEM_NAMES, get_system

GRIDS = {"rayleigh_benard": (32, 16)}  # keep RB's 2:1-ish aspect; the rest run at 16x16
N_FRAMES = 3


@pytest.mark.parametrize("name", SYSTEM_NAMES)
def test_generated_dataset_is_read_alike_by_the_well(tmp_path: Path, name: str) -> None:
    grid = GRIDS.get(name, (16, 16))
    dataset = generate_dataset(
        name, tmp_path, 2, 2, 2, grid=grid, n_frames=N_FRAMES, seed=11, progress=False
    )
    system = get_system(name, grid)
    metadata = yaml.safe_load(metadata_path(dataset).read_text())
    assert metadata["dataset_name"] == name and metadata["spatial_resolution"] == list(grid)
    assert metadata["channel_names"] == list(system.spec.channel_names)
    stats = read_stats(dataset / "stats.yaml")
    for key in STAT_KEYS:
        assert set(stats[key]) == {f.name for f in system.spec.fields}

    for split in ("train", "test"):
        ours = load_array(dataset, split)
        assert ours.fields.shape == (2, N_FRAMES, len(system.spec.channel_names), *grid)
        assert ours.channel_names == system.spec.channel_names
        first = 11 + SPLIT_SEED_OFFSETS[split]
        assert sorted(ours.seeds.tolist()) == [first, first + 1]
        well = WellDataset(
            path=str(dataset),
            well_split_name=split,
            use_normalization=False,
            n_steps_input=1,
            n_steps_output=1,
        )
        assert len(well) == 2 * (N_FRAMES - 1)
        for index in range(len(well)):
            sample = well[index]
            trajectory, start = divmod(index, N_FRAMES - 1)
            expected = np.moveaxis(ours.fields[trajectory, start : start + 2], 1, -1)
            np.testing.assert_array_equal(
                np.concatenate([sample["input_fields"], sample["output_fields"]]), expected
            )
            choices = {k: str(v[trajectory]) for k, v in ours.choices.items()}
            axes = system.boundary_conditions(choices)
            codes = [[BC_CODES[kind.upper()]] * 2 for kind in axes]
            np.testing.assert_array_equal(sample["boundary_conditions"], codes)
            np.testing.assert_array_equal(ours.bc_codes[trajectory], codes)
            parameters = [ours.parameters[p][trajectory] for p in system.spec.parameter_names]
            np.testing.assert_array_equal(sample["constant_scalars"], np.float32(parameters))

    ds = open_well(dataset, "valid")
    assert ds["seed"].values.min() >= 11 + SPLIT_SEED_OFFSETS["valid"]
    for parameter in system.spec.parameter_names:
        assert ds[parameter].dims == ("sample",)


def test_cli_writes_a_dataset(tmp_path: Path, capsys) -> None:
    arguments = ["generate", "kolmogorov", "--train", "2", "--valid", "1", "--test", "1"]
    arguments += ["--grid", "16", "16", "--frames", "2", "--out", str(tmp_path), "--quiet"]
    assert main(arguments) == 0
    output = capsys.readouterr().out
    assert f"wrote 4 trajectories to {tmp_path / 'kolmogorov'} in " in output
    assert metadata_path(tmp_path / "kolmogorov").is_file()
    assert load_array(tmp_path / "kolmogorov", "train").fields.shape == (2, 2, 3, 16, 16)

"""the_well's own loader reads our generated datasets and sees what our reader sees."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from the_well.data import WellDataset
from the_well.data.normalization import ZScoreNormalization

from engine.data.stats import read_stats
from engine.data.well_reader import load_array, open_well


def _well(dataset: Path, split: str, **kwargs) -> WellDataset:
    return WellDataset(
        path=str(dataset),
        well_split_name=split,
        use_normalization=False,
        n_steps_input=1,
        n_steps_output=1,
        **kwargs,
    )


@pytest.mark.parametrize("split", ["train", "test"])
def test_every_sample_matches_our_reader(toy_dataset: Path, split: str) -> None:
    well = _well(toy_dataset, split)
    ours = load_array(toy_dataset, split)
    n, n_t = ours.fields.shape[:2]
    windows = n_t - 1  # n_steps_input + n_steps_output = 2
    assert len(well) == n * windows
    assert [Path(p).name for p in well.files_paths] == [p.name for p in ours.files]
    assert well.metadata.field_names[0] + well.metadata.field_names[1] == list(ours.channel_names)
    assert well.metadata.constant_scalar_names == ["diffusivity"]
    grid = np.stack(np.meshgrid(ours.coords["x"], ours.coords["y"], indexing="ij"), -1)
    for index in range(len(well)):
        sample = well[index]
        trajectory, start = divmod(index, windows)
        expected = np.moveaxis(ours.fields[trajectory], 1, -1)  # (T, X, Y, C), channels last
        np.testing.assert_array_equal(sample["input_fields"].numpy(), expected[start : start + 1])
        np.testing.assert_array_equal(
            sample["output_fields"].numpy(), expected[start + 1 : start + 2]
        )
        np.testing.assert_array_equal(
            sample["constant_scalars"].numpy(),
            ours.parameters["diffusivity"][trajectory : trajectory + 1].astype(np.float32),
        )
        np.testing.assert_array_equal(
            sample["boundary_conditions"].numpy(), ours.bc_codes[trajectory]
        )
        np.testing.assert_allclose(sample["space_grid"].numpy(), grid, rtol=0, atol=0)
        assert float(sample["output_time_grid"][0] - sample["input_time_grid"][0]) == (
            pytest.approx(float(ours.time[start + 1] - ours.time[start]))
        )
    codes = {tuple(map(tuple, c)) for c in ours.bc_codes.tolist()}
    assert codes == {((2, 2), (2, 2)), ((2, 2), (0, 0))}  # both toy boundary choices occur


def test_z_score_normalisation_reads_our_stats(toy_dataset: Path) -> None:
    well = WellDataset(
        path=str(toy_dataset),
        well_split_name="valid",
        use_normalization=True,
        normalization_type=ZScoreNormalization,
        n_steps_input=1,
        n_steps_output=1,
    )
    stats = read_stats(toy_dataset / "stats.yaml")
    ours = load_array(toy_dataset, "valid")
    mean = np.array([stats["mean"]["tracer"], *stats["mean"]["velocity"]], np.float32)
    std = np.array([stats["std"]["tracer"], *stats["std"]["velocity"]], np.float32)
    expected = (np.moveaxis(ours.fields[0, 0], 0, -1) - mean) / std
    np.testing.assert_allclose(well[0]["input_fields"][0].numpy(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.filterwarnings("ignore:In a future version of xarray:FutureWarning")
def test_the_wells_to_xarray_reads_our_files(toy_dataset: Path) -> None:
    # Files with different BC groups cannot be concatenated by the_well; one choice at a time.
    well = _well(toy_dataset, "train", include_filters=["periodicBC"])
    theirs = well.to_xarray(backend="numpy")
    ours = open_well(toy_dataset, "train")
    ours = ours.isel(sample=np.flatnonzero(ours["boundary"].values == "periodic"))
    np.testing.assert_array_equal(theirs["tracer"].values, ours["tracer"].values)
    np.testing.assert_array_equal(
        theirs["velocity"].values, np.stack([ours["velocity_x"], ours["velocity_y"]], -1)
    )
    np.testing.assert_array_equal(
        theirs["diffusivity"].values, ours["diffusivity"].values.astype(np.float32)
    )

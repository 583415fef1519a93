"""Dataset generation: layout, seeds, metadata, determinism, resuming, bad input."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from engine.data.generate import (
    SPLIT_SEED_OFFSETS,
    Chunk,
    chunk_is_valid,
    generate_dataset,
    metadata_path,
)
from engine.data.well_reader import find_well_files, load_array
from engine.errors import ParameterError, SolverDivergedError

from .conftest import TOY_BATCH, TOY_COUNTS, TOY_SEED
from .toy_system import ToyAdvection


def _all_chunks(dataset: Path) -> list[Path]:
    return sorted(dataset.glob("data/*/*.hdf5"))


def _snapshot(paths: list[Path]) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_ino, p.stat().st_mtime_ns) for p in paths}


def test_layout_seeds_and_conditions(toy_dataset: Path, toy) -> None:
    assert (toy_dataset / "stats.yaml").is_file()
    metadata = yaml.safe_load(metadata_path(toy_dataset).read_text())
    assert metadata_path(toy_dataset).name == "toy_advection.yaml"
    seen: dict[str, set[int]] = {}
    for split, key in (("train", "n_train"), ("valid", "n_valid"), ("test", "n_test")):
        arrays = load_array(toy_dataset, split)
        first = TOY_SEED + SPLIT_SEED_OFFSETS[split]
        expected_seeds = set(range(first, first + TOY_COUNTS[key]))
        seen[split] = set(arrays.seeds.tolist())
        assert seen[split] == expected_seeds and len(arrays.seeds) == TOY_COUNTS[key]
        assert metadata["splits"][split]["seed_range"] == [first, first + TOY_COUNTS[key]]
        for index, seed in enumerate(arrays.seeds.tolist()):
            conditions = toy.sample_conditions(seed)
            assert arrays.choices["boundary"][index] == conditions["boundary"]
            assert arrays.parameters["diffusivity"][index] == np.float32(conditions["diffusivity"])
        for path in arrays.files:  # one boundary choice per file, named like the Well's
            choice = set(load_array(path).choices["boundary"].tolist())
            assert len(choice) == 1 and path.name.startswith(
                f"toy_advection_{choice.pop()}BC_chunk"
            )
            assert load_array(path).fields.shape[0] <= TOY_BATCH
        assert sorted(metadata["splits"][split]["files"]) == [p.name for p in arrays.files]
    assert not (seen["train"] & seen["test"]) and not (seen["train"] & seen["valid"])
    assert metadata["dataset_name"] == "toy_advection"
    assert metadata["field_names"] == {0: ["tracer"], 1: ["velocity_x", "velocity_y"], 2: []}
    assert metadata["constant_scalar_names"] == ["diffusivity"]
    assert metadata["boundary_condition_types"] == ["WALL", "PERIODIC"]
    assert metadata["spatial_resolution"] == [16, 16] and metadata["grid_type"] == "cartesian"
    assert sum(metadata["n_trajectories_per_file"]) == TOY_COUNTS["n_train"]
    assert metadata["n_steps_per_trajectory"] == [5] * metadata["n_files"]
    assert metadata["generator"]["seed"] == TOY_SEED
    assert '"name": "toy_advection"' in metadata["system_spec_json"]


def test_trajectories_do_not_depend_on_their_batch(toy_dataset: Path, toy) -> None:
    arrays = load_array(toy_dataset, "valid")
    for index, seed in enumerate(arrays.seeds.tolist()):
        alone = toy.simulate([toy.sample_conditions(seed)], [seed]).numpy()[0]
        np.testing.assert_array_equal(arrays.fields[index], alone)


def test_rerun_keeps_valid_chunks_and_repairs_the_rest(tmp_path: Path) -> None:
    dataset = generate_dataset(ToyAdvection(), tmp_path, 4, 2, 0, batch_size=2, progress=False)
    reference = {p: load_array(p).fields for p in _all_chunks(dataset)}
    chunks = _all_chunks(dataset)
    truncated, deleted, *kept = chunks
    with open(truncated, "r+b") as handle:
        handle.truncate(1000)
    deleted.unlink()
    stray = dataset / "data" / "train" / "leftover_chunk999.hdf5"
    shutil.copy(kept[0], stray)
    metadata_path(dataset).unlink()
    before = _snapshot(kept)

    generate_dataset(ToyAdvection(), tmp_path, 4, 2, 0, batch_size=2, progress=False)
    assert metadata_path(dataset).is_file()
    assert _snapshot(kept) == before  # valid chunks are not rewritten
    assert not stray.exists()
    assert _all_chunks(dataset) == sorted(reference)
    for path in _all_chunks(dataset):
        np.testing.assert_array_equal(load_array(path).fields, reference[path])

    # Another seed: every chunk is stale (wrong seeds) and regenerated.
    generate_dataset(ToyAdvection(), tmp_path, 4, 2, 0, batch_size=2, seed=50, progress=False)
    assert set(load_array(dataset, "train").seeds.tolist()) == {50, 51, 52, 53}
    assert set(load_array(dataset, "valid").seeds.tolist()) == {1_000_050, 1_000_051}


def test_chunk_validation_checks_seeds_conditions_and_frames(toy_dataset: Path, toy) -> None:
    path = find_well_files(toy_dataset, "test")[0]
    arrays = load_array(path)
    seeds = tuple(arrays.seeds.tolist())
    conditions = tuple(toy.sample_conditions(s) for s in seeds)
    times = toy.spec.frame_times()
    assert chunk_is_valid(Chunk("test", path, seeds, conditions), toy, times)
    swapped = tuple(reversed(seeds))
    assert not chunk_is_valid(Chunk("test", path, swapped, conditions[::-1]), toy, times)
    other = {**conditions[0], "diffusivity": conditions[0]["diffusivity"] * 1.01}
    assert not chunk_is_valid(Chunk("test", path, seeds, (other, *conditions[1:])), toy, times)
    assert not chunk_is_valid(Chunk("test", path, seeds, conditions), toy, times[:-1])
    assert not chunk_is_valid(Chunk("test", path, seeds, conditions), ToyAdvection((32, 16)), times)


def test_parallel_workers_write_the_same_dataset(tmp_path: Path, toy_dataset: Path) -> None:
    parallel = generate_dataset(
        ToyAdvection(),
        tmp_path,
        **TOY_COUNTS,
        seed=TOY_SEED,
        batch_size=TOY_BATCH,
        workers=2,
        progress=False,
    )
    for split in ("train", "valid", "test"):
        ours, theirs = load_array(parallel, split), load_array(toy_dataset, split)
        assert [p.name for p in ours.files] == [p.name for p in theirs.files]
        np.testing.assert_array_equal(ours.fields, theirs.fields)
        np.testing.assert_array_equal(ours.seeds, theirs.seeds)
    assert (parallel / "stats.yaml").read_text() == (toy_dataset / "stats.yaml").read_text()


def test_worker_errors_keep_their_type_and_message() -> None:
    error = SolverDivergedError("toy", 3, {"diffusivity": 0.01}, 0.5, "non-finite tracer")
    rebuilt = pickle.loads(pickle.dumps(error))
    assert isinstance(rebuilt, SolverDivergedError)
    assert str(rebuilt) == str(error) and rebuilt.trajectory == 3 and rebuilt.time == 0.5


class _SlowToy(ToyAdvection):
    """Slow enough that a kill lands mid-generation."""

    def advance(self, *args):
        time.sleep(0.04)
        return super().advance(*args)


def test_killed_generation_leaves_only_valid_files_and_resumes(tmp_path: Path) -> None:
    # A forked child (no re-import of torch) runs the generation; SIGKILL allows no cleanup.
    process = multiprocessing.get_context("fork").Process(
        target=generate_dataset,
        args=(_SlowToy(), tmp_path, 8, 0, 0),
        kwargs={"batch_size": 1, "progress": False},
    )
    process.start()
    train = tmp_path / "toy_advection" / "data" / "train"
    deadline = time.monotonic() + 60
    while len(list(train.glob("*.hdf5"))) < 2 and process.is_alive():
        assert time.monotonic() < deadline, "generation did not start"
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.join()
    assert process.exitcode == -signal.SIGKILL
    dataset = tmp_path / "toy_advection"
    assert not metadata_path(dataset).exists()  # incomplete datasets have no metadata
    survivors = find_well_files(dataset, "train")
    assert 2 <= len(survivors) < 8
    for path in survivors:  # whatever a reader can see is a complete, valid chunk
        assert load_array(path).fields.shape == (1, 5, 3, 16, 16)
    before = _snapshot(survivors)

    generate_dataset(ToyAdvection(), tmp_path, 8, 0, 0, batch_size=1, progress=False)
    assert metadata_path(dataset).is_file()
    assert before.items() <= _snapshot(find_well_files(dataset, "train")).items()
    assert sorted(load_array(dataset, "train").seeds.tolist()) == list(range(8))
    assert not [p for p in train.iterdir() if p.suffix == ".tmp"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_train": -1}, "n_train=-1 is invalid"),
        ({"n_train": 0, "n_valid": 0, "n_test": 0}, "n_train \\+ n_valid \\+ n_test=0"),
        ({"n_valid": 2.5}, "n_valid=2.5"),
        ({"workers": 0}, "workers=0"),
        ({"batch_size": 0}, "batch_size=0"),
        ({"seed": -4}, "seed=-4"),
        ({"n_frames": 1}, "n_frames=1 is invalid; valid: an integer >= 2"),
        ({"grid": (16, 16)}, "grid=\\(16, 16\\) is invalid; valid: None when a System"),
        ({"device": "tpu"}, "device='tpu'"),
    ],
)
def test_bad_input_is_rejected_before_writing(tmp_path: Path, kwargs, message) -> None:
    arguments = {"n_train": 1, "n_valid": 0, "n_test": 0, **kwargs}
    with pytest.raises(ParameterError, match=message):
        generate_dataset(ToyAdvection(), tmp_path / "out", **arguments, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_unwritable_output_is_rejected(tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    with pytest.raises(ParameterError, match=r"out='.*a_file/sub' is invalid; valid: a writable"):
        generate_dataset(ToyAdvection(), blocker / "sub", 1, 0, 0, progress=False)
    assert list(tmp_path.iterdir()) == [blocker]

"""Generate a Well-format dataset for a system: chunked, parallel, resumable.

Layout written under `<root>/<system>/`:

    data/{train,valid,test}/<system>[_<choice tag>]_chunkNNN.hdf5
    stats.yaml          (from the training split)
    <system>.yaml       (metadata, written last: the dataset is complete iff it exists)

Seeds: trajectory i of a split has seed `seed + offset + i` with offsets 0 (train),
1_000_000 (valid) and 2_000_000 (test), so the splits never share a seed and growing one
split never changes another. Each trajectory's conditions come from
`system.sample_conditions(seed)`; trajectories sharing their categorical choices (e.g.
Euler's boundary) are grouped, in seed order, into chunks of `batch_size` simulated
together and written as one file.

Resuming: every chunk file is written atomically, so after an interruption each chunk
either exists completely or not at all. A re-run keeps chunk files that validate
(same system spec, seeds, conditions, frame times and shape, and every dataset reads back
— HDF5 checksums catch damaged data) and regenerates the rest. Files in the split
directories that are not part of the requested dataset are removed, since WellDataset
would read every `*.hdf5` there. Run one generator per dataset directory at a time.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from tqdm import tqdm

from engine import __version__
from engine.data.atomic import atomic_open, remove_stale_temporaries
from engine.data.stats import compute_stats, write_stats
from engine.data.well_reader import BC_CODES, SPLITS, load_array
from engine.data.well_writer import SPEC_ATTR, spec_json, write_well_file
from engine.device import resolve_device
from engine.errors import DataFormatError, ParameterError, check_integer
from engine.systems import System, get_system

SPLIT_SEED_OFFSETS = {"train": 0, "valid": 1_000_000, "test": 2_000_000}
MAX_PER_SPLIT = 1_000_000  # the gap between split seed ranges
MIN_FRAMES = 2  # deltas (stats, one-step training pairs) need two frames
# (train, valid, test) of each system's default dataset: the Well's 80/10/10, sized so each
# generates in well under 10 minutes on 2 cores (`latentsim bench solvers`, docs/systems.md)
# while giving the emulators as many independent trajectories as that allows.
DEFAULT_SPLITS: dict[str, tuple[int, int, int]] = {
    "euler_quadrants": (320, 40, 40),
    "rayleigh_benard": (240, 30, 30),
    "kolmogorov": (400, 50, 50),
}


@dataclass(frozen=True)
class Chunk:
    """One file's worth of trajectories: simulated together, written together."""

    split: str
    path: Path
    seeds: tuple[int, ...]
    conditions: tuple[Mapping[str, Any], ...]


# -- planning ----------------------------------------------------------------------------
def split_seeds(seed: int, counts: Mapping[str, int]) -> dict[str, range]:
    """The disjoint seed range of each split."""
    return {
        s: range(seed + SPLIT_SEED_OFFSETS[s], seed + SPLIT_SEED_OFFSETS[s] + counts[s])
        for s in SPLITS
    }


def _boundary_choices(system: System) -> set[str]:
    """Choices that change the boundary conditions: named `<value>BC` in file names."""
    defaults = {c.name: c.default for c in system.spec.choices}
    reference = system.boundary_conditions(defaults)
    return {
        c.name
        for c in system.spec.choices
        if any(system.boundary_conditions({**defaults, c.name: v}) != reference for v in c.choices)
    }


def chunk_prefix(system: System, choices: Mapping[str, str]) -> str:
    """File-name stem for a choice group, like the Well's `euler_..._periodicBC`."""
    boundary = _boundary_choices(system)
    tags = [
        f"{choices[c.name]}BC" if c.name in boundary else f"{c.name}-{choices[c.name]}"
        for c in system.spec.choices
    ]
    return "_".join([system.name, *tags])


def plan_chunks(
    system: System, root: Path, seeds: Mapping[str, range], batch_size: int
) -> list[Chunk]:
    """Group each split's trajectories by choices (keeping seed order) and cut chunks."""
    chunks = []
    choice_names = [c.name for c in system.spec.choices]
    for split in SPLITS:
        groups: dict[tuple[str, ...], list[tuple[int, dict[str, Any]]]] = {}
        for seed in seeds[split]:
            conditions = system.sample_conditions(seed)
            key = tuple(conditions[name] for name in choice_names)
            groups.setdefault(key, []).append((seed, conditions))
        for key, members in groups.items():
            prefix = chunk_prefix(system, dict(zip(choice_names, key, strict=True)))
            for index, start in enumerate(range(0, len(members), batch_size)):
                batch = members[start : start + batch_size]
                chunks.append(
                    Chunk(
                        split=split,
                        path=root / "data" / split / f"{prefix}_chunk{index:03d}.hdf5",
                        seeds=tuple(s for s, _ in batch),
                        conditions=tuple(c for _, c in batch),
                    )
                )
    # File order is WellDataset's (sorted names), so per-file lists in the metadata match it.
    return sorted(chunks, key=lambda c: (SPLITS.index(c.split), c.path.name))


# -- validating and producing one chunk --------------------------------------------------
def chunk_is_valid(chunk: Chunk, system: System, times: np.ndarray) -> bool:
    """Whether an existing chunk file holds exactly this chunk's trajectories, intact."""
    if not chunk.path.is_file():
        return False
    try:
        arrays = load_array(chunk.path)
    except DataFormatError:
        return False
    info = arrays.infos[0]
    expected_parameters = {
        p.name: np.array([c[p.name] for c in chunk.conditions], dtype=np.float32)
        for p in system.spec.parameters
    }
    return (
        info.dataset_name == system.name
        and info.attrs.get(SPEC_ATTR) == spec_json(system)
        and arrays.seeds is not None
        and arrays.seeds.tolist() == list(chunk.seeds)
        and arrays.fields.shape[1:]
        == (len(times), len(system.spec.channel_names), *system.grid.shape)
        and arrays.time.shape == times.shape
        and bool(np.array_equal(arrays.time, times))
        and arrays.parameters.keys() == expected_parameters.keys()
        and all(
            np.array_equal(arrays.parameters[k].astype(np.float32), v)
            for k, v in expected_parameters.items()
        )
        and all(
            arrays.choices.get(c.name, np.array([])).tolist()
            == [cond[c.name] for cond in chunk.conditions]
            for c in system.spec.choices
        )
        and bool(np.isfinite(arrays.fields).all())
    )


def simulate_chunk(system: System, chunk: Chunk, n_frames: int, device: str) -> Path:
    """Simulate a chunk's trajectories together and write its file atomically."""
    fields = system.simulate(chunk.conditions, chunk.seeds, n_frames=n_frames, device=device)
    return write_well_file(
        chunk.path, system, fields, chunk.conditions, chunk.seeds, system.spec.frame_times(n_frames)
    )


# Worker processes build their system once (from its name, or unpickled when a System
# instance was given) and keep it for every chunk they run.
_WORKER_SYSTEM: System | None = None


def _init_worker(system_source: str | System, grid: Sequence[int] | None) -> None:
    global _WORKER_SYSTEM
    torch.set_num_threads(1)  # workers share the cores; intra-op threads would oversubscribe
    _WORKER_SYSTEM = (
        get_system(system_source, grid) if isinstance(system_source, str) else system_source
    )


def _run_in_worker(chunk: Chunk, n_frames: int, device: str) -> Path:
    assert _WORKER_SYSTEM is not None
    return simulate_chunk(_WORKER_SYSTEM, chunk, n_frames, device)


def _run_chunks(
    system_source: str | System,
    system: System,
    grid: Sequence[int] | None,
    chunks: Sequence[Chunk],
    n_frames: int,
    device: str,
    workers: int,
    done: Callable[[Chunk], None],
) -> None:
    if workers == 1 or len(chunks) <= 1:
        for chunk in chunks:
            simulate_chunk(system, chunk, n_frames, device)
            done(chunk)
        return
    # forkserver, not fork: forking a process whose torch thread pools (or CUDA) are live
    # can deadlock the child. The server only imports torch, so workers start cheaply.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["torch", "engine.data.generate"])
    with concurrent.futures.ProcessPoolExecutor(
        max_workers=min(workers, len(chunks)),
        mp_context=context,
        initializer=_init_worker,
        initargs=(system_source, grid),
    ) as pool:
        futures = {pool.submit(_run_in_worker, c, n_frames, device): c for c in chunks}
        try:
            for future in concurrent.futures.as_completed(futures):
                future.result()
                done(futures[future])
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise


# -- input checks ------------------------------------------------------------------------
def _check_count(name: str, value: Any) -> int:
    """Trajectories per split; its message names the interval as the CLI documents it."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | np.integer)
        or not (0 <= value <= MAX_PER_SPLIT)
    ):
        raise ParameterError(name, value, f"an integer in [0, {MAX_PER_SPLIT}]")
    return int(value)


def _check_writable(root: Path, dataset_dir: Path) -> None:
    """The output root (or its nearest existing ancestor) must be a writable directory."""
    existing = root
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    usable = existing.is_dir() and os.access(existing, os.W_OK | os.X_OK)
    if not usable or (dataset_dir.exists() and not dataset_dir.is_dir()):
        raise ParameterError("out", str(root), f"a writable directory (for {dataset_dir.name}/)")


# -- the dataset -------------------------------------------------------------------------
def metadata_path(dataset_dir: str | os.PathLike[str]) -> Path:
    dataset_dir = Path(dataset_dir)
    return dataset_dir / f"{dataset_dir.name}.yaml"


def generate_dataset(
    system: str | System,
    root: str | os.PathLike[str],
    n_train: int,
    n_valid: int,
    n_test: int,
    *,
    seed: int = 0,
    workers: int = 1,
    batch_size: int = 16,
    grid: Sequence[int] | None = None,
    n_frames: int | None = None,
    device: str = "cpu",
    progress: bool = True,
) -> Path:
    """Generate (or complete) `<root>/<system>/` and return that directory.

    `system` is a registered name (built on `grid`) or a System instance (then `grid`
    must be None). Bad input raises before anything is written.
    """
    if isinstance(system, str):
        instance = get_system(system, grid)
    elif grid is not None:
        raise ParameterError("grid", tuple(grid), "None when a System instance is given")
    else:
        instance = system
    counts = {
        "train": _check_count("n_train", n_train),
        "valid": _check_count("n_valid", n_valid),
        "test": _check_count("n_test", n_test),
    }
    if sum(counts.values()) == 0:
        raise ParameterError("n_train + n_valid + n_test", 0, "at least 1 trajectory")
    workers = check_integer("workers", workers, 1)
    batch_size = check_integer("batch_size", batch_size, 1)
    seed = check_integer("seed", seed, 0)
    if seed + SPLIT_SEED_OFFSETS["test"] + MAX_PER_SPLIT >= 2**63:
        raise ParameterError("seed", seed, f"an integer in [0, {2**63 - 3 * MAX_PER_SPLIT}]")
    resolve_device(device)
    n_frames = instance.spec.n_frames if n_frames is None else n_frames
    n_frames = check_integer("n_frames", n_frames, MIN_FRAMES)
    dataset_dir = Path(root) / instance.name
    _check_writable(Path(root), dataset_dir)

    started = time.perf_counter()
    seeds = split_seeds(seed, counts)
    chunks = plan_chunks(instance, dataset_dir, seeds, batch_size)
    times = instance.spec.frame_times(n_frames)
    metadata_path(dataset_dir).unlink(missing_ok=True)  # incomplete until rewritten
    for split in SPLITS:
        split_dir = dataset_dir / "data" / split
        split_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(split_dir)
    remove_stale_temporaries(dataset_dir)
    _remove_unplanned(dataset_dir, chunks)

    bar = tqdm(total=sum(counts.values()), unit="traj", desc=instance.name, disable=not progress)
    with bar:
        todo = []
        for chunk in chunks:
            if chunk_is_valid(chunk, instance, times):
                bar.update(len(chunk.seeds))
            else:
                chunk.path.unlink(missing_ok=True)
                todo.append(chunk)
        _run_chunks(
            system,
            instance,
            grid,
            todo,
            n_frames,
            device,
            workers,
            done=lambda chunk: bar.update(len(chunk.seeds)),
        )

    if counts["train"]:
        write_stats(dataset_dir / "stats.yaml", compute_stats(dataset_dir, "train"))
    else:
        (dataset_dir / "stats.yaml").unlink(missing_ok=True)
    metadata = build_metadata(
        instance,
        chunks,
        seeds,
        n_frames,
        generator={
            "latentsim_version": __version__,
            "seed": seed,
            "batch_size": batch_size,
            "n_frames": n_frames,
            "grid": list(instance.grid.shape),
            "device": str(device),
            "workers": workers,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "wall_time_s": round(time.perf_counter() - started, 3),
        },
    )
    with atomic_open(metadata_path(dataset_dir)) as handle:
        yaml.safe_dump(metadata, handle, sort_keys=False, default_flow_style=None)
    return dataset_dir


def _remove_unplanned(dataset_dir: Path, chunks: Iterable[Chunk]) -> None:
    planned = {c.path for c in chunks}
    for split in SPLITS:
        for path in (dataset_dir / "data" / split).iterdir():
            if path.suffix in (".hdf5", ".h5") and path not in planned:
                path.unlink()


def build_metadata(
    system: System,
    chunks: Sequence[Chunk],
    seeds: Mapping[str, range],
    n_frames: int,
    generator: Mapping[str, Any],
) -> dict[str, Any]:
    """The `<name>.yaml`: the Well's WellMetadata keys, then our generator record.

    Well keys describe the training split (the Well's describe valid/test files, whose
    sizes match); `splits` has every split's files, counts and seed range.
    """
    spec = system.spec
    per_split = {s: [c for c in chunks if c.split == s] for s in SPLITS}
    choice_names = [c.name for c in spec.choices]
    bc_types = {
        kind.upper()
        for c in chunks
        for kind in system.boundary_conditions({k: c.conditions[0][k] for k in choice_names})
    }
    described = per_split["train"] or next(v for v in per_split.values() if v)
    return {
        "dataset_name": spec.name,
        "n_spatial_dims": 2,
        "spatial_resolution": list(system.grid.shape),
        "scalar_names": [],
        "constant_scalar_names": list(spec.parameter_names),
        "field_names": {
            order: [n for f in spec.fields if f.tensor_order == order for n in f.channel_names]
            for order in range(3)
        },
        "constant_field_names": {order: [] for order in range(3)},
        "boundary_condition_types": sorted(bc_types, key=BC_CODES.__getitem__),
        "n_files": len(described),
        "n_trajectories_per_file": [len(c.seeds) for c in described],
        "n_steps_per_trajectory": [n_frames] * len(described),
        "grid_type": "cartesian",
        "channel_names": list(spec.channel_names),
        "splits": {
            split: {
                "n_trajectories": len(seeds[split]),
                "seed_range": [seeds[split].start, seeds[split].stop],
                "files": [c.path.name for c in per_split[split]],
                "n_trajectories_per_file": [len(c.seeds) for c in per_split[split]],
            }
            for split in SPLITS
        },
        "generator": dict(generator),
        "system_spec_json": spec_json(system),
    }

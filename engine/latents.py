"""The latent cache: a dataset's trajectories encoded once by one autoencoder.

Emulators train on windows of latents, so encoding happens once per (dataset, autoencoder)
rather than at every step. A cache file records the sha256 of the autoencoder weights and
of the dataset's metadata; a cache that no longer matches either is rebuilt, never reused.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from engine.autoencoder.model import Autoencoder
from engine.data.atomic import atomic_path
from engine.data.generate import metadata_path
from engine.data.well_reader import SPLITS, load_array
from engine.errors import DataFormatError, ParameterError
from engine.hashing import file_sha256
from engine.model_files import load_autoencoder, model_paths
from engine.preprocessing import Preprocessing

FORMAT = "latentsim-latents"
FORMAT_VERSION = 1


@dataclass
class LatentArrays:
    """One split's latents with what an emulator needs to condition on them."""

    latents: np.ndarray  # (N, T, C, h, w) float32
    parameters: dict[str, np.ndarray]  # name -> (N,) float64
    choices: dict[str, np.ndarray]  # name -> (N,) str
    seeds: np.ndarray  # (N,) int64
    time: np.ndarray  # (T,)
    attrs: dict[str, Any]


def cache_path(dataset: Path, autoencoder_name: str, split: str) -> Path:
    return dataset / "latents" / autoencoder_name / f"{split}.h5"


@torch.inference_mode()
def encode_frames(
    model: Autoencoder, preprocessing: Preprocessing, fields: np.ndarray, *, batch: int = 64
) -> np.ndarray:
    """(N, T, C, X, Y) physical trajectories -> (N, T, c, h, w) latents, batched frames."""
    device = next(model.parameters()).device
    frames = torch.from_numpy(fields).reshape(-1, *fields.shape[2:])
    chunks = [
        model.encode(preprocessing(frames[i : i + batch].to(device))).float().cpu()
        for i in range(0, len(frames), batch)
    ]
    latents = torch.cat(chunks)
    return latents.reshape(*fields.shape[:2], *latents.shape[1:]).numpy()


def encode_dataset(
    model_path: str | os.PathLike[str],
    dataset: str | os.PathLike[str],
    *,
    splits: tuple[str, ...] = SPLITS,
    device: str = "auto",
    batch: int = 64,
) -> dict[str, Path]:
    """Encode each split of `dataset`, reusing caches that still match; returns the paths."""
    dataset = Path(dataset)
    for split in splits:
        if split not in SPLITS:
            raise ParameterError("split", split, f"one of {', '.join(SPLITS)}")
    if not metadata_path(dataset).is_file():
        raise DataFormatError(dataset, "no complete dataset here (metadata file missing)")
    weights, _ = model_paths(model_path)
    model, preprocessing, card = load_autoencoder(model_path, device=device)
    if card["system"] != dataset.name:
        raise DataFormatError(
            model_path, f"autoencoder of {card['system']!r} cannot encode {dataset.name!r} data"
        )
    expected = {
        "autoencoder_sha256": card["weights"]["sha256"],
        "dataset_sha256": file_sha256(metadata_path(dataset)),
    }
    written = {}
    for split in splits:
        path = cache_path(dataset, weights.stem, split)
        if not _matches(path, expected):
            _write_cache(path, model, preprocessing, card, dataset, split, expected, batch)
        written[split] = path
    return written


def _matches(path: Path, expected: dict[str, str]) -> bool:
    try:
        with h5py.File(path, "r") as handle:
            return all(handle.attrs.get(k) == v for k, v in expected.items()) and (
                "latents" in handle
            )
    except (OSError, KeyError):
        return False


def _write_cache(
    path: Path,
    model: Autoencoder,
    preprocessing: Preprocessing,
    card: dict[str, Any],
    dataset: Path,
    split: str,
    expected: dict[str, str],
    batch: int,
) -> None:
    arrays = load_array(dataset, split)
    latents = encode_frames(model, preprocessing, arrays.fields, batch=batch)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as handle:
        handle.attrs.update(
            {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "system": card["system"],
                "split": split,
                "rate": card["rate"],
                "latent_shape": card["latent_shape"],
                **expected,
            }
        )
        handle.create_dataset("latents", data=latents, chunks=(1, *latents.shape[1:]))
        handle.create_dataset("time", data=np.asarray(arrays.time))
        handle.create_dataset("seeds", data=np.asarray(arrays.seeds, dtype=np.int64))
        for name, values in arrays.parameters.items():
            handle.create_dataset(f"parameters/{name}", data=values)
        for name, values in arrays.choices.items():
            handle.create_dataset(f"choices/{name}", data=values.astype("S"))


def load_latents(
    path: str | os.PathLike[str], *, autoencoder_sha256: str | None = None
) -> LatentArrays:
    """Read a cache file, refusing foreign files and caches of another autoencoder."""
    try:
        handle = h5py.File(path, "r")
    except OSError as err:
        raise DataFormatError(path, f"not a readable latent cache ({err})") from err
    with handle:
        if handle.attrs.get("format") != FORMAT:
            raise DataFormatError(path, "not a latentsim latent cache")
        if autoencoder_sha256 is not None and handle.attrs["autoencoder_sha256"] != (
            autoencoder_sha256
        ):
            raise DataFormatError(path, "latents were encoded by a different autoencoder")
        return LatentArrays(
            latents=handle["latents"][...],
            parameters={k: v[...] for k, v in handle.get("parameters", {}).items()},
            choices={k: v[...].astype(str) for k, v in handle.get("choices", {}).items()},
            seeds=handle["seeds"][...],
            time=handle["time"][...],
            attrs=dict(handle.attrs),
        )

"""The model file format: `<name>.safetensors` weights next to a `<name>.json` card.

The card is everything needed to rebuild and trust the weights without the code or run
that produced them: kind, system, compression rate, latent shape, architecture config,
preprocessing constants, training information, and the SHA-256 of the weights file.
(The paper's official code, PolymathicAI/lola, stored none of this per run.)

Weights are only ever read with safetensors, never torch.load or pickle, so a model file
from elsewhere cannot execute code. Both files are written atomically (the weights
first, the card last): a reader sees a complete old or new pair, and a card whose
weights were replaced or damaged afterwards is caught by the hash.

This module knows nothing of any model: each model package saves and loads its own kind
on top of it (engine/autoencoder/files.py, engine/emulator/models.py), so the model
packages can use it without importing each other.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn

from engine.data.atomic import atomic_open
from engine.errors import DataFormatError, ParameterError
from engine.systems.base import SystemSpec

FORMAT = "latentsim-model"
FORMAT_VERSION = 1
WEIGHTS_SUFFIX = ".safetensors"
CARD_SUFFIX = ".json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# How floating-point weights may be stored. Half precision halves the shipped assets; the
# loaders always hand float32 tensors to the model, so storage never changes the compute.
STORAGE_DTYPES = {"float32": torch.float32, "float16": torch.float16}


def model_paths(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """(weights, card) for `dir/name`, `dir/name.json` or `dir/name.safetensors`."""
    path = Path(path)
    stem = path.with_suffix("") if path.suffix in (WEIGHTS_SUFFIX, CARD_SUFFIX) else path
    return stem.with_name(stem.name + WEIGHTS_SUFFIX), stem.with_name(stem.name + CARD_SUFFIX)


def save_model(
    directory: str | os.PathLike[str],
    name: str,
    module_or_state_dict: nn.Module | Mapping[str, torch.Tensor],
    card: Mapping[str, Any],
    *,
    storage_dtype: str = "float32",
) -> Path:
    """Write `<name>.safetensors` and its `<name>.json` card; return the card's path.

    `card` must hold at least "kind" and "system" and be JSON-serialisable; the format,
    its version and the weights' file name, size, SHA-256 and storage dtype are added
    here. With `storage_dtype="float16"` floating-point tensors are rounded to half
    precision on disk (and read back as float32).
    """
    if storage_dtype not in STORAGE_DTYPES:
        raise ParameterError("storage_dtype", storage_dtype, f"one of {', '.join(STORAGE_DTYPES)}")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ParameterError("model name", name, "letters, digits, '.', '_' or '-'")
    missing = [key for key in ("kind", "system") if key not in card]
    if missing:
        raise ParameterError("model card", sorted(card), f"a mapping with keys {missing}")
    reserved = sorted(set(card) & {"format", "format_version", "weights"})
    if reserved:
        raise ParameterError("model card key", reserved[0], "a key other than those set here")
    state = (
        module_or_state_dict.state_dict()
        if isinstance(module_or_state_dict, nn.Module)
        else module_or_state_dict
    )
    stored = STORAGE_DTYPES[storage_dtype]
    tensors = {
        key: (value.to(stored) if value.is_floating_point() else value).detach().cpu().contiguous()
        for key, value in state.items()
    }
    payload = save_safetensors(tensors, metadata={"format": FORMAT})
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    weights_path, card_path = model_paths(directory / name)
    full_card = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        **card,
        "weights": {
            "file": weights_path.name,
            "bytes": len(payload),
            "sha256": hashlib.sha256(payload).hexdigest(),
            "dtype": storage_dtype,
        },
    }
    try:
        text = json.dumps(full_card, indent=1, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ParameterError("model card", "not JSON-serialisable", f"plain data ({err})") from err
    with atomic_open(weights_path, "wb") as handle:
        handle.write(payload)
    with atomic_open(card_path, "w") as handle:
        handle.write(text + "\n")
    return card_path


def load_model_card(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check a model card (format and version), without touching the weights."""
    _, card_path = model_paths(path)
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise DataFormatError(card_path, "no model card here (expected <name>.json)") from err
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataFormatError(card_path, f"unreadable model card: {err}") from err
    if not isinstance(card, dict) or card.get("format") != FORMAT:
        raise DataFormatError(card_path, f"not a {FORMAT} card")
    if card.get("format_version") != FORMAT_VERSION:
        raise DataFormatError(
            card_path,
            f"format_version {card.get('format_version')!r}; this version reads {FORMAT_VERSION}",
        )
    for key in ("kind", "system", "weights"):
        if key not in card:
            raise DataFormatError(card_path, f"model card lacks {key!r}")
    return card


def load_state_dict(
    path: str | os.PathLike[str], expected: Mapping[str, Any] | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors on CPU, card), after checking the card against `expected` and the hash.

    `expected` maps card keys to required values, e.g. {"kind": "autoencoder",
    "system": "kolmogorov", "rate": 192, "latent_shape": (4, 4, 4)}.
    """
    weights_path, card_path = model_paths(path)
    card = load_model_card(card_path)
    check_card(card, expected or {}, card_path)
    try:
        payload = weights_path.read_bytes()
    except FileNotFoundError as err:
        raise DataFormatError(weights_path, "weights file is missing") from err
    except OSError as err:
        raise DataFormatError(weights_path, f"unreadable weights: {err}") from err
    digest = hashlib.sha256(payload).hexdigest()
    if digest != card["weights"].get("sha256"):
        raise DataFormatError(
            weights_path,
            f"SHA-256 {digest[:12]}... does not match the card's "
            f"{str(card['weights'].get('sha256'))[:12]}...: the weights were modified or damaged",
        )
    try:
        tensors = load_safetensors(payload)
    except (SafetensorError, ValueError, RuntimeError) as err:
        raise DataFormatError(weights_path, f"not a valid safetensors file: {err}") from err
    storage_dtype = card["weights"].get("dtype", "float32")
    if storage_dtype not in STORAGE_DTYPES:
        raise DataFormatError(
            card_path, f"weights dtype {storage_dtype!r}; valid: {', '.join(STORAGE_DTYPES)}"
        )
    if storage_dtype != "float32":
        tensors = {
            key: value.float() if value.dtype == STORAGE_DTYPES[storage_dtype] else value
            for key, value in tensors.items()
        }
    return tensors, card


def copy_model(
    source: str | os.PathLike[str],
    destination: str | os.PathLike[str],
    *,
    storage_dtype: str = "float32",
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Copy a verified model file pair to `destination` (a stem), optionally re-stored in
    another dtype, with `extra` card entries added; return the new card's path.

    The zoo publishes its trained models this way: the copy is hashed afresh, so the
    emulators trained afterwards are tied to the exact weights that ship.
    """
    tensors, card = load_state_dict(source)
    kept = {k: v for k, v in card.items() if k not in ("format", "format_version", "weights")}
    kept.update(extra or {})
    destination = Path(destination)
    return save_model(
        destination.parent, destination.name, tensors, kept, storage_dtype=storage_dtype
    )


def load_model_of_kind(
    path: str | os.PathLike[str],
    kind: str,
    required: Sequence[str],
    system: str | SystemSpec | None = None,
) -> tuple[dict[str, torch.Tensor], dict[str, Any], Path]:
    """(tensors, card, card path) of a `kind` model, of `system` if given (name or spec).

    The shared first half of every typed loader: kind and system checked against the
    card, weights hashed, and the keys the loader needs present in the card.
    """
    expected: dict[str, Any] = {"kind": kind}
    if system is not None:
        expected["system"] = system.name if isinstance(system, SystemSpec) else system
    state, card = load_state_dict(path, expected)
    _, card_path = model_paths(path)
    missing = [key for key in required if key not in card]
    if missing:
        raise DataFormatError(card_path, f"{kind} card lacks {', '.join(missing)}")
    return state, card, card_path


def check_card(card: Mapping[str, Any], expected: Mapping[str, Any], where: object) -> None:
    """Raise DataFormatError naming both values for the first expectation the card breaks."""
    for key, value in expected.items():
        if key not in card:
            raise DataFormatError(where, f"model card lacks {key!r} (expected {value!r})")
        wanted = json.loads(json.dumps(value))  # tuples compare as the lists JSON stores
        if card[key] != wanted:
            raise DataFormatError(
                where, f"model card has {key}={card[key]!r}, but {wanted!r} was expected"
            )


def check_tensors(
    loaded: Mapping[str, torch.Tensor], reference: Mapping[str, torch.Tensor], where: Path
) -> None:
    """Same names, shapes and dtypes as the model the card describes."""
    problems = [f"{key} is missing" for key in reference if key not in loaded]
    problems += [f"{key} is unexpected" for key in loaded if key not in reference]
    problems += [
        f"{key} is {list(loaded[key].shape)} {loaded[key].dtype}, "
        f"expected {list(value.shape)} {value.dtype}"
        for key, value in reference.items()
        if key in loaded and (loaded[key].shape != value.shape or loaded[key].dtype != value.dtype)
    ]
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise DataFormatError(
            where, f"weights do not fit the card's config: {'; '.join(problems[:3])}{more}"
        )

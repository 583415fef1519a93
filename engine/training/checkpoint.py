"""Pickle-free, atomic, self-verifying training checkpoints.

Layout: `<run>/checkpoints/step_000001000/` holding
- `model.safetensors`: the model's state dict;
- `optimizer.safetensors`: every optimizer-state tensor, named by its path in the state
  dict ("state.<param>.<name>[.<index>...]", "param_groups.<group>.<name>");
- `rng.safetensors`: RNG states as uint8 tensors (one per generator and rank);
- `meta.json`: step, config, data position, the optimizer state's structure and non-tensor
  values, the model's tensor names/shapes/dtypes, and the SHA-256 of each file above.

Atomicity: a checkpoint is written into a hidden temporary directory, every file is
fsynced, and only then is the directory renamed to its final name (a single `os.replace`)
and the parent directory fsynced. A `step_*` directory therefore either is complete or
does not exist; the previous checkpoints are pruned only after the new one is committed.
Checksums catch what atomic writes cannot (bit rot, truncation by a full disk, hand
edits), so a damaged checkpoint is reported instead of loading as garbage.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, load_model, save_file, save_model
from torch import nn

from engine.errors import DataFormatError, LatentsimError
from engine.hashing import file_sha256
from engine.training.optimizers import portable_state_dict

CHECKPOINT_DIR = "checkpoints"
FORMAT = "latentsim-checkpoint"
VERSION = 2  # 2: any nesting of optimizer state (PSGD-Kron); 1 (AdamW only) still reads
_READABLE_VERSIONS = (1, VERSION)
MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
RNG_FILE = "rng.safetensors"
META_FILE = "meta.json"

_REQUIRED_META = ("step", "files", "model_signature", "optimizer")
_STEP_DIR = re.compile(r"^step_(\d+)$")
_TMP_PREFIX = ".tmp-"
_TRASH_PREFIX = ".trash-"


@dataclass(frozen=True)
class Checkpoint:
    """A verified checkpoint directory: its metadata is parsed and every file's checksum
    matched when it was opened, so the loaders below only fail on a shape mismatch."""

    path: Path
    meta: dict[str, Any]

    @property
    def step(self) -> int:
        return int(self.meta["step"])

    def load_model(self, model: nn.Module) -> None:
        """Load the weights into `model`, refusing a model of another architecture."""
        problems = signature_mismatches(self.meta["model_signature"], model_signature(model))
        if problems:
            raise LatentsimError(
                f"checkpoint {self.path} does not fit this model: {'; '.join(problems[:5])}"
                + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else "")
            )
        device = next((t.device for t in model.state_dict().values()), torch.device("cpu"))
        load_model(model, self.path / MODEL_FILE, strict=True, device=str(device))

    def load_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        tensors = _load_tensors(self.path / OPTIMIZER_FILE)
        layout = self.meta["optimizer"]
        if self.meta["version"] == 1:
            layout = _layout_from_version_1(tensors, layout)
        try:
            state_dict = unflatten_optimizer_state(tensors, layout)
        except ValueError as err:
            raise DataFormatError(self.path / META_FILE, str(err)) from err
        try:
            optimizer.load_state_dict(state_dict)
        except (ValueError, KeyError) as err:
            raise LatentsimError(
                f"checkpoint {self.path}: optimizer state does not fit: {err}"
            ) from err
        params = [p for group in optimizer.param_groups for p in group["params"]]
        for index, saved in state_dict["state"].items():
            optimizer.state[params[index]] = _with_saved_dtypes(
                optimizer.state[params[index]], saved
            )

    def rng_states(self) -> dict[str, torch.Tensor]:
        return _load_tensors(self.path / RNG_FILE)


def model_signature(model: nn.Module) -> dict[str, list[Any]]:
    """Name -> [shape, dtype] of every state-dict entry: what must match to load weights."""
    return {
        name: [list(t.shape), str(t.dtype).removeprefix("torch.")]
        for name, t in model.state_dict().items()
    }


def signature_mismatches(saved: dict[str, list[Any]], current: dict[str, list[Any]]) -> list[str]:
    problems = [f"{name} missing from the model" for name in saved if name not in current]
    problems += [f"{name} not in the checkpoint" for name in current if name not in saved]
    for name in saved.keys() & current.keys():
        (old_shape, old_dtype), (new_shape, new_dtype) = saved[name], current[name]
        if old_shape != new_shape:
            problems.append(f"{name} has shape {old_shape} in the checkpoint, {new_shape} now")
        elif old_dtype != new_dtype:
            problems.append(f"{name} has dtype {old_dtype} in the checkpoint, {new_dtype} now")
    return sorted(problems)


def flatten_optimizer_state(
    state_dict: dict[str, Any],
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer state dict into named tensors and a JSON-ready layout.

    Optimizers keep more than one flat tensor per name: heavyball's PSGD-Kron holds lists
    of (shape, factor) tuples, sets and None per parameter, and tensors in its parameter
    groups. So every container is written as a tagged JSON object that gives its exact
    type back ({"dict": [[key, value], ...]} keeps integer keys, {"tuple": [...]},
    {"set": [...]}, {"tensor": name} for a tensor stored under that name); lists, numbers,
    strings, booleans and None are written as they are. A tensor held in two places (PSGD-
    Kron's step counter is both per-parameter state and a group entry) is stored once and
    both places name it, so it comes back as one tensor.
    """
    tensors: dict[str, torch.Tensor] = {}
    names: dict[int, str] = {}  # id of a tensor already stored -> its name

    def encode(value: Any, name: str) -> Any:
        if isinstance(value, torch.Tensor):
            if id(value) not in names:
                names[id(value)] = name
                tensors[name] = value.detach().cpu().contiguous()
            return {"tensor": names[id(value)]}
        if isinstance(value, dict):
            return {"dict": [[encode(k, ""), encode(v, f"{name}.{k}")] for k, v in value.items()]}
        if isinstance(value, tuple):
            return {"tuple": [encode(v, f"{name}.{i}") for i, v in enumerate(value)]}
        if isinstance(value, set | frozenset):
            return {"set": [encode(v, "") for v in sorted(value, key=repr)]}
        if isinstance(value, list):
            return [encode(v, f"{name}.{i}") for i, v in enumerate(value)]
        if value is None or isinstance(value, bool | int | float | str):
            return value
        raise LatentsimError(
            f"optimizer state {name!r} holds a {type(value).__name__}, which a checkpoint "
            "cannot store (tensors, numbers, strings, None and their containers only)"
        )

    layout = {key: encode(value, key) for key, value in state_dict.items()}
    try:
        json.dumps(layout, allow_nan=False)
    except ValueError as err:
        raise LatentsimError(
            f"optimizer state has a value a checkpoint cannot store as JSON: {err}"
        ) from err
    return tensors, layout


def unflatten_optimizer_state(
    tensors: dict[str, torch.Tensor], layout: dict[str, Any]
) -> dict[str, Any]:
    """Inverse of `flatten_optimizer_state`: the same containers, keys and tensors."""

    def decode(value: Any) -> Any:
        if isinstance(value, list):
            return [decode(v) for v in value]
        if not isinstance(value, dict):
            return value
        ((tag, content),) = value.items() if len(value) == 1 else [(None, None)]
        if tag == "tensor" and content in tensors:
            return tensors[content]
        if tag == "dict":
            return {decode(k): decode(v) for k, v in content}
        if tag == "tuple":
            return tuple(decode(v) for v in content)
        if tag == "set":
            return {decode(v) for v in content}
        raise ValueError(f"unreadable optimizer-state entry {value!r}")

    return {key: decode(value) for key, value in layout.items()}


def _with_saved_dtypes(loaded: Any, saved: Any) -> Any:
    """`loaded` with each tensor that changed dtype replaced by its `saved` original.

    torch's `Optimizer.load_state_dict` casts every floating tensor nested in a parameter's
    state to the parameter's dtype (sparing only entries named "step"); PSGD-Kron keeps
    float64 lower bounds inside lists, and an exact resume needs them float64 again.
    Tensors already right are returned as they are, so shared ones stay shared.
    """
    if isinstance(loaded, torch.Tensor):
        return loaded if loaded.dtype == saved.dtype else saved.to(loaded.device)
    if isinstance(loaded, dict):
        return {key: _with_saved_dtypes(value, saved[key]) for key, value in loaded.items()}
    if isinstance(loaded, list | tuple):
        return type(loaded)(_with_saved_dtypes(a, b) for a, b in zip(loaded, saved, strict=True))
    return loaded


def _layout_from_version_1(tensors: dict[str, torch.Tensor], layout: dict[str, Any]) -> dict:
    """Version 1 (AdamW-only) checkpoints stored "state.<param>.<name>" tensors, plain
    per-parameter scalars and plain groups; rewritten into today's layout so that runs
    started before PSGD-Kron arrived still resume."""
    state: dict[int, dict[str, Any]] = {}
    for key in tensors:
        _, index, name = key.split(".", 2)
        state.setdefault(int(index), {})[name] = {"tensor": key}
    for index, entries in layout["scalars"].items():
        state.setdefault(int(index), {}).update(entries)
    return {
        "state": {
            "dict": [[index, {"dict": list(entries.items())}] for index, entries in state.items()]
        },
        "param_groups": [
            {"dict": [[k, {"tuple": v} if k == "betas" else v] for k, v in group.items()]}
            for group in layout["param_groups"]
        ],
    }


def save_checkpoint(
    root: Path,
    step: int,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    rng: dict[str, torch.Tensor],
    meta: dict[str, Any],
    keep: int,
) -> Path:
    """Atomically write checkpoint `step` under `root`, then keep only the newest `keep`.

    A single writer per run directory is assumed (rank 0); leftovers of a writer that was
    killed mid-way are hidden directories, ignored by readers and removed here.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(root)
    final = root / f"step_{step:09d}"
    tmp = Path(tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{final.name}-", dir=root))
    try:
        save_model(model, str(tmp / MODEL_FILE), force_contiguous=True)
        opt_tensors, opt_layout = flatten_optimizer_state(portable_state_dict(optimizer))
        save_file(opt_tensors, tmp / OPTIMIZER_FILE)
        save_file({k: v.contiguous() for k, v in rng.items()}, tmp / RNG_FILE)
        files = {
            name: _fsync_and_hash(tmp / name) for name in (MODEL_FILE, OPTIMIZER_FILE, RNG_FILE)
        }
        full_meta = {
            "format": FORMAT,
            "version": VERSION,
            **meta,
            "step": step,
            "model_signature": model_signature(model),
            "optimizer": opt_layout,
            "files": files,
        }
        (tmp / META_FILE).write_text(json.dumps(full_meta, indent=1, allow_nan=False))
        _fsync_and_hash(tmp / META_FILE)
        # mkdtemp made the directory private; checkpoints are shared like any run output.
        for file in tmp.iterdir():
            file.chmod(0o644)
        tmp.chmod(0o755)
        _fsync_dir(tmp)
        if final.exists():  # re-reaching a step after resuming from an older checkpoint
            _discard(final)
        os.replace(tmp, final)
        _fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in list_checkpoints(root)[:-keep]:
        _discard(old)
    return final


def list_checkpoints(root: Path) -> list[Path]:
    """Committed checkpoint directories under `root`, oldest first (unverified)."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _STEP_DIR.match(p.name))]
    return [path for _, path in sorted(found)]


def open_checkpoint(path: Path) -> Checkpoint:
    """Verify a checkpoint directory (format, completeness, checksums) and open it."""
    path = Path(path)
    meta_path = path / META_FILE
    if not meta_path.is_file():
        raise DataFormatError(path, f"not a checkpoint: {META_FILE} is missing")
    try:
        meta = json.loads(meta_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataFormatError(meta_path, f"unreadable checkpoint metadata ({err})") from err
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise DataFormatError(meta_path, f"not a {FORMAT} file")
    if meta.get("version") not in _READABLE_VERSIONS:
        raise DataFormatError(
            meta_path,
            f"checkpoint version {meta.get('version')!r}; this code reads {_READABLE_VERSIONS}",
        )
    missing = [key for key in _REQUIRED_META if key not in meta]
    if missing:
        raise DataFormatError(meta_path, f"checkpoint metadata lacks {', '.join(missing)}")
    for name, digest in meta["files"].items():
        file = path / name
        if not file.is_file():
            raise DataFormatError(file, "missing from the checkpoint")
        if file_sha256(file) != digest:
            raise DataFormatError(file, "checksum mismatch: the file is corrupt or was modified")
    return Checkpoint(path, meta)


def latest_checkpoint(root: Path) -> tuple[Checkpoint, list[str]]:
    """The newest checkpoint that verifies, and why any newer ones were passed over."""
    problems: list[str] = []
    for path in reversed(list_checkpoints(root)):
        try:
            return open_checkpoint(path), problems
        except DataFormatError as err:
            problems.append(str(err))
    detail = "; ".join(problems) if problems else "there are none"
    raise DataFormatError(root, f"no complete checkpoint to resume from: {detail}")


def load_model_weights(path: Path, model: nn.Module) -> Checkpoint:
    """Load weights from a checkpoint directory, or from the newest one of a run directory."""
    path = Path(path)
    if (path / CHECKPOINT_DIR).is_dir():
        checkpoint, _ = latest_checkpoint(path / CHECKPOINT_DIR)
    else:
        checkpoint = open_checkpoint(path)
    checkpoint.load_model(model)
    return checkpoint


def _load_tensors(file: Path) -> dict[str, torch.Tensor]:
    try:
        # Cloned: the optimizer updates its state in place, which must not touch the file.
        return {k: v.clone() for k, v in load_file(file).items()}
    except (SafetensorError, OSError) as err:
        raise DataFormatError(file, f"unreadable safetensors file ({err})") from err


def _fsync_and_hash(file: Path) -> str:
    digest = file_sha256(file)
    with file.open("rb") as handle:
        os.fsync(handle.fileno())
    return digest


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _discard(path: Path) -> None:
    """Rename first, then delete: a half-deleted directory never keeps a `step_*` name."""
    trash = path.with_name(f"{_TRASH_PREFIX}{path.name}-{os.urandom(6).hex()}")
    os.replace(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


def _remove_leftovers(root: Path) -> None:
    for path in root.iterdir():
        if path.name.startswith((_TMP_PREFIX, _TRASH_PREFIX)):
            shutil.rmtree(path, ignore_errors=True)

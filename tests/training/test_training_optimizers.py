"""The optimiser choice: PSGD-Kron trains, and its nested state survives a checkpoint
exactly; checkpoints written before it existed (version 1, AdamW) still resume."""

from __future__ import annotations

import json
from pathlib import Path

import heavyball
import pytest
import torch
from safetensors.torch import save_file
from tiny_task import TinyNet, loss_fn, make_config, make_source

import engine.training.checkpoint as ckpt
from engine.errors import DataFormatError
from engine.hashing import file_sha256
from engine.training import Trainer, read_log


def trainer_for(run_dir: Path, **overrides) -> Trainer:
    torch.manual_seed(0)
    config = make_config(**{"steps": 60, "checkpoint_every": 0, "log_every": 10, **overrides})
    return Trainer(TinyNet(), loss_fn, make_source(), config, run_dir, progress=False)


def checkpointed(run_dir: Path, steps: int, **overrides) -> tuple[Trainer, Path]:
    """A trainer after `steps` steps, and the checkpoint it saved there."""
    trainer = trainer_for(run_dir, **overrides)
    trainer.fit(until=steps)
    return trainer, trainer.save_checkpoint()


def assert_loads_back(path: Path, saved: dict, run_dir: Path, **overrides) -> None:
    """The checkpoint at `path` gives a fresh optimizer exactly the state `saved`."""
    fresh = trainer_for(run_dir, **overrides)
    ckpt.open_checkpoint(path).load_optimizer(fresh.optimizer)
    assert_same_structure(fresh.optimizer.state_dict(), saved)


def assert_same_structure(loaded: object, saved: object, where: str = "") -> None:
    """Equal values of the same types all the way down (tensors: equal bits and dtype)."""
    assert type(loaded) is type(saved), where
    if isinstance(saved, torch.Tensor):
        assert loaded.dtype == saved.dtype and torch.equal(loaded, saved), where
    elif isinstance(saved, dict):
        assert set(loaded) == set(saved), where
        for key, value in saved.items():
            assert_same_structure(loaded[key], value, f"{where}.{key}")
    elif isinstance(saved, list | tuple):
        assert len(loaded) == len(saved), where
        for index, (a, b) in enumerate(zip(loaded, saved, strict=True)):
            assert_same_structure(a, b, f"{where}.{index}")
    else:
        assert loaded == saved, where


def kinds_in(value: object) -> set[type]:
    """Every type found in a nested state (what a flat AdamW layout could not hold)."""
    found = {type(value)}
    if isinstance(value, dict):
        value = list(value.keys()) + list(value.values())
    if isinstance(value, list | tuple | set):
        for item in value:
            found |= kinds_in(item)
    return found


def test_psgd_kron_learns_the_tiny_task(tmp_path: Path) -> None:
    trainer = trainer_for(tmp_path, optimizer="psgd_kron")
    trainer.fit()
    losses = [e["loss"] for e in read_log(tmp_path) if e["event"] == "train"]
    assert isinstance(trainer.optimizer, heavyball.PSGDKron)
    assert losses[-1] < 0.5 * losses[0]


def test_psgd_kron_state_round_trips_with_its_types(tmp_path: Path) -> None:
    trainer, path = checkpointed(tmp_path, 5, optimizer="psgd_kron")
    saved = trainer.optimizer.state_dict()
    assert {torch.Tensor, list, tuple, set, dict, type(None)} <= kinds_in(saved["state"])
    assert any(isinstance(v, torch.Tensor) for v in saved["param_groups"][0].values())

    layout = json.loads((path / ckpt.META_FILE).read_text())["optimizer"]
    assert "precond_schedule" not in json.dumps(layout)  # heavyball's pickle stays out
    assert_loads_back(path, saved, tmp_path / "fresh", optimizer="psgd_kron")


def test_version_1_checkpoints_still_resume(tmp_path: Path) -> None:
    trainer, path = checkpointed(tmp_path, 5)
    saved = trainer.optimizer.state_dict()
    # Rewrite the optimizer part the way version 1 stored it: flat tensors, plain groups.
    tensors = {
        f"state.{index}.{name}": value
        for index, entries in saved["state"].items()
        for name, value in entries.items()
    }
    save_file(tensors, path / ckpt.OPTIMIZER_FILE)
    meta = json.loads((path / ckpt.META_FILE).read_text())
    meta["version"] = 1
    meta["optimizer"] = {
        "param_groups": [{**g, "betas": list(g["betas"])} for g in saved["param_groups"]],
        "scalars": {},
    }
    meta["files"][ckpt.OPTIMIZER_FILE] = file_sha256(path / ckpt.OPTIMIZER_FILE)
    (path / ckpt.META_FILE).write_text(json.dumps(meta))
    assert_loads_back(path, saved, tmp_path / "fresh")


def test_unreadable_optimizer_layout_names_the_file_and_entry(tmp_path: Path) -> None:
    trainer, path = checkpointed(tmp_path, 2)
    meta = json.loads((path / ckpt.META_FILE).read_text())
    meta["optimizer"]["state"] = {"frozenset": [1, 2]}
    (path / ckpt.META_FILE).write_text(json.dumps(meta))
    with pytest.raises(DataFormatError, match=r"meta\.json.*unreadable optimizer-state entry"):
        ckpt.open_checkpoint(path).load_optimizer(trainer.optimizer)


def test_a_state_value_a_checkpoint_cannot_hold_is_refused_by_name() -> None:
    state = {"state": {0: {"callback": object()}}, "param_groups": []}
    with pytest.raises(Exception, match=r"state\.0\.callback.*object"):
        ckpt.flatten_optimizer_state(state)

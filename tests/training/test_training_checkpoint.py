"""Checkpoint files: atomic commits, verification, pruning, and no pickle anywhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from tiny_task import TinyNet, loss_fn, make_config, make_source

import engine.training.checkpoint as ckpt
from engine.errors import DataFormatError
from engine.training import Trainer, latest_checkpoint, list_checkpoints, load_model_weights


def make_trainer(run_dir: Path, **overrides) -> Trainer:
    torch.manual_seed(0)
    config = make_config(**{"steps": 20, "checkpoint_every": 0, **overrides})
    return Trainer(TinyNet(), loss_fn, make_source(), config, run_dir, progress=False)


def trained(run_dir: Path, steps: int = 3, **overrides) -> Trainer:
    trainer = make_trainer(run_dir, **overrides)
    for _ in range(steps):
        trainer.train_step()
    return trainer


def test_checkpoint_holds_only_safetensors_and_json(tmp_path: Path) -> None:
    trainer = trained(tmp_path)
    path = trainer.save_checkpoint()
    assert sorted(p.name for p in path.iterdir()) == [
        "meta.json",
        "model.safetensors",
        "optimizer.safetensors",
        "rng.safetensors",
    ]
    for file in path.glob("*.safetensors"):
        with safe_open(file, "pt") as handle:  # parses without any pickle machinery
            assert handle.keys()
    with safe_open(path / "rng.safetensors", "pt") as handle:
        assert sorted(handle.keys()) == ["augment.rank0", "torch_cpu.rank0"]
        assert handle.get_tensor("torch_cpu.rank0").dtype == torch.uint8
    meta = json.loads((path / "meta.json").read_text())
    assert meta["step"] == 3 and meta["data_position"] == {"epoch": 0, "offset": 24}
    assert meta["config"] == trainer.config.to_dict()


def test_optimizer_state_round_trips_exactly(tmp_path: Path) -> None:
    trainer = trained(tmp_path)
    path = trainer.save_checkpoint()
    fresh = make_trainer(tmp_path / "fresh")
    checkpoint = ckpt.open_checkpoint(path)
    checkpoint.load_model(fresh.model)
    checkpoint.load_optimizer(fresh.optimizer)
    saved, loaded = trainer.optimizer.state_dict(), fresh.optimizer.state_dict()
    assert loaded["param_groups"] == saved["param_groups"]  # betas back to a tuple, too
    for index, entries in saved["state"].items():
        for name, value in entries.items():
            assert torch.equal(loaded["state"][index][name], value), (index, name)
            assert loaded["state"][index][name].dtype == value.dtype
    for name, value in trainer.model.state_dict().items():
        assert torch.equal(fresh.model.state_dict()[name], value)


@pytest.mark.parametrize("failing_call", [1, 2, 4])
def test_failed_write_leaves_the_previous_checkpoint_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing_call: int
) -> None:
    """Failures while writing the model, the optimizer, or the metadata file."""
    trainer = trained(tmp_path)
    previous = trainer.save_checkpoint()
    trainer.train_step()

    real, calls = ckpt._fsync_and_hash, []

    def flaky(file: Path) -> str:
        calls.append(file)
        if len(calls) == failing_call:
            raise OSError(28, "No space left on device")
        return real(file)

    monkeypatch.setattr(ckpt, "_fsync_and_hash", flaky)
    with pytest.raises(OSError, match="No space left"):
        trainer.save_checkpoint()

    assert list_checkpoints(tmp_path / "checkpoints") == [previous]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [previous.name]
    checkpoint, problems = latest_checkpoint(tmp_path / "checkpoints")
    assert checkpoint.step == 3 and problems == []


def test_failed_commit_keeps_the_previous_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trainer = trained(tmp_path)
    previous = trainer.save_checkpoint()
    trainer.train_step()

    def broken_replace(*_: object) -> None:
        raise OSError("EIO")

    monkeypatch.setattr(ckpt.os, "replace", broken_replace)
    with pytest.raises(OSError, match="EIO"):
        trainer.save_checkpoint()
    monkeypatch.undo()
    assert list_checkpoints(tmp_path / "checkpoints") == [previous]
    assert latest_checkpoint(tmp_path / "checkpoints")[0].step == 3


def test_leftovers_of_a_killed_writer_are_ignored_then_cleaned(tmp_path: Path) -> None:
    trainer = trained(tmp_path)
    root = tmp_path / "checkpoints"
    partial = root / ".tmp-step_000000003-abc"
    partial.mkdir(parents=True)
    (partial / "model.safetensors").write_bytes(b"\x00" * 10)
    assert list_checkpoints(root) == []
    with pytest.raises(DataFormatError, match="there are none"):
        latest_checkpoint(root)
    trainer.save_checkpoint()
    assert [p.name for p in root.iterdir()] == ["step_000000003"]


def test_only_the_newest_checkpoints_are_kept(tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path, steps=12, checkpoint_every=2, keep_checkpoints=2)
    trainer.fit()
    assert [p.name for p in list_checkpoints(tmp_path / "checkpoints")] == [
        "step_000000010",
        "step_000000012",
    ]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "step_000000010",
        "step_000000012",
    ]


def test_bit_flip_in_a_tensor_is_detected(tmp_path: Path) -> None:
    path = trained(tmp_path).save_checkpoint()
    data = bytearray((path / "model.safetensors").read_bytes())
    data[-3] ^= 0x10  # inside the last weight: still a well-formed safetensors file
    (path / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(DataFormatError, match=r"model\.safetensors: checksum mismatch"):
        ckpt.open_checkpoint(path)
    with pytest.raises(DataFormatError, match=r"no complete checkpoint.*checksum mismatch"):
        load_model_weights(tmp_path, TinyNet())


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: (p / "meta.json").unlink(), "meta.json is missing"),
        (lambda p: (p / "meta.json").write_text("{trunc"), "unreadable checkpoint metadata"),
        (lambda p: (p / "meta.json").write_text('{"format": "x"}'), "not a latentsim-checkpoint"),
        (lambda p: (p / "rng.safetensors").unlink(), "rng.safetensors: missing"),
    ],
)
def test_damaged_checkpoints_give_clear_errors(tmp_path: Path, damage, message: str) -> None:
    path = trained(tmp_path).save_checkpoint()
    damage(path)
    with pytest.raises(DataFormatError, match=message):
        ckpt.open_checkpoint(path)


def test_load_model_weights_from_a_run_directory(tmp_path: Path) -> None:
    trainer = trained(tmp_path)
    trainer.save_checkpoint()
    model = TinyNet()
    checkpoint = load_model_weights(tmp_path, model)
    assert checkpoint.step == 3
    for name, value in trainer.model.state_dict().items():
        assert torch.equal(model.state_dict()[name], value)

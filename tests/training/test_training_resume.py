"""Exact resume (in-process and after a real SIGKILL) and refusal of incompatible resumes."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tiny_task import TinyNet, child_env, command, loss_fn, main, make_config, make_source
from torch import Tensor

from engine.errors import DataFormatError, LatentsimError
from engine.training import Trainer, list_checkpoints, read_log
from engine.training.checkpoint import MODEL_FILE, OPTIMIZER_FILE


def train(run_dir: Path, *, until: int | None = None, resume: bool = False, **overrides):
    torch.manual_seed(0)
    trainer = Trainer(
        TinyNet(width=overrides.pop("width", 16)),
        loss_fn,
        make_source(),
        make_config(**overrides),
        run_dir,
        resume=resume,
        progress=False,
    )
    trainer.fit(until)
    return trainer


def final_files(run_dir: Path) -> dict[str, dict[str, Tensor]]:
    """Weights and optimizer tensors of a run's newest checkpoint."""
    newest = list_checkpoints(run_dir / "checkpoints")[-1]
    return {name: load_file(newest / name) for name in (MODEL_FILE, OPTIMIZER_FILE)}


def assert_bitwise_equal(a: dict[str, dict[str, Tensor]], b: dict[str, dict[str, Tensor]]) -> None:
    for name in a:
        assert a[name].keys() == b[name].keys()
        for key in a[name]:
            assert torch.equal(a[name][key], b[name][key]), f"{name}:{key}"


def train_losses(run_dir: Path) -> list[tuple[int, float]]:
    return [(e["step"], e["loss"]) for e in read_log(run_dir) if e["event"] == "train"]


@pytest.mark.parametrize("optimizer", ["adamw", "psgd_kron"])
def test_stop_and_resume_is_bitwise_identical_to_an_uninterrupted_run(
    tmp_path: Path, optimizer: str
) -> None:
    # Dropout and augmentation on: the torch and augmentation streams must both resume;
    # PSGD-Kron's nested state (Kronecker factors, lower bounds, counters) must too.
    reference = train(tmp_path / "reference", steps=20, optimizer=optimizer)
    train(tmp_path / "resumed", steps=20, until=10, optimizer=optimizer)
    assert [p.name for p in list_checkpoints(tmp_path / "resumed" / "checkpoints")][-1] == (
        "step_000000010"
    )
    resumed = train(tmp_path / "resumed", steps=20, resume=True, optimizer=optimizer)

    assert resumed.step == reference.step == 20
    assert_bitwise_equal(final_files(tmp_path / "resumed"), final_files(tmp_path / "reference"))
    for key, value in reference.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], value)
    assert train_losses(tmp_path / "resumed") == train_losses(tmp_path / "reference")
    assert torch.equal(
        resumed.augment_generator.get_state(), reference.augment_generator.get_state()
    )


def test_sigkilled_run_resumes_to_the_uninterrupted_result(tmp_path: Path) -> None:
    steps = 40
    run_dir = tmp_path / "killed"
    args = ["--steps", str(steps), "--checkpoint-every", "5"]
    main(["--run-dir", str(tmp_path / "reference"), *args])  # the children's code, in-process
    args += ["--run-dir", str(run_dir)]
    child = subprocess.Popen(
        command(*args, "--step-delay", "0.05"), env=child_env(), stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60
        while not list_checkpoints(run_dir / "checkpoints"):
            assert child.poll() is None, child.stderr.read().decode()
            assert time.monotonic() < deadline, "no checkpoint within 60 s"
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait()
        child.stderr.close()
    assert child.returncode == -signal.SIGKILL
    reached = max(e.get("step", 0) for e in read_log(run_dir))
    assert reached < steps  # it was killed mid-run, not after finishing

    subprocess.run(
        command(*args, "--resume"), env=child_env(), check=True, capture_output=True, timeout=60
    )
    assert_bitwise_equal(final_files(run_dir), final_files(tmp_path / "reference"))
    assert train_losses(run_dir) == train_losses(tmp_path / "reference")
    assert [e["event"] for e in read_log(run_dir)].count("resume") == 1


def test_resume_with_another_config_names_the_mismatch(tmp_path: Path) -> None:
    train(tmp_path, steps=20, until=5)
    with pytest.raises(LatentsimError, match=r"batch_size \(checkpoint 8, now 16\)"):
        train(tmp_path, steps=20, batch_size=16, resume=True)
    with pytest.raises(LatentsimError, match=r"steps \(checkpoint 20, now 30\)"):
        train(tmp_path, steps=30, resume=True)
    # Bookkeeping fields may change between sessions.
    assert train(tmp_path, steps=20, log_every=2, resume=True).step == 20


def test_resume_into_another_model_shape_names_the_tensor(tmp_path: Path) -> None:
    train(tmp_path, steps=20, until=5)
    with pytest.raises(LatentsimError, match=r"net.0.weight has shape \[16, 4\] in the checkpoint"):
        train(tmp_path, steps=20, width=32, resume=True)


def test_fresh_start_refuses_to_overwrite_and_resume_needs_a_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="no complete checkpoint to resume from"):
        train(tmp_path / "empty", resume=True)
    train(tmp_path / "used", steps=20, until=5)
    with pytest.raises(LatentsimError, match=r"already holds checkpoints .*resume=True"):
        train(tmp_path / "used", steps=20)


def test_corrupt_newest_checkpoint_falls_back_to_the_previous_one(tmp_path: Path) -> None:
    train(tmp_path / "reference", steps=20)
    run_dir = tmp_path / "run"
    train(run_dir, steps=20, until=10)  # checkpoints at 5 and 10
    newest = list_checkpoints(run_dir / "checkpoints")[-1]
    weights = newest / MODEL_FILE
    weights.write_bytes(weights.read_bytes()[:-7])  # truncated, e.g. by a full disk

    with pytest.warns(UserWarning, match="step_000000010.*checksum mismatch"):
        resumed = train(run_dir, steps=20, resume=True)
    assert resumed.step == 20
    assert_bitwise_equal(final_files(run_dir), final_files(tmp_path / "reference"))
    assert any(e["event"] == "warning" for e in read_log(run_dir))


def test_all_checkpoints_corrupt_is_a_clear_error(tmp_path: Path) -> None:
    train(tmp_path, steps=20, until=5)
    (only,) = list_checkpoints(tmp_path / "checkpoints")
    (only / OPTIMIZER_FILE).write_bytes(b"garbage")
    with pytest.raises(DataFormatError, match=r"optimizer.safetensors: checksum mismatch"):
        train(tmp_path, steps=20, resume=True)


def test_weight_average_resumes_exactly_and_is_what_the_run_delivers(tmp_path: Path) -> None:
    reference = train(tmp_path / "reference", steps=20, ema_decay=0.9)
    train(tmp_path / "resumed", steps=20, until=10, ema_decay=0.9)
    resumed = train(tmp_path / "resumed", steps=20, resume=True, ema_decay=0.9)
    delivered = resumed.result_model.state_dict()
    for key, value in reference.result_model.state_dict().items():
        assert torch.equal(delivered[key], value), key
    assert not torch.equal(delivered["net.0.weight"], resumed.model.state_dict()["net.0.weight"])
    with pytest.raises(LatentsimError, match="ema_decay"):
        train(tmp_path / "resumed", steps=20, resume=True, ema_decay=0.5)

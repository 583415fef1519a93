"""torchrun + DDP (gloo, 2 CPU ranks) against a single process with the same global batch."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from tiny_task import child_env, command, main, make_config

from engine.errors import LatentsimError, ParameterError
from engine.training import EpochSampler, init_distributed, list_checkpoints, read_log
from engine.training.distributed import TORCHRUN_VARIABLES


def test_without_torchrun_variables_the_run_is_single_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in TORCHRUN_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    context = init_distributed("cpu")
    assert (context.rank, context.world_size, context.is_main) == (0, 1, True)
    assert not context.is_distributed and not context.owns_group
    assert context.all_reduce_sum(torch.tensor([2.0])).item() == 2.0
    assert context.broadcast_int(5) == 5
    context.barrier()
    context.destroy()


def test_partial_or_bad_torchrun_environment_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in TORCHRUN_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(LatentsimError, match="LOCAL_RANK, MASTER_ADDR, MASTER_PORT missing"):
        init_distributed("cpu")
    for name, value in (("LOCAL_RANK", "0"), ("MASTER_ADDR", "127.0.0.1"), ("MASTER_PORT", "1")):
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("RANK", "two")
    with pytest.raises(ParameterError, match="RANK='two'"):
        init_distributed("cpu")
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(ParameterError, match=r"RANK=2 is invalid; valid: an integer in \[0, 1\]"):
        init_distributed("cpu")


def test_two_gloo_ranks_match_one_process_and_skip_together(tmp_path: Path) -> None:
    """float64 and no dropout/augmentation: the only difference left is the order of the
    gradient reductions (mean of two half-batch means vs one mean), a few ulps per step.
    A poisoned sample makes the loss infinite on rank 1 only, with finite gradients:
    rank 0 must still skip that step."""
    config = make_config()
    sampler = EpochSampler(64, config.batch_size, config.seed)
    batches = [sampler.next_indices().tolist() for _ in range(config.steps)]
    poison = batches[2][-1]  # the last sample of step 3's global batch: rank 1's half
    skipped_steps = [step for step, batch in enumerate(batches, 1) if poison in batch]
    assert len(skipped_steps) == 3  # once per epoch; other epochs put it on either rank
    args = ["--float64", "--dropout", "0", "--no-augment", "--poison", str(poison)]

    ddp_run, ddp_out = tmp_path / "ddp", tmp_path / "ddp_out"
    launched = subprocess.run(
        command("--run-dir", str(ddp_run), "--export", str(ddp_out), *args, torchrun_ranks=2),
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert launched.returncode == 0, launched.stderr[-3000:]
    main(["--run-dir", str(tmp_path / "single"), "--export", str(tmp_path / "single_out"), *args])

    ranks = [load_file(ddp_out / f"rank{r}.safetensors") for r in range(2)]
    single = load_file(tmp_path / "single_out" / "rank0.safetensors")
    for name, value in single.items():
        assert value.dtype == torch.float64
        assert torch.equal(ranks[0][name], ranks[1][name]), name
        torch.testing.assert_close(ranks[0][name], value, rtol=0, atol=1e-12)
        assert not torch.equal(value, torch.zeros_like(value))
    summaries = [json.loads((ddp_out / f"rank{r}.json").read_text()) for r in range(2)]
    assert summaries == [{"step": 20, "skipped_steps": 3}] * 2

    events = read_log(ddp_run)
    assert [e["step"] for e in events if e["event"] == "skipped"] == skipped_steps
    assert [e["event"] for e in events].count("start") == 1  # rank 1 wrote nothing
    assert events[0]["world_size"] == 2
    newest = list_checkpoints(ddp_run / "checkpoints")[-1]
    with safe_open(newest / "rng.safetensors", "pt") as handle:
        states = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    assert sorted(states) == [f"{s}.rank{r}" for s in ("augment", "torch_cpu") for r in (0, 1)]
    assert not torch.equal(states["torch_cpu.rank0"], states["torch_cpu.rank1"])

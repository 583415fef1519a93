"""The training loop: learning, logging, data order, and non-finite step skipping."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import pytest
import torch
from tiny_task import TinyNet, loss_fn, make_config, make_source, validate_fn
from torch import Tensor, nn

from engine.errors import ParameterError
from engine.training import EpochSampler, TensorDictSource, Trainer, read_log


def make_trainer(run_dir: Path, source: TensorDictSource | None = None, **overrides) -> Trainer:
    torch.manual_seed(0)
    return Trainer(
        TinyNet(),
        loss_fn,
        source or make_source(),
        make_config(**overrides),
        run_dir,
        progress=False,
    )


def snapshot(trainer: Trainer) -> tuple[dict[str, Tensor], dict[int, dict[str, Tensor]]]:
    weights = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    state = trainer.optimizer.state_dict()["state"]
    return weights, {i: {k: v.clone() for k, v in s.items()} for i, s in state.items()}


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], dict):
            assert_same(a[key], b[key])
        else:
            assert torch.equal(a[key], b[key]), key


def test_tiny_model_learns_and_logs_every_quantity(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = make_source()
    trainer = Trainer(
        TinyNet(),
        loss_fn,
        source,
        make_config(steps=60, log_every=10, validate_every=20, checkpoint_every=0),
        tmp_path,
        val_source=source,
        validate_fn=validate_fn,
        progress=False,
    )
    with torch.no_grad():
        untrained = validate_fn(trainer.model.eval(), source)["mse"]
    result = trainer.fit()
    events = read_log(tmp_path)
    train = [e for e in events if e["event"] == "train"]
    validation = [e for e in events if e["event"] == "validation"]

    assert [e["step"] for e in train] == [10, 20, 30, 40, 50, 60]
    assert train[-1]["loss"] < 0.5 * train[0]["loss"]
    assert [e["step"] for e in validation] == [20, 40, 60]
    assert validation[-1]["metrics"]["mse"] < validation[0]["metrics"]["mse"] < untrained
    assert validation[-1]["metrics"]["mse"] < 0.5 * untrained
    assert result.validation == validation[-1]["metrics"]
    for event in train:  # the logged lr is the one the schedule gives the step's update
        assert event["lr"] == pytest.approx(trainer.config.lr_at(event["step"] - 1), rel=1e-15)
        assert event["skipped_steps"] == 0 and event["steps_per_s"] > 0
        assert math.isfinite(event["grad_norm"])
    walls = [e["wall_time"] for e in train]
    assert walls == sorted(walls)
    assert events[0]["event"] == "start" and events[-1]["event"] == "end"
    assert result.step == 60 and result.checkpoint == tmp_path / "checkpoints" / "step_000000060"


def test_optimizer_uses_the_scheduled_learning_rate(tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path, steps=12, warmup_steps=4, lr=1.0)
    expected = [0.25, 0.5, 0.75, 1.0, 1.0]
    for value in expected:
        trainer.train_step()
        assert trainer.optimizer.param_groups[0]["lr"] == value


class PoisonableSource(TensorDictSource):
    """Corrupts the next batch on demand."""

    def __init__(self) -> None:
        super().__init__(make_source().tensors)
        self.poison: str | None = None

    def batch(self, indices: Tensor, generator: torch.Generator) -> dict[str, Tensor]:
        batch = super().batch(indices, generator)
        if self.poison == "nan-input":
            batch["x"] = batch["x"].clone()
            batch["x"][0, 0] = math.nan
        elif self.poison == "bad-gradient":
            batch["bad_gradient"] = torch.ones(())
        return batch


def loss_with_optional_bad_gradient(model: nn.Module, batch: dict[str, Tensor]) -> Tensor:
    loss = loss_fn(model, batch)
    if "bad_gradient" in batch:
        # Finite value (sqrt(0) = 0) but an infinite derivative times 0: NaN gradients.
        loss = loss + (model(batch["x"]).sum() * 0).sqrt()
    return loss


@pytest.mark.parametrize("poison", ["nan-input", "bad-gradient"])
def test_non_finite_step_is_skipped_and_training_continues(tmp_path: Path, poison: str) -> None:
    source = PoisonableSource()
    torch.manual_seed(0)
    trainer = Trainer(
        TinyNet(),
        loss_with_optional_bad_gradient,
        source,
        make_config(steps=10, checkpoint_every=0),
        tmp_path,
        progress=False,
    )
    for _ in range(3):
        trainer.train_step()
    weights, optimizer_state = snapshot(trainer)

    source.poison = poison
    outcome = trainer.train_step()
    assert outcome.skipped and outcome.loss is None and outcome.step == 4
    assert trainer.skipped_steps == 1
    after_weights, after_state = snapshot(trainer)
    assert_same(after_weights, weights)
    assert_same(after_state, optimizer_state)  # Adam's step count did not move either

    source.poison = None
    result = trainer.fit()
    assert result.skipped_steps == 1
    final, _ = snapshot(trainer)
    assert all(torch.isfinite(v).all() for v in final.values())
    assert not torch.equal(final["net.0.weight"], weights["net.0.weight"])
    events = read_log(tmp_path)
    skipped = [e for e in events if e["event"] == "skipped"]
    assert [e["step"] for e in skipped] == [4]
    if poison == "bad-gradient":
        assert math.isfinite(skipped[0]["loss"]) and skipped[0]["grad_norm"] is None
    else:
        assert skipped[0]["loss"] is None
    assert [e["skipped_steps"] for e in events if e["event"] == "train"] == [1, 1]


def test_validation_does_not_shift_the_training_randomness(tmp_path: Path) -> None:
    def validate_with_noise(model: nn.Module, source: TensorDictSource) -> dict[str, float]:
        torch.rand(100)  # a sampler-like consumer of the global RNG
        return validate_fn(model, source)

    runs = []
    for name, validate_every in (("plain", 0), ("validated", 2)):
        torch.manual_seed(0)
        source = make_source()
        trainer = Trainer(
            TinyNet(),
            loss_fn,
            source,
            make_config(steps=8, validate_every=validate_every, checkpoint_every=0),
            tmp_path / name,
            val_source=source,
            validate_fn=validate_with_noise,
            progress=False,
        )
        trainer.fit()
        runs.append(snapshot(trainer)[0])
    assert_same(runs[0], runs[1])


def test_sampler_epochs_are_permutations_and_ranks_split_global_batches() -> None:
    n, batch = 24, 8
    single = EpochSampler(n, batch, seed=5)
    ranks = [EpochSampler(n, batch, seed=5, rank=r, world_size=2) for r in range(2)]
    epoch_indices: list[int] = []
    for _ in range(n // batch):
        global_batch = single.next_indices()
        halves = [sampler.next_indices() for sampler in ranks]
        assert torch.equal(torch.cat(halves), global_batch)
        epoch_indices += global_batch.tolist()
    assert sorted(epoch_indices) == list(range(n))
    next_epoch = single.next_indices()
    assert single.position == (1, batch)
    assert next_epoch.tolist() != epoch_indices[:batch]  # a fresh permutation


def test_sampler_resumes_from_its_position_and_drops_incomplete_tails() -> None:
    reference = EpochSampler(20, 8, seed=1)  # 20 = 2 batches of 8 + a dropped tail of 4
    draws = [reference.next_indices() for _ in range(5)]
    assert reference.position == (2, 8)
    resumed = EpochSampler(20, 8, seed=1, position=(1, 8))
    assert torch.equal(resumed.next_indices(), draws[3])
    assert torch.equal(resumed.next_indices(), draws[4])
    assert not torch.equal(EpochSampler(20, 8, seed=2).next_indices(), draws[0])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_samples": 4, "batch_size": 8}, "at most the training-set size 4"),
        ({"num_samples": 16, "batch_size": 6, "world_size": 4}, "multiple of the world size 4"),
    ],
)
def test_sampler_rejects_impossible_batches(kwargs: dict, message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        EpochSampler(seed=0, **kwargs)


def test_bad_sources_and_losses_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="same number of samples"):
        TensorDictSource({"x": torch.zeros(4, 2), "y": torch.zeros(5, 2)})
    trainer = Trainer(
        TinyNet(),
        lambda model, batch: (model(batch["x"]) - batch["y"]) ** 2,
        make_source(),
        make_config(),
        tmp_path,
        progress=False,
    )
    with pytest.raises(ParameterError, match=r"loss_fn output=\(8, 2\)"):
        trainer.train_step()
    with pytest.raises(ParameterError, match="validate_fn"):
        Trainer(TinyNet(), loss_fn, make_source(), make_config(), tmp_path, val_source=[1])


def test_progress_bar_shows_loss_lr_and_rate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.manual_seed(0)
    config = make_config(steps=6, checkpoint_every=0)
    Trainer(TinyNet(), loss_fn, make_source(), config, tmp_path, progress=True).fit()
    final = capsys.readouterr().err.split("\r")[-1]
    assert "6/6" in final and "step/s" in final
    assert "loss=" in final and f"lr={config.lr_at(5):.3g}" in final


def test_weight_average_is_the_exponential_average_of_the_iterates(tmp_path: Path) -> None:
    decay = 0.8
    trainer = make_trainer(tmp_path, steps=6, checkpoint_every=0, ema_decay=decay)
    average = None
    for _ in range(6):
        trainer.train_step()
        weights = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
        average = (
            weights
            if average is None
            else {k: decay * average[k] + (1 - decay) * weights[k] for k in weights}
        )
    for key, value in trainer.result_model.state_dict().items():
        torch.testing.assert_close(value, average[key], rtol=1e-6, atol=1e-7)


def test_bf16_autocast_trains_float32_weights_with_a_float32_loss(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="bf16 autocast on a CPU without")
        trainer = make_trainer(tmp_path, steps=40, checkpoint_every=0, bf16=True)
    result = trainer.fit()
    assert all(p.dtype == torch.float32 for p in result.model.parameters())
    losses = [e["loss"] for e in read_log(tmp_path) if e["event"] == "train"]
    assert losses[-1] < 0.7 * losses[0]


@pytest.mark.parametrize("native", [True, False])
def test_bf16_on_a_cpu_that_emulates_it_is_said_once(tmp_path: Path, monkeypatch, native) -> None:
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        monkeypatch.setattr(torch.cpu, probe, lambda: native, raising=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        make_trainer(tmp_path / "bf16", steps=4, checkpoint_every=0, bf16=True)
        make_trainer(tmp_path / "fp32", steps=4, checkpoint_every=0)
    said = [w for w in caught if "without bfloat16 instructions" in str(w.message)]
    assert len(said) == (0 if native else 1)
    logged = [e for e in read_log(tmp_path / "bf16") if e["event"] == "warning"]
    assert len(logged) == (0 if native else 1)

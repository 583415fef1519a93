"""The autoregressive loop: bookkeeping, sliding window, members, streaming, divergence."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from rollout_fakes import (
    SKEWED,
    Drift,
    DriftOracle,
    GaussianDiffusion,
    Persistence,
    Poisoned,
    Ramp,
    drift_pipeline,
)

from engine.errors import ParameterError, UnknownNameError
from engine.rollout import (
    RolloutConfig,
    RolloutDivergedError,
    rollout,
    stream_rollout,
    truth_dataset,
)

GRID = (16, 16)


def context_frames(c: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return 1 + torch.rand(c, 3, *GRID, generator=generator)


def test_persistence_reproduces_the_context_with_exact_bookkeeping():
    emulator = Persistence(window=5)
    pipeline = drift_pipeline(emulator, latent=True)
    context = context_frames(2)
    config = RolloutConfig(members=3, context=2, horizon=7)
    stream = stream_rollout(pipeline, context, {"speed": 2.0}, config, context_start=4)
    blocks = list(stream)

    # Deterministic: 3 members are coerced to 1, and the coercion is reported.
    assert stream.config.members == 1
    assert stream.coercions and "members 3 -> 1" in stream.coercions[0]
    # L - c = 3 new frames per call, the last block truncated to the horizon of 7.
    assert [len(b.lead) for b in blocks] == [3, 3, 1]
    assert emulator.calls == 3
    assert np.concatenate([b.lead for b in blocks]).tolist() == list(range(1, 8))
    lead_time = np.concatenate([b.lead_time for b in blocks])
    np.testing.assert_allclose(lead_time, 0.5 * np.arange(1, 8))  # Drift frame_dt = 0.5
    # Context = truth frames 4, 5, so lead 1 is truth frame 6.
    assert np.concatenate([b.frame_index for b in blocks]).tolist() == list(range(6, 13))
    assert [b.progress for b in blocks] == pytest.approx([3 / 7, 6 / 7, 1.0])
    assert [b.nfe for b in blocks] == [1, 2, 3]
    for block in blocks:
        n = len(block.lead)
        assert block.frames.shape == (1, n, 3, *GRID) and block.frames.dtype == torch.float32
        assert block.latents.shape == (1, n, 12, 8, 8)  # pixel-unshuffle "latents"
        assert torch.equal(block.frames, context[-1].expand(1, n, -1, -1, -1))
        assert block.elapsed > 0 and block.seconds_per_frame > 0
    assert blocks[-1].seconds_per_frame == pytest.approx(blocks[-1].elapsed / 7)


def test_window_slides_so_the_last_c_frames_become_the_context():
    """Ramp makes lead ℓ equal to context + ℓ only if every call sees the right context."""
    for c in (1, 2, 3, 4):
        emulator = Ramp(kind="deterministic", window=5)
        pipeline = drift_pipeline(emulator)
        context = context_frames(c)
        dataset = rollout(pipeline, context, {}, RolloutConfig(context=c, horizon=9))
        expected = context[-1, 0].numpy() + np.arange(1, 10)[:, None, None]
        np.testing.assert_allclose(dataset["tracer"].values[0], expected, rtol=1e-6)
        # Second call: the context is the last c frames of [context, first block].
        first_block = context[-1] + torch.arange(1, 6 - c).view(-1, 1, 1, 1)
        history = torch.cat([context, first_block])
        np.testing.assert_array_equal(emulator.contexts[1][0].numpy(), history[-c:].numpy())


def test_members_are_rows_of_one_batch():
    emulator = Ramp(kind="diffusion", window=5)
    pipeline = drift_pipeline(emulator)
    config = RolloutConfig(members=4, context=1, horizon=8, sampler="euler", steps=3)
    dataset = rollout(pipeline, context_frames(1), {}, config)
    assert emulator.calls == 2
    assert [ctx.shape[0] for ctx in emulator.contexts] == [4, 4]
    assert dataset.sizes["member"] == 4
    assert dataset.attrs["coercions"] == ""
    assert dataset.attrs["nfe"] == 2 * 3  # 3 Euler steps per call, all members at once


def test_oracle_emulator_matches_the_truth_through_a_nontrivial_preprocessing():
    conditions = {"speed": 2.0, "axis": "y"}
    truth = truth_dataset(Drift(), conditions, seed=3, n_frames=12)
    c = 2
    pipeline = drift_pipeline(DriftOracle(window=4), SKEWED)
    prediction = rollout(
        pipeline, truth.isel(time=slice(0, c)), conditions, RolloutConfig(context=c, horizon=10)
    )
    assert prediction["frame"].values.tolist() == list(range(2, 12))
    for name in ("tracer", "velocity_x", "velocity_y"):
        np.testing.assert_allclose(
            prediction[name].values[0], truth[name].values[c:], rtol=1e-5, atol=1e-6
        )
    # The drift is real: the tracer moved, and along y only.
    assert not np.allclose(truth["tracer"].values[0], truth["tracer"].values[1])
    np.testing.assert_array_equal(
        truth["tracer"].values[1], np.roll(truth["tracer"].values[0], 2, axis=1)
    )


def test_ensemble_is_seeded_and_members_differ():
    def run(seed: int):
        pipeline = drift_pipeline(GaussianDiffusion(window=5))
        config = RolloutConfig(members=3, horizon=4, sampler="ab", steps=16, seed=seed)
        return rollout(pipeline, context_frames(1), {}, config)["tracer"].values

    first, again, other = run(0), run(0), run(1)
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)
    assert not np.allclose(first[0], first[1])
    # Members scatter around the context with the fake model's scale.
    deviation = first - context_frames(1)[0, 0].numpy()
    assert abs(deviation.std() - GaussianDiffusion.SCALE) < 0.03


def test_stream_yields_incrementally_and_close_stops_the_work():
    emulator = Persistence(window=3)
    pipeline = drift_pipeline(emulator)
    stream = stream_rollout(pipeline, context_frames(1), {}, RolloutConfig(horizon=20))
    assert emulator.calls == 0  # nothing computed before the first block is asked for
    first = next(stream)
    assert emulator.calls == 1 and first.progress == pytest.approx(2 / 20)
    assert first.latents is None  # pixel space
    assert not torch.is_inference_mode_enabled()  # not leaked into the consumer
    first.frames.mul_(2)  # an ordinary tensor, editable outside inference mode
    next(stream)
    assert emulator.calls == 2
    stream.close()
    with pytest.raises(StopIteration):
        next(stream)
    assert emulator.calls == 2
    partial = stream.dataset()
    assert partial.sizes["time"] == 4 and partial.attrs["complete"] == 0
    first_only = stream.dataset(1)  # what a viewer that showed one block offers
    assert first_only.sizes["time"] == 2 and first_only["lead"].values.tolist() == [1, 2]
    assert first_only.attrs["nfe"] == first.nfe

    emulator = Persistence(window=3)
    with stream_rollout(drift_pipeline(emulator), context_frames(1)) as stream:
        next(stream)
    assert emulator.calls == 1


def test_nonfinite_block_raises_after_the_earlier_blocks():
    emulator = Poisoned(call=2, member=1, frame=2, window=5)
    emulator.kind = "diffusion"  # so that all 3 members run
    pipeline = drift_pipeline(emulator)
    stream = stream_rollout(pipeline, context_frames(1), {}, RolloutConfig(members=3, horizon=12))
    first = next(stream)
    assert first.lead.tolist() == [1, 2, 3, 4]
    with pytest.raises(RolloutDivergedError) as error:
        next(stream)
    assert (error.value.member, error.value.lead) == (1, 7)  # second call, third frame
    assert error.value.lead_time == pytest.approx(3.5)
    assert error.value.where == ["tracer"]
    assert "member 1" in str(error.value) and "lead 7" in str(error.value)
    assert stream.dataset().sizes["time"] == 4


@pytest.mark.parametrize(
    ("options", "name", "error"),
    [
        ({"members": 0}, "members", ParameterError),
        ({"context": 0}, "context", ParameterError),
        ({"horizon": 0}, "horizon", ParameterError),
        ({"steps": 0}, "steps", ParameterError),
        ({"members": True}, "members", ParameterError),
        ({"horizon": 2.5}, "horizon", ParameterError),
        ({"seed": -1}, "seed", ParameterError),
        ({"sampler": "rk45"}, "rk45", UnknownNameError),
        ({"sampler_options": {"order": 7}}, "order", ParameterError),
        ({"sampler_options": {"steps": 3}}, "steps", ParameterError),
        ({"sampler_options": {"tolerance": 1}}, "tolerance", ParameterError),
        ({"device": "tpu"}, "device", ParameterError),
    ],
)
def test_bad_config_values_are_named(options, name, error):
    with pytest.raises(error, match=name):
        RolloutConfig(**options)


def test_config_is_immutable_and_hashable():
    options = {"order": 2}
    config = RolloutConfig(sampler="ab", sampler_options=options)
    options["order"] = 9  # the caller's dict is copied, not kept
    assert config.make_sampler().order == 2
    with pytest.raises(TypeError):
        config.sampler_options["order"] = 1
    assert hash(config) == hash(RolloutConfig(sampler="ab", sampler_options={"order": 2}))
    assert config != RolloutConfig(sampler="ab", sampler_options={"order": 3})


def test_context_longer_than_the_window_allows_is_refused_before_any_call():
    emulator = Persistence(window=5)
    with pytest.raises(ParameterError, match=r"context=5 .*1\.\.4 \(the emulator's window is 5"):
        stream_rollout(drift_pipeline(emulator), context_frames(5), {}, RolloutConfig(context=5))
    assert emulator.calls == 0


@pytest.mark.parametrize(
    ("frames", "conditions", "match"),
    [
        (context_frames(2), {}, r"context_frames shape=\(2, 3, 16, 16\)"),
        (context_frames(1)[:, :2], {}, "context_frames shape"),
        (torch.full((1, 3, *GRID), float("nan")), {}, "non-finite"),
        (context_frames(1), {"sped": 2.0}, "condition='sped'.*speed, axis"),
        (context_frames(1), {"speed": 9.0}, r"speed=9\.0.*\[0, 4\]"),
        (context_frames(1), {"axis": "z"}, "axis='z'.*one of x, y"),
    ],
)
def test_bad_inputs_are_refused_with_the_value_and_range(frames, conditions, match):
    emulator = Persistence()
    with pytest.raises(ParameterError, match=match):
        stream_rollout(drift_pipeline(emulator), frames, conditions, RolloutConfig(context=1))
    assert emulator.calls == 0

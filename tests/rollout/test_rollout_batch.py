"""Several rollouts advanced together: one network call per model, and every rollout's
numbers exactly as alone (its noise from its own generator); faults stay with the
rollout they belong to."""

from __future__ import annotations

import math

import pytest
import torch
from rollout_fakes import GaussianDiffusion, Persistence, drift_pipeline

from engine.diffusion.noise import StackedGenerator, randn
from engine.errors import ParameterError
from engine.rollout import RolloutConfig, RolloutDivergedError, advance_together, stream_rollout

GRID = (16, 16)


def context(seed: int) -> torch.Tensor:
    return 1 + torch.rand(1, 3, *GRID, generator=torch.Generator().manual_seed(seed))


def streams(pipeline, configs):
    return [stream_rollout(pipeline, context(c.seed), {}, c) for c in configs]


def config(seed: int, members: int, steps: int = 4, sampler: str = "ddpm") -> RolloutConfig:
    return RolloutConfig(members=members, horizon=7, sampler=sampler, steps=steps, seed=seed)


def test_rollouts_advanced_together_are_the_rollouts_alone():
    configs = [config(1, 2), config(2, 3), config(3, 4), config(4, 2, steps=6)]
    emulator = GaussianDiffusion(window=3)  # stochastic sampler: noise at every step
    alone = streams(drift_pipeline(emulator), configs)
    for stream in alone:
        list(stream)
    calls_alone = emulator.calls

    emulator = GaussianDiffusion(window=3)
    deterministic = Persistence(window=3)  # no `stacked_noise`: always called alone
    together = [*streams(drift_pipeline(emulator), configs)]
    together += streams(drift_pipeline(deterministic), [RolloutConfig(horizon=7)])
    rounds = 0
    while not all(stream.done for stream in together):
        outcomes = advance_together(together)
        assert all(outcome is not None for outcome in outcomes)
        rounds += 1
    assert rounds == 4  # 2 frames per call, horizon 7
    assert emulator.calls == 2 * rounds < calls_alone == 4 * rounds  # seeds 1-3 share
    assert deterministic.calls == rounds
    for mine, theirs in zip(alone, together, strict=False):
        assert len(mine.blocks) == len(theirs.blocks) == 4
        for a, b in zip(mine.blocks, theirs.blocks, strict=True):
            assert torch.equal(a.frames, b.frames)
            assert a.lead.tolist() == b.lead.tolist() and a.nfe == b.nfe
    assert advance_together(together) == [None] * len(together)  # all done


class PoisonedDiffusion(GaussianDiffusion):
    """NaN in batch row `row` on its second call."""

    def __init__(self, row: int, **kwargs):
        super().__init__(**kwargs)
        self.row = row

    def step(self, context, label, sampler, generator, n):
        out = super().step(context, label, sampler, generator, n)
        if self.calls == 2:
            out[self.row, 0, 0, 3, 5] = math.nan
        return out


def test_a_diverging_rollout_fails_alone_in_its_batch():
    emulator = PoisonedDiffusion(row=3, window=3)  # row 3: the second rollout's first member
    batch = streams(drift_pipeline(emulator), [config(1, 3), config(2, 2), config(3, 2)])
    advance_together(batch)
    first, second, third = advance_together(batch)
    assert isinstance(second, RolloutDivergedError) and second.member == 0
    assert not isinstance(first, RolloutDivergedError | None)
    assert not isinstance(third, RolloutDivergedError | None)
    assert batch[1].done and len(batch[1].blocks) == 1  # its valid block is kept
    outcomes = advance_together(batch)
    assert outcomes[1] is None and all(o is not None for o in (outcomes[0], outcomes[2]))


def test_stacked_noise_is_each_generator_drawing_its_own_rows():
    def stacked() -> StackedGenerator:
        return StackedGenerator(
            [(torch.Generator().manual_seed(5), 2), (torch.Generator().manual_seed(6), 3)]
        )

    noise = randn((5, 2, 3), stacked(), "cpu", torch.float32)
    a, b = torch.Generator().manual_seed(5), torch.Generator().manual_seed(6)
    parts = [torch.randn((2, 2, 3), generator=a), torch.randn((3, 2, 3), generator=b)]
    assert torch.equal(noise, torch.cat(parts))
    with pytest.raises(ParameterError, match=r"noise rows=4 .* 5 \(the stacked ensembles\)"):
        stacked().randn((4, 2), "cpu", torch.float32)
    with pytest.raises(ParameterError, match="stacked generator parts"):
        StackedGenerator([(torch.Generator(), 0)])

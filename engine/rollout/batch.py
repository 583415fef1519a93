"""The next block of several rollouts, with one network call per model: batching.

A server running many sessions' rollouts at once pays one network call per rollout and
block when it advances them one by one. `advance_together` stacks the next calls of
rollouts that run the same emulator with the same sampler and window along the batch
axis, calls the network once, and hands each rollout its rows back. Each rollout still
draws its noise from its own generator, in the order it would alone
(engine.diffusion.noise.StackedGenerator), so its members do not depend on what it was
batched with.
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Sequence

import torch

from engine.diffusion.noise import StackedGenerator
from engine.rollout.config import RolloutDivergedError
from engine.rollout.stream import EmulatorCall, RolloutBlock, RolloutStream

Outcome = RolloutBlock | RolloutDivergedError | None  # None: the rollout is done


def batch_key(call: EmulatorCall) -> Hashable:
    """Calls with equal keys can share one network call: same emulator (weights and
    device), same sampler and steps, same window shape and dtype. An emulator that does
    not declare `stacked_noise` (one registered by a user, say) gets a key of its own
    per call: it may draw noise from a plain torch.Generator only."""
    if not getattr(call.emulator, "stacked_noise", False):
        return id(call)
    window = call.window
    return id(call.emulator), repr(call.sampler), tuple(window.shape[1:]), window.dtype


def advance_together(streams: Sequence[RolloutStream]) -> list[Outcome]:
    """Each stream's next block (None when it is done, the error when it diverges),
    in order; streams whose calls share a `batch_key` share one network call."""
    outcomes: list[Outcome] = [None] * len(streams)
    groups: dict[Hashable, list[tuple[int, EmulatorCall]]] = {}
    for index, stream in enumerate(streams):
        if not stream.done:
            call = stream.next_call()
            groups.setdefault(batch_key(call), []).append((index, call))
    for group in groups.values():
        calls = [call for _, call in group]
        rows = [call.window.shape[0] for call in calls]
        first = calls[0]
        parts = [(call.generator, n) for call, n in zip(calls, rows, strict=True)]
        # One call keeps its own generator: an emulator without `stacked_noise` gets
        # only plain torch.Generators.
        generator = first.generator if len(calls) == 1 else StackedGenerator(parts)
        start = time.perf_counter()
        with torch.inference_mode():
            new = first.emulator.generate(
                torch.cat([call.window for call in calls]),
                torch.cat([call.label for call in calls]),
                sampler=first.sampler,
                generator=generator,
            )
        seconds = time.perf_counter() - start
        for (index, _), part, n in zip(group, new.split(rows), rows, strict=True):
            try:
                outcomes[index] = streams[index].accept(part, seconds * n / sum(rows))
            except RolloutDivergedError as err:  # that rollout only
                outcomes[index] = err
    return outcomes

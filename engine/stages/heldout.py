"""The held-out protocol: roll an emulator out from test trajectories and score it.

One protocol serves the model cards' test metrics (measured right after training,
`score_test_rollouts`) and `latentsim evaluate` (engine/evaluation/runner.py): the same
picks (engine/stages/testset.py), the same context (each trajectory's first frames, Δ
apart), the same rollout engine and the same scoring (`score_rollout`, aligned on the
truth's `frame`), persistence included. That is what lets `evaluate` re-measure a card.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray

from engine.pipeline import Pipeline
from engine.rollout import RolloutConfig, RolloutDivergedError, score_rollout, stream_rollout
from engine.stages.testset import (
    TestTrajectories,
    frames_dataset,
    load_test_trajectories,
    rollout_horizon,
)


@dataclass(frozen=True)
class EvaluationRollouts:
    """How the card's test metrics are computed: cheap enough to run after every training,
    long enough to see errors grow. Diffusion uses the paper's 16-step AB3."""

    trajectories: int = 4
    horizon: int = 48  # frames per rollout, cut to what the test trajectories hold
    members: int = 8  # diffusion only; a deterministic emulator has one member
    context: int = 1
    sampler: str = "ab"
    steps: int = 16
    order: int = 3
    seed: int = 0


@dataclass
class TestRollouts:
    """An emulator's rollouts from each picked test trajectory, scored.

    `scores[i]` is None when trajectory i diverged before its first frame; a rollout that
    diverged later is scored on the leads it produced, and its error is in `divergences`
    as (pick, error).
    """

    scores: list[xarray.Dataset | None]
    steps: int  # emulator steps asked for
    frame_stride: int
    members: int
    coercions: tuple[str, ...]
    elapsed_s: float
    nfe: int  # network evaluations of the longest rollout
    divergences: list[tuple[int, RolloutDivergedError]] = field(default_factory=list)

    @property
    def lead(self) -> np.ndarray:
        """Leads asked for, in stored frames."""
        return np.arange(1, self.steps + 1) * self.frame_stride


def roll_out(pipeline: Pipeline, test: TestTrajectories, config: RolloutConfig) -> TestRollouts:
    """Roll out from each test trajectory's first `config.context` frames (Δ apart), for
    `config.horizon` emulator steps, and score each against its stored frames."""
    stride = pipeline.frame_stride
    conditions = test.conditions(pipeline.label_spec)
    result = TestRollouts([], config.horizon, stride, config.members, (), 0.0, 0)
    for pick in range(len(test)):
        truth = test.truth(pick)
        start = truth.isel(time=slice(0, config.context * stride, stride))
        stream = stream_rollout(pipeline, start, conditions[pick], config)
        result.members, result.coercions = stream.config.members, stream.coercions
        try:
            for _ in stream:
                pass
        except RolloutDivergedError as err:
            result.divergences.append((pick, err))
        prediction = stream.dataset()
        result.elapsed_s += float(prediction.attrs["elapsed_s"])
        result.nfe = max(result.nfe, int(prediction.attrs["nfe"]))
        result.scores.append(score_rollout(prediction, truth) if prediction.sizes["time"] else None)
    return result


def score_frames(
    test: TestTrajectories, predicted: Sequence[np.ndarray], frames: np.ndarray
) -> list[xarray.Dataset]:
    """Scores of per-trajectory frames (n_frames, C, X, Y) standing at stored `frames`: the
    autoencoder floor and persistence go through the same scoring as rollouts."""
    return [
        score_rollout(frames_dataset(test.channel_names, values, frames), test.truth(pick))
        for pick, values in enumerate(predicted)
    ]


def persistence(
    test: TestTrajectories, last_frame: int, frames: np.ndarray
) -> list[xarray.Dataset]:
    """Stored frame `last_frame` (the last context frame) repeated at every stored frame
    in `frames`: the bar a useful emulator clears."""
    last = test.fields[:, last_frame]
    return score_frames(test, [np.repeat(f[None], len(frames), axis=0) for f in last], frames)


def score_test_rollouts(
    pipeline: Pipeline, dataset: Path, settings: EvaluationRollouts = EvaluationRollouts()
) -> dict[str, Any]:
    """The card's test metrics: a few test rollouts scored in physical units.

    Each rollout starts from the first `context` frames of a test trajectory (frame
    stride Δ) and runs to `horizon` frames or the trajectory's end. Scores average over
    trajectories (and fields for the *_by_lead lists); persistence is scored the same way.
    A diverging rollout raises RolloutDivergedError: a card holds no partial numbers.
    """
    test = load_test_trajectories(dataset, settings.trajectories)
    stride, context = pipeline.frame_stride, settings.context
    horizon = rollout_horizon(test.frames, stride, context, settings.horizon, dataset)
    config = RolloutConfig(
        members=settings.members if pipeline.kind == "diffusion" else 1,
        context=context,
        horizon=horizon,
        sampler=settings.sampler,
        steps=settings.steps,
        sampler_options={"order": settings.order},
        seed=settings.seed,
    )
    rollouts = roll_out(pipeline, test, config)
    if rollouts.divergences:
        raise rollouts.divergences[0][1]
    scores = rollouts.scores
    vrmse_all = np.stack([s["vrmse"].values for s in scores])  # (n, field, lead)
    ssr_all = np.stack([s["ssr"].values for s in scores])
    frames = scores[0]["frame"].values
    still = np.stack([s["vrmse"].values for s in persistence(test, (context - 1) * stride, frames)])
    ensemble = config.members > 1
    return {
        "split": "test",
        "trajectories": len(test),
        "seeds": test.seed_list(),
        "rollout": {
            **asdict(settings),
            "members": config.members,
            "horizon": horizon,
            "frame_stride": stride,
        },
        "lead": scores[0]["lead"].values.tolist(),
        "lead_time": scores[0]["time"].values.tolist(),
        "vrmse_by_lead": vrmse_all.mean(axis=(0, 1)).tolist(),
        "vrmse_by_field": {
            name: vrmse_all[:, i].mean(axis=0).tolist()
            for i, name in enumerate(pipeline.spec.channel_names)
        },
        "vrmse_mean": float(vrmse_all.mean()),
        # One member has zero spread by construction: no ratio to report.
        "spread_skill_by_lead": ssr_all.mean(axis=(0, 1)).tolist() if ensemble else None,
        "spread_skill_mean": float(ssr_all.mean()) if ensemble else None,
        "persistence_vrmse_by_lead": still.mean(axis=(0, 1)).tolist(),
        "seconds_per_frame": rollouts.elapsed_s / (len(test) * horizon),
    }

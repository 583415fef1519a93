"""How predictable is a dataset, and how much of it does an autoencoder leave to predict?

Before blaming an emulator for its long-lead error, measure what the *real solver* scores
under the same protocol when it starts from slightly wrong initial frames:

- **restart**: the stored first frame itself; checks that restarting reproduces the
  stored trajectory (0 up to float rounding), so the numbers below mean what they say;
- **perturbed**: the first frame plus Gaussian noise of `perturbation` times each
  field's spatial standard deviation, `members` times: how fast nearby initial conditions
  separate at the stored frame interval (the mean member VRMSE), and what a perfect
  ensemble of that spread scores (the VRMSE of the members' mean);
- **autoencoder xR**: the first frame after encoding and decoding by each autoencoder:
  the error a perfect emulator behind that autoencoder could not avoid, growing with lead
  as the dynamics amplify the reconstruction error;
- **persistence**: the first frame repeated, for scale (1 is the spatial mean).

All scores are VRMSE against the stored frames of held-out test trajectories, averaged
over fields, trajectories and the leads of each short / mid / long bucket
(engine/evaluation/buckets.py), like `latentsim evaluate`. A restart the solver refuses
(e.g. a decoded Euler frame with negative pressure) is counted, not scored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from engine.errors import ParameterError, SolverDivergedError, check_integer
from engine.evaluation.buckets import RULE, bucket_means, lead_buckets
from engine.metrics import vrmse
from engine.stages.testset import TestTrajectories
from engine.systems import System

# A frame map: physical frames (N, C, X, Y) -> frames to restart from (an autoencoder's
# reconstruction, for instance).
FrameMap = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class PredictabilitySettings:
    """What `predictability` measures; recorded with its results."""

    horizon: int = 48  # leads after the first frame (cut to what the trajectories hold)
    members: int = 8  # perturbed restarts per trajectory
    perturbation: float = 1e-3  # noise std, in units of each field's spatial std
    seed: int = 0

    def __post_init__(self) -> None:
        check_integer("horizon", self.horizon, 3, why=" (one lead per short/mid/long bucket)")
        check_integer("members", self.members, 2, why=" (an ensemble mean needs two)")
        if not (0 < self.perturbation <= 1):
            raise ParameterError("perturbation", self.perturbation, "a number in (0, 1]")


def _restart_scores(
    system: System,
    starts: torch.Tensor,
    conditions: Mapping[str, Any],
    truth: torch.Tensor,
    times: np.ndarray,
) -> torch.Tensor | None:
    """VRMSE (B, leads) of restarts from `starts` (B, C, X, Y) against `truth` (leads, C,
    X, Y), fields averaged; None when the solver refuses a restarted trajectory."""
    try:
        frames = torch.stack(list(system.restart(starts, [conditions] * len(starts), times)))
    except SolverDivergedError:
        return None
    return vrmse(frames.transpose(0, 1), truth.expand(len(starts), *truth.shape)).mean(dim=-1)


def predictability(
    system: System,
    test: TestTrajectories,
    settings: PredictabilitySettings = PredictabilitySettings(),
    frame_maps: Mapping[str, FrameMap] | None = None,
) -> dict[str, Any]:
    """Scores of the solver restarted from the first frame of each test trajectory (see the
    module docstring); `frame_maps` adds a restart per named map (e.g. autoencoders)."""
    frame_maps = dict(frame_maps or {})
    horizon = min(settings.horizon, test.frames - 1)
    buckets = lead_buckets(horizon)
    times = system.spec.frame_times(horizon + 1)
    lead = np.arange(1, horizon + 1)
    generator = torch.Generator().manual_seed(settings.seed)
    names = ["restart", "perturbed members", "perturbed ensemble mean", *frame_maps, "persistence"]
    curves: dict[str, list[np.ndarray]] = {name: [] for name in names}
    refused: dict[str, int] = {name: 0 for name in names}

    def add(name: str, scores: torch.Tensor | None) -> None:
        if scores is None:
            refused[name] += 1
        else:
            curves[name].append(scores.numpy())

    with torch.no_grad():
        for pick in range(len(test)):
            fields = torch.from_numpy(test.fields[pick, : horizon + 1]).float()
            first, truth = fields[0], fields[1:]
            conditions = test.solver_conditions(pick)
            add("restart", _restart_scores(system, first[None], conditions, truth, times))
            scale = first.std(dim=(-2, -1), correction=0)[:, None, None]
            noise = torch.randn((settings.members, *first.shape), generator=generator)
            perturbed = first + settings.perturbation * scale * noise
            try:
                members = torch.stack(
                    list(system.restart(perturbed, [conditions] * settings.members, times))
                )  # (leads, M, C, X, Y)
            except SolverDivergedError:
                refused["perturbed members"] += 1
                refused["perturbed ensemble mean"] += 1
            else:
                add("perturbed members", vrmse(members, truth[:, None]).mean(dim=(-1, -2))[None])
                add("perturbed ensemble mean", vrmse(members.mean(dim=1), truth).mean(dim=-1)[None])
            for name, frame_map in frame_maps.items():
                start = frame_map(first[None]).float()
                add(name, _restart_scores(system, start, conditions, truth, times))
            add("persistence", vrmse(first.expand_as(truth), truth).mean(dim=-1)[None])

    results: dict[str, Any] = {}
    for name in names:
        if not curves[name]:
            results[name] = {"trajectories": 0, "refused": refused[name]}
            continue
        per_lead = np.concatenate(curves[name]).mean(axis=0)
        means = bucket_means(per_lead, lead, buckets)
        results[name] = {
            **{k: None if v is None else float(v) for k, v in means.items()},
            "trajectories": len(curves[name]),
            "refused": refused[name],
            "per_lead": [float(v) for v in per_lead],
        }
    return {
        "system": system.spec.name,
        "settings": asdict(settings),
        "horizon": horizon,
        "frame_dt": system.spec.frame_dt,
        "buckets": [b.record(system.spec.frame_dt) for b in buckets],
        "bucket_rule": RULE,
        "trajectories": len(test),
        "seeds": test.seed_list(),
        "results": results,
    }


def predictability_table(reports: Sequence[dict[str, Any]]) -> str:
    """Markdown: one row per (system, restart), VRMSE per bucket."""
    lines = [
        "| system | restart from | short | mid | long | trajectories (refused) |",
        "|---|---|---|---|---|---|",
    ]
    for report in reports:
        for name, row in report["results"].items():
            cells = [
                "–" if row.get(bucket) is None else f"{row[bucket]:.3f}"
                for bucket in ("short", "mid", "long")
            ]
            lines.append(
                f"| {report['system']} | {name} | {' | '.join(cells)} | "
                f"{row['trajectories']} ({row['refused']}) |"
            )
    return "\n".join(lines) + "\n"

"""Where a diffusion emulator's ensemble spread lives: inside or outside the part of each
token that its output layer can write.

A ViT writes each token through one linear layer, width → values per token. When a token
holds more values than the network is wide (16x16 pixel patches of 4 fields: 1024 values,
width 128), most directions are out of reach. With the EDM skip the sampler then leaves
unit-variance noise there (engine/diffusion/denoiser.py explains why), which shows up as
ensemble spread far larger than the error, i.e. a spread–skill ratio well above 1. This
module measures it: per-direction variance of (member − ensemble mean), of the ensemble
mean's error and of the true frame, split into the reachable span and its complement, in
the emulator's own (normalised) space.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from engine.emulator.backbone import patchify
from engine.errors import ParameterError, check_integer
from engine.pipeline import Pipeline
from engine.stages.testset import TestTrajectories


def reachable_basis(pipeline: Pipeline) -> Tensor:
    """Orthonormal basis (values per token, rank) of the output layer's column space."""
    if pipeline.kind != "diffusion":
        raise ParameterError("emulator kind", pipeline.kind, "diffusion (spread needs members)")
    weight = pipeline.emulator.denoiser.network.proj_out.weight.detach().double().cpu()
    basis, _ = torch.linalg.qr(weight)
    return basis


def split_variance(tokens: Tensor, basis: Tensor) -> dict[str, float]:
    """Mean per-direction variance of `tokens` (..., values) inside and outside the span."""
    total = tokens.square().sum(-1).mean()
    inside = (tokens @ basis).square().sum(-1).mean()
    values, rank = basis.shape
    return {
        "inside_per_direction": float(inside / rank),
        "outside_per_direction": float((total - inside) / (values - rank))
        if values > rank
        else 0.0,
    }


def spread_by_reach(
    pipeline: Pipeline,
    test: TestTrajectories,
    *,
    trajectory: int = 0,
    starts: Sequence[int] = (0,),
    members: int = 16,
    seed: int = 0,
) -> dict[str, Any]:
    """One emulator step from each start frame of one test trajectory, `members` times."""
    basis = reachable_basis(pipeline)
    if not 0 <= trajectory < len(test):
        raise ParameterError("trajectory", trajectory, f"0..{len(test) - 1}")
    check_integer("members", members, 2)
    for start in starts:
        if not 0 <= start < test.frames - 1:
            raise ParameterError("start", start, f"0..{test.frames - 2} (a next frame must exist)")
    patch = pipeline.emulator.config.patch
    label = pipeline.label(test.conditions(pipeline.label_spec)[trajectory])
    results = {}
    fields = torch.as_tensor(test.fields[trajectory])
    with torch.inference_mode():
        for start in starts:
            context = pipeline.encode(fields[start : start + 1]).to(pipeline.device)
            truth = pipeline.encode(fields[start + 1 : start + 2]).cpu().unsqueeze(0)
            generator = torch.Generator(pipeline.device).manual_seed(seed)
            out = pipeline.emulator.generate(
                context.unsqueeze(0).expand(members, *context.shape).clone(),
                label.expand(members, -1),
                generator=generator,
            )[:, :1].cpu()
            mean = out.mean(0, keepdim=True)
            results[str(start)] = {
                "member_minus_mean": split_variance(patchify(out - mean, patch).double(), basis),
                "mean_minus_truth": split_variance(patchify(mean - truth, patch).double(), basis),
                "truth": split_variance(patchify(truth, patch).double(), basis),
            }
    values, rank = basis.shape
    return {
        "values_per_token": values,
        "reachable_directions": rank,
        "prediction": pipeline.emulator.denoiser.prediction,
        "members": members,
        "trajectory": int(test.indices[trajectory]),
        "by_start_frame": results,
    }

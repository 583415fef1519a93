"""Per-trajectory scores summarised per lead and per short/mid/long bucket (results.json)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray

from engine.evaluation.buckets import Bucket, bucket_means
from engine.rollout import COVERAGE_LEVELS, SCALE_FREE_SCORES

# Scores kept per bucket; the ensemble ones only for K >= 2 members.
SCORES = ("vrmse", "nrmse", "rmse", "spectral_low", "spectral_mid", "spectral_high")
ENSEMBLE_SCORES = ("spread", "ssr", "crps_fair", *COVERAGE_LEVELS)


def _stack(scores: Sequence[xarray.Dataset | None], name: str, shape: tuple[int, int]):
    """(trajectory, field, lead) of one score; NaN where a rollout produced no frame."""
    out = np.full((len(scores), *shape), np.nan)
    for i, score in enumerate(scores):
        if score is not None and name in score:
            values = score[name].values
            out[i, :, : values.shape[1]] = values
    return out


def _number(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def summarize(
    scores: Sequence[xarray.Dataset | None],
    lead: np.ndarray,
    buckets: tuple[Bucket, ...],
    channels: Sequence[str],
    units: Sequence[str],
    ensemble: bool,
) -> dict[str, Any]:
    """Scores of n trajectories (None: nothing produced) per lead and per bucket.

    `lead` is every lead asked for, in stored frames. Per bucket and score: "mean" (over
    trajectories, fields and the bucket's leads; for scores in field units only when all
    fields share the unit; for coverage_50/90, whose per-frame values are fractions of the
    same number of grid points, that mean is the fraction of all the bucket's truth values
    inside the interval) and "by_field" (VRMSE also "by_trajectory"). Per lead: VRMSE
    (and SSR) over trajectories and fields, for the figures.
    """
    names = SCORES + (ENSEMBLE_SCORES if ensemble else ())
    shape = (len(channels), len(lead))
    stacked = {name: _stack(scores, name, shape) for name in names}
    one_unit = len(set(units)) == 1
    per_bucket: dict[str, dict[str, Any]] = {b.name: {} for b in buckets}
    for name, values in stacked.items():
        for bucket, means in bucket_means(values, lead, buckets).items():
            if means is None:
                per_bucket[bucket][name] = None
                continue
            by_field = means.mean(axis=0)  # over trajectories
            averaged = name in SCALE_FREE_SCORES or one_unit
            per_bucket[bucket][name] = {
                "mean": float(by_field.mean()) if averaged else None,
                "by_field": {c: float(v) for c, v in zip(channels, by_field, strict=True)},
            }
            if name == "vrmse":  # a mean over trajectories can hide one that dominates it
                per_bucket[bucket][name]["by_trajectory"] = [float(v) for v in means.mean(1)]
    result: dict[str, Any] = {
        "lead_frames": lead.tolist(),
        "vrmse_by_lead": [_number(v) for v in stacked["vrmse"].mean(axis=(0, 1))],
        "buckets": per_bucket,
    }
    if ensemble:
        ssr = stacked["ssr"]
        result["ssr_by_lead"] = [_number(v) for v in ssr.mean(axis=(0, 1))]
        result["ssr_rollout"] = _number(ssr.mean())  # NaN (None) if any lead is missing
    return result

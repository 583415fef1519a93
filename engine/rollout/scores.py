"""Per-field, per-lead scores of a prediction against the truth (as in arXiv:2507.02608)."""

from __future__ import annotations

import numpy as np
import torch
import xarray

from engine.errors import ParameterError, check_integer
from engine.metrics import EPS, SSR_EPS, coverage, ensemble_scores, spectral_band_errors
from engine.rollout.cf import CONVENTIONS

# name -> (long_name, units or None when in each field's own units)
SCORE_VARIABLES: dict[str, tuple[str, str | None]] = {
    "vrmse": ("VRMSE of the ensemble mean (RMSE / spatial std of the truth)", "1"),
    "rmse": ("RMSE of the ensemble mean", None),
    "nrmse": ("NRMSE of the ensemble mean (RMSE / spatial RMS of the truth)", "1"),
    "spread": ("ensemble spread, sqrt((K+1)/(K-1) mean_k,space (v_k - m)^2)", None),
    "ssr": ("spread-skill ratio (spread + 1e-3) / (RMSE + 1e-3)", "1"),
    "crps_fair": ("fair CRPS of the ensemble (K >= 2)", None),
    "coverage_50": ("fraction of truth points inside the members' central 50% interval", "1"),
    "coverage_90": ("fraction of truth points inside the members' central 90% interval", "1"),
    "spectral_low": ("RMS relative power-spectrum error, low band", "1"),
    "spectral_mid": ("RMS relative power-spectrum error, mid band", "1"),
    "spectral_high": ("RMS relative power-spectrum error, high band", "1"),
}
# Scale-free scores, which may be averaged over fields with different units.
FIELD_MEAN_SCORES = ("vrmse", "nrmse", "ssr", "spectral_low", "spectral_mid", "spectral_high")
# Interval coverage (K >= 2 only, like crps_fair): the level of each `coverage_<percent>`.
COVERAGE_LEVELS = {"coverage_50": 0.5, "coverage_90": 0.9}
# Every scale-free score; the coverages are not in `mean_over_fields`, which every
# prediction has, one member or many.
SCALE_FREE_SCORES = (*FIELD_MEAN_SCORES, *COVERAGE_LEVELS)
# Prediction attributes that describe what was scored, copied onto the scores.
SCORED_ATTRS = (
    *("system", "rate", "emulator", "emulator_kind", "emulator_space", "autoencoder"),
    *("sampler", "steps", "members", "context", "frame_stride", "seed", "conditions"),
)


def score_rollout(
    prediction: xarray.Dataset, truth: xarray.Dataset, *, context_start: int | None = None
) -> xarray.Dataset:
    """Per-field, per-lead-time scores of a prediction against the truth (as in arXiv:2507.02608).

    prediction: a `rollout` Dataset (member, time, x, y); a Dataset without `member`
        (e.g. `reconstruct`) scores as one member.
    truth: dims (time, x, y) with the same channel variables; frames are matched through
        its `frame` coordinate (else its position along time).
    context_start: None aligns on the prediction's `frame` coordinate; an integer s
        re-aligns a rollout to truth frame s + (c − 1 + lead)·Δ (its context was truth
        frames s, s+Δ, ..., s+(c−1)Δ).

    Returns dims (field, time): vrmse, rmse, nrmse (of the ensemble mean), spread, ssr,
    crps_fair and coverage_50/90 (K >= 2 only: the fraction of points whose truth lies in
    the members' central 50 / 90 % interval, `engine.metrics.coverage`) and
    spectral_low/mid/high; plus `mean_over_fields`
    (metric, time), the plain mean over fields of the scale-free scores.
    """
    channels = [name for name, var in prediction.data_vars.items() if {"x", "y"} <= set(var.dims)]
    if not channels:
        raise ParameterError("prediction", list(prediction.data_vars), "field variables on (x, y)")
    missing = [name for name in channels if name not in truth.data_vars]
    if missing:
        raise ParameterError("truth", list(truth.data_vars), f"variables {', '.join(channels)}")
    if "member" not in prediction.dims:
        prediction = prediction.expand_dims(member=1)
    if prediction.sizes["time"] == 0:
        raise ParameterError("prediction", "no frames", "at least one predicted frame")
    for axis in ("x", "y"):
        if prediction.sizes[axis] != truth.sizes.get(axis):
            size = prediction.sizes[axis]
            raise ParameterError(f"truth {axis} size", truth.sizes.get(axis), f"{size}, predicted")
    wanted = _aligned_frames(prediction, context_start)
    available = truth["frame"].values if "frame" in truth.coords else np.arange(truth.sizes["time"])
    position = {int(f): i for i, f in enumerate(available)}
    absent = [int(f) for f in wanted if int(f) not in position]
    if absent:
        have = f"{available.min()}..{available.max()}" if len(available) else "none"
        raise ParameterError(
            "truth frames", have, f"frames {wanted.min()}..{wanted.max()} to score this prediction"
        )
    truth = truth.isel(time=[position[int(f)] for f in wanted])
    members = torch.from_numpy(
        np.stack([prediction[c].transpose("member", "time", "x", "y").values for c in channels], 2)
    ).double()
    target = torch.from_numpy(
        np.stack([truth[c].transpose("time", "x", "y").values for c in channels], 1)
    ).double()
    scores = ensemble_scores(members, target)
    scores.pop("crps")
    if members.shape[0] >= 2:
        scores.update({name: coverage(members, target, p) for name, p in COVERAGE_LEVELS.items()})
    bands = spectral_band_errors(members, target, member_dim=0)
    scores.update({f"spectral_{band}": value for band, value in bands.items()})

    units = [str(prediction[c].attrs.get("units", "1")) for c in channels]
    time_coords = {
        name: ("time", coord.values, coord.attrs)
        for name, coord in prediction.coords.items()
        if coord.dims == ("time",)
    }
    time_coords["frame"] = ("time", wanted, {"long_name": "index of the matching truth frame"})
    coords = {
        "field": ("field", channels),
        "field_units": ("field", units, {"long_name": "units of the field"}),
        "metric": ("metric", list(FIELD_MEAN_SCORES)),
        **time_coords,
    }
    data_vars = {}
    for name in SCORE_VARIABLES:
        if name in scores:
            long_name, unit = SCORE_VARIABLES[name]
            attrs = {"long_name": long_name}
            attrs.update(
                {"units": unit} if unit else {"comment": "in each field's units (field_units)"}
            )
            data_vars[name] = (("field", "time"), scores[name].T.float().numpy(), attrs)
    mean = np.stack([scores[name].mean(dim=1).float().numpy() for name in FIELD_MEAN_SCORES])
    data_vars["mean_over_fields"] = (
        ("metric", "time"),
        mean,
        {"long_name": "mean over fields of the scale-free scores", "units": "1"},
    )
    attrs = {key: prediction.attrs[key] for key in SCORED_ATTRS if key in prediction.attrs}
    attrs.update(
        {
            "Conventions": CONVENTIONS,
            "title": f"scores of {prediction.attrs.get('title', 'a prediction')}",
            "members": prediction.sizes["member"],
            "metric_conventions": (
                f"spatial means over (x, y) per field; population variance; eps {EPS:g} in "
                f"VRMSE/NRMSE, {SSR_EPS:g} in the spread-skill ratio"
            ),
        }
    )
    return xarray.Dataset(data_vars, coords=coords, attrs=attrs)


def _aligned_frames(prediction: xarray.Dataset, context_start: int | None) -> np.ndarray:
    if context_start is None:
        if "frame" in prediction.coords:
            return prediction["frame"].values.astype(np.int64)
        return np.arange(prediction.sizes["time"])
    start = check_integer("context_start", context_start, 0)
    if "lead" not in prediction.coords or "context" not in prediction.attrs:
        raise ParameterError(
            "context_start", start, "None for a prediction without lead and context"
        )
    stride = int(prediction.attrs.get("frame_stride", 1))
    lead = prediction["lead"].values.astype(np.int64)
    return start + (int(prediction.attrs["context"]) - 1 + lead) * stride

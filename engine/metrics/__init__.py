"""Metrics in physical units, per field (channel) and per lead time.

Conventions (the paper's, stated once here): spatial means are taken over the last two
axes (x, y) per channel; variances are population variances (ddof=0); the small
constant in VRMSE/NRMSE is EPS = 1e-6. Inputs are torch tensors shaped (..., C, X, Y);
outputs keep the leading dims and the channel dim.
"""

from engine.metrics.deterministic import EPS, mse, nrmse, rmse, vrmse
from engine.metrics.ensemble import (
    SSR_EPS,
    calibrated_coverage,
    coverage,
    crps,
    ensemble_mean,
    ensemble_scores,
    rank_histogram,
    spread,
    spread_skill_ratio,
)
from engine.metrics.spectrum import (
    isotropic_power_spectrum,
    spectral_band_edges,
    spectral_band_errors,
)

__all__ = [
    "EPS",
    "SSR_EPS",
    "calibrated_coverage",
    "coverage",
    "crps",
    "ensemble_mean",
    "ensemble_scores",
    "isotropic_power_spectrum",
    "mse",
    "nrmse",
    "rank_histogram",
    "rmse",
    "spectral_band_edges",
    "spectral_band_errors",
    "spread",
    "spread_skill_ratio",
    "vrmse",
]

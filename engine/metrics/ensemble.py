"""Probabilistic scores of an ensemble forecast against the truth.

Members are shaped (M, ..., C, X, Y) with the member dim first; the truth is shaped
(..., C, X, Y). Like the deterministic metrics, scores are reduced over space (the last
two axes) per channel and keep the leading dims, so a (M, T, C, X, Y) forecast scores
as (T, C): one value per lead time and field. The rank histogram is the exception: it
pools leading dims and space into one sample of points per channel (see its docstring).

Definitions follow the paper (Rozet et al., 2025, arXiv:2507.02608) and the
references cited at each function.
"""

from __future__ import annotations

import torch

from engine.errors import ParameterError
from engine.metrics.deterministic import EPS, SPATIAL, nrmse, rmse, vrmse

SSR_EPS = 1e-3
"""The paper adds this to spread and RMSE so that perfect, zero-spread cells stay finite."""

MAX_RANK_POINTS = 100_000
"""Default rank-histogram sample per channel: enough for ~1% bin noise with M = 16."""

PERMUTATION_LIMIT = 2**24
"""Largest point count the rank histogram permutes (128 MiB of int64 indices)."""


def _check_members(members: torch.Tensor) -> int:
    """Validate the member tensor and return the ensemble size M."""
    if members.ndim < 4:
        raise ParameterError(
            "members.shape", tuple(members.shape), "(M, ..., C, X, Y): at least 4 dims"
        )
    size = members.shape[0]
    if size < 1:
        raise ParameterError("M (members.shape[0])", size, "M >= 1")
    return size


def _check_pair(members: torch.Tensor, truth: torch.Tensor) -> int:
    size = _check_members(members)
    if members.shape[1:] != truth.shape:
        raise ParameterError(
            "members.shape",
            tuple(members.shape),
            f"(M, *truth.shape) = (M, {', '.join(map(str, truth.shape))}) "
            f"for truth.shape={tuple(truth.shape)}",
        )
    return size


def ensemble_mean(members: torch.Tensor) -> torch.Tensor:
    """The member average m, shaped like the truth."""
    _check_members(members)
    return members.mean(dim=0)


def spread(members: torch.Tensor) -> torch.Tensor:
    """Finite-ensemble corrected spread √((M+1)/(M−1) · mean_s mean_i (x_i − m)²).

    The (M+1)/(M−1) factor makes spread² an unbiased estimate of E[(m − y)²] when the
    truth is exchangeable with the members, so a calibrated ensemble has spread ≈ RMSE of
    its mean whatever M is. A single member (a deterministic forecast) has zero spread,
    which is what we return for M = 1 instead of 0/0.
    """
    size = _check_members(members)
    if size == 1:
        return members.new_zeros(members.shape[1:-2])
    deviation = members.var(dim=0, correction=0).mean(dim=SPATIAL)
    return (deviation * ((size + 1) / (size - 1))).sqrt()


def _ratio(spread_value: torch.Tensor, skill: torch.Tensor, eps: float) -> torch.Tensor:
    return (spread_value + eps) / (skill + eps)


def spread_skill_ratio(
    members: torch.Tensor, truth: torch.Tensor, eps: float = SSR_EPS
) -> torch.Tensor:
    """(spread + eps) / (RMSE of the ensemble mean + eps): 1 calibrated, < 1 under-dispersed."""
    _check_pair(members, truth)
    return _ratio(spread(members), rmse(members.mean(dim=0), truth), eps)


def crps(members: torch.Tensor, truth: torch.Tensor, fair: bool = False) -> torch.Tensor:
    """Ensemble CRPS per point, then averaged over space.

    CRPS = (1/M) Σ_i |x_i − y| − (1/(2D)) Σ_i Σ_j |x_i − x_j| with D = M² (plain, the
    score of the empirical distribution) or D = M(M−1) (fair: unbiased for the members'
    parent distribution, so small ensembles are not penalised for their size; needs
    M ≥ 2). For M = 1 the plain form is the mean absolute error.

    The pairwise sum uses the sorted members in O(M log M). We write it over the gaps
    between consecutive order statistics,
        Σ_i Σ_j |x_i − x_j| = 2 Σ_k (2k − M − 1) x_(k) = 2 Σ_{k<M} k (M − k) (x_(k+1) − x_(k)),
    (summation by parts of the same identity) because every term is non-negative: the
    first form cancels terms of size M·|x| and loses the spread of float32 fields with a
    large offset (pressure, temperature), the gap form does not.
    """
    size = _check_pair(members, truth)
    if fair and size < 2:
        raise ParameterError("M (members.shape[0])", size, "M >= 2 for the fair CRPS")
    absolute = (members - truth).abs().mean(dim=0)
    if size == 1:
        return absolute.mean(dim=SPATIAL)
    ordered = members.sort(dim=0).values
    gaps = ordered[1:] - ordered[:-1]
    k = torch.arange(1, size, device=members.device, dtype=members.dtype)
    half_pairwise = torch.einsum("k,k...->...", k * (size - k), gaps)
    denominator = size * (size - 1) if fair else size * size
    return (absolute - half_pairwise / denominator).mean(dim=SPATIAL)


def _weibull_order_statistic(ordered: torch.Tensor, position: float) -> torch.Tensor:
    """x_(position) of members sorted along dim 0, interpolated linearly between order
    statistics; `position` is 1-based, in [1, M].

    With positions (M+1)q clamped to [1, M] (`_interval_positions`) this is numpy's
    quantile method="weibull" (Hyndman & Fan type 6), x_(k) standing at probability
    k/(M+1). Unlike the default type 7, it gives an exchangeable truth a chance p of
    falling in the central p-interval (exactly when (M+1)(1±p)/2 are integers), so
    coverage ≈ p means calibrated; the min–max interval has level (M−1)/(M+1).
    """
    size = ordered.shape[0]
    index = position - 1.0  # 0-based, in [0, M-1]
    below = int(index)
    above = min(below + 1, size - 1)
    fraction = index - below
    return ordered[below] + fraction * (ordered[above] - ordered[below])


def _interval_positions(size: int, level: float) -> tuple[float, float]:
    """1-based Weibull positions of the central `level` interval's ends, clamped to [1, M]."""
    if not 0.0 < level < 1.0:
        raise ParameterError("level", level, "0 < level < 1")
    low, high = ((size + 1) * (1.0 - level) / 2.0, (size + 1) * (1.0 + level) / 2.0)
    return min(max(low, 1.0), float(size)), min(max(high, 1.0), float(size))


def calibrated_coverage(size: int, level: float) -> float:
    """The coverage a calibrated `size`-member ensemble reaches for the central `level`
    interval of `coverage`: (b − a)/(M + 1) with a, b its ends' clamped positions.

    An exchangeable truth has rank k ∈ {0…M} with probability 1/(M+1) each, so it lies
    between x_(a) and x_(b) with probability (b − a)/(M+1) for integer a, b; for other
    positions exactly when it is spread evenly within a gap (uniform members), else nearly
    (iid Gaussian, 16 members, 50 %: 0.5036 for 0.5). It equals `level` unless an
    end is clamped: a 16-member 90 % interval is the min–max one, which a calibrated
    ensemble covers only 15/17 ≈ 0.882 of the time. Reports compare coverage with this
    value, not with the nominal level, so that an ensemble is not called under-dispersed
    for its size.
    """
    if size < 2:
        raise ParameterError("M (members)", size, "M >= 2 for an interval")
    low, high = _interval_positions(size, level)
    return (high - low) / (size + 1)


def coverage(members: torch.Tensor, truth: torch.Tensor, level: float) -> torch.Tensor:
    """Fraction of points with truth inside the central `level` interval of the members.

    The interval is [Q((1−p)/2), Q((1+p)/2)] of the members at each point, ends included,
    with Weibull plotting-position quantiles (see `_weibull_order_statistic`). A calibrated
    ensemble scores ≈ `calibrated_coverage(M, level)` (p unless an end is clamped to the
    min or max member); less means under-dispersed or biased.
    """
    size = _check_pair(members, truth)
    first, last = _interval_positions(size, level)
    ordered = members.sort(dim=0).values
    low = _weibull_order_statistic(ordered, first)
    high = _weibull_order_statistic(ordered, last)
    inside = (truth >= low) & (truth <= high)
    return inside.to(members.dtype).mean(dim=SPATIAL)


def rank_histogram(
    members: torch.Tensor,
    truth: torch.Tensor,
    generator: torch.Generator | None = None,
    max_points: int | None = MAX_RANK_POINTS,
) -> torch.Tensor:
    """Frequencies of the truth's rank among the members, per channel: shape (C, M + 1).

    The rank at a point is r = #{i : x_i < y} ∈ {0…M}, with ties (e.g. clipped fields,
    identical members) broken uniformly at random so they do not pile up in one bin.
    Flat = calibrated, U = under-dispersed, dome = over-dispersed, slope = biased.

    Leading dims (batch, lead time) are pooled with space: a histogram is a sample
    statistic, and one per lead time is a slice away (`members[:, t]`, `truth[t]`).
    Neighbouring points are correlated, so only `max_points` points per channel are
    used, drawn uniformly without replacement (the same points for every channel);
    `max_points=None` uses them all. Above PERMUTATION_LIMIT points the draw is with
    replacement, to avoid an O(points) permutation; repeats are then a fraction below
    max_points / (2 · points) ≤ 0.3% of the sample at the default max_points. The draw
    and the tie-breaking come from `generator` (the global one when None), so a seeded
    generator gives a reproducible histogram. Rows sum to 1.
    """
    size = _check_pair(members, truth)
    if max_points is not None and max_points < 1:
        raise ParameterError("max_points", max_points, "an integer >= 1, or None for all")
    by_channel = members.movedim(-3, 1)  # views: (M, C, ..., X, Y) and (C, ..., X, Y)
    truth_by_channel = truth.movedim(-3, 0)
    points_shape = truth_by_channel.shape[1:]
    n_points = truth_by_channel[0].numel()
    random_device = generator.device if generator is not None else members.device
    if max_points is None or n_points <= max_points:
        flat = torch.arange(n_points, device=members.device)
    elif n_points <= PERMUTATION_LIMIT:
        flat = torch.randperm(n_points, generator=generator, device=random_device)
        flat = flat[:max_points].to(members.device)
    else:
        flat = torch.randint(n_points, (max_points,), generator=generator, device=random_device).to(
            members.device
        )
    where = torch.unravel_index(flat, points_shape)
    sample_members = by_channel[(slice(None), slice(None), *where)]  # (M, C, P)
    sample_truth = truth_by_channel[(slice(None), *where)]  # (C, P)
    below = (sample_members < sample_truth).sum(dim=0)
    ties = (sample_members == sample_truth).sum(dim=0)
    uniform = torch.rand(
        below.shape, generator=generator, device=random_device, dtype=torch.float64
    ).to(members.device)
    rank = below + torch.minimum(torch.floor(uniform * (ties + 1)).long(), ties)
    counts = torch.zeros(truth.shape[-3], size + 1, device=members.device, dtype=members.dtype)
    counts.scatter_add_(1, rank, torch.ones_like(rank, dtype=members.dtype))
    return counts / rank.shape[1]


def ensemble_scores(
    members: torch.Tensor,
    truth: torch.Tensor,
    eps: float = EPS,
    ssr_eps: float = SSR_EPS,
) -> dict[str, torch.Tensor]:
    """The paper's per-field table in one call, each entry shaped (..., C).

    Keys: "rmse", "nrmse", "vrmse" (of the ensemble mean, with `eps`), "spread", "ssr"
    (with `ssr_eps`), "crps" (plain) and "crps_fair". "crps_fair" is left out for M = 1,
    where it is undefined; "crps" is then the MAE of the single member.
    """
    size = _check_pair(members, truth)
    mean = members.mean(dim=0)
    skill = rmse(mean, truth)
    spread_value = spread(members)
    scores = {
        "rmse": skill,
        "nrmse": nrmse(mean, truth, eps),
        "vrmse": vrmse(mean, truth, eps),
        "spread": spread_value,
        "ssr": _ratio(spread_value, skill, ssr_eps),
        "crps": crps(members, truth),
    }
    if size >= 2:
        scores["crps_fair"] = crps(members, truth, fair=True)
    return scores

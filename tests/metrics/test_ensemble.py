"""Ensemble scores against published implementations, hand computations and statistics.

Oracles: properscoring (plain CRPS), scoringrules (fair CRPS), numpy's Weibull quantiles
(coverage intervals); calibration statistics of a synthetic exchangeable ensemble.
"""

import math

import numpy as np
import properscoring
import pytest
import scoringrules
import torch
from scipy.stats import chi2

from engine.errors import ParameterError
from engine.metrics import vrmse
from engine.metrics.ensemble import (
    calibrated_coverage,
    coverage,
    crps,
    ensemble_mean,
    ensemble_scores,
    rank_histogram,
    spread,
    spread_skill_ratio,
)


def _random_ensemble(members=8, shape=(3, 2, 6, 5), dtype=torch.float64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    forecast = torch.randn(members, *shape, generator=generator, dtype=dtype)
    truth = 0.5 + 1.5 * torch.randn(*shape, generator=generator, dtype=dtype)
    return forecast, truth


def _properscoring_crps(members, truth):
    per_point = properscoring.crps_ensemble(
        truth.double().numpy(), np.moveaxis(members.double().numpy(), 0, -1)
    )
    return per_point.mean(axis=(-2, -1))


def _scoringrules_fair_crps(members, truth):
    # scoringrules 0.10: crps_ensemble(obs, fct, m_axis, *, estimator, backend)
    per_point = scoringrules.crps_ensemble(
        truth.double().numpy(),
        members.double().numpy(),
        m_axis=0,
        estimator="fair",
        backend="numpy",
    )
    return per_point.mean(axis=(-2, -1))


# --- oracles -------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 2, 3, 16])
def test_plain_crps_matches_properscoring(size):
    members, truth = _random_ensemble(size)
    ours = crps(members, truth)
    assert ours.shape == (3, 2)
    np.testing.assert_allclose(
        ours.numpy(), _properscoring_crps(members, truth), rtol=1e-12, atol=1e-14
    )


@pytest.mark.parametrize("size", [2, 3, 16])
def test_fair_crps_matches_scoringrules(size):
    members, truth = _random_ensemble(size, seed=1)
    np.testing.assert_allclose(
        crps(members, truth, fair=True).numpy(),
        _scoringrules_fair_crps(members, truth),
        rtol=1e-12,
        atol=1e-14,
    )


def test_float32_crps_keeps_spread_of_offset_fields():
    # pressure-like field: offset 1e4, spread 1e-2; float32 ulp at 1e4 is ~1e-3
    members, truth = _random_ensemble(16, seed=2)
    members, truth = (1e4 + 1e-2 * members).float(), (1e4 + 1e-2 * truth).float()
    ours = crps(members, truth, fair=True)
    assert ours.dtype == torch.float32
    np.testing.assert_allclose(
        ours.double().numpy(), _scoringrules_fair_crps(members, truth), rtol=1e-5
    )
    np.testing.assert_allclose(
        crps(members, truth).double().numpy(), _properscoring_crps(members, truth), rtol=1e-5
    )


@pytest.mark.parametrize("size", [2, 7, 16])  # 16: `latentsim evaluate`'s ensembles
def test_coverage_intervals_match_numpy_weibull_quantiles(size):
    members, truth = _random_ensemble(size, seed=3)
    for level in (0.3, 0.5, 0.9):
        low, high = np.quantile(
            members.numpy(), [(1 - level) / 2, (1 + level) / 2], axis=0, method="weibull"
        )
        inside = (truth.numpy() >= low) & (truth.numpy() <= high)
        np.testing.assert_allclose(
            coverage(members, truth, level).numpy(), inside.mean(axis=(-2, -1)), rtol=0, atol=1e-15
        )


# --- hand-computed cases ---------------------------------------------------------------


def test_spread_and_ssr_by_hand():
    # two points: members {0, 2} and {1, 1}; mean_i (x_i - m)^2 = 1 and 0 -> 0.5 in space
    members = torch.tensor([[[[0.0, 1.0]]], [[[2.0, 1.0]]]], dtype=torch.float64)
    truth = torch.tensor([[[3.0, 1.0]]], dtype=torch.float64)  # mean (1, 1): mse 2
    assert spread(members).item() == pytest.approx(math.sqrt(3 * 0.5))
    assert spread_skill_ratio(members, truth).item() == pytest.approx(
        (math.sqrt(1.5) + 1e-3) / (math.sqrt(2) + 1e-3)
    )
    assert spread_skill_ratio(members, truth, eps=0.0).item() == pytest.approx(math.sqrt(0.75))
    # M = 3, members {0, 1, 3}: mean 4/3, mean_i dev^2 = 14/9, factor 4/2
    three = torch.tensor([0.0, 1.0, 3.0], dtype=torch.float64).view(3, 1, 1, 1)
    assert spread(three).item() == pytest.approx(math.sqrt(28) / 3)
    torch.testing.assert_close(
        ensemble_mean(three), torch.full((1, 1, 1), 4 / 3, dtype=torch.float64)
    )


def test_crps_by_hand():
    two = torch.tensor([0.0, 2.0]).view(2, 1, 1, 1)
    one = torch.ones(1, 1, 1)
    # mean |x - y| = 1; sum_ij |x_i - x_j| = 4 -> 4/8 (plain), 4/4 (fair)
    assert crps(two, one).item() == pytest.approx(0.5)
    assert crps(two, one, fair=True).item() == pytest.approx(0.0, abs=1e-7)
    three = torch.tensor([0.0, 1.0, 3.0]).view(3, 1, 1, 1)
    # mean |x - 2| = 4/3; sum_ij |x_i - x_j| = 2 (1 + 3 + 2) = 12 -> 12/18, 12/12
    assert crps(three, 2 * one).item() == pytest.approx(4 / 3 - 2 / 3)
    assert crps(three, 2 * one, fair=True).item() == pytest.approx(4 / 3 - 1)


def test_rank_histogram_by_hand():
    members = torch.tensor([0.0, 1.0, 3.0]).view(3, 1, 1, 1).expand(3, 2, 1, 4)
    truth = torch.tensor([[[-1.0, 0.5, 2.0, 5.0]], [[5.0, 5.0, 5.0, 5.0]]])  # (C=2, 1, 4)
    histogram = rank_histogram(members, truth)
    torch.testing.assert_close(
        histogram, torch.tensor([[0.25, 0.25, 0.25, 0.25], [0.0, 0.0, 0.0, 1.0]])
    )


def test_rank_histogram_breaks_ties_at_random_and_reproducibly():
    # members {0, 1, 1, 3}, truth 1: one below, two tied -> rank 1, 2 or 3 equally often
    members = torch.tensor([0.0, 1.0, 1.0, 3.0]).view(4, 1, 1, 1).expand(4, 1, 60, 50)
    truth = torch.ones(1, 60, 50)
    histogram = rank_histogram(members, truth, torch.Generator().manual_seed(5))
    expected = torch.tensor([[0.0, 1 / 3, 1 / 3, 1 / 3, 0.0]])
    torch.testing.assert_close(histogram, expected, atol=0.03, rtol=0)  # ~3.5 sigma
    again = rank_histogram(members, truth, torch.Generator().manual_seed(5))
    torch.testing.assert_close(histogram, again, atol=0, rtol=0)


def test_rank_histogram_subsamples_max_points():
    members, truth = _random_ensemble(5, shape=(4, 3, 16, 16), seed=4)
    histogram = rank_histogram(members, truth, torch.Generator().manual_seed(0), max_points=97)
    assert histogram.shape == (3, 6)
    torch.testing.assert_close(histogram.sum(dim=1), torch.ones(3, dtype=torch.float64))
    counts = histogram * 97
    torch.testing.assert_close(counts, counts.round(), atol=1e-9, rtol=0)


def test_coverage_by_hand():
    # Weibull positions: x_(k) of {0, 1, 3} is the k/4 quantile
    members = torch.tensor([0.0, 1.0, 3.0]).view(3, 1, 1, 1).expand(3, 1, 1, 5)
    truth = torch.tensor([[[-0.1, 0.0, 2.0, 3.0, 3.1]]])
    assert coverage(members, truth, 0.5).item() == pytest.approx(3 / 5)  # [x_(1), x_(3)]
    assert coverage(members, truth, 0.9).item() == pytest.approx(3 / 5)  # clamped to min-max
    # level 0.25: quantiles 0.375 and 0.625 at positions 1.5 and 2.5 -> [0.5, 2]
    members = members[..., :4]
    truth = torch.tensor([[[0.4, 0.5, 1.9, 2.1]]])
    assert coverage(members, truth, 0.25).item() == pytest.approx(0.5)


# --- calibration statistics ------------------------------------------------------------

SIGMA = 2.0
MEMBERS = 19  # (M + 1)(1 ± p)/2 is an integer for p = 0.3, 0.5, 0.8: coverage is exactly p


def _gaussian_case(member_scale=1.0, member_bias=0.0, seed=0):
    generator = torch.Generator().manual_seed(seed)
    members = member_bias + member_scale * SIGMA * torch.randn(
        MEMBERS, 4, 2, 64, 64, generator=generator
    )
    truth = SIGMA * torch.randn(4, 2, 64, 64, generator=generator)
    return members, truth, generator


def test_exchangeable_ensemble_is_calibrated():
    members, truth, generator = _gaussian_case()
    # 8 cells of 4096 points: the mean SSR has sd ~0.004
    assert spread_skill_ratio(members, truth).mean().item() == pytest.approx(1.0, abs=0.02)
    for level in (0.3, 0.5, 0.8):  # sd of the mean coverage ~0.003
        assert coverage(members, truth, level).mean().item() == pytest.approx(level, abs=0.015)
    # E|X - y| - E|X - X'|/2 = 2σ/√π - σ/√π for y, X, X' iid N(0, σ²); sd ~0.3%
    fair = crps(members, truth, fair=True).mean().item()
    assert fair == pytest.approx(SIGMA / math.sqrt(math.pi), rel=0.02)
    points = 5000
    histogram = rank_histogram(members, truth, generator, max_points=points)
    uniform = 1 / (MEMBERS + 1)
    statistic = (points * (histogram - uniform).square() / uniform).sum(dim=1)
    # independent points: Pearson's statistic is chi-square with M dof; 0.1% false alarms
    assert (statistic < chi2.ppf(0.999, MEMBERS)).all(), statistic


def test_calibrated_coverage_by_hand():
    assert calibrated_coverage(19, 0.5) == pytest.approx(0.5)  # positions 5 and 15 of 19
    assert calibrated_coverage(16, 0.5) == pytest.approx(0.5)  # 4.25 .. 12.75
    assert calibrated_coverage(16, 0.9) == pytest.approx(15 / 17)  # clamped: min..max
    assert calibrated_coverage(2, 0.5) == pytest.approx(1 / 3)  # clamped: min..max


@pytest.mark.parametrize(
    ("size", "draw"), [(5, torch.rand), (16, torch.rand), (16, torch.randn), (19, torch.randn)]
)
def test_exchangeable_ensemble_reaches_the_calibrated_coverage(size, draw):
    """Members and truth iid: the mean coverage converges to what the ensemble's size
    allows, e.g. 15/17 rather than 0.9 for the min-max interval of 16 members. Exact for
    uniform draws (evenly spread within every gap); for Gaussian draws where an end falls
    between order statistics (16 members, 50 %) it is 0.5036, within the tolerance."""
    generator = torch.Generator().manual_seed(size)
    members = draw(size, 8, 1, 64, 64, generator=generator)
    truth = draw(8, 1, 64, 64, generator=generator)
    for level in (0.5, 0.9):  # 32768 independent points: sd of the mean ~0.003
        expected = calibrated_coverage(size, level)
        measured = coverage(members, truth, level).mean().item()
        assert measured == pytest.approx(expected, abs=0.012), (size, level)


def test_under_dispersed_ensemble_has_low_ssr_and_u_shaped_histogram():
    members, truth, generator = _gaussian_case(member_scale=0.5)
    # spread σ/2·√((M+1)/M) against rmse σ√(1 + 1/(4M)) -> SSR ≈ 0.51
    assert spread_skill_ratio(members, truth).max().item() < 0.6
    histogram = rank_histogram(members, truth, generator, max_points=5000)
    uniform = 1 / (MEMBERS + 1)
    assert (histogram[:, 0] > 3 * uniform).all() and (histogram[:, -1] > 3 * uniform).all()
    assert (histogram[:, 5:-5] < uniform).all()
    assert coverage(members, truth, 0.8).max().item() < 0.6


def test_over_dispersed_ensemble_has_dome_shaped_histogram():
    members, truth, generator = _gaussian_case(member_scale=2.0)
    assert spread_skill_ratio(members, truth).min().item() > 1.5
    histogram = rank_histogram(members, truth, generator, max_points=5000)
    uniform = 1 / (MEMBERS + 1)
    assert (histogram[:, [0, -1]] < uniform / 2).all()
    assert (histogram[:, 5:-5] > uniform).all()


def test_biased_ensemble_has_sloped_histogram():
    members, truth, generator = _gaussian_case(member_bias=SIGMA)  # members too high
    histogram = rank_histogram(members, truth, generator, max_points=5000)
    lower_half = histogram[:, : (MEMBERS + 1) // 2].sum(dim=1)
    assert (lower_half > 0.75).all(), lower_half
    assert (histogram[:, 0] > 5 * histogram[:, -1]).all()


# --- single member, dict of scores, bad input --------------------------------------------


def test_single_member_is_a_deterministic_forecast():
    members, truth = _random_ensemble(1)
    torch.testing.assert_close(spread(members), torch.zeros(3, 2, dtype=torch.float64))
    mae = (members[0] - truth).abs().mean(dim=(-2, -1))
    torch.testing.assert_close(crps(members, truth), mae)
    rmse_mean = (members[0] - truth).square().mean(dim=(-2, -1)).sqrt()
    torch.testing.assert_close(spread_skill_ratio(members, truth), 1e-3 / (rmse_mean + 1e-3))
    with pytest.raises(ParameterError, match="M >= 2 for the fair CRPS"):
        crps(members, truth, fair=True)
    histogram = rank_histogram(members, truth)  # rank 1 wherever the member is below
    below = (members[0] < truth).movedim(-3, 0).flatten(1).double().mean(dim=1)
    torch.testing.assert_close(histogram, torch.stack([1 - below, below], dim=1))
    scores = ensemble_scores(members, truth)
    assert "crps_fair" not in scores
    torch.testing.assert_close(scores["crps"], mae)


def test_ensemble_scores_per_lead_time_and_channel():
    members, truth = _random_ensemble(6, shape=(5, 3, 8, 8), dtype=torch.float32)
    scores = ensemble_scores(members, truth)
    assert set(scores) == {"rmse", "nrmse", "vrmse", "spread", "ssr", "crps", "crps_fair"}
    for value in scores.values():
        assert value.shape == (5, 3) and value.dtype == torch.float32
    torch.testing.assert_close(scores["vrmse"], vrmse(members.mean(dim=0), truth))
    torch.testing.assert_close(scores["ssr"], spread_skill_ratio(members, truth))
    torch.testing.assert_close(scores["crps_fair"], crps(members, truth, fair=True))
    torch.testing.assert_close(scores["spread"], spread(members))


def test_bad_input_names_the_problem():
    members, truth = _random_ensemble(4)
    with pytest.raises(ParameterError, match=r"M \(members.shape\[0\]\)=0"):
        crps(members[:0], truth)
    with pytest.raises(ParameterError, match=r"\(4, 3, 2, 6, 5\).*truth.shape=\(2, 6, 5\)"):
        spread_skill_ratio(members, truth[0])
    with pytest.raises(ParameterError, match="at least 4 dims"):
        spread(members[:, 0, 0])
    for level in (0.0, 1.0, 1.5):
        with pytest.raises(ParameterError, match="0 < level < 1"):
            coverage(members, truth, level)
        with pytest.raises(ParameterError, match="0 < level < 1"):
            calibrated_coverage(16, level)
    with pytest.raises(ParameterError, match=r"M \(members\)=1.*M >= 2"):
        calibrated_coverage(1, 0.5)
    with pytest.raises(ParameterError, match="max_points"):
        rank_histogram(members, truth, max_points=0)

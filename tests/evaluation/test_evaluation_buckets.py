"""Lead-time buckets: edges worked out by hand, and bucket means with missing leads."""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import ParameterError
from engine.evaluation.buckets import bucket_means, lead_buckets


@pytest.mark.parametrize(
    ("horizon", "edges"),
    [
        # The paper's Euler table (100 leads) and TGC table (50 leads).
        (100, [(1, 20), (21, 60), (61, 100)]),
        (50, [(1, 10), (11, 30), (31, 50)]),
        # Our default: 48 / 5 = 9.6 -> 10, 3 * 48 / 5 = 28.8 -> 29.
        (48, [(1, 10), (11, 29), (30, 48)]),
        # 7 / 5 = 1.4 -> 1, 21 / 5 = 4.2 -> 4.
        (7, [(1, 1), (2, 4), (5, 7)]),
        # 8 / 5 = 1.6 -> 2, 24 / 5 = 4.8 -> 5.
        (8, [(1, 2), (3, 5), (6, 8)]),
        # The smallest horizon: one lead per bucket (3/5 = 0.6 -> at least 1).
        (3, [(1, 1), (2, 2), (3, 3)]),
        # 4 / 5 = 0.8 -> 1, 12 / 5 = 2.4 -> 2.
        (4, [(1, 1), (2, 2), (3, 4)]),
    ],
)
def test_bucket_edges_follow_the_one_fifth_three_fifths_rule(horizon, edges):
    buckets = lead_buckets(horizon)
    assert [b.name for b in buckets] == ["short", "mid", "long"]
    assert [(b.first, b.last) for b in buckets] == edges
    assert buckets[-1].label == f"{edges[-1][0]}–{edges[-1][1]}"
    assert buckets[0].record(0.5) == {
        "name": "short",
        "leads": [1, edges[0][1]],
        "lead_time": [0.5, 0.5 * edges[0][1]],
    }


@pytest.mark.parametrize("horizon", [2, 0, -1, 2.5, True])
def test_too_short_horizons_are_refused_with_the_valid_range(horizon):
    with pytest.raises(ParameterError, match=r"horizon=.* an integer >= 3"):
        lead_buckets(horizon)


def test_bucket_means_average_the_bucket_leads_and_refuse_missing_ones():
    lead = np.arange(1, 8)  # buckets 1 / 2-4 / 5-7
    values = np.array(
        [[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0]]
    )
    means = bucket_means(values, lead, lead_buckets(7))
    np.testing.assert_allclose(means["short"], [1.0, 10.0])
    np.testing.assert_allclose(means["mid"], [3.0, 30.0])
    np.testing.assert_allclose(means["long"], [6.0, 60.0])

    diverged = values.copy()
    diverged[1, 5:] = np.nan  # the second rollout stopped after lead 5
    means = bucket_means(diverged, lead, lead_buckets(7))
    np.testing.assert_allclose(means["mid"], [3.0, 30.0])
    assert means["long"] is None


def test_strided_leads_fall_in_the_buckets_of_their_stored_frames():
    lead = np.array([2, 4, 6])  # an emulator stepping 2 frames at a time
    means = bucket_means(np.array([1.0, 2.0, 3.0]), lead, lead_buckets(7))
    assert means["short"] is None  # no lead at frame 1
    assert float(means["mid"]) == 1.5  # frames 2 and 4
    assert float(means["long"]) == 3.0  # frame 6

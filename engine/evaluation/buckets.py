"""Short / mid / long lead-time buckets, fixed before any score is computed.

The paper averages its scores over lead-time buckets in stored frames (simulation steps)
after the last context frame: 1-20 / 21-60 / 61-100 of Euler's 100 predicted frames and
1-10 / 11-30 / 31-50 of TGC's 50, i.e. edges at 1/5 and 3/5 of the leads predicted (RB's
61-180 runs past our trajectories' length). Our trajectories are shorter (51 or 101
frames) and the horizon is a command-line choice, so the same proportions are applied to
the H leads a system is evaluated on:

    short = 1 .. round(H/5),  mid = .. round(3H/5),  long = .. H

(H = 48 gives 1-10 / 11-29 / 30-48; H = 100 gives the paper's 1-20 / 21-60 / 61-100).
The edges depend on H only, never on scores, and every report states them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.errors import check_integer

BUCKET_NAMES = ("short", "mid", "long")
MIN_LEADS = len(BUCKET_NAMES)  # one lead per bucket at least
RULE = (
    "short = leads 1..round(H/5), mid = ..round(3H/5), long = ..H, in stored frames "
    "after the last context frame, with H the leads evaluated (the paper's Euler/TGC "
    "proportions: 1-20/21-60/61-100 for H = 100)"
)


@dataclass(frozen=True)
class Bucket:
    """Leads `first`..`last` (inclusive), in stored frames after the last context frame."""

    name: str
    first: int
    last: int

    @property
    def label(self) -> str:
        return f"{self.first}–{self.last}"

    def contains(self, lead: np.ndarray) -> np.ndarray:
        return (lead >= self.first) & (lead <= self.last)

    def record(self, frame_dt: float) -> dict[str, object]:
        """JSON description, with the bucket's span in simulation time."""
        return {
            "name": self.name,
            "leads": [self.first, self.last],
            "lead_time": [self.first * frame_dt, self.last * frame_dt],
        }


def lead_buckets(horizon: int) -> tuple[Bucket, Bucket, Bucket]:
    """The three buckets of `horizon` leads (see the module docstring)."""
    check_integer("horizon", horizon, MIN_LEADS, why=" (one lead per short/mid/long bucket)")
    # round(k H / 5) in integers; k H / 5 is never a half for integer H.
    short_end = max(1, (2 * horizon + 5) // 10)
    mid_end = min(max(short_end + 1, (6 * horizon + 5) // 10), horizon - 1)
    return (
        Bucket("short", 1, short_end),
        Bucket("mid", short_end + 1, mid_end),
        Bucket("long", mid_end + 1, horizon),
    )


def bucket_means(
    values: np.ndarray, lead: np.ndarray, buckets: tuple[Bucket, ...]
) -> dict[str, np.ndarray | None]:
    """Mean of `values` (..., lead) over each bucket's leads: an array (...) per bucket.

    `lead` holds every lead the model was asked for (in stored frames); a lead it could not
    produce (a diverged rollout) is NaN in `values`. A bucket with such a lead, or with no
    lead at all, has no mean (None): averaging only the frames that exist would report a
    diverged model's surviving part as its score.
    """
    means: dict[str, np.ndarray | None] = {}
    for bucket in buckets:
        inside = bucket.contains(lead)
        part = values[..., inside]
        finite = inside.any() and bool(np.isfinite(part).all())
        means[bucket.name] = part.mean(axis=-1) if finite else None
    return means

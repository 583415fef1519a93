"""Guided lessons through the paper's findings, as data: no Panel, so tested headless.

Each lesson is a sentence or two, a URL state (the same query keys the address bar
uses) that the Lessons tab applies and runs, the tab to look at, and what the student
should see there. What they should see was checked on the shipped zoo with these very
states (tests/app/test_lessons.py runs each one; docs/lessons.md gives the numbers):
lessons name systems and seeds where the claim holds, and say so where it does not hold
everywhere (on Euler, diffusion does not beat the deterministic emulator).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.state import ExplorerState

# Every lesson starts from these values, so one lesson's settings never leak into the next.
BASE = {
    "sampler": "ab",
    "steps": "16",
    "members": "8",
    "context": "1",
    "horizon": "40",
    "seed": "0",
    "reference": "true",
    "compare": "none",
    "mosaic": "true",
    "member": "0",
}


@dataclass(frozen=True)
class Lesson:
    key: str
    title: str
    text: str  # what to do and why, a sentence or two
    expect: str  # what the student should see
    query: dict[str, str]  # URL state on top of BASE
    tab: str = "Fields"  # the tab to look at afterwards
    extra: str = ""  # an optional figure or note (Markdown)

    def full_query(self) -> dict[str, str]:
        return {**BASE, **self.query}


LESSONS: tuple[Lesson, ...] = (
    Lesson(
        key="emulator",
        title="1. What an emulator is",
        text=(
            "The solver integrates Rayleigh–Bénard convection step by step (*ground truth*). "
            "The emulator, a network trained on such runs, sees only the first frame and "
            "predicts the next 40 frames, four at a time."
        ),
        expect=(
            "Press ▶ on the Fields tab: for the first few leads the ensemble mean and the "
            "truth show the same plumes; later the members keep sharp, plausible plumes "
            "that no longer sit where the truth's do, and the mean blurs. On Diagnostics, "
            "the error of the mean (VRMSE) is below 0.1 for the first 5 leads, peaks near "
            "0.9 around lead 13 as the plumes break up, and stays between 0.7 and 0.8 from "
            "lead 20 on (1 would be no better than the spatial mean). The charts' axis is "
            "lead time: one lead is 0.5 time units here, so lead 20 sits at 10."
        ),
        query={
            "system": "rayleigh_benard",
            "rate": "64",
            "kind": "diffusion",
            "field": "buoyancy",
            "seed": "3",
        },
    ),
    Lesson(
        key="compression",
        title="2. What compression keeps and loses",
        text=(
            "Latent emulators work on a compressed frame: ×64, ×256 or ×1024 fewer numbers. "
            "This runs the diffusion emulator at the three rates on the same start."
        ),
        expect=(
            "On the Compare chart the dashed lines are each rate's autoencoder floor (the "
            "error of decoding the encoded truth: the best that rate can do). The floor "
            "grows about 2.5× from ×64 to ×1024 (0.17 to 0.42 on average) and ×1024 is "
            "worse over the first 8 leads (0.19 against 0.12), yet from lead 20 on the "
            "three latent curves and the pixel-space one stay between 0.6 and 0.9 with no "
            "order by rate (×1024 even ends lowest): compression costs little (finding 1)."
        ),
        query={
            "system": "rayleigh_benard",
            "rate": "64",
            "kind": "diffusion",
            "compare": "rates",
            "reference": "false",
            "field": "buoyancy",
            "seed": "3",
        },
        tab="Compare",
    ),
    Lesson(
        key="ensemble",
        title="3. Why an ensemble",
        text=(
            "A deterministic emulator gives one guess; a diffusion emulator samples many. "
            "This runs both at ×64 for 48 leads (the deterministic one as the reference)."
        ),
        expect=(
            "On the VRMSE chart the deterministic line is a little lower for the first dozen "
            "leads (its one guess is trained to be best on average); from lead 14 (lead "
            "time 7) on it lies above the ensemble mean's and climbs to about 1.0 by lead "
            "40, while the ensemble mean, which averages away what cannot be predicted, "
            "stays near 0.75 "
            "(finding 2). It holds on average, not on every trajectory: with seed 1 the "
            "two curves cross back and forth. And it holds on Rayleigh–Bénard and "
            "Kolmogorov, not on Euler, where our small deterministic emulators are as good "
            "or better at long lead (docs/RESULTS.md)."
        ),
        query={
            "system": "rayleigh_benard",
            "rate": "64",
            "kind": "diffusion",
            "members": "16",
            "horizon": "48",
            "field": "buoyancy",
            "seed": "3",
        },
        tab="Diagnostics",
    ),
    Lesson(
        key="calibration",
        title="4. Is the spread trustworthy? Calibration",
        text=(
            "An ensemble is useful when its spread says how wrong its mean is. The "
            "spread–skill ratio compares the two; the rank histogram asks where the truth "
            "falls among the 16 members."
        ),
        expect=(
            "The spread–skill ratio stays near 1 (between about 0.7 and 1.3, 0.95 on "
            "average) at every lead: calibrated, neither over- nor under-confident "
            "(finding 4). The rank histogram is nearly flat: the truth is about as likely "
            "to fall in any of the 17 slots between the sorted members (each near 1/17 = "
            "0.06; only the top slot is a little high)."
        ),
        query={
            "system": "rayleigh_benard",
            "rate": "64",
            "kind": "diffusion",
            "members": "16",
            "horizon": "40",
            "field": "buoyancy",
            "seed": "3",
        },
        tab="Diagnostics",
    ),
    Lesson(
        key="out-of-distribution",
        title="5. Outside the training data",
        text=(
            "The emulators were trained on Rayleigh numbers 10⁵ to 3·10⁶. This runs "
            "Rayleigh 10⁷: the solver is still right, the emulator extrapolates."
        ),
        expect=(
            "The Rayleigh control shows ⚠ out of distribution. The truth has thinner "
            "plumes; even the autoencoder floor is twice that of lesson 1, the error of the "
            "mean over the first 8 leads is more than twice lesson 1's (about 0.3 against "
            "0.12), and the rank histogram tilts: the truth falls more often in the lower "
            "slots, a bias that the spread does not cover."
        ),
        query={
            "system": "rayleigh_benard",
            "rate": "64",
            "kind": "diffusion",
            "field": "buoyancy",
            "seed": "3",
            "Rayleigh": "1e7",
        },
        tab="Diagnostics",
    ),
    Lesson(
        key="samplers",
        title="6. Samplers and steps",
        text=(
            "Each emulator call integrates the diffusion from noise to a sample in a number "
            "of steps; fewer steps are cheaper. This compares Adams–Bashforth with 4, 8 "
            "and 16 steps and DDIM with 16."
        ),
        expect=(
            "Each row's cost grows with its steps: 4 steps cost about a quarter of 16. "
            "Yet the four error curves nearly coincide: for the ensemble mean, 4 or 8 "
            "steps of Adams–Bashforth are as good as 16. What few steps lose is "
            "calibration: set steps to 4, Run, and on Diagnostics the spread–skill ratio "
            "drops (about 0.86 on average against 0.96) and the rank histogram's end slots "
            "rise: 4-step ensembles are under-dispersed."
        ),
        query={
            "system": "rayleigh_benard",
            "rate": "64",
            "kind": "diffusion",
            "compare": "samplers",
            "compare_samplers": '["ab/4", "ab/8", "ab/16", "ddim/16"]',
            "reference": "false",
            "field": "buoyancy",
            "seed": "3",
        },
        tab="Compare",
    ),
    Lesson(
        key="cost",
        title="7. Is it faster than the solver? The cost",
        text=(
            "The status line under Run gives the emulator's seconds per frame next to the "
            "solver's. The plot below, measured with `latentsim bench scaling`, shows how "
            "both grow with the grid."
        ),
        expect=(
            "On the zoo's small grids (128 × 32 here) the status line shows the 16-member "
            "ensemble at about 0.2 s per frame, about 0.01 s per member, and the solver at "
            "0.01–0.05 s per frame: one emulated member costs about one solver run, the "
            "ensemble much more. The plot shows that the solver's cost grows faster with "
            "the grid: on this machine latent diffusion becomes cheaper per member than the "
            "solver between 256² and 512², and it is 4–11× cheaper than pixel-space "
            "diffusion at every size."
        ),
        query={
            "system": "rayleigh_benard",
            "rate": "1024",
            "kind": "diffusion",
            "members": "16",
            "horizon": "8",
            "reference": "false",
            "field": "buoyancy",
            "seed": "3",
        },
    ),
)


def lesson(key: str) -> Lesson:
    for item in LESSONS:
        if item.key == key:
            return item
    raise KeyError(key)


def apply_lesson(state: ExplorerState, item: Lesson) -> list[str]:
    """Put the state where the lesson wants it; returns URL-style warnings (none expected).

    The system is set first and its conditions reset to their defaults, so a condition
    changed by an earlier lesson (or the user) does not carry over."""
    query: dict[str, Any] = item.full_query()
    warnings = state.apply_query({"system": query["system"]}) if "system" in query else []
    spec = state.spec
    defaults = {p.name: p.default for p in spec.parameters}
    defaults.update({c.name: c.default for c in spec.choices})
    state.conditions = defaults
    return warnings + state.apply_query(query)


__all__ = ["BASE", "LESSONS", "Lesson", "apply_lesson", "lesson"]

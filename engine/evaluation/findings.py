"""The paper's findings, checked against measured numbers (results.json's `systems`).

Findings 1-4 are the paper's results tables made precise; 5 (robustness out of the
training range) and 6 (interval coverage) are claims about the same emulators that the
paper makes in words, measured here with definitions of our own; 7 asks of every
autoencoder what makes learning one worthwhile: a better reconstruction than the fixed
linear (DCT) code at the same rate.

Each finding is a list of checks per system; a check is PASS or MISSED on the numbers, or
NOT EVALUATED when a model it needs is missing (not trained, unusable or not selected).
A system's verdict, and the finding's over all systems, is MISSED if any check missed,
else NOT EVALUATED if any check lacked a model, else PASS: a missing model never passes.

A diverged model's undefined scores count as infinitely bad: it cannot be the better of
two models, nor calibrated, nor robust to compression.

Thresholds are fixed here, before any result is seen, and are the paper's claims made
precise; they are not tuned to the numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from engine.evaluation.paper import PAPER
from engine.metrics import calibrated_coverage
from engine.rollout import COVERAGE_LEVELS

PASS, MISSED, NOT_EVALUATED = "PASS", "MISSED", "NOT EVALUATED"
ROBUSTNESS = 0.25  # finding 1: every rate within ±25 % of the mean over the rates
FLOOR_GROWTH = 2.0  # finding 1: AE error at the highest rate >= 2x that at the lowest
# finding 1: latent diffusion must beat persistence by 10 % at the long bucket, or rates
# that are all equally close to no skill would pass as "robust to compression"
SKILL_MARGIN = 0.9
SSR_RANGE = (0.6, 1.5)  # findings 4 and 5
COVERAGE_TOLERANCE = 0.1  # finding 6: |coverage − calibrated level| at most this

TITLES = {
    1: "Compression costs little",
    2: "Diffusion beats the deterministic solver",
    3: "Latent beats pixel space",
    4: "Diffusion ensembles are calibrated",
    5: "Diffusion is robust out of the training range",
    6: "Diffusion ensembles' intervals cover the truth",
    7: "Autoencoders beat the fixed linear code",
}
DEFINITIONS = {
    1: (
        f"At the long bucket, latent-diffusion VRMSE at each of the system's rates lies within "
        f"±{ROBUSTNESS:.0%} of its mean over the rates (max |v_r / mean − 1| <= {ROBUSTNESS}), "
        f"while the autoencoder reconstruction VRMSE on the same frames grows at least "
        f"{FLOOR_GROWTH:g}x from the lowest to the highest rate. A system counts only where "
        f"latent diffusion has skill: its long-bucket VRMSE at every rate is below "
        f"{SKILL_MARGIN:g} x persistence's (the last context frame repeated), so that rates "
        f"all equally close to no skill cannot pass."
    ),
    2: "At the long bucket, latent-diffusion VRMSE < latent-deterministic VRMSE, at every rate.",
    3: (
        "At the long bucket, latent-diffusion VRMSE at every rate < the pixel-space "
        "deterministic emulator's VRMSE."
    ),
    4: (
        f"Every diffusion emulator's spread-skill ratio, averaged over trajectories, fields "
        f"and all leads of the rollout, lies in [{SSR_RANGE[0]}, {SSR_RANGE[1]}]."
    ),
    5: (
        "On the test trajectories re-run by the solver out of the training range (same "
        "seeds; rule in the system sections), each model's shift ratio = its VRMSE "
        "averaged over trajectories, fields and all leads of the rollout out of range / "
        "the same average on the stored test trajectories. At every rate, latent "
        "diffusion's shift ratio < the latent deterministic emulator's, and latent "
        f"diffusion's spread-skill ratio out of range lies in [{SSR_RANGE[0]}, "
        f"{SSR_RANGE[1]}]."
    ),
    6: (
        "Coverage = the fraction of truth values (grid points x fields x trajectories x "
        "the bucket's leads) inside the members' central 50 % and 90 % intervals (Weibull "
        "quantiles). For every diffusion emulator, at every lead bucket and both levels, "
        f"|coverage − calibrated level| <= {COVERAGE_TOLERANCE:g}, the calibrated level "
        "being what an ensemble of that size reaches when the truth is exchangeable with "
        "its members (0.500 and 15/17 = 0.882 for 16 members, whose 90 % interval is "
        "their min-max)."
    ),
    7: (
        "At every rate, the autoencoder's reconstruction VRMSE, averaged over trajectories, "
        "fields and every evaluated frame, < that of the fixed linear code on the same "
        "frames: per channel, the lowest-frequency coefficients of the 2-D DCT (no more "
        "values than the autoencoder's latent), in the autoencoder's preprocessed space."
    ),
}


@dataclass
class Check:
    """One comparison: what was compared (with its numbers), its verdict, and the models
    it lacked (for NOT EVALUATED)."""

    what: str
    verdict: str
    missing: list[str] = field(default_factory=list)
    has_numbers: bool = True  # `what` shows at least one measured number


@dataclass
class SystemFinding:
    verdict: str
    measured: str
    paper: str
    checks: list[Check]

    @property
    def missing(self) -> list[str]:
        return sorted({name for check in self.checks for name in check.missing})


@dataclass
class Finding:
    number: int
    title: str
    definition: str
    verdict: str
    systems: dict[str, SystemFinding]

    @property
    def missing(self) -> list[str]:
        return sorted({n for s in self.systems.values() for n in s.missing})

    @property
    def statement(self) -> str:
        """ "PASS", "MISSED" or "not evaluated (missing: ...)"."""
        if self.verdict == NOT_EVALUATED:
            return f"not evaluated (missing: {', '.join(self.missing) or 'no system'})"
        return self.verdict

    def record(self) -> dict[str, Any]:
        data = asdict(self)
        data["statement"] = self.statement
        data["missing"] = self.missing
        return data


def combine(verdicts: Iterable[str]) -> str:
    verdicts = list(verdicts)
    if MISSED in verdicts:
        return MISSED
    if NOT_EVALUATED in verdicts or not verdicts:
        return NOT_EVALUATED
    return PASS


# -- reading results ---------------------------------------------------------------------
@dataclass
class Lookup:
    """A model's number, or why there is none (`missing` names the model)."""

    value: float | None = None
    missing: str | None = None


def find_model(
    system: Mapping[str, Any], kind: str, method: str | None, space: str | None, rate: int | None
) -> tuple[str, Mapping[str, Any] | None]:
    """(name, record) of the evaluated model in this role, or (name, None) if it is
    listed as missing, or ("", None) if the role is not part of the plan at all."""
    group = system["models"] if kind == "emulator" else system["autoencoders"]
    for name, record in group.items():
        if kind == "autoencoder" and record.get("rate") == rate:
            return name, record
        if kind == "emulator" and (record["method"], record["space"], record["rate"]) == (
            method,
            space,
            rate,
        ):
            return name, record
    for name, role in system.get("missing", {}).items():
        if (role["kind"], role["method"], role["space"], role["rate"]) == (
            kind,
            method,
            space,
            rate,
        ):
            return name, None
    return "", None


def long_vrmse(
    system: Mapping[str, Any],
    kind: str,
    method: str | None = None,
    space: str | None = None,
    rate: int | None = None,
) -> Lookup:
    """Long-bucket VRMSE (mean over fields) of a role; inf when it diverged before."""
    name, record = find_model(system, kind, method, space, rate)
    if record is None:
        return Lookup(missing=name or f"{kind} {method} {space} {rate} (not planned)")
    vrmse = record["buckets"]["long"]["vrmse"]
    return Lookup(value=math.inf if vrmse is None else vrmse["mean"])


def persistence_vrmse(system: Mapping[str, Any], bucket: str = "long") -> Lookup:
    """A bucket's VRMSE of persistence (the last context frame repeated)."""
    vrmse = ((system.get("persistence") or {}).get("buckets", {}).get(bucket) or {}).get("vrmse")
    if vrmse is None:
        return Lookup(missing="persistence")
    return Lookup(value=vrmse["mean"])


def skill(record: Mapping[str, Any] | None, reference: Mapping[str, Any], bucket: str):
    """Skill over persistence at a bucket: 1 − VRMSE / VRMSE of persistence (0 = as good
    as persisting the last context frame, 1 = perfect, < 0 worse); None where either is
    undefined (not evaluated, diverged, or persistence exactly right)."""
    if record is None:
        return None
    mine = record["buckets"][bucket].get("vrmse")
    theirs = reference["buckets"][bucket].get("vrmse")
    if mine is None or theirs is None or theirs["mean"] == 0:
        return None
    return 1.0 - mine["mean"] / theirs["mean"]


def rollout_vrmse(record: Mapping[str, Any]) -> float:
    """VRMSE averaged over trajectories, fields and every lead; inf if a lead is missing
    (a diverged rollout)."""
    values = record["vrmse_by_lead"]
    if not values or any(v is None for v in values):
        return math.inf
    return float(np.mean(values))


def _f(value: float | None) -> str:
    if value is None:
        return "—"
    return "diverged" if math.isinf(value) else f"{value:.3f}"


def _compare(what: str, better: Lookup, worse: Lookup) -> Check:
    """PASS when `better` < `worse` (both measured)."""
    numbers = f"{what}: {_f(better.value)} vs {_f(worse.value)}"
    missing = [x.missing for x in (better, worse) if x.missing]
    if missing:
        return Check(numbers, NOT_EVALUATED, missing, has_numbers=len(missing) < 2)
    ok = better.value < worse.value and not math.isinf(better.value)
    return Check(numbers, PASS if ok else MISSED)


def _system_finding(checks: list[Check], measured: str, paper: str) -> SystemFinding:
    return SystemFinding(combine(c.verdict for c in checks), measured, paper, checks)


def _paper_values(values: Sequence[float] | None) -> str:
    return " / ".join(f"{v:.3f}" for v in values) if values else "—"


# -- the findings ----------------------------------------------------------------------------
def compression_robustness(name: str, system: Mapping[str, Any]) -> SystemFinding:
    rates = system["rates"]
    ladder = "/".join(f"x{r}" for r in rates)
    diffusion = [long_vrmse(system, "emulator", "diffusion", "latent", r) for r in rates]
    floors = [long_vrmse(system, "autoencoder", rate=r) for r in rates]
    checks, measured = [], []
    too_few = [f"{name}: fewer than two rates"] if len(rates) < 2 else []
    missing = [x.missing for x in diffusion if x.missing] + too_few
    measured.append(f"diffusion {ladder}: {' / '.join(_f(x.value) for x in diffusion)}")
    if missing:
        checks.append(Check("latent diffusion at every rate", NOT_EVALUATED, missing))
    else:
        deviation = max_deviation([x.value for x in diffusion])
        checks.append(
            Check(
                f"max deviation from the mean {deviation:.1%}",
                PASS if deviation <= ROBUSTNESS else MISSED,
            )
        )
        measured[-1] += f" (max deviation {deviation:.1%})"
    persistence = persistence_vrmse(system)
    missing = [x.missing for x in (*diffusion, persistence) if x.missing]
    if missing:
        checks.append(Check("skill over persistence", NOT_EVALUATED, missing))
    else:
        bar = SKILL_MARGIN * persistence.value
        worst = max(x.value for x in diffusion)
        checks.append(
            Check(
                f"worst rate {_f(worst)} vs {SKILL_MARGIN:g} x persistence {_f(bar)}",
                PASS if worst < bar else MISSED,
            )
        )
        measured.append(
            f"persistence {_f(persistence.value)} ({SKILL_MARGIN:g}x: {_f(bar)}, "
            f"{'skilful' if worst < bar else 'NOT skilful: does not count'})"
        )
    missing = [x.missing for x in floors if x.missing] + too_few
    measured.append(f"AE floor {' / '.join(_f(x.value) for x in floors)}")
    if missing:
        checks.append(Check("autoencoder floor at every rate", NOT_EVALUATED, missing))
    else:
        growth = floors[-1].value / floors[0].value if floors[0].value > 0 else math.inf
        checks.append(
            Check(f"AE floor grows {growth:.2f}x", PASS if growth >= FLOOR_GROWTH else MISSED)
        )
        measured[-1] += f" ({growth:.2f}x)"
    paper = PAPER.get(name)
    paper_text = "—"
    if paper:
        ae = paper.autoencoder
        paper_text = (
            f"{paper.dataset}: diffusion {_paper_values(paper.long('diffusion'))} "
            f"(max deviation {max_deviation(paper.long('diffusion')):.1%}); AE "
            f"{_paper_values(ae)} ({ae[-1] / ae[0]:.2f}x, short bucket)"
        )
    return _system_finding(checks, "; ".join(measured), paper_text)


def max_deviation(values: Sequence[float]) -> float:
    """max |v / mean(v) − 1|; inf if any value is (a diverged model's) inf."""
    array = np.asarray(values, dtype=float)
    if not np.isfinite(array).all():
        return math.inf
    return float(np.abs(array / array.mean() - 1).max())


def diffusion_beats_deterministic(name: str, system: Mapping[str, Any]) -> SystemFinding:
    checks = [
        _compare(
            f"x{rate}",
            long_vrmse(system, "emulator", "diffusion", "latent", rate),
            long_vrmse(system, "emulator", "deterministic", "latent", rate),
        )
        for rate in system["rates"]
    ]
    paper = PAPER.get(name)
    paper_text = (
        (
            f"{paper.dataset}: diffusion {_paper_values(paper.long('diffusion'))} vs "
            f"deterministic {_paper_values(paper.long('deterministic'))}"
        )
        if paper
        else "—"
    )
    return _system_finding(checks, _measured(checks), paper_text)


def latent_beats_pixel(name: str, system: Mapping[str, Any]) -> SystemFinding:
    pixel = long_vrmse(system, "emulator", "deterministic", "pixel", None)
    checks = [
        _compare(f"x{rate}", long_vrmse(system, "emulator", "diffusion", "latent", rate), pixel)
        for rate in system["rates"]
    ]
    paper = PAPER.get(name)
    paper_text = "—"
    if paper and paper.pixel is not None:
        paper_text = (
            f"{paper.dataset}: diffusion {_paper_values(paper.long('diffusion'))} "
            f"vs pixel {paper.pixel[-1]:.3f}"
        )
    elif paper:
        paper_text = f"{paper.dataset}: no pixel baseline in the paper"
    return _system_finding(checks, _measured(checks), paper_text)


def _diffusion_checks(
    name: str, system: Mapping[str, Any], check: Callable[[Mapping[str, Any]], Check]
) -> list[Check]:
    """`check` of every diffusion emulator's record, latent rates lowest first, then
    pixel space; NOT EVALUATED for those missing, and when none is planned."""
    roles = [(n, r, r) for n, r in system["models"].items() if r["method"] == "diffusion"]
    roles += [
        (n, None, r)
        for n, r in system.get("missing", {}).items()
        if r["kind"] == "emulator" and r["method"] == "diffusion"
    ]
    checks = []
    for model, record, _ in sorted(
        roles, key=lambda item: (item[2]["rate"] is None, item[2]["rate"] or 0)
    ):
        if record is None:
            checks.append(Check(model, NOT_EVALUATED, [model], has_numbers=False))
        else:
            checks.append(check(record))
    if not checks:
        checks.append(
            Check(
                "diffusion emulators", NOT_EVALUATED, [f"{name}: none planned"], has_numbers=False
            )
        )
    return checks


def _ssr_check(record: Mapping[str, Any], label: str) -> Check:
    low, high = SSR_RANGE
    ssr = record.get("ssr_rollout")
    if ssr is None:
        return Check(f"{label}: no spread-skill ratio ({record['status']})", MISSED)
    return Check(f"{label}: {ssr:.2f}", PASS if low <= ssr <= high else MISSED)


def calibration(name: str, system: Mapping[str, Any]) -> SystemFinding:
    checks = _diffusion_checks(name, system, lambda record: _ssr_check(record, _label(record)))
    return _system_finding(
        checks,
        _measured(checks),
        "not tabulated in the paper (1 = calibrated, < 1 under-dispersed)",
    )


def coverage_check(record: Mapping[str, Any]) -> Check:
    """Coverage at both levels and every bucket against the calibrated level."""
    parts, ok = [], True
    for score, level in COVERAGE_LEVELS.items():
        target = calibrated_coverage(record["members"], level)
        values = [bucket.get(score) for bucket in record["buckets"].values()]
        ok &= all(v is not None and abs(v["mean"] - target) <= COVERAGE_TOLERANCE for v in values)
        shown = "/".join("div." if v is None else f"{v['mean']:.2f}" for v in values)
        parts.append(f"{level:.0%} {shown} (calibrated {target:.3f})")
    return Check(f"{_label(record)}: {', '.join(parts)}", PASS if ok else MISSED)


def interval_coverage(name: str, system: Mapping[str, Any]) -> SystemFinding:
    checks = _diffusion_checks(name, system, coverage_check)
    return _system_finding(
        checks,
        _measured(checks),
        "not tabulated in the paper (coverage below the calibrated level: intervals too narrow)",
    )


def shift_ratio(system: Mapping[str, Any], method: str, rate: int) -> Lookup:
    """A latent emulator's shift ratio (finding 5's definition); inf if it diverged."""
    name, record = find_model(system, "emulator", method, "latent", rate)
    out = (system.get("shift") or {}).get("models", {}).get(name)
    if record is None or out is None:
        return Lookup(missing=name or f"emulator {method} latent {rate} (not planned)")
    inside, outside = rollout_vrmse(record), rollout_vrmse(out)
    if math.isinf(inside) or math.isinf(outside):
        return Lookup(value=math.inf)
    return Lookup(value=outside / inside)


def shift_robustness(name: str, system: Mapping[str, Any]) -> SystemFinding:
    shift = system.get("shift")
    if shift is None or shift.get("status") != "ok":
        why = "not run (--no-shift)" if shift is None else shift["status"]
        check = Check("out-of-range trajectories", NOT_EVALUATED, [f"{name}: {why}"], False)
        return _system_finding([check], "—", "—")
    checks = []
    for rate in system["rates"]:
        checks.append(
            _compare(
                f"x{rate} shift ratio",
                shift_ratio(system, "diffusion", rate),
                shift_ratio(system, "deterministic", rate),
            )
        )
        model, _ = find_model(system, "emulator", "diffusion", "latent", rate)
        out = shift.get("models", {}).get(model)
        if out is None:
            missing = model or f"emulator diffusion latent {rate} (not planned)"
            checks.append(Check(f"x{rate} SSR out of range", NOT_EVALUATED, [missing], False))
        else:
            checks.append(_ssr_check(out, f"x{rate} SSR out of range"))
    return _system_finding(
        checks, _measured(checks), "not measured in the paper (1 = no loss out of range)"
    )


def autoencoders_beat_linear_code(name: str, system: Mapping[str, Any]) -> SystemFinding:
    checks = []
    for rate in system["rates"]:
        model, record = find_model(system, "autoencoder", None, None, rate)
        if record is None:
            missing = model or f"autoencoder {rate} (not planned)"
            checks.append(Check(f"x{rate}", NOT_EVALUATED, [missing], has_numbers=False))
            continue
        linear = record["linear_code"]
        checks.append(
            _compare(
                f"x{rate} autoencoder vs DCT code (x{linear['rate']:.0f})",
                Lookup(rollout_vrmse(record)),
                Lookup(rollout_vrmse(linear)),
            )
        )
    return _system_finding(checks, _measured(checks), "not compared in the paper")


def _label(record: Mapping[str, Any]) -> str:
    return f"x{record['rate']}" if record["space"] == "latent" else "pixel"


def _measured(checks: Sequence[Check]) -> str:
    """The checks' numbers, leaving out those with no number at all."""
    parts = [c.what for c in checks if c.has_numbers]
    return "; ".join(parts) or "—"


CHECKS = {
    1: compression_robustness,
    2: diffusion_beats_deterministic,
    3: latent_beats_pixel,
    4: calibration,
    5: shift_robustness,
    6: interval_coverage,
    7: autoencoders_beat_linear_code,
}


def check_findings(systems: Mapping[str, Mapping[str, Any]]) -> list[Finding]:
    """The findings over every system in `systems` (results.json's `systems`)."""
    findings = []
    for number, check in CHECKS.items():
        per_system = {name: check(name, system) for name, system in systems.items()}
        findings.append(
            Finding(
                number,
                TITLES[number],
                DEFINITIONS[number],
                combine(s.verdict for s in per_system.values()),
                per_system,
            )
        )
    return findings

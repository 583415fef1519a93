"""The findings on hand-made numbers: pass, miss, missing models, diverged models."""

from __future__ import annotations

import math

import pytest

from engine.evaluation.findings import (
    MISSED,
    NOT_EVALUATED,
    PASS,
    check_findings,
    max_deviation,
    skill,
)

RATES = [64, 256, 1024]


BUCKETS = ("short", "mid", "long")


def _model(method, space, rate, long, ssr=None, coverage=(0.5, 0.88)):
    """A record whose every bucket and lead has VRMSE `long`."""
    diffusion = method == "diffusion"
    bucket = {"vrmse": None if long is None else {"mean": long}}
    if diffusion:
        bucket.update(
            {f"coverage_{p}": {"mean": c} for p, c in zip((50, 90), coverage, strict=True)}
        )
    record = {
        "method": method,
        "space": space,
        "rate": rate,
        "status": "ok",
        "members": 16 if diffusion else 1,
        "vrmse_by_lead": [long] * 3,
        "buckets": {name: dict(bucket) for name in BUCKETS},
    }
    if diffusion:
        record["ssr_rollout"] = ssr
    return record


def _system(
    diffusion=(0.60, 0.65, 0.70),
    deterministic=(0.80, 0.85, 0.90),
    pixel=0.95,
    floors=(0.02, 0.04, 0.08),
    linear=(0.05, 0.10, 0.20),  # the DCT code's VRMSE at each autoencoder's rate
    ssr=(1.0, 0.9, 1.1),
    pixel_diffusion_ssr=0.8,
    persistence=2.0,
    shift=(1.1, 1.3),  # out/in VRMSE of latent diffusion, deterministic
    shift_ssr=0.9,
    coverage=(0.5, 0.88),
    drop=(),
    diverged=(),
):
    """A system result as results.json holds it; `drop` lists names to report missing."""
    models, autoencoders, missing = {}, {}, {}
    for rate, d, m, s in zip(RATES, diffusion, deterministic, ssr, strict=True):
        models[f"s-diffusion-ae{rate}"] = _model("diffusion", "latent", rate, d, s, coverage)
        models[f"s-deterministic-ae{rate}"] = _model("deterministic", "latent", rate, m)
    models["s-deterministic-pixel"] = _model("deterministic", "pixel", None, pixel)
    models["s-diffusion-pixel"] = _model(
        "diffusion", "pixel", None, 0.9, pixel_diffusion_ssr, coverage
    )
    for rate, f, code in zip(RATES, floors, linear, strict=True):
        autoencoders[f"s-ae{rate}"] = {
            "rate": rate,
            "vrmse_by_lead": [f] * 3,
            "buckets": {"long": {"vrmse": {"mean": f}}},
            "linear_code": {"rate": rate, "vrmse_by_lead": [code] * 3},
        }
    for name in diverged:  # non-finite rollouts: no long bucket, no SSR
        models[name].update(status="diverged", ssr_rollout=None)
        models[name]["vrmse_by_lead"][-1] = None
        models[name]["buckets"]["long"] = {key: None for key in models[name]["buckets"]["long"]}
    out = {}
    for name, record in models.items():
        if record["space"] == "latent":
            factor = shift[0] if record["method"] == "diffusion" else shift[1]
            out[name] = {
                **record,
                "vrmse_by_lead": [
                    None if v is None else v * factor for v in record["vrmse_by_lead"]
                ],
                "ssr_rollout": shift_ssr if record["method"] == "diffusion" else None,
            }
    for name in drop:
        group = autoencoders if name in autoencoders else models
        record = group.pop(name)
        out.pop(name, None)
        kind = "autoencoder" if group is autoencoders else "emulator"
        missing[name] = {
            "kind": kind,
            "method": record.get("method"),
            "space": record.get("space"),
            "rate": record["rate"],
            "reason": "not in the manifest (not trained yet)",
        }
    return {
        "rates": RATES,
        "models": models,
        "autoencoders": autoencoders,
        "missing": missing,
        "persistence": {"buckets": {b: {"vrmse": {"mean": persistence}} for b in BUCKETS}},
        "shift": {"status": "ok", "models": out},
    }


def _verdicts(systems):
    return [f.verdict for f in check_findings(systems)]


def test_numbers_that_satisfy_every_claim_pass_every_finding():
    findings = check_findings({"a": _system(), "b": _system()})
    assert [f.verdict for f in findings] == [PASS] * 7
    assert [f.statement for f in findings] == [PASS] * 7
    first = findings[0].systems["a"]
    # mean 0.65: 0.60 and 0.70 are 7.7 % off; floors 0.02 -> 0.08 is 4x
    assert "max deviation 7.7%" in first.measured and "(4.00x)" in first.measured
    assert "diffusion 0.704 / 0.683 / 0.670" not in first.paper  # "a" is not a paper system


def test_paper_numbers_stand_next_to_ours_for_our_systems():
    finding = check_findings({"rayleigh_benard": _system()})[0]
    paper = finding.systems["rayleigh_benard"].paper
    # RB long bucket 0.704 / 0.683 / 0.670, mean 0.6857: 0.704 is 2.7 % above it.
    assert "diffusion 0.704 / 0.683 / 0.670 (max deviation 2.7%)" in paper
    assert "AE 0.023 / 0.039 / 0.070 (3.04x, short bucket)" in paper


def test_robustness_is_max_relative_deviation_from_the_mean():
    assert max_deviation([0.5, 1.0, 1.5]) == pytest.approx(0.5)
    assert max_deviation([0.8, 1.0, 1.2]) == pytest.approx(0.2)
    assert max_deviation([1.0, math.inf, 1.0]) == math.inf
    # 0.5 / 0.75 / 1.0: mean 0.75, 0.5 is 33 % below it -> missed, the rest still passes
    verdicts = _verdicts(
        {"a": _system(diffusion=(0.5, 0.75, 1.0), deterministic=(1.1, 1.1, 1.1), pixel=1.2)}
    )
    assert verdicts == [MISSED, PASS, PASS, PASS, PASS, PASS, PASS]
    # exactly at the edge passes: 0.8 / 1.0 / 1.2 deviate by 20 %; 0.75/1/1.25 by 25 %
    assert (
        _verdicts({"a": _system(diffusion=(0.75, 1.0, 1.25), deterministic=(2, 2, 2), pixel=2.0)})[
            0
        ]
        == PASS
    )


def test_an_autoencoder_floor_growing_less_than_twofold_misses_finding_1():
    findings = check_findings({"a": _system(floors=(0.05, 0.06, 0.099))})
    assert findings[0].verdict == MISSED
    assert "AE floor grows 1.98x" in [c.what for c in findings[0].systems["a"].checks]


def test_one_rate_where_deterministic_wins_misses_finding_2():
    findings = check_findings({"a": _system(deterministic=(0.80, 0.64, 0.90))})
    assert findings[1].verdict == MISSED
    assert findings[1].systems["a"].measured == (
        "x64: 0.600 vs 0.800; x256: 0.650 vs 0.640; x1024: 0.700 vs 0.900"
    )
    assert [c.verdict for c in findings[1].systems["a"].checks] == [PASS, MISSED, PASS]


def test_pixel_beating_one_rate_misses_finding_3_on_that_system_only():
    findings = check_findings({"a": _system(), "b": _system(pixel=0.68)})
    assert findings[2].systems["a"].verdict == PASS
    assert findings[2].systems["b"].verdict == MISSED
    assert findings[2].verdict == MISSED


@pytest.mark.parametrize("ssr", [0.59, 1.51])
def test_ssr_outside_the_band_misses_finding_4(ssr):
    findings = check_findings({"a": _system(ssr=(1.0, ssr, 1.0))})
    assert findings[3].verdict == MISSED
    findings = check_findings({"a": _system(pixel_diffusion_ssr=ssr)})
    assert findings[3].verdict == MISSED
    assert check_findings({"a": _system(ssr=(0.6, 1.5, 1.0))})[3].verdict == PASS


def test_an_autoencoder_no_better_than_the_dct_code_misses_finding_7():
    findings = check_findings({"a": _system(linear=(0.05, 0.04, 0.20))})
    assert findings[6].verdict == MISSED
    assert findings[6].systems["a"].measured == (
        "x64 autoencoder vs DCT code (x64): 0.020 vs 0.050; "
        "x256 autoencoder vs DCT code (x256): 0.040 vs 0.040; "
        "x1024 autoencoder vs DCT code (x1024): 0.080 vs 0.200"
    )
    assert [c.verdict for c in findings[6].systems["a"].checks] == [PASS, MISSED, PASS]


def test_missing_models_make_findings_not_evaluated_and_name_the_models():
    systems = {"a": _system(drop=("s-diffusion-ae256", "s-ae1024"))}
    findings = check_findings(systems)
    assert [f.verdict for f in findings] == [NOT_EVALUATED] * 7
    assert findings[0].statement == "not evaluated (missing: s-ae1024, s-diffusion-ae256)"
    assert findings[1].statement == "not evaluated (missing: s-diffusion-ae256)"
    # the comparisons that could be made are still shown
    assert findings[1].systems["a"].measured == (
        "x64: 0.600 vs 0.800; x256: — vs 0.850; x1024: 0.700 vs 0.900"
    )
    dropped_pixel = check_findings({"a": _system(drop=("s-deterministic-pixel",))})
    assert dropped_pixel[2].statement == "not evaluated (missing: s-deterministic-pixel)"
    assert dropped_pixel[1].verdict == PASS


def test_a_miss_elsewhere_outweighs_a_missing_model():
    systems = {
        "a": _system(drop=("s-diffusion-ae256",)),
        "b": _system(deterministic=(0.5, 0.85, 0.9)),
    }
    finding = check_findings(systems)[1]
    assert finding.verdict == MISSED
    assert finding.systems["a"].verdict == NOT_EVALUATED
    assert finding.missing == ["s-diffusion-ae256"]


def test_diverged_models_count_as_infinitely_bad():
    # a diverged diffusion model: not robust, not better, not calibrated
    findings = check_findings({"a": _system(diverged=("s-diffusion-ae64",))})
    assert [f.verdict for f in findings] == [MISSED] * 6 + [PASS]  # autoencoders unharmed
    assert "x64: diverged vs 0.800" in findings[1].systems["a"].measured
    # a diverged deterministic model loses to diffusion
    findings = check_findings({"a": _system(diverged=("s-deterministic-ae64",))})
    assert findings[1].verdict == PASS


def test_no_systems_is_not_a_pass():
    assert _verdicts({}) == [NOT_EVALUATED] * 7


def test_records_are_plain_json():
    import json

    record = check_findings({"a": _system(drop=("s-ae64",))})[0].record()
    again = json.loads(json.dumps(record))
    assert again["verdict"] == NOT_EVALUATED and again["missing"] == ["s-ae64"]
    assert again["systems"]["a"]["checks"][0]["verdict"] == PASS


# ------------------------------------------------------- skill, distribution shift, coverage
def test_rates_equally_close_to_no_skill_do_not_pass_finding_1():
    """0.97 / 1.00 / 0.98 is robust to compression, but 1.00 is not below 0.9 x 1.05."""
    unskilful = _system(diffusion=(0.97, 1.0, 0.98), deterministic=(2, 2, 2), pixel=2.0)
    unskilful["persistence"]["buckets"]["long"]["vrmse"]["mean"] = 1.05
    finding = check_findings({"a": unskilful})[0].systems["a"]
    assert finding.verdict == MISSED
    assert [c.verdict for c in finding.checks] == [PASS, MISSED, PASS]
    assert "worst rate 1.000 vs 0.9 x persistence 0.945" in finding.checks[1].what
    assert "NOT skilful: does not count" in finding.measured
    no_persistence = _system()
    del no_persistence["persistence"]
    finding = check_findings({"a": no_persistence})[0]
    assert finding.verdict == NOT_EVALUATED and finding.missing == ["persistence"]


def test_skill_over_persistence_is_one_minus_the_vrmse_ratio():
    system = _system()
    record = system["models"]["s-diffusion-ae64"]
    assert skill(record, system["persistence"], "long") == pytest.approx(1 - 0.6 / 2.0)
    assert skill(None, system["persistence"], "long") is None


def test_a_larger_shift_ratio_than_deterministic_misses_finding_5():
    assert check_findings({"a": _system(shift=(1.1, 1.3))})[4].verdict == PASS
    finding = check_findings({"a": _system(shift=(1.4, 1.3))})[4]
    assert finding.verdict == MISSED
    assert "x64 shift ratio: 1.400 vs 1.300" in finding.systems["a"].measured
    assert check_findings({"a": _system(shift_ssr=0.5)})[4].verdict == MISSED


def test_finding_5_is_not_evaluated_without_the_shifted_trajectories():
    system = _system()
    del system["shift"]
    finding = check_findings({"a": system})[4]
    assert finding.statement == "not evaluated (missing: a: not run (--no-shift))"
    system["shift"] = {"status": "solver diverged: boom"}
    assert check_findings({"a": system})[4].missing == ["a: solver diverged: boom"]


@pytest.mark.parametrize(
    ("coverage", "verdict"),
    [((0.5, 0.882), PASS), ((0.41, 0.79), PASS), ((0.39, 0.88), MISSED), ((0.5, 0.78), MISSED)],
)
def test_coverage_within_a_tenth_of_the_calibrated_level_passes_finding_6(coverage, verdict):
    finding = check_findings({"a": _system(coverage=coverage)})[5]
    assert finding.verdict == verdict
    assert "(calibrated 0.882)" in finding.systems["a"].measured

"""Roll every selected zoo emulator out from the same test trajectories and score it.

Per system: the same `trajectories` test trajectories (evenly spaced over the split), the
same context (their first `context` frames) and the same horizon for every model, so
numbers are comparable across methods and rates. Alongside the emulators:

- the autoencoder floor: each available autoencoder's reconstruction of the very frames
  the rollouts predict (a latent emulator cannot do better than its decoder);
- persistence (the last context frame repeated), the bar a useful emulator clears;
- the card check: each emulator's card records test metrics measured right after
  training (engine.stages.heldout.score_test_rollouts); they are measured again with
  the card's own protocol, from the published files.

A rollout that turns non-finite is recorded (trajectory, member, lead, fields) and its
missing leads make the buckets they fall in undefined, instead of crashing the run.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray

from engine.device import resolve_device
from engine.diffusion.samplers import SAMPLER_NAMES, SAMPLERS
from engine.emulator.labels import LabelSpec
from engine.errors import ParameterError, UnknownNameError
from engine.evaluation.buckets import MIN_LEADS, RULE, Bucket, bucket_means, lead_buckets
from engine.evaluation.cache import EvaluationCache, cache_key, frames_sha256
from engine.model_files import load_autoencoder
from engine.pipeline import Pipeline
from engine.rollout import FIELD_MEAN_SCORES, RolloutConfig, RolloutDivergedError
from engine.stages import heldout
from engine.stages.autoencoder import reconstruct
from engine.stages.common import dataset_dir
from engine.stages.heldout import EvaluationRollouts, score_test_rollouts
from engine.stages.testset import TestTrajectories, load_test_trajectories, rollout_horizon
from engine.systems import SYSTEM_NAMES, get_system
from engine.zoo.manifest import Zoo, ZooEntry
from engine.zoo.plan import ZooModel, zoo_plan

Log = Callable[[str], Any]
# Scores kept per bucket; the ensemble ones only for K >= 2 members.
SCORES = ("vrmse", "nrmse", "rmse", "spectral_low", "spectral_mid", "spectral_high")
ENSEMBLE_SCORES = ("spread", "ssr", "crps_fair")
# Published weights are float16 while the card's metrics were measured with the float32
# weights before publishing, and the difference compounds over the autoregressive steps:
# a re-measured card VRMSE within 5 % counts as reproduced.
CARD_TOLERANCE = 0.05


@dataclass(frozen=True)
class EvaluationSettings:
    """The protocol: test trajectories, ensemble size, horizon (stored frames), context,
    sampler (`order` is passed to the samplers that take one: ab, lms, dpmpp), seed."""

    trajectories: int = 8
    members: int = 16
    horizon: int = 48
    context: int = 1
    sampler: str = "ab"
    order: int = 3
    steps: int = 16
    seed: int = 0
    device: str = "auto"
    card_check: bool = True

    def __post_init__(self) -> None:
        for name, low in (("trajectories", 1), ("members", 1), ("context", 1), ("steps", 1),
                          ("order", 1), ("seed", 0)):
            _check_integer(name, getattr(self, name), low)
        _check_integer("horizon", self.horizon, MIN_LEADS,
                       " (one lead per short/mid/long bucket)")
        if self.sampler not in SAMPLER_NAMES:
            raise UnknownNameError("sampler", self.sampler, SAMPLER_NAMES)
        self.rollout_config(1)  # sampler options are checked now, not after hours
        resolve_device(self.device)

    def sampler_options(self) -> dict[str, int]:
        takes_order = "order" in inspect.signature(SAMPLERS[self.sampler]).parameters
        return {"order": self.order} if takes_order else {}

    def rollout_config(self, horizon: int) -> RolloutConfig:
        return RolloutConfig(members=self.members, context=self.context, horizon=horizon,
                             sampler=self.sampler, steps=self.steps,
                             sampler_options=self.sampler_options(), seed=self.seed)

    def record(self) -> dict[str, Any]:
        return {**asdict(self), "sampler_options": self.sampler_options()}


def _check_integer(name: str, value: object, low: int, why: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ParameterError(name, value, f"an integer >= {low}{why}")


# -- which models ----------------------------------------------------------------------
@dataclass(frozen=True)
class Role:
    """What a model is, whether or not it is available: for the tables and findings."""

    name: str
    kind: str
    system: str
    method: str | None
    space: str | None
    rate: int | None

    def record(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if key not in ("name",)}


@dataclass(frozen=True)
class Selection:
    """Per system: emulators and autoencoders to evaluate, and what is missing and why."""

    emulators: dict[str, list[ZooEntry]]
    autoencoders: dict[str, list[ZooEntry]]
    missing: dict[str, dict[str, dict[str, Any]]]
    rates: dict[str, list[int]]


def _role(model: ZooModel | ZooEntry) -> Role:
    return Role(model.name, model.kind, model.system, model.method, model.space, model.rate)


def select_models(
    zoo: Zoo, systems: Sequence[str], names: Sequence[str] = (),
    plan: Sequence[ZooModel] | None = None,
) -> Selection:
    """The zoo's usable models of `systems` (only the emulators `names`, if given).

    Every model of the plan (default: the shipped zoo's, engine/zoo/plan.py) or of the
    manifest that is not evaluated is listed with its reason: not trained yet, unusable
    (the manifest check's reason), or not selected.
    """
    plan = zoo_plan() if plan is None else list(plan)
    roles = {m.name: _role(m) for m in plan} | {n: _role(e) for n, e in zoo.entries.items()}
    for name in names:
        if name not in roles:
            raise UnknownNameError("zoo model", name, roles)
        role = roles[name]
        if role.kind != "emulator":
            raise ParameterError("model", name, "an emulator (autoencoder floors are always "
                                                "evaluated)")
        if role.system not in systems:
            raise ParameterError("model", name, f"a model of {', '.join(systems)} "
                                                f"(it is a {role.system} model)")
    available = {entry.name for entry in zoo.available()}
    selection = Selection({}, {}, {}, {})
    for system in systems:
        emulators, autoencoders, missing = [], [], {}
        # autoencoders, then latent before pixel, diffusion first, lowest rate first
        mine = sorted((r for r in roles.values() if r.system == system),
                      key=lambda r: (r.kind, r.space or "", r.method != "diffusion",
                                     r.rate or 0))
        for role in mine:
            if role.name not in available:
                reason = zoo.problems.get(role.name, "not in the manifest (not trained yet)")
            elif role.kind == "emulator" and names and role.name not in names:
                reason = "not selected (--models)"
            else:
                group = emulators if role.kind == "emulator" else autoencoders
                group.append(zoo.get(role.name))
                continue
            missing[role.name] = {**role.record(), "reason": reason}
        selection.emulators[system] = emulators
        selection.autoencoders[system] = autoencoders
        selection.missing[system] = missing
        selection.rates[system] = sorted({r.rate for r in mine
                                          if r.kind == "autoencoder" and r.rate is not None})
    if not any(selection.emulators.values()):
        absent = sorted(n for s in systems for n, m in selection.missing[s].items()
                        if m["kind"] == "emulator")
        raise ParameterError(
            "available emulators", f"none for {', '.join(systems)}"
            f"{' among ' + ', '.join(names) if names else ''}",
            f"at least one in the zoo at {zoo.root} (missing: {', '.join(absent) or 'none'})",
        )
    return selection


# -- scores ----------------------------------------------------------------------------
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
    fields share the unit) and "by_field" (VRMSE also "by_trajectory"). Per lead: VRMSE
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
            averaged = name in FIELD_MEAN_SCORES or one_unit
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


# -- one system --------------------------------------------------------------------------
@dataclass
class SystemContext:
    """What every model of one system is evaluated on."""

    system: str
    dataset: Path
    test: TestTrajectories
    horizon: int  # leads in stored frames
    buckets: tuple[Bucket, ...]
    settings: EvaluationSettings
    frame_dt: float
    unit_of: dict[str, str]  # channel -> units

    @property
    def lead(self) -> np.ndarray:
        return np.arange(1, self.horizon + 1)

    @property
    def frames(self) -> np.ndarray:
        """Stored frames the leads 1..horizon fall on (stride 1 after the context)."""
        return self.settings.context - 1 + self.lead

    def units(self, channels: Sequence[str]) -> list[str]:
        return [self.unit_of[name] for name in channels]


def system_context(system: str, data_root: Path, settings: EvaluationSettings) -> SystemContext:
    dataset = dataset_dir(data_root, system)
    test = load_test_trajectories(dataset, settings.trajectories)
    horizon = rollout_horizon(test.frames, 1, settings.context, settings.horizon, dataset)
    if horizon < MIN_LEADS:
        raise ParameterError(
            "horizon", horizon, f">= {MIN_LEADS} leads for the short/mid/long buckets; "
            f"{dataset}'s test trajectories hold {test.frames} frames, so at most "
            f"{test.frames - settings.context} after {settings.context} context frame(s)")
    spec = get_system(system).spec
    unit_of = {name: f.units for f in spec.fields for name in f.channel_names}
    return SystemContext(system, dataset, test, horizon, lead_buckets(horizon), settings,
                         spec.frame_dt, unit_of)


def summarize_frames(ctx: SystemContext, scores: Sequence[xarray.Dataset]) -> dict[str, Any]:
    """`summarize` for frames scored at `ctx.frames` (autoencoder floor, persistence)."""
    channels = ctx.test.channel_names
    return summarize(scores, ctx.lead, ctx.buckets, channels, ctx.units(channels),
                     ensemble=False)


def autoencoder_floor(ctx: SystemContext, entry: ZooEntry) -> dict[str, Any]:
    """VRMSE etc. of decode(encode(truth)) on the frames the rollouts predict."""
    device = resolve_device(ctx.settings.device)
    model, preprocessing, _ = load_autoencoder(entry.path, ctx.system, device)
    window = ctx.test.fields[:, ctx.frames]  # (n, horizon, C, X, Y)
    restored = [reconstruct(model, preprocessing, torch.from_numpy(f)).numpy() for f in window]
    scores = heldout.score_frames(ctx.test, restored, ctx.frames)
    return {"rate": entry.rate, "description": entry.description,
            **summarize_frames(ctx, scores)}


def persistence(ctx: SystemContext) -> dict[str, Any]:
    """The last context frame, repeated over the horizon."""
    scores = heldout.persistence(ctx.test, ctx.settings.context - 1, ctx.frames)
    return summarize_frames(ctx, scores)


def evaluate_emulator(ctx: SystemContext, entry: ZooEntry, pipeline: Pipeline) -> dict[str, Any]:
    """Roll the emulator out from every picked trajectory and score it (the held-out
    protocol of engine/stages/heldout.py, with this evaluation's settings)."""
    settings, test = ctx.settings, ctx.test
    stride = pipeline.frame_stride
    steps = rollout_horizon(test.frames, stride, settings.context, ctx.horizon // stride,
                            ctx.dataset)
    rollouts = heldout.roll_out(pipeline, test, settings.rollout_config(steps))
    divergences = [
        {"trajectory": int(test.indices[pick]),
         "seed": None if test.seeds is None else int(test.seeds[pick]),
         "member": err.member, "lead": err.lead, "lead_time": err.lead_time,
         "fields": err.where}
        for pick, err in rollouts.divergences
    ]
    channels = pipeline.spec.channel_names
    summary = summarize(rollouts.scores, rollouts.lead, ctx.buckets, channels,
                        ctx.units(channels), ensemble=rollouts.members > 1)
    elapsed = rollouts.elapsed_s
    return {
        **_role(entry).record(),
        "autoencoder": entry.autoencoder,
        "description": entry.description,
        "status": "diverged" if divergences else "ok",
        "divergences": divergences,
        "members": rollouts.members,
        "coercions": list(rollouts.coercions),
        "frame_stride": stride,
        "steps": steps,
        "sampler": (
            {"name": settings.sampler, "steps": settings.steps, **settings.sampler_options()}
            if pipeline.kind == "diffusion" else None
        ),
        "nfe_per_rollout": rollouts.nfe,
        "elapsed_s": elapsed,
        "seconds_per_frame": elapsed / (len(test) * steps),
        **summary,
    }


def card_check(zoo: Zoo, entry: ZooEntry, pipeline: Pipeline, dataset: Path) -> dict[str, Any]:
    """The card's test metrics next to the same metrics measured again, with the card's
    own protocol (trajectories, members, horizon, sampler, seed), from the published files."""
    card = (zoo.card(entry.name).get("training") or {}).get("test_metrics")
    if not card:
        return {"status": "the card records no test metrics", "card": None}
    protocol = {f.name: card["rollout"][f.name] for f in fields(EvaluationRollouts)
                if f.name in card.get("rollout", {})}
    try:
        again = score_test_rollouts(pipeline, dataset, EvaluationRollouts(**protocol))
    except RolloutDivergedError as err:
        return {"status": f"re-measurement diverged: {err}", "card": card, "remeasured": None}
    compared = {}
    for key in ("vrmse_mean", "spread_skill_mean"):
        if card.get(key) is not None and again.get(key) is not None:
            compared[key] = {"card": card[key], "remeasured": again[key],
                             "relative_difference": again[key] / card[key] - 1}
    reproduced = bool(compared) and all(abs(c["relative_difference"]) <= CARD_TOLERANCE
                                        for c in compared.values())
    return {
        "status": "reproduced" if reproduced else "differs",
        "tolerance": CARD_TOLERANCE,
        "protocol": protocol,
        "compared": compared,
        "card": card,
        "remeasured": again,
    }


def evaluate_system(
    zoo: Zoo, system: str, emulators: Sequence[ZooEntry], autoencoders: Sequence[ZooEntry],
    data_root: Path, settings: EvaluationSettings, log: Log = print,
    cache: EvaluationCache | None = None,
) -> dict[str, Any]:
    """Everything measured on one system (the `systems.<name>` object of results.json).

    Emulator records found in `cache` under an identical key are reused (see cache.py)."""
    ctx = system_context(system, data_root, settings)
    test = ctx.test
    cache = cache or EvaluationCache(None)
    test_sha = frames_sha256(test.fields)
    seeds = test.seed_list()
    spans = " / ".join(f"{b.name} {b.label}" for b in ctx.buckets)
    listed = f" (seeds {', '.join(map(str, seeds))})" if seeds else ""
    log(f"{system}: {len(test)} of {test.split_size} test trajectories{listed}, "
        f"{ctx.horizon} leads after {settings.context} context frame(s); buckets {spans}")
    frame_dt = ctx.frame_dt
    result: dict[str, Any] = {
        "dataset": str(ctx.dataset),
        "split": "test",
        "split_size": test.split_size,
        "trajectories": len(test),
        "trajectory_indices": test.indices.tolist(),
        "seeds": seeds,
        "conditions": test.conditions(LabelSpec.from_system(get_system(system).spec)),
        "frames_per_trajectory": test.frames,
        "context": settings.context,
        "horizon": ctx.horizon,
        "frame_dt": frame_dt,
        "buckets": [b.record(frame_dt) for b in ctx.buckets],
        "bucket_rule": RULE,
        "fields": list(test.channel_names),
        "field_units": ctx.units(test.channel_names),
        "persistence": persistence(ctx),
        "autoencoders": {},
        "models": {},
    }
    for entry in autoencoders:
        started = time.perf_counter()
        with torch.inference_mode():
            floor = autoencoder_floor(ctx, entry)
        result["autoencoders"][entry.name] = floor
        log(f"  {entry.name}: reconstruction VRMSE {_bucket_line(floor)} "
            f"({time.perf_counter() - started:.1f} s)")
    for number, entry in enumerate(emulators, 1):
        key = cache_key(zoo, entry, settings.record(), test_sha, settings.device)
        record = cache.get(key)
        reused = record is not None
        if record is None:
            record = _measure(zoo, entry, ctx)
            if record["status"] == "ok":
                cache.put(key, record)
        result["models"][entry.name] = record
        ssr = record.get("ssr_rollout")
        log(f"  [{number}/{len(emulators)}] {entry.name}: {record['members']} member(s), "
            f"VRMSE {_bucket_line(record)}"
            f"{f', SSR {ssr:.2f}' if ssr is not None else ''}"
            f"{'' if record['status'] == 'ok' else ', DIVERGED'}"
            f"{_card_line(record.get('card_check'))}, {record['wall_time_s']:.1f} s"
            f"{_reuse_line(record) if reused else ''}")
    return result


def _reuse_line(record: dict[str, Any]) -> str:
    return f" (reused: measured {record.get('measured_at')}, same weights, data and code)"


def _measure(zoo: Zoo, entry: ZooEntry, ctx: SystemContext) -> dict[str, Any]:
    """One emulator's record: rollouts, scores and (if asked) the card check."""
    started = time.perf_counter()
    pipeline = zoo.pipeline(entry.name, ctx.settings.device)
    record = evaluate_emulator(ctx, entry, pipeline)
    if ctx.settings.card_check:
        record["card_check"] = card_check(zoo, entry, pipeline, ctx.dataset)
    record["wall_time_s"] = time.perf_counter() - started
    record["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    return record


def _bucket_line(record: dict[str, Any]) -> str:
    values = [record["buckets"][name]["vrmse"] for name in record["buckets"]]
    return "/".join("n/a" if v is None else f"{v['mean']:.3f}" for v in values)


def _card_line(check: dict[str, Any] | None) -> str:
    if not check or "vrmse_mean" not in check.get("compared", {}):
        return "" if not check else f", card check: {check['status']}"
    c = check["compared"]["vrmse_mean"]
    return (f", card VRMSE {c['card']:.3f} vs {c['remeasured']:.3f} re-measured "
            f"({c['relative_difference']:+.1%})")


def evaluate(
    systems: Sequence[str], settings: EvaluationSettings, *, zoo: Zoo,
    data_root: str | Path, models: Sequence[str] = (), plan: Sequence[ZooModel] | None = None,
    log: Log = print, cache_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Evaluate `systems` (the `systems` and `missing` parts of results.json).

    With `cache_dir`, emulator records measured before with the same weights, settings,
    test frames and engine code are reused from there (engine/evaluation/cache.py).

    Unknown systems and model names, and a selection with no available emulator at all,
    are refused before anything runs.
    """
    if not systems:
        raise ParameterError("systems", [], f"one or more of {', '.join(SYSTEM_NAMES)}")
    for system in systems:
        if system not in SYSTEM_NAMES:
            raise UnknownNameError("system", system, SYSTEM_NAMES)
    systems = list(dict.fromkeys(systems))
    selection = select_models(zoo, systems, models, plan)
    results = {}
    for system in systems:
        results[system] = evaluate_system(
            zoo, system, selection.emulators[system], selection.autoencoders[system],
            Path(data_root), settings, log,
            EvaluationCache(None if cache_dir is None else Path(cache_dir)))
        results[system]["rates"] = selection.rates[system]
        results[system]["missing"] = selection.missing[system]
        for name, why in selection.missing[system].items():
            log(f"  missing {name}: {why['reason']}")
    return results

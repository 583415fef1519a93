"""Roll every selected zoo emulator out from the same test trajectories and score it.

Per system: the same `trajectories` test trajectories (evenly spaced over the split), the
same context (their first `context` frames) and the same horizon for every model, so
numbers are comparable across methods and rates. Alongside the emulators:

- the autoencoder floor: each available autoencoder's reconstruction of the very frames
  the rollouts predict (a latent emulator cannot do better than its decoder), next to the
  fixed linear (DCT) code at the same rate, which the autoencoder must beat;
- persistence (the last context frame repeated), the bar a useful emulator clears;
- the card check: each emulator's card records test metrics measured right after
  training (engine.stages.heldout.score_test_rollouts); they are measured again with
  the card's own protocol, from the published files;
- distribution shift: the same test trajectories re-run by the solver outside the
  training range (shift.py), and the latent emulators rolled out and scored on them
  exactly as on the stored ones.

A rollout that turns non-finite is recorded (trajectory, member, lead, fields) and its
missing leads make the buckets they fall in undefined, instead of crashing the run.

The settings, the model selection and the summaries are modules of their own
(settings.py, selection.py, summary.py); their public names are re-exported here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray

from engine.autoencoder.linear_code import LowFrequencyCode
from engine.device import resolve_device
from engine.emulator.labels import LabelSpec
from engine.errors import ParameterError, UnknownNameError
from engine.evaluation import shift
from engine.evaluation.buckets import MIN_LEADS, RULE, Bucket, lead_buckets
from engine.evaluation.cache import EvaluationCache, cache_key, frames_sha256
from engine.evaluation.selection import Role, Selection, role_of, select_models
from engine.evaluation.settings import EvaluationSettings
from engine.evaluation.summary import ENSEMBLE_SCORES, SCORES, summarize
from engine.model_files import load_autoencoder
from engine.pipeline import Pipeline
from engine.rollout import RolloutDivergedError
from engine.stages import heldout
from engine.stages.autoencoder import reconstruct
from engine.stages.common import dataset_dir
from engine.stages.heldout import EvaluationRollouts, score_test_rollouts
from engine.stages.testset import TestTrajectories, load_test_trajectories, rollout_horizon
from engine.systems import SYSTEM_NAMES, get_system
from engine.zoo.manifest import Zoo, ZooEntry
from engine.zoo.plan import ZooModel

__all__ = [
    "CARD_TOLERANCE",
    "ENSEMBLE_SCORES",
    "SCORES",
    "EvaluationSettings",
    "Role",
    "Selection",
    "SystemContext",
    "card_check",
    "evaluate",
    "evaluate_emulator",
    "evaluate_system",
    "select_models",
    "summarize",
]

Log = Callable[[str], Any]
# Published weights are float16 while the card's metrics were measured with the float32
# weights before publishing, and the difference compounds over the autoregressive steps:
# a re-measured card VRMSE within 5 % counts as reproduced.
CARD_TOLERANCE = 0.05


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

    @cached_property
    def test_sha256(self) -> str:
        """Hash of the test frames, for the cache key."""
        return frames_sha256(self.test.fields)


def system_context(system: str, data_root: Path, settings: EvaluationSettings) -> SystemContext:
    dataset = dataset_dir(data_root, system)
    test = load_test_trajectories(dataset, settings.trajectories)
    horizon = rollout_horizon(test.frames, 1, settings.context, settings.horizon, dataset)
    if horizon < MIN_LEADS:
        raise ParameterError(
            "horizon",
            horizon,
            f">= {MIN_LEADS} leads for the short/mid/long buckets; "
            f"{dataset}'s test trajectories hold {test.frames} frames, so at most "
            f"{test.frames - settings.context} after {settings.context} context frame(s)",
        )
    spec = get_system(system).spec
    unit_of = {name: f.units for f in spec.fields for name in f.channel_names}
    return SystemContext(
        system, dataset, test, horizon, lead_buckets(horizon), settings, spec.frame_dt, unit_of
    )


def summarize_frames(ctx: SystemContext, scores: Sequence[xarray.Dataset]) -> dict[str, Any]:
    """`summarize` for frames scored at `ctx.frames` (autoencoder floor, persistence)."""
    channels = ctx.test.channel_names
    return summarize(scores, ctx.lead, ctx.buckets, channels, ctx.units(channels), ensemble=False)


def autoencoder_floor(ctx: SystemContext, entry: ZooEntry) -> dict[str, Any]:
    """VRMSE etc. of decode(encode(truth)) on the frames the rollouts predict, and under
    `linear_code` the same for the fixed linear code at the autoencoder's rate (the lowest
    DCT coefficients per channel, in the autoencoder's preprocessed space): the reference
    a learned autoencoder must beat to earn its cost."""
    device = resolve_device(ctx.settings.device)
    model, preprocessing, _ = load_autoencoder(entry.path, ctx.system, device)
    window = torch.from_numpy(ctx.test.fields[:, ctx.frames])  # (n, horizon, C, X, Y)
    code = LowFrequencyCode(window.shape[2], tuple(window.shape[-2:]), entry.rate)
    restored = [reconstruct(model, preprocessing, f).numpy() for f in window]
    linear = [preprocessing.inverse(code(preprocessing(f))).numpy() for f in window]
    return {
        "rate": entry.rate,
        "description": entry.description,
        **summarize_frames(ctx, heldout.score_frames(ctx.test, restored, ctx.frames)),
        "linear_code": {
            "rate": code.rate,
            "coefficients_per_channel": code.coefficients_per_channel,
            **summarize_frames(ctx, heldout.score_frames(ctx.test, linear, ctx.frames)),
        },
    }


def persistence(ctx: SystemContext) -> dict[str, Any]:
    """The last context frame, repeated over the horizon."""
    scores = heldout.persistence(ctx.test, ctx.settings.context - 1, ctx.frames)
    return summarize_frames(ctx, scores)


def evaluate_emulator(ctx: SystemContext, entry: ZooEntry, pipeline: Pipeline) -> dict[str, Any]:
    """Roll the emulator out from every picked trajectory and score it (the held-out
    protocol of engine/stages/heldout.py, with this evaluation's settings)."""
    settings, test = ctx.settings, ctx.test
    stride = pipeline.frame_stride
    steps = rollout_horizon(
        test.frames, stride, settings.context, ctx.horizon // stride, ctx.dataset
    )
    rollouts = heldout.roll_out(pipeline, test, settings.rollout_config(steps))
    divergences = [
        {
            "trajectory": int(test.indices[pick]),
            "seed": None if test.seeds is None else int(test.seeds[pick]),
            "member": err.member,
            "lead": err.lead,
            "lead_time": err.lead_time,
            "fields": err.where,
        }
        for pick, err in rollouts.divergences
    ]
    channels = pipeline.spec.channel_names
    summary = summarize(
        rollouts.scores,
        rollouts.lead,
        ctx.buckets,
        channels,
        ctx.units(channels),
        ensemble=rollouts.members > 1,
    )
    elapsed = rollouts.elapsed_s
    return {
        **role_of(entry).record(),
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
            if pipeline.kind == "diffusion"
            else None
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
    protocol = {
        f.name: card["rollout"][f.name]
        for f in fields(EvaluationRollouts)
        if f.name in card.get("rollout", {})
    }
    try:
        again = score_test_rollouts(pipeline, dataset, EvaluationRollouts(**protocol))
    except RolloutDivergedError as err:
        return {"status": f"re-measurement diverged: {err}", "card": card, "remeasured": None}
    compared = {}
    for key in ("vrmse_mean", "spread_skill_mean"):
        if card.get(key) is not None and again.get(key) is not None:
            compared[key] = {
                "card": card[key],
                "remeasured": again[key],
                "relative_difference": again[key] / card[key] - 1,
            }
    reproduced = bool(compared) and all(
        abs(c["relative_difference"]) <= CARD_TOLERANCE for c in compared.values()
    )
    return {
        "status": "reproduced" if reproduced else "differs",
        "tolerance": CARD_TOLERANCE,
        "protocol": protocol,
        "compared": compared,
        "card": card,
        "remeasured": again,
    }


def evaluate_system(
    zoo: Zoo,
    system: str,
    emulators: Sequence[ZooEntry],
    autoencoders: Sequence[ZooEntry],
    data_root: Path,
    settings: EvaluationSettings,
    log: Log = print,
    cache: EvaluationCache | None = None,
) -> dict[str, Any]:
    """Everything measured on one system (the `systems.<name>` object of results.json).

    Emulator records found in `cache` under an identical key are reused (see cache.py)."""
    ctx = system_context(system, data_root, settings)
    test = ctx.test
    cache = cache or EvaluationCache(None)
    seeds = test.seed_list()
    spans = " / ".join(f"{b.name} {b.label}" for b in ctx.buckets)
    listed = f" (seeds {', '.join(map(str, seeds))})" if seeds else ""
    log(
        f"{system}: {len(test)} of {test.split_size} test trajectories{listed}, "
        f"{ctx.horizon} leads after {settings.context} context frame(s); buckets {spans}"
    )
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
        log(
            f"  {entry.name}: reconstruction VRMSE {_bucket_line(floor)} "
            f"({time.perf_counter() - started:.1f} s)"
        )
    for number, entry in enumerate(emulators, 1):
        record, reused = _cached(zoo, entry, ctx, cache, "test")
        result["models"][entry.name] = record
        _log_model(log, f"[{number}/{len(emulators)}] {entry.name}", record, reused)
    if settings.shift:
        result["shift"] = evaluate_shift(zoo, ctx, emulators, cache, log)
    return result


def evaluate_shift(
    zoo: Zoo,
    ctx: SystemContext,
    emulators: Sequence[ZooEntry],
    cache: EvaluationCache,
    log: Log = print,
) -> dict[str, Any]:
    """The `shift` object of a system: the out-of-range trajectories (shift.py), persistence
    on them and the latent emulators' records on them (no card check: cards hold in-range
    metrics only)."""
    started = time.perf_counter()
    shifted = shift.shifted_test(ctx.system, ctx.test)
    record = shift.describe(ctx.system, shifted)
    values = ", ".join(f"{k} {v:.4g}" for k, v in shifted.parameters.items())
    log(
        f"{ctx.system} out of range ({values}): {record['status']}, solver {shifted.solver_s:.1f} s"
    )
    if shifted.test is None:
        return record
    out = replace(ctx, test=shifted.test)
    record["persistence"] = persistence(out)
    record["models"] = {}
    chosen = [entry for entry in emulators if shift.applies_to(role_of(entry))]
    for number, entry in enumerate(chosen, 1):
        reason = shift.unfit(zoo.card(entry.name)["label"], shifted.parameters)
        if reason:
            record.setdefault("skipped", {})[entry.name] = reason
            log(f"  [{number}/{len(chosen)}] {entry.name} out of range: skipped, {reason}")
            continue
        measured, reused = _cached(zoo, entry, out, cache, "shift")
        record["models"][entry.name] = measured
        _log_model(log, f"[{number}/{len(chosen)}] {entry.name} out of range", measured, reused)
    record["wall_time_s"] = time.perf_counter() - started  # reused records count ~0
    return record


def _cached(
    zoo: Zoo, entry: ZooEntry, ctx: SystemContext, cache: EvaluationCache, test_set: str
) -> tuple[dict[str, Any], bool]:
    """(record, reused): the stored record if its key matches, else measured (and stored
    if no rollout diverged). The card check runs on the stored test set only."""
    settings = ctx.settings
    key = cache_key(zoo, entry, settings.model_record(), ctx.test_sha256, settings.device, test_set)
    record = cache.get(key)
    if record is not None:
        return record, True
    record = _measure(zoo, entry, ctx, settings.card_check and test_set == "test")
    if record["status"] == "ok":
        cache.put(key, record)
    return record, False


def _log_model(log: Log, label: str, record: dict[str, Any], reused: bool) -> None:
    ssr = record.get("ssr_rollout")
    log(
        f"  {label}: {record['members']} member(s), VRMSE {_bucket_line(record)}"
        f"{f', SSR {ssr:.2f}' if ssr is not None else ''}"
        f"{'' if record['status'] == 'ok' else ', DIVERGED'}"
        f"{_card_line(record.get('card_check'))}, {record['wall_time_s']:.1f} s"
        f"{_reuse_line(record) if reused else ''}"
    )


def _reuse_line(record: dict[str, Any]) -> str:
    return f" (reused: measured {record.get('measured_at')}, same weights, data and code)"


def _measure(
    zoo: Zoo, entry: ZooEntry, ctx: SystemContext, with_card_check: bool
) -> dict[str, Any]:
    """One emulator's record: rollouts, scores and (if asked) the card check."""
    started = time.perf_counter()
    pipeline = zoo.pipeline(entry.name, ctx.settings.device)
    record = evaluate_emulator(ctx, entry, pipeline)
    if with_card_check:
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
    return (
        f", card VRMSE {c['card']:.3f} vs {c['remeasured']:.3f} re-measured "
        f"({c['relative_difference']:+.1%})"
    )


def evaluate(
    systems: Sequence[str],
    settings: EvaluationSettings,
    *,
    zoo: Zoo,
    data_root: str | Path,
    models: Sequence[str] = (),
    plan: Sequence[ZooModel] | None = None,
    log: Log = print,
    cache_dir: str | Path | None = None,
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
            zoo,
            system,
            selection.emulators[system],
            selection.autoencoders[system],
            Path(data_root),
            settings,
            log,
            EvaluationCache(None if cache_dir is None else Path(cache_dir)),
        )
        results[system]["rates"] = selection.rates[system]
        results[system]["missing"] = selection.missing[system]
        for name, why in selection.missing[system].items():
            log(f"  missing {name}: {why['reason']}")
    return results

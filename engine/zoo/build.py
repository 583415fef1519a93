"""Build the zoo: generate data, train each planned model through its stage, and publish
it to assets/ with a manifest entry.

Each model is trained by calling its stage (engine/stages) with the plan's settings as
typed arguments; the equivalent `latentsim` command is logged, recorded in the run
directory and in the published card, so any model can be retrained by hand.

Every step resumes: a dataset whose metadata file exists is complete (it is written
last); a run directory with checkpoints continues with --resume, unless it was made by
another command (the plan changed), for a latent emulator on an autoencoder since
republished, or --force asks for a fresh run, in which case it is moved aside (never
deleted) so stale checkpoints are not resumed; a finished run whose model file matches
the plan is published without retraining; a published model whose files still match the
manifest, and whose autoencoder is the one it was trained on, is skipped. So `latentsim zoo
train` can be stopped at any point and run again, across sittings or on another machine.

Published weights are stored in half precision (docs/zoo.md gives the measured effect),
and a latent emulator is trained on the *published* autoencoder, so the pair that ships
is the pair that was trained together.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from engine.data.atomic import atomic_open
from engine.data.generate import DEFAULT_SPLITS, generate_dataset
from engine.emulator.models import card_prediction
from engine.errors import DataFormatError, ParameterError
from engine.hashing import file_sha256
from engine.model_files import copy_model, load_model_card, model_paths
from engine.paths import assets_root, data_root, runs_root
from engine.stages.autoencoder import train_autoencoder
from engine.stages.emulator import train_emulator
from engine.training.checkpoint import list_checkpoints
from engine.zoo.manifest import (
    ZooEntry,
    autoencoder_mismatch,
    load_zoo,
    locked_manifest,
    trained_on,
)
from engine.zoo.plan import SEED, TRAINING_KNOBS, ZooModel, zoo_plan

STORAGE_DTYPE = "float16"
RUN_COMMAND_FILE = "zoo-command.json"
HELD_OUT = (
    "test trajectories use seeds 2,000,000 and up; training uses 0 and up and "
    "validation 1,000,000 and up, so no test initial condition was seen in training"
)


def select(system: str | None = None, names: Sequence[str] = ()) -> list[ZooModel]:
    """The planned models of `system` (all systems if None), or only `names`."""
    plan = zoo_plan()
    known = {model.name for model in plan}
    unknown = sorted(set(names) - known)
    if unknown:
        raise ParameterError("zoo model", unknown[0], f"one of {', '.join(sorted(known))}")
    systems = {model.system for model in plan}
    if system is not None and system not in systems:
        raise ParameterError("system", system, f"one of {', '.join(sorted(systems))}")
    return [
        m for m in plan if (system is None or m.system == system) and (not names or m.name in names)
    ]


def status(model: ZooModel, assets: Path | None = None) -> str:
    """ "published", "stale" (published with other settings), "problem: ..." or "missing"."""
    zoo = load_zoo(assets)
    if model.name not in zoo.entries:
        return "missing"
    if model.name in zoo.problems:
        return f"problem: {zoo.problems[model.name]}"
    if list(zoo.entries[model.name].command) != model.command():
        return "stale"
    return "published"


def build(
    models: Sequence[ZooModel],
    *,
    data: Path | None = None,
    runs: Path | None = None,
    assets: Path | None = None,
    force: bool = False,
    log: Callable[[str], Any] = print,
) -> None:
    """Bring each model to "published", in plan order (autoencoders before emulators)."""
    data = Path(data or data_root())
    runs = Path(runs or runs_root()) / "zoo"
    for model in models:
        state = status(model, assets)
        if state == "published" and not force:
            log(f"{model.name}: published, skipped")
            continue
        if model.autoencoder and not load_zoo(assets).available(name=model.autoencoder):
            raise DataFormatError(
                model.name,
                f"needs its autoencoder {model.autoencoder} "
                "published first (train it with the zoo)",
            )
        ensure_dataset(model.system, data, log)
        run_dir = runs / model.name
        stem = run_dir / "model"
        claim_run_dir(model, run_dir, assets, fresh=force, log=log)
        if not _finished(model, stem, assets):
            train(model, run_dir, data, assets, log)
        entry = publish(model, stem, assets)
        log(f"{model.name}: published {entry.asset}")


def claim_run_dir(
    model: ZooModel, run_dir: Path, assets: Path | None, *, fresh: bool, log: Callable[[str], Any]
) -> None:
    """Leave `run_dir` holding nothing but a run of the model's current command.

    Its checkpoints would otherwise be resumed as this run's even when they were trained
    with other settings (--resume checks the optimiser settings, not e.g. the denoiser's
    parametrisation) or, for a latent emulator, on an autoencoder published before the
    current one. A directory made for another `run_record`, one whose finished model no
    longer matches the plan, or any directory when `fresh`, is renamed NAME.replaced-N.
    """
    record = run_dir / RUN_COMMAND_FILE
    wanted = run_record(model, assets)
    if run_dir.exists():
        if record.exists():
            try:
                stale = json.loads(record.read_text()) != wanted
            except (OSError, ValueError):
                stale = True
        else:  # made before the record existed: stale only if its model is another one's
            stem = run_dir / "model"
            stale = model_paths(stem)[1].exists() and not _finished(model, stem, assets)
        if fresh or stale:
            aside = _unused_sibling(run_dir, "replaced")
            run_dir.rename(aside)
            log(f"{model.name}: moved the previous run aside to {aside}")
    run_dir.mkdir(parents=True, exist_ok=True)
    with atomic_open(record, "w") as handle:
        json.dump(wanted, handle)


def run_record(model: ZooModel, assets: Path | None) -> dict[str, Any]:
    """What a run directory is for: the model's command and, for a latent emulator, the
    SHA-256 of the published autoencoder weights whose latents it learns."""
    autoencoder = None
    if model.autoencoder:
        autoencoder = load_zoo(assets).get(model.autoencoder).weights_sha256
    return {"command": model.command(), "autoencoder_sha256": autoencoder}


def _unused_sibling(path: Path, tag: str) -> Path:
    """PATH.TAG-1, PATH.TAG-2, ...: the first that does not exist."""
    n = 1
    while path.with_name(f"{path.name}.{tag}-{n}").exists():
        n += 1
    return path.with_name(f"{path.name}.{tag}-{n}")


def ensure_dataset(system: str, data: Path, log: Callable[[str], Any]) -> None:
    """Generate the system's default dataset unless complete (resumes a partial one), as
    `latentsim generate SYSTEM --out DATA` does."""
    if (data / system / f"{system}.yaml").exists():
        return
    log(f"{system}: generating the default dataset in {data}")
    generate_dataset(
        system, data, *DEFAULT_SPLITS[system], workers=os.cpu_count() or 1, progress=False
    )


def train(
    model: ZooModel, run_dir: Path, data: Path, assets: Path | None, log: Callable[[str], Any]
) -> None:
    """Train the model through its stage, resuming from its checkpoints if any."""
    settings = model.settings
    # Only committed checkpoints count: a run killed while writing its first one leaves a
    # temporary directory, which --resume rightly refuses; such a run starts afresh.
    resume = bool(list_checkpoints(run_dir / "checkpoints"))
    common: dict[str, Any] = {
        "data_root": data,
        "run_dir": run_dir,
        "output": run_dir / "model",
        "preset": settings["preset"],
        "steps": settings["steps"],
        "batch_size": settings["batch_size"],
        "lr": settings["lr"],
        "seed": SEED,
        "resume": resume,
        "progress": False,
        # the plan's optional knobs (loss floor, bf16, EMA), exactly as its command has them
        **{key: settings[key] for key in TRAINING_KNOBS if key in settings},
    }
    autoencoder = None
    if model.autoencoder:  # the published autoencoder under `assets`
        autoencoder = _asset_root(assets) / model.autoencoder_asset
    argv = training_command(model, run_dir, data, autoencoder, resume)
    log(f"{model.name}: latentsim {' '.join(argv)}")
    # The CLI parses --rate as a float; the same type keeps the cards identical.
    rate = None if model.rate is None else float(model.rate)
    if model.kind == "autoencoder":
        train_autoencoder(model.system, rate, **common)
    else:
        train_emulator(
            model.system,
            rate,
            kind=str(model.method),
            space=str(model.space),
            autoencoder=autoencoder,
            patch=settings.get("patch"),
            prediction=settings.get("prediction"),
            **common,
        )


def training_command(
    model: ZooModel, run_dir: Path, data: Path, autoencoder: Path | None, resume: bool
) -> list[str]:
    """The `latentsim` arguments equivalent to what `train` runs (for the log)."""
    argv = model.command()
    if autoencoder is not None:
        argv[argv.index("--autoencoder") + 1] = str(autoencoder)
    argv += [
        "--data",
        str(data),
        "--run-dir",
        str(run_dir),
        "--output",
        str(run_dir / "model"),
        "--quiet",
    ]
    return [*argv, "--resume"] if resume else argv


def publish(
    model: ZooModel, source: str | os.PathLike[str], assets: Path | None = None
) -> ZooEntry:
    """Copy a trained model into assets/ (half precision) and record it in the manifest.

    The source card must record the plan's settings, and a latent emulator must have
    been trained on the published autoencoder; anything else is refused.
    """
    card = load_model_card(source)
    check_settings(model, card, model_paths(source)[1])
    root = _asset_root(assets)
    if model.autoencoder:
        mismatch = autoencoder_mismatch(trained_on(card), load_zoo(root).get(model.autoencoder))
        if mismatch:
            raise DataFormatError(model_paths(source)[1], mismatch)
    extra = {
        "zoo": {
            "name": model.name,
            "description": model.description(),
            "command": ["latentsim", *model.command()],
            "held_out": HELD_OUT,
        }
    }
    copy_model(source, root / model.asset, storage_dtype=STORAGE_DTYPE, extra=extra)
    weights, card_file = model_paths(root / model.asset)
    entry = ZooEntry(
        name=model.name,
        kind=model.kind,
        system=model.system,
        method=model.method,
        space=model.space,
        rate=model.rate,
        autoencoder=model.autoencoder,
        asset=model.asset,
        weights_sha256=file_sha256(weights),
        card_sha256=file_sha256(card_file),
        command=tuple(model.command()),
        description=model.description(),
        path=root / model.asset,
    )
    with locked_manifest(root) as manifest:
        manifest[model.name] = entry.record()
    return entry


def check_settings(model: ZooModel, card: dict[str, Any], where: object) -> None:
    """DataFormatError unless the card was trained with the plan's settings."""
    training = card.get("training") or {}
    config = training.get("train_config") or {}
    # What the model is before how it was trained: a deterministic card must not pass as
    # the diffusion entry of its rung, nor a x192 autoencoder as the x768 one. Cards hold
    # the rate as the float the CLI parsed, the plan as an int.
    found = {
        "kind": card.get("kind"),
        "system": card.get("system"),
        "method": card.get("method"),
        "space": card.get("space"),
        "rate": None if card.get("rate") is None else float(card["rate"]),
        "preset": training.get("preset"),
        "steps": config.get("steps"),
        "batch_size": config.get("batch_size"),
        "lr": config.get("lr"),
        "seed": config.get("seed"),
    }
    wanted = {
        "kind": model.kind,
        "system": model.system,
        "method": model.method,
        "space": model.space,
        "rate": None if model.rate is None else float(model.rate),
        **{key: model.settings[key] for key in ("preset", "steps", "batch_size", "lr")},
        "seed": SEED,
    }
    for key, (_, (block, name), default) in TRAINING_KNOBS.items():
        found[key] = (training.get(block) or {}).get(name, default)
        wanted[key] = model.settings.get(key, default)
    if model.space == "latent":
        found["patch"] = (card.get("backbone") or {}).get("patch")
        wanted["patch"] = model.settings.get("patch", 1)
    if model.method == "diffusion":
        found["prediction"] = card_prediction(card)
        wanted["prediction"] = model.settings.get("prediction", "edm")
    differ = [
        f"{key}={found[key]!r} (plan: {wanted[key]!r})"
        for key in wanted
        if found[key] != wanted[key]
    ]
    if differ:
        raise DataFormatError(where, f"not trained as zoo model {model.name}: {'; '.join(differ)}")


def _finished(model: ZooModel, stem: Path, assets: Path | None) -> bool:
    """A finished run whose model can be published as is."""
    if not model_paths(stem)[1].exists():
        return False
    try:
        card = load_model_card(stem)
        check_settings(model, card, stem)
    except DataFormatError:
        return False
    if model.autoencoder:  # trained on the autoencoder that is published now?
        zoo = load_zoo(assets)
        usable = model.autoencoder in zoo.entries and model.autoencoder not in zoo.problems
        return usable and not autoencoder_mismatch(trained_on(card), zoo.get(model.autoencoder))
    return True


def _asset_root(assets: Path | None) -> Path:
    return Path(assets if assets is not None else assets_root()).resolve()

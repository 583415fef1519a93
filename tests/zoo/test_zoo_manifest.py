"""The zoo: plan, publishing, the verified manifest, and tampering reported by name."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from engine.autoencoder.config import AutoencoderConfig
from engine.autoencoder.model import Autoencoder
from engine.cli import build_parser
from engine.emulator.config import BackboneConfig
from engine.emulator.models import build_emulator, save_emulator
from engine.errors import DataFormatError, ParameterError, UnknownNameError
from engine.model_files import load_model_card, save_autoencoder
from engine.preprocessing import Preprocessing
from engine.rollout import RolloutConfig, rollout, truth_dataset
from engine.systems import get_system
from engine.zoo import build as zoo_build
from engine.zoo.manifest import load_zoo, read_manifest
from engine.zoo.plan import ZooModel, plan_entry, zoo_plan

GRID = (16, 16)
SETTINGS = {"preset": "small", "steps": 3, "batch_size": 2, "lr": 1e-3}
AE = ZooModel("kolmogorov-ae6", "autoencoder", "kolmogorov", SETTINGS, rate=6)
DIFFUSION = ZooModel(
    "kolmogorov-diffusion-ae6",
    "emulator",
    "kolmogorov",
    SETTINGS,
    method="diffusion",
    space="latent",
    rate=6,
    autoencoder="kolmogorov-ae6",
)


def _training(settings=SETTINGS, seed=0):
    config = {k: settings[k] for k in ("steps", "batch_size", "lr")}
    return {"preset": settings["preset"], "train_config": {**config, "seed": seed}}


def _tiny_autoencoder(directory, name="ae", seed=0, training=None):
    channels = get_system("kolmogorov", GRID).spec.channel_names
    config = AutoencoderConfig(
        in_channels=3, latent_channels=2, widths=(4, 8), blocks_per_level=0, periodic=(True, True)
    )
    torch.manual_seed(seed)
    preprocessing = Preprocessing(channels, (0.1,) * 3, (2.0,) * 3)
    return save_autoencoder(
        directory,
        name,
        Autoencoder(config),
        preprocessing,
        system="kolmogorov",
        grid=GRID,
        rate=6,
        training=_training() if training is None else training,
    )


def _tiny_emulator(directory, autoencoder_card, name="emu"):
    spec = get_system("kolmogorov", GRID).spec
    torch.manual_seed(1)
    config = BackboneConfig(width=12, depth=1, heads=2, cond_dim=8, window=3)
    emulator = build_emulator("diffusion", config, 2, (8, 8), 1, "latent")
    return save_emulator(
        directory, name, emulator, system=spec, autoencoder=autoencoder_card, training=_training()
    )


@pytest.fixture
def zoo_root(tmp_path):
    """assets/ with a published tiny autoencoder and a diffusion emulator on its latents."""
    runs, assets = tmp_path / "runs", tmp_path / "assets"
    zoo_build.publish(AE, _tiny_autoencoder(runs), assets)
    published_ae = load_model_card(assets / AE.asset)
    zoo_build.publish(DIFFUSION, _tiny_emulator(runs, published_ae), assets)
    return assets


def test_plan_covers_the_issue_and_every_command_parses():
    plan = zoo_plan()
    names = [m.name for m in plan]
    assert len(names) == len(set(names)) == 31
    emulators = [m for m in plan if m.kind == "emulator"]
    for system in ("euler_quadrants", "rayleigh_benard", "kolmogorov"):
        latent = [m for m in emulators if m.system == system and m.space == "latent"]
        assert sorted((m.method, m.rate) for m in latent) == sorted(
            (method, m.rate)
            for m in plan
            if m.kind == "autoencoder" and m.system == system
            for method in ("diffusion", "deterministic")
        )
        assert any(
            m.system == system and m.space == "pixel" and m.method == "deterministic"
            for m in emulators
        )
    assert any(m.space == "pixel" and m.method == "diffusion" for m in emulators)
    position = {name: i for i, name in enumerate(names)}
    parser = build_parser()
    for model in plan:
        if model.autoencoder:  # trained after the autoencoder it depends on
            assert position[model.autoencoder] < position[model.name]
        args = parser.parse_args(model.command())
        assert (args.config, args.steps, args.batch_size, args.lr, args.seed) == (
            model.settings["preset"],
            model.settings["steps"],
            model.settings["batch_size"],
            model.settings["lr"],
            0,
        )
        assert getattr(args, "prediction", None) == model.settings.get("prediction")
    # The pixel diffusion baseline's tokens (16x16x4 values) are wider than its network.
    assert plan_entry("rayleigh_benard-diffusion-pixel").settings["prediction"] == "data"


def test_published_models_load_through_the_manifest_and_roll_out(zoo_root):
    zoo = load_zoo(zoo_root)
    assert zoo.problems == {}
    assert [e.name for e in zoo.available(kind="emulator")] == [DIFFUSION.name]
    assert zoo.systems() == ["kolmogorov"] and zoo.rates("kolmogorov") == [6]
    assert zoo.emulator("kolmogorov", "diffusion", 6).name == DIFFUSION.name
    card = zoo.card(DIFFUSION.name)
    assert card["weights"]["dtype"] == "float16"
    assert card["zoo"]["command"][:2] == ["latentsim", "train-emulator"]
    assert "2,000,000" in card["zoo"]["held_out"]
    pipeline = zoo.pipeline(DIFFUSION.name, device="cpu")
    truth = truth_dataset("kolmogorov", {"Reynolds": 200.0}, seed=1, n_frames=2, grid=GRID)
    ds = rollout(
        pipeline,
        truth.isel(time=[0]),
        {"Reynolds": 200.0},
        RolloutConfig(members=2, horizon=2, sampler="euler", steps=2),
    )
    assert dict(ds.sizes) == {"member": 2, "time": 2, "x": 16, "y": 16}


def test_tampered_or_missing_files_are_named_and_the_rest_stays_usable(zoo_root, tmp_path):
    weights = zoo_root / f"{AE.asset}.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    zoo = load_zoo(zoo_root)
    assert "does not match the manifest's SHA-256" in zoo.problems[AE.name]
    assert "autoencoder kolmogorov-ae6 is unusable" in zoo.problems[DIFFUSION.name]
    assert zoo.available() == []
    with pytest.raises(DataFormatError, match="kolmogorov-ae6"):
        zoo.get(AE.name)

    (zoo_root / f"{DIFFUSION.asset}.json").unlink()
    assert (
        "card file kolmogorov-diffusion-ae6.json is missing"
        in load_zoo(zoo_root).problems[DIFFUSION.name]
    )


def test_a_second_model_stays_usable_when_another_is_damaged(zoo_root, tmp_path):
    other = ZooModel("kolmogorov-ae7", "autoencoder", "kolmogorov", SETTINGS, rate=6)
    zoo_build.publish(other, _tiny_autoencoder(tmp_path, "other", seed=3), zoo_root)
    (zoo_root / f"{DIFFUSION.asset}.safetensors").write_bytes(b"garbage")
    zoo = load_zoo(zoo_root)
    assert set(zoo.problems) == {DIFFUSION.name}
    assert {e.name for e in zoo.available()} == {AE.name, other.name}


def test_publish_refuses_other_settings_and_other_latents(tmp_path, zoo_root):
    wrong = _tiny_autoencoder(tmp_path, "wrong", training=_training({**SETTINGS, "lr": 2e-3}))
    with pytest.raises(DataFormatError, match=r"lr=0.002 \(plan: 0.001\)"):
        zoo_build.publish(AE, wrong, zoo_root)
    # Right settings, wrong model: another rate, another method, another space.
    other_rate = ZooModel("kolmogorov-ae24", "autoencoder", "kolmogorov", SETTINGS, rate=24)
    with pytest.raises(DataFormatError, match=r"rate=6.0 \(plan: 24.0\)"):
        zoo_build.publish(other_rate, _tiny_autoencoder(tmp_path, "ae6"), zoo_root)
    published_ae = load_model_card(zoo_root / AE.asset)
    diffusion_card = _tiny_emulator(tmp_path, published_ae, "emu-diffusion")
    deterministic = dataclasses.replace(DIFFUSION, name="kolmogorov-deterministic-ae6")
    deterministic = dataclasses.replace(deterministic, method="deterministic")
    with pytest.raises(DataFormatError, match=r"method='diffusion' \(plan: 'deterministic'\)"):
        zoo_build.publish(deterministic, diffusion_card, zoo_root)
    pixel = dataclasses.replace(DIFFUSION, name="kolmogorov-diffusion-pixel", space="pixel")
    pixel = dataclasses.replace(pixel, rate=None, autoencoder=None)
    with pytest.raises(DataFormatError, match=r"space='latent' \(plan: 'pixel'\)"):
        zoo_build.publish(pixel, diffusion_card, zoo_root)
    stray = load_model_card(_tiny_autoencoder(tmp_path, "stray", seed=5))  # not the published one
    with pytest.raises(DataFormatError, match="not the published kolmogorov-ae6"):
        zoo_build.publish(DIFFUSION, _tiny_emulator(tmp_path, stray, "emu2"), zoo_root)


def test_manifest_entries_and_paths_are_validated(zoo_root):
    manifest = json.loads((zoo_root / "manifest.json").read_text())
    manifest["models"][AE.name]["asset"] = "../outside"
    del manifest["models"][DIFFUSION.name]["weights_sha256"]
    (zoo_root / "manifest.json").write_text(json.dumps(manifest))
    problems = load_zoo(zoo_root).problems
    assert "inside assets/" in problems[AE.name]
    assert "weights_sha256" in problems[DIFFUSION.name]
    (zoo_root / "manifest.json").write_text('{"format": "something else"}')
    with pytest.raises(DataFormatError, match="not a latentsim-zoo manifest"):
        read_manifest(zoo_root)


def test_lookups_name_what_is_available(zoo_root):
    zoo = load_zoo(zoo_root)
    with pytest.raises(UnknownNameError, match="kolmogorov-diffusion-ae6"):
        zoo.get("kolmogorov-diffusion-ae99")
    with pytest.raises(ParameterError, match="diffusion, latent x6"):
        zoo.emulator("kolmogorov", "deterministic", 6)
    with pytest.raises(ParameterError, match="an emulator"):
        zoo.pipeline(AE.name)
    with pytest.raises(ParameterError, match="zoo filter"):
        zoo.available(colour="red")
    with pytest.raises(ParameterError, match="system='mars'"):
        zoo_build.select("mars")
    with pytest.raises(ParameterError, match="zoo model"):
        zoo_build.select(names=["nope"])


def test_build_skips_published_models_and_resumes_unfinished_runs(zoo_root, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(zoo_build, "train", lambda model, run_dir, *a: calls.append(run_dir))
    monkeypatch.setattr(zoo_build, "ensure_dataset", lambda *a: None)
    messages = []
    zoo_build.build([AE, DIFFUSION], runs=tmp_path / "runs2", assets=zoo_root, log=messages.append)
    assert calls == [] and all("published, skipped" in m for m in messages)

    # An unfinished run is trained (then published from its output).
    other = ZooModel("kolmogorov-ae8", "autoencoder", "kolmogorov", SETTINGS, rate=6)

    def fake_train(model, run_dir, *args):
        calls.append(model.name)
        _tiny_autoencoder(run_dir, "model", seed=4)

    monkeypatch.setattr(zoo_build, "train", fake_train)
    zoo_build.build([other], runs=tmp_path / "runs2", assets=zoo_root, log=messages.append)
    assert calls == [other.name] and zoo_build.status(other, zoo_root) == "published"
    # A damaged asset is published again from the finished run, without training.
    (zoo_root / f"{other.asset}.safetensors").unlink()
    assert zoo_build.status(other, zoo_root).startswith("problem: weights file")
    zoo_build.build([other], runs=tmp_path / "runs2", assets=zoo_root, log=messages.append)
    assert calls == [other.name] and zoo_build.status(other, zoo_root) == "published"
    # --force retrains.
    zoo_build.build(
        [other], runs=tmp_path / "runs2", assets=zoo_root, force=True, log=messages.append
    )
    assert calls == [other.name, other.name]


def test_runs_of_another_command_or_forced_ones_are_moved_aside(tmp_path):
    messages = []
    run_dir = tmp_path / "runs" / AE.name
    (run_dir / "checkpoints").mkdir(parents=True)  # an unfinished run from before the record
    zoo_build.claim_run_dir(AE, run_dir, tmp_path, fresh=False, log=messages.append)
    assert (run_dir / "checkpoints").is_dir() and messages == []  # adopted: it resumes
    assert json.loads((run_dir / "zoo-command.json").read_text()) == {
        "command": AE.command(),
        "autoencoder_sha256": None,
    }
    # The plan changed: its checkpoints are another model's, kept aside, not resumed.
    changed = ZooModel(AE.name, "autoencoder", "kolmogorov", {**SETTINGS, "steps": 4}, rate=6)
    zoo_build.claim_run_dir(changed, run_dir, tmp_path, fresh=False, log=messages.append)
    aside = tmp_path / "runs" / f"{AE.name}.replaced-1"
    assert (aside / "checkpoints").is_dir() and not (run_dir / "checkpoints").exists()
    assert json.loads((run_dir / "zoo-command.json").read_text())["command"] == changed.command()
    # --force starts over even with the same command; earlier runs are never overwritten.
    zoo_build.claim_run_dir(changed, run_dir, tmp_path, fresh=True, log=messages.append)
    assert (tmp_path / "runs" / f"{AE.name}.replaced-2").is_dir() and len(messages) == 2
    # A finished run without the record whose model has other settings is stale too.
    legacy = tmp_path / "runs" / "legacy"
    _tiny_autoencoder(legacy, "model", training=_training(seed=7))
    zoo_build.claim_run_dir(AE, legacy, tmp_path, fresh=False, log=messages.append)
    assert (tmp_path / "runs" / "legacy.replaced-1" / "model.json").exists()


def test_a_republished_autoencoder_retires_its_emulators_until_they_are_retrained(
    zoo_root, tmp_path, monkeypatch
):
    """A retrained rung has other latents: the emulator trained on the old ones leaves the
    menus, and the zoo retrains it from scratch, not from its old checkpoints."""
    runs = tmp_path / "runs2"
    run_dir = runs / "zoo" / DIFFUSION.name
    zoo_build.claim_run_dir(DIFFUSION, run_dir, zoo_root, fresh=False, log=print)
    (run_dir / "checkpoints").mkdir()  # a run begun on the first autoencoder's latents
    zoo_build.publish(AE, _tiny_autoencoder(tmp_path, "retrained", seed=9), zoo_root)
    zoo = load_zoo(zoo_root)
    old = load_model_card(zoo_root / DIFFUSION.asset)["autoencoder"]["sha256"]
    assert zoo.problems == {
        DIFFUSION.name: f"trained on autoencoder weights {old[:12]}..., not the published "
        f"{AE.name} ({zoo.get(AE.name).weights_sha256[:12]}...): retrain it "
        f"(latentsim zoo train --only {DIFFUSION.name})"
    }
    assert [e.name for e in zoo.available()] == [AE.name]
    assert zoo_build.status(DIFFUSION, zoo_root).startswith("problem: trained on")

    monkeypatch.setattr(zoo_build, "ensure_dataset", lambda *a: None)
    trained = []

    def fake_train(model, run_dir, data, assets, log):
        trained.append(sorted(p.name for p in run_dir.iterdir()))
        published = load_model_card(assets / AE.asset)
        _tiny_emulator(run_dir, published, "model")

    monkeypatch.setattr(zoo_build, "train", fake_train)
    messages = []
    zoo_build.build([AE, DIFFUSION], runs=runs, assets=zoo_root, log=messages.append)
    assert trained == [["zoo-command.json"]]  # the old checkpoints were moved aside
    assert (runs / "zoo" / f"{DIFFUSION.name}.replaced-1" / "checkpoints").is_dir()
    assert load_zoo(zoo_root).problems == {}
    assert zoo_build.status(DIFFUSION, zoo_root) == "published"


def test_an_emulator_waits_for_its_autoencoder(tmp_path, monkeypatch):
    monkeypatch.setattr(zoo_build, "ensure_dataset", lambda *a: None)
    with pytest.raises(DataFormatError, match="needs its autoencoder kolmogorov-ae6"):
        zoo_build.build([DIFFUSION], runs=tmp_path, assets=tmp_path / "empty", log=print)


def test_a_run_killed_in_its_first_checkpoint_starts_afresh(tmp_path, monkeypatch):
    """Only committed checkpoints make a resume: the trainer refuses to resume from a
    temporary leftover, so counting it would stop the zoo at this model for good."""
    calls = []
    monkeypatch.setattr(zoo_build, "train_autoencoder", lambda *a, **kw: calls.append(kw))
    checkpoints = tmp_path / "run" / "checkpoints"
    (checkpoints / ".tmp-step_00000250-x").mkdir(parents=True)
    zoo_build.train(AE, tmp_path / "run", tmp_path / "data", tmp_path / "assets", print)
    (checkpoints / "step_00000250").mkdir()
    zoo_build.train(AE, tmp_path / "run", tmp_path / "data", tmp_path / "assets", print)
    assert [call["resume"] for call in calls] == [False, True]


@pytest.mark.parametrize(
    "model",
    [
        ZooModel(
            "euler_quadrants-ae80",
            "autoencoder",
            "euler_quadrants",
            {
                "preset": "wide8",
                "steps": 10,
                "batch_size": 4,
                "lr": 2e-3,
                "loss_eps": 1.0,
                "bf16": True,
                "ema_decay": 0.99,
            },
            rate=80,
        ),
        ZooModel(
            "euler_quadrants-diffusion-ae80",
            "emulator",
            "euler_quadrants",
            {"preset": "compact", "steps": 10, "batch_size": 4, "lr": 1e-3, "patch": 2},
            method="diffusion",
            space="latent",
            rate=80,
            autoencoder="euler_quadrants-ae80",
        ),
    ],
    ids=["autoencoder", "emulator"],
)
def test_the_zoo_trains_with_every_setting_its_command_records(model, tmp_path, monkeypatch):
    """The card's command and the stage call come from the same plan entry: a knob the
    command has but the call lacks would publish a model trained otherwise."""
    calls = []
    monkeypatch.setattr(zoo_build, "train_autoencoder", lambda *a, **kw: calls.append(kw))
    monkeypatch.setattr(zoo_build, "train_emulator", lambda *a, **kw: calls.append(kw))
    zoo_build.train(model, tmp_path / "run", tmp_path / "data", tmp_path / "assets", print)
    (called,) = calls
    args = build_parser().parse_args(model.command())
    for option in ("loss_eps", "bf16", "ema_decay", "patch"):
        if hasattr(args, option):
            assert called.get(option, getattr(args, option)) == getattr(args, option), option
    for key in ("loss_eps", "bf16", "ema_decay", "patch"):
        if key in model.settings:
            assert called[key] == model.settings[key], key

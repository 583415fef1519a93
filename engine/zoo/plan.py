"""What the shipped model zoo is made of, and the exact command that trains each model.

The plan is the single source of truth for the zoo: `latentsim zoo train` runs these
commands, their settings are written into each model's card and the manifest, and a
model found in assets/ is only accepted if it was trained with these settings.

Sizes come from measured costs on a 2-core CPU machine: autoencoders use the "small"
preset (1.6M parameters, 8-30 minutes each on one thread), emulators the "compact"
backbone (1.3M parameters, about 0.2 s per batch of 32 on one thread, ~7 minutes for
2000 steps; Euler's x80 pair the 3.7M-parameter "small" one). Euler's autoencoders
diverge at the small preset's lr 2e-3 and need a longer schedule at 5e-4
(docs/autoencoders.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.autoencoder.config import preset_spatial_factor
from engine.autoencoder.ladder import LADDERS
from engine.emulator.base import KINDS
from engine.errors import UnknownNameError

AUTOENCODER_SETTINGS: dict[str, dict[str, Any]] = {
    "euler_quadrants": {"preset": "small", "steps": 3000, "batch_size": 32, "lr": 5e-4},
    "rayleigh_benard": {"preset": "small", "steps": 1200, "batch_size": 32, "lr": 2e-3},
    "kolmogorov": {"preset": "small", "steps": 1200, "batch_size": 32, "lr": 2e-3},
}
# Per-(system, rate) overrides of AUTOENCODER_SETTINGS, for a rung retrained with other
# levers (preset, loss floor, bf16, EMA: TRAINING_KNOBS), measured in docs/zoo.md
# ("Training levers"); a rung listed here is "stale" until it and its emulators are
# retrained.
AUTOENCODER_RATE_SETTINGS: dict[tuple[str, int], dict[str, Any]] = {
    key: {
        "preset": "wide8",
        "steps": 4000,
        "batch_size": 32,
        "lr": 2e-3,
        "loss_eps": 1.0,
        "bf16": True,
    }
    for key in (
        ("euler_quadrants", 80),
        ("euler_quadrants", 320),
        ("kolmogorov", 48),
        ("rayleigh_benard", 64),
    )
}
# Kolmogorov x48 diverged early at the recipe's lr 2e-3 and trains smoothly at 1e-3
# (docs/zoo.md).
AUTOENCODER_RATE_SETTINGS["kolmogorov", 48]["lr"] = 1e-3
# Euler's autoencoders train with PSGD-Kron at lr 5e-4: at 1500 steps of the x80 rung, side
# by side with AdamW at lr 2e-3, test VRMSE 0.246 against 0.293 (docs/zoo.md, "Training
# levers"). The x1280 rung keeps the factor-16 `small` preset (its 4x4 latent grid has one
# channel) and gets the x80 rung's loss floor and bf16 too.
for rate in (80, 320):
    AUTOENCODER_RATE_SETTINGS["euler_quadrants", rate].update(optimizer="psgd_kron", lr=5e-4)
AUTOENCODER_RATE_SETTINGS["euler_quadrants", 1280] = {
    **AUTOENCODER_RATE_SETTINGS["euler_quadrants", 80],
    "preset": "small",
}
# Kolmogorov's x768 rung takes the x48 rung's recipe (4000 steps, loss floor 1, lr 1e-3) on
# the factor-16 `small` preset (a 4x4 grid of one channel): its floor fell 0.61 -> 0.56
# and its diffusion ensemble's spread-skill rose 0.68 -> 0.75 (docs/zoo.md). No bf16: it
# was trained on a CPU without bfloat16 instructions, where autocast is slower.
AUTOENCODER_RATE_SETTINGS["kolmogorov", 768] = {
    **AUTOENCODER_RATE_SETTINGS["kolmogorov", 48],
    "preset": "small",
    "bf16": False,
}
# Options a plan entry may set beyond preset/steps/batch/lr: (train-* flag, where the card
# records it, the value a card without it was trained with).
TRAINING_KNOBS: dict[str, tuple[str, tuple[str, str], Any]] = {
    "loss_eps": ("--loss-eps", ("recipe", "loss_eps"), 1e-2),
    "bf16": ("--bf16", ("train_config", "bf16"), False),
    "ema_decay": ("--ema-decay", ("train_config", "ema_decay"), None),
    "optimizer": ("--optimizer", ("train_config", "optimizer"), "adamw"),
}
EMULATOR_SETTINGS: dict[str, Any] = {
    "preset": "compact",
    "steps": 2000,
    "batch_size": 32,
    "lr": 1e-3,
}
# Latent emulators on a factor-8 (`wide8`, `wide8deep`) rung: its 8x8 latent grid takes
# 2x2 latent patches (the same 16 tokens per frame as on the factor-16 ones). No weight
# EMA: at 2000 steps a 0.999 average made the Euler x80 diffusion emulator worse
# (docs/zoo.md).
EMULATOR_RATE_SETTINGS: dict[tuple[str, int], dict[str, Any]] = {
    key: {**EMULATOR_SETTINGS, "patch": 2}
    for key, settings in AUTOENCODER_RATE_SETTINGS.items()
    if preset_spatial_factor(settings["preset"]) == 8
}
# The lowest rungs' emulators, which the explorer shows first, train 3x longer: at 2000
# steps their loss is still falling and the diffusion emulators' short-lead error is model
# error, not the autoencoder's (docs/zoo.md). Both methods get the same steps, so the
# diffusion-vs-deterministic comparison stays like for like.
for system, rates in LADDERS.items():
    key = (system, min(rates))
    EMULATOR_RATE_SETTINGS[key] = {
        **EMULATOR_RATE_SETTINGS.get(key, EMULATOR_SETTINGS),
        "steps": 6000,
    }
# Euler's x80 emulators are Euler's limit once its autoencoders are retrained; at 2000
# steps the wider `small` backbone (3.7M parameters) lowered the diffusion emulator's
# validation loss 15 % and its card VRMSE 15 % at every lead, for 2.6x the training and
# 2.2x the sampling time (docs/zoo.md, "Training levers"). Both methods widen together.
EMULATOR_RATE_SETTINGS["euler_quadrants", 80]["preset"] = "small"
# The same widening at Kolmogorov x48, whose long lead sat just above 0.9 (docs/zoo.md,
# "Kolmogorov's x48 emulators on the `small` backbone").
EMULATOR_RATE_SETTINGS["kolmogorov", 48]["preset"] = "small"
# The pixel-space diffusion baseline is the dearest model per frame at sampling time;
# the zoo has it on one system. Its 16x16 patches hold 1024 values per
# token, more than the compact width of 128, so it predicts the clean data: with the EDM
# skip, unit-variance noise survives sampling in the directions its output layer cannot
# reach (measured in docs/bench/pixel_diffusion/, explained in engine/diffusion/denoiser.py).
PIXEL_DIFFUSION_SYSTEMS = ("rayleigh_benard",)
PIXEL_DIFFUSION_SETTINGS: dict[str, Any] = {**EMULATOR_SETTINGS, "prediction": "data"}
SEED = 0


@dataclass(frozen=True)
class ZooModel:
    """One model of the zoo: what it is and how it is trained.

    `rate` is the autoencoder's compression rate (None for pixel-space emulators);
    `autoencoder` names the zoo autoencoder a latent emulator is trained on.
    """

    name: str
    kind: str  # "autoencoder" | "emulator"
    system: str
    settings: dict[str, Any] = field(hash=False)
    method: str | None = None  # "diffusion" | "deterministic" for emulators
    space: str | None = None  # "latent" | "pixel" for emulators
    rate: int | None = None
    autoencoder: str | None = None

    @property
    def folder(self) -> str:
        """assets/ sub-folder of the model files."""
        return "autoencoders" if self.kind == "autoencoder" else "emulators"

    @property
    def asset(self) -> str:
        """Model stem relative to assets/."""
        return f"{self.folder}/{self.name}"

    def command(self) -> list[str]:
        """The `latentsim` arguments that train this model (without --run-dir/--output)."""
        s = self.settings
        common = [
            "--config",
            s["preset"],
            "--steps",
            str(s["steps"]),
            "--batch-size",
            str(s["batch_size"]),
            "--lr",
            f"{s['lr']:g}",
            "--seed",
            str(SEED),
        ]
        for key, (flag, _, _) in TRAINING_KNOBS.items():
            if isinstance(s.get(key), bool):
                common += [flag] if s[key] else []
            elif isinstance(s.get(key), str):
                common += [flag, s[key]]
            elif s.get(key) is not None:
                common += [flag, f"{s[key]:g}"]
        if self.kind == "autoencoder":
            return ["train-ae", self.system, "--rate", str(self.rate), *common]
        where = (
            ["--rate", str(self.rate), "--autoencoder", f"assets/{self.autoencoder_asset}"]
            if self.space == "latent"
            else ["--space", "pixel"]
        )
        if "patch" in s:
            where += ["--patch", str(s["patch"])]
        if "prediction" in s:
            where += ["--prediction", s["prediction"]]
        return ["train-emulator", self.system, "--kind", str(self.method), *where, *common]

    @property
    def autoencoder_asset(self) -> str:
        return f"autoencoders/{self.autoencoder}"

    def description(self) -> str:
        if self.kind == "autoencoder":
            return f"{self.system} autoencoder at compression {self.rate}"
        where = (
            f"latent space (autoencoder {self.autoencoder})"
            if self.space == "latent"
            else "pixel space (16x16 patches)"
        )
        return f"{self.system} {self.method} emulator in {where}"


def autoencoder_name(system: str, rate: int) -> str:
    return f"{system}-ae{rate}"


def emulator_name(system: str, method: str, rate: int | None) -> str:
    return f"{system}-{method}-{'pixel' if rate is None else f'ae{rate}'}"


def zoo_plan() -> list[ZooModel]:
    """Every zoo model, each autoencoder before the emulators trained on its latents."""
    models: list[ZooModel] = []
    for system, rates in LADDERS.items():
        for rate in rates:
            settings = AUTOENCODER_RATE_SETTINGS.get((system, rate), AUTOENCODER_SETTINGS[system])
            models.append(
                ZooModel(autoencoder_name(system, rate), "autoencoder", system, settings, rate=rate)
            )
        for rate in rates:
            for method in KINDS:
                models.append(
                    ZooModel(
                        emulator_name(system, method, rate),
                        "emulator",
                        system,
                        EMULATOR_RATE_SETTINGS.get((system, rate), EMULATOR_SETTINGS),
                        method=method,
                        space="latent",
                        rate=rate,
                        autoencoder=autoencoder_name(system, rate),
                    )
                )
        pixel_methods = ["deterministic"]
        if system in PIXEL_DIFFUSION_SYSTEMS:
            pixel_methods.append("diffusion")
        for method in pixel_methods:
            settings = PIXEL_DIFFUSION_SETTINGS if method == "diffusion" else EMULATOR_SETTINGS
            models.append(
                ZooModel(
                    emulator_name(system, method, None),
                    "emulator",
                    system,
                    settings,
                    method=method,
                    space="pixel",
                )
            )
    return models


def plan_entry(name: str) -> ZooModel:
    plan = {model.name: model for model in zoo_plan()}
    if name not in plan:
        raise UnknownNameError("zoo model", name, plan)
    return plan[name]

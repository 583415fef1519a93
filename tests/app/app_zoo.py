"""A tiny, untrained zoo for the app tests (imported as `app_zoo`).

Real model files (safetensors + cards) of real systems on small grids, published in a
real manifest, so the app goes through exactly the code paths of the shipped zoo:
- rayleigh_benard on 32x16: autoencoders x8 and x16 (x2 spatial factor), latent
  diffusion and deterministic emulators at x8, latent diffusion at x16, and a
  deterministic pixel-space emulator;
- kolmogorov on 16x16: one autoencoder (x6) and a deterministic emulator on it;
- one manifest entry whose files are missing, which the zoo must report as unusable.
Emulators have a window of 3 frames, so a context of 1 generates 2 frames per call.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from engine.autoencoder import Autoencoder, AutoencoderConfig
from engine.emulator import BackboneConfig, LabelSpec, build_emulator, save_emulator
from engine.hashing import file_sha256
from engine.model_files import load_model_card, save_autoencoder
from engine.pipeline import Pipeline
from engine.preprocessing import Preprocessing
from engine.systems import get_system
from engine.zoo import ZooEntry
from engine.zoo.manifest import locked_manifest

GRIDS = {"rayleigh_benard": (32, 16), "kolmogorov": (16, 16)}
BACKBONE = BackboneConfig(width=12, depth=1, heads=2, cond_dim=8, window=3, dropout=0.0)
BROKEN = "rayleigh_benard-diffusion-ae99"


def _publish(root: Path, name: str, asset: str, **fields) -> None:
    stem = root / asset
    with locked_manifest(root) as models:
        models[name] = ZooEntry(
            name=name,
            asset=asset,
            path=stem,
            weights_sha256=file_sha256(stem.with_name(stem.name + ".safetensors")),
            card_sha256=file_sha256(stem.with_name(stem.name + ".json")),
            command=("train-test", name),
            description=f"test model {name}",
            **fields,
        ).record()


def _autoencoder(root: Path, system: str, latent_channels: int, seed: int) -> tuple[str, int]:
    spec = get_system(system, GRIDS[system]).spec
    channels = spec.channel_names
    config = AutoencoderConfig(
        in_channels=len(channels),
        latent_channels=latent_channels,
        widths=(4, 8),
        blocks_per_level=0,
        periodic=(True, system == "kolmogorov"),
    )
    rate = len(channels) * 4 // latent_channels  # x2 spatial factor: 4 cells per latent cell
    torch.manual_seed(seed)
    preprocessing = Preprocessing(channels, (0.0,) * len(channels), (1.0,) * len(channels))
    name = f"{system}-ae{rate}"
    save_autoencoder(
        root / "autoencoders",
        name,
        Autoencoder(config),
        preprocessing,
        system=system,
        grid=GRIDS[system],
        rate=rate,
    )
    _publish(
        root,
        name,
        f"autoencoders/{name}",
        kind="autoencoder",
        system=system,
        method=None,
        space=None,
        rate=rate,
        autoencoder=None,
    )
    return name, rate


def _emulator(
    root: Path, system: str, method: str, autoencoder: tuple[str, int] | None, seed: int
) -> None:
    spec = get_system(system, GRIDS[system]).spec
    label_dim = LabelSpec.from_system(spec).dim
    torch.manual_seed(seed)
    if autoencoder is None:
        config = BackboneConfig(**{**BACKBONE.to_dict(), "patch": 4})
        emulator = build_emulator(
            method, config, len(spec.channel_names), GRIDS[system], label_dim, "pixel"
        )
        preprocessing = Preprocessing(
            spec.channel_names, (0.0,) * len(spec.channel_names), (1.0,) * len(spec.channel_names)
        )
        name, extra = f"{system}-{method}-pixel", {"preprocessing": preprocessing}
        rate, space = None, "pixel"
    else:
        ae_name, rate = autoencoder
        card = load_model_card(root / "autoencoders" / ae_name)
        shape = card["latent_shape"]
        emulator = build_emulator(method, BACKBONE, shape[0], tuple(shape[1:]), label_dim, "latent")
        name, extra, space = f"{system}-{method}-ae{rate}", {"autoencoder": card}, "latent"
    save_emulator(root / "emulators", name, emulator, system=spec, **extra)
    _publish(
        root,
        name,
        f"emulators/{name}",
        kind="emulator",
        system=system,
        method=method,
        space=space,
        rate=rate,
        autoencoder=None if autoencoder is None else autoencoder[0],
    )


def build_zoo(root: Path) -> Path:
    """Write the tiny zoo under `root` (an assets/ stand-in) and return `root`."""
    rb8 = _autoencoder(root, "rayleigh_benard", 2, seed=0)
    rb16 = _autoencoder(root, "rayleigh_benard", 1, seed=1)
    _emulator(root, "rayleigh_benard", "diffusion", rb8, seed=2)
    _emulator(root, "rayleigh_benard", "deterministic", rb8, seed=3)
    _emulator(root, "rayleigh_benard", "diffusion", rb16, seed=4)
    _emulator(root, "rayleigh_benard", "deterministic", None, seed=5)
    ko6 = _autoencoder(root, "kolmogorov", 2, seed=6)
    _emulator(root, "kolmogorov", "deterministic", ko6, seed=7)
    with locked_manifest(root) as models:  # listed, but its files were never written
        models[BROKEN] = {
            **models["rayleigh_benard-diffusion-ae16"],
            "asset": "emulators/missing",
            "rate": 99,
        }
    return root


class NaNAfter(torch.nn.Module):
    """Delegates to a real emulator, but returns NaN from generate call `call` on."""

    def __init__(self, inner: torch.nn.Module, call: int):
        super().__init__()
        self.inner, self.call, self.calls = inner, call, 0
        self.kind, self.space, self.window = inner.kind, inner.space, inner.window

    def generate(self, context, label, *, sampler=None, generator=None):
        self.calls += 1
        out = self.inner.generate(context, label, sampler=sampler, generator=generator)
        return out * math.nan if self.calls >= self.call else out

    def nfe(self, sampler=None):
        return self.inner.nfe(sampler)


def diverging(real: Pipeline, call: int = 2) -> Pipeline:
    """`real` with its emulator returning NaN from generate call `call` on."""
    return Pipeline(
        real.spec,
        real.preprocessing,
        NaNAfter(real.emulator, call=call),
        real.autoencoder,
        "cpu",
        label_spec=real.label_spec,
        frame_stride=real.frame_stride,
        cards=real.cards,
    )

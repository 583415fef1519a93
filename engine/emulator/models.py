"""The two emulators of the paper (same backbone, different objectives) and their model files.

- `DiffusionEmulator`: the backbone inside the EDM `Denoiser`; trained with the masked-
  context diffusion loss, sampled with any registered sampler (default: 16-step AB3, the
  paper's). Ensembles are independent rows of the batch, each with its own noise.
- `DeterministicEmulator` (the paper's "neural solver"): the backbone conditioned on the
  label only; one pass maps the window (context frames, zeros after them, plus the mask) to
  the full window. Trained with MSE on the generated frames only: the context entries of
  the output are overwritten with the context (as the denoiser clamps them), so their
  error is identically zero, and counting them, as the diffusion loss does, would only
  scale each window's loss by (L-k)/L and down-weight long-context windows. Here every
  generated frame weighs the same, whatever k.

Both serve latent space (patch 1) and pixel space (patch p > 1, the pixel baselines); the
model card says which, and what the frames are: the autoencoder they are latents of, or the
preprocessing the pixel frames went through.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from engine.device import resolve_device
from engine.diffusion import (
    ABSampler,
    Denoiser,
    LogLogitSchedule,
    Sampler,
    diffusion_loss,
)
from engine.diffusion.denoiser import check_prediction
from engine.diffusion.noise import randn
from engine.emulator.backbone import Backbone
from engine.emulator.base import Emulator
from engine.emulator.config import BackboneConfig
from engine.emulator.labels import LabelSpec
from engine.errors import DataFormatError, LatentsimError, ParameterError, check_integer
from engine.model_format import (
    check_card,
    check_tensors,
    load_model_of_kind,
    save_model,
)
from engine.preprocessing import Preprocessing
from engine.systems.base import SystemSpec

# The paper's default sampler (section 5): Adams-Bashforth order 3, 16 uniform steps.
DEFAULT_SAMPLER_STEPS = 16
DEFAULT_SAMPLER_ORDER = 3


def default_sampler(schedule: LogLogitSchedule | None = None) -> Sampler:
    """16-step AB3 on `schedule` (a diffusion emulator passes the one it was trained on)."""
    return ABSampler(steps=DEFAULT_SAMPLER_STEPS, order=DEFAULT_SAMPLER_ORDER, schedule=schedule)


class DiffusionEmulator(Emulator):
    """Latent (or pixel) diffusion over windows with masked context."""

    kind = "diffusion"

    def __init__(
        self,
        backbone_config: BackboneConfig,
        channels: int,
        grid: tuple[int, int],
        label_dim: int,
        space: str = "latent",
        schedule: LogLogitSchedule | None = None,
        prediction: str = "edm",
    ):
        super().__init__(backbone_config, channels, grid, label_dim, space)
        self.schedule = schedule if schedule is not None else LogLogitSchedule()
        self.denoiser = Denoiser(
            Backbone(backbone_config, channels, label_dim, noise_conditioning=True),
            prediction,
        )

    def loss(self, batch, *, generator=None):
        window, label, mask = self._training_window(batch, generator)
        return diffusion_loss(
            self.denoiser, window, label, mask, schedule=self.schedule, generator=generator
        )

    def generate(self, context, label, *, sampler=None, generator=None):
        window, mask, length = self._context_window(context, label)
        sampler = default_sampler(self.schedule) if sampler is None else sampler
        if not isinstance(sampler, Sampler):
            raise ParameterError("sampler", sampler, "an engine.diffusion Sampler or None")
        noise = randn(window.shape, generator, window.device, window.dtype)
        x1 = sampler.schedule.sigma_max * noise
        x = self.denoiser.sample(sampler, x1, label, window, mask, generator)
        return x[:, length:]

    def nfe(self, sampler=None):
        return (default_sampler(self.schedule) if sampler is None else sampler).nfe()


class DeterministicEmulator(Emulator):
    """The paper's neural solver: one network pass per window, no noise, one member.

    `generate` accepts a `generator` for the common interface and draws nothing from it.
    """

    kind = "deterministic"

    def __init__(
        self,
        backbone_config: BackboneConfig,
        channels: int,
        grid: tuple[int, int],
        label_dim: int,
        space: str = "latent",
    ):
        super().__init__(backbone_config, channels, grid, label_dim, space)
        self.network = Backbone(backbone_config, channels, label_dim, noise_conditioning=False)

    def predict(self, window: Tensor, label: Tensor, mask: Tensor) -> Tensor:
        """The full window: the context (under `mask`) as given, the network elsewhere."""
        window = torch.where(mask, window, torch.zeros_like(window))
        return torch.where(mask, window, self.network(window, None, label, mask))

    def loss(self, batch, *, generator=None):
        window, label, mask = self._training_window(batch, generator)
        squared = (self.predict(window, label, mask) - window).square()
        generated = (~mask).expand(squared.shape)
        return squared[generated].mean()

    def generate(self, context, label, *, sampler=None, generator=None):
        if sampler is not None:
            raise ParameterError("sampler", sampler, "None: a deterministic emulator has none")
        window, mask, length = self._context_window(context, label)
        return self.predict(window, label, mask)[:, length:]

    def nfe(self, sampler=None):
        if sampler is not None:
            raise ParameterError("sampler", sampler, "None: a deterministic emulator has none")
        return 1


EMULATORS: dict[str, type[Emulator]] = {
    DiffusionEmulator.kind: DiffusionEmulator,
    DeterministicEmulator.kind: DeterministicEmulator,
}


def build_emulator(
    kind: str,
    backbone_config: BackboneConfig,
    channels: int,
    grid: tuple[int, int],
    label_dim: int,
    space: str,
    prediction: str | None = None,
) -> Emulator:
    """An untrained emulator of the given kind ("diffusion" or "deterministic").

    `prediction` ("edm" or "data", default "edm") applies to diffusion only.
    """
    prediction = check_kind_and_prediction(kind, prediction)
    if prediction is None:
        return EMULATORS[kind](backbone_config, channels, grid, label_dim, space)
    return DiffusionEmulator(
        backbone_config, channels, grid, label_dim, space, prediction=prediction
    )


def check_kind_and_prediction(kind: str, prediction: str | None) -> str | None:
    """The denoiser parametrisation for an emulator of `kind`: None for a deterministic one
    (which takes none), `prediction` or "edm" for a diffusion one; ParameterError otherwise."""
    if kind not in EMULATORS:
        raise ParameterError("emulator kind", kind, f"one of {', '.join(EMULATORS)}")
    if kind != DiffusionEmulator.kind:
        if prediction is not None:
            raise ParameterError("prediction", prediction, "unset for a deterministic emulator")
        return None
    return check_prediction(prediction or "edm")


def card_prediction(card: Mapping[str, Any]) -> str:
    """A diffusion card's parametrisation; cards written before the choice are EDM models."""
    return card.get("prediction") or "edm"


# ---------------------------------------------------------------------- model files

CARD_KIND = "emulator"
_CARD_KEYS = ("method", "space", "channels", "grid", "window", "frame_stride", "backbone", "label")


def save_emulator(
    directory: str | os.PathLike[str],
    name: str,
    emulator: Emulator,
    *,
    system: SystemSpec,
    frame_stride: int = 1,
    autoencoder: Mapping[str, Any] | None = None,
    preprocessing: Preprocessing | None = None,
    training: Mapping[str, Any] | None = None,
) -> Path:
    """Write `<name>.safetensors` + `<name>.json`; return the card's path.

    Latent emulators need the card of the autoencoder whose latents they were trained on
    (`autoencoder`, as returned by `load_autoencoder`): its weights' SHA-256 is recorded so
    a rollout refuses any other autoencoder, and the frames' shape must be its latent shape.
    Pixel emulators need the `preprocessing` their frames went through instead.
    `frame_stride` is Δ, stored frames per emulator step (the official code,
    PolymathicAI/lola, did not record it; here it travels with the model); `training` is
    free-form run information.
    """
    if not isinstance(emulator, Emulator):
        raise ParameterError("emulator", type(emulator).__name__, "an Emulator")
    check_integer("frame_stride", frame_stride, 1)
    labels = LabelSpec.from_system(system)
    if labels.dim != emulator.label_dim:
        raise ParameterError(
            "emulator label_dim", emulator.label_dim, f"{labels.dim}, the label of {system.name}"
        )
    frame_shape = [emulator.channels, *emulator.grid]
    card: dict[str, Any] = {"kind": CARD_KIND, "method": emulator.kind, "system": system.name}
    if emulator.space == "latent":
        if autoencoder is None or preprocessing is not None:
            raise ParameterError(
                "autoencoder / preprocessing",
                (autoencoder is not None, preprocessing is not None),
                "a latent emulator takes its autoencoder's card and no preprocessing",
            )
        check_card(autoencoder, {"kind": "autoencoder", "system": system.name}, "autoencoder")
        if list(autoencoder.get("latent_shape", [])) != frame_shape:
            raise ParameterError(
                "autoencoder latent_shape",
                autoencoder.get("latent_shape"),
                f"{frame_shape}, the emulator's (channels, h, w)",
            )
        card["rate"] = autoencoder["rate"]
        card["autoencoder"] = {
            "sha256": autoencoder["weights"]["sha256"],
            "rate": autoencoder["rate"],
            "latent_shape": frame_shape,
        }
        card["preprocessing"] = None
    else:
        if preprocessing is None or autoencoder is not None:
            raise ParameterError(
                "autoencoder / preprocessing",
                (autoencoder is not None, preprocessing is not None),
                "a pixel emulator takes its preprocessing and no autoencoder",
            )
        if preprocessing.channel_names != system.channel_names:
            raise ParameterError(
                "preprocessing channels",
                preprocessing.channel_names,
                f"{system.name}'s {system.channel_names}",
            )
        if len(preprocessing.channel_names) != emulator.channels:
            raise ParameterError(
                "emulator channels", emulator.channels, f"{len(preprocessing.channel_names)}"
            )
        card["rate"] = None
        card["autoencoder"] = None
        card["preprocessing"] = preprocessing.to_dict()
    card.update(
        space=emulator.space,
        channels=emulator.channels,
        grid=list(emulator.grid),
        window=emulator.window,
        frame_stride=frame_stride,
        backbone=emulator.config.to_dict(),
        label=labels.to_dict(),
        schedule=_schedule_dict(emulator),
        prediction=_prediction(emulator),
        parameters=emulator.parameter_count(),
        training=dict(training or {}),
    )
    return save_model(directory, name, emulator, card)


def load_emulator(
    path: str | os.PathLike[str],
    device: str | torch.device | None = "auto",
    *,
    system: str | SystemSpec | None = None,
    autoencoder: Mapping[str, Any] | None = None,
) -> tuple[Emulator, dict[str, Any]]:
    """Rebuild a saved emulator (in eval mode) and return it with its card.

    `system` (a name or spec) refuses a model of another system; a spec must also give the
    label layout the model was trained with. `autoencoder` (an autoencoder card) refuses a
    latent emulator trained on other latents (see `check_autoencoder_pair`).
    """
    state, card, card_path = load_model_of_kind(path, CARD_KIND, _CARD_KEYS, system)
    try:
        config = BackboneConfig.from_dict(card["backbone"])
        labels = LabelSpec.from_dict(card["label"])
        emulator = _from_card(card, config, labels.dim)
    except (LatentsimError, KeyError, TypeError, ValueError) as err:
        raise DataFormatError(card_path, f"invalid emulator card: {err!s}") from err
    if isinstance(system, SystemSpec):
        labels.check_matches(LabelSpec.from_system(system), card_path)
    if autoencoder is not None:
        check_autoencoder_pair(card, autoencoder)
    check_tensors(state, emulator.state_dict(), card_path)
    emulator.load_state_dict(state, strict=True)
    return emulator.to(resolve_device(device)).eval(), card


def check_autoencoder_pair(emulator_card: Mapping[str, Any], autoencoder_card: Mapping[str, Any]):
    """DataFormatError unless the emulator was trained on this autoencoder's latents.

    The pair is identified by the SHA-256 of the autoencoder's weights, which its card
    records: a retrained autoencoder of the same shape has other latents.
    """
    name = f"emulator card ({emulator_card.get('system')}, {emulator_card.get('method')})"
    recorded = emulator_card.get("autoencoder")
    if emulator_card.get("space") != "latent" or not isinstance(recorded, Mapping):
        raise DataFormatError(name, "a pixel-space emulator works without an autoencoder")
    sha = autoencoder_card.get("weights", {}).get("sha256")
    if recorded.get("sha256") != sha:
        raise DataFormatError(
            name,
            f"trained on the latents of autoencoder {str(recorded.get('sha256'))[:12]}..., "
            f"not {str(sha)[:12]}... (rate {autoencoder_card.get('rate')}); use the "
            "autoencoder it was trained with",
        )


def _prediction(emulator: Emulator) -> str | None:
    return emulator.denoiser.prediction if isinstance(emulator, DiffusionEmulator) else None


def _schedule_dict(emulator: Emulator) -> dict[str, float] | None:
    if not isinstance(emulator, DiffusionEmulator):
        return None
    return {"sigma_min": emulator.schedule.sigma_min, "sigma_max": emulator.schedule.sigma_max}


def _from_card(card: Mapping[str, Any], config: BackboneConfig, label_dim: int) -> Emulator:
    if config.window != card["window"]:
        raise ParameterError("window", card["window"], f"{config.window}, the backbone's")
    layout = (config, card["channels"], tuple(card["grid"]), label_dim, card["space"])
    if card["method"] != DiffusionEmulator.kind:
        return build_emulator(card["method"], *layout)
    schedule = card.get("schedule")
    if schedule is not None:
        schedule = LogLogitSchedule(schedule["sigma_min"], schedule["sigma_max"])
    return DiffusionEmulator(
        *layout,
        schedule,
        card_prediction(card),
    )

"""What turns physical frames into an emulator's model space and back.

A `Pipeline` bundles the pieces that must agree with each other for a rollout to mean
anything: the system spec (channels, grid, frame interval), the preprocessing the
models were trained with, the autoencoder (None for pixel-space emulators), the
emulator and the device. Everything downstream (rollouts, reconstructions, the app)
goes through `encode`/`decode` and `label`, so a mismatched pair of models is refused
once, here, with both names in the message, instead of producing a plausible-looking
but meaningless rollout.

Model space is the emulator's frame space: latents (C', h, w) for a latent emulator,
preprocessed pixels (C, X, Y) for a pixel-space one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from engine.autoencoder.model import Autoencoder
from engine.device import resolve_device
from engine.emulator.base import KINDS, SPACES
from engine.emulator.labels import LabelSpec
from engine.emulator.models import CARD_KIND as EMULATOR_CARD_KIND
from engine.emulator.models import check_autoencoder_pair, load_emulator
from engine.errors import DataFormatError, LatentsimError, ParameterError, check_integer
from engine.model_files import check_card, load_autoencoder, load_model_card, model_paths
from engine.preprocessing import Preprocessing
from engine.systems import get_system
from engine.systems.base import SystemSpec

# The emulator's vocabulary under the names this module has always exported.
EMULATOR_KINDS, EMULATOR_SPACES = KINDS, SPACES
# Frames per autoencoder call in encode/decode: bounds activation memory of large
# autoencoders on long trajectories while keeping small ones in one batch.
CHUNK_FRAMES = 64


def resolve_conditions(spec: SystemSpec, conditions: Mapping[str, Any] | None) -> dict[str, Any]:
    """Every condition of `spec` checked against its valid range, defaults filled in.

    Values outside the *training* range are accepted (out-of-distribution experiments
    are a feature); `out_of_training_range` lists them.
    """
    conditions = dict(conditions or {})
    known = [p.name for p in spec.parameters] + [c.name for c in spec.choices]
    unknown = sorted(set(conditions) - set(known))
    if unknown:
        valid = ", ".join(known) if known else "none (this system has no conditions)"
        raise ParameterError("condition", unknown[0], f"one of {valid}")
    resolved: dict[str, Any] = {
        p.name: p.check(conditions.get(p.name, p.default)) for p in spec.parameters
    }
    resolved.update({c.name: c.check(conditions.get(c.name, c.default)) for c in spec.choices})
    return resolved


def out_of_training_range(spec: SystemSpec, conditions: Mapping[str, Any]) -> list[str]:
    """Names of the continuous conditions outside the range the models were trained on."""
    return [
        p.name
        for p in spec.parameters
        if p.name in conditions and not p.in_training_range(conditions[p.name])
    ]


class Pipeline:
    """System spec + preprocessing + optional autoencoder + emulator, on one device.

    `emulator` follows docs/dev/EMULATOR_INTERFACE.md (kind, space, window, generate,
    nfe). A latent emulator needs the autoencoder whose latents it was trained on; a
    pixel emulator takes none. `label_spec` encodes conditions as during training (the
    emulator card stores it; default: the spec's). `frame_stride` Δ is the number of
    stored frames per emulator step. `cards` keeps the model cards, for provenance.
    Modules are moved to `device` and put in eval mode.

    `encode`, `decode` and `label` run under torch.inference_mode() (a pipeline is for
    inference only), so their results are inference tensors: clone one to modify it in
    place outside inference mode.
    """

    def __init__(
        self,
        spec: SystemSpec,
        preprocessing: Preprocessing,
        emulator: nn.Module,
        autoencoder: Autoencoder | None = None,
        device: str | torch.device | None = "auto",
        *,
        label_spec: LabelSpec | None = None,
        frame_stride: int = 1,
        cards: Mapping[str, Mapping[str, Any]] | None = None,
    ):
        self.spec = spec
        self.preprocessing = preprocessing
        self.emulator = emulator
        self.autoencoder = autoencoder
        self.label_spec = label_spec if label_spec is not None else LabelSpec.from_system(spec)
        check_integer("frame_stride", frame_stride, 1)
        self.frame_stride = frame_stride
        self.cards = {key: dict(value) for key, value in (cards or {}).items()}
        self._check()
        self.device = torch.device("cpu")
        self.to(device)

    # -- construction --------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        emulator_path: str | os.PathLike[str],
        autoencoder_path: str | os.PathLike[str] | None = None,
        device: str | torch.device | None = "auto",
    ) -> Pipeline:
        """Load an emulator (and, for a latent one, its autoencoder) from model files.

        The emulator's card names its system, space and, for a latent emulator, the
        SHA-256 of the autoencoder weights whose latents it learned. Any other pairing (a
        latent emulator without its autoencoder or with another one, a pixel emulator
        given an autoencoder, models of two systems) is refused with a ParameterError
        naming both files, before any weights are read.
        """
        emulator_card = load_model_card(emulator_path)
        emulator_file = model_paths(emulator_path)[1]
        check_card(emulator_card, {"kind": EMULATOR_CARD_KIND}, emulator_file)
        system, space = emulator_card["system"], emulator_card.get("space")
        if autoencoder_path is None:
            if space == "latent":
                recorded = emulator_card.get("autoencoder") or {}
                raise ParameterError(
                    "autoencoder_path",
                    None,
                    f"the autoencoder {emulator_file} was trained on (weights SHA-256 "
                    f"{str(recorded.get('sha256'))[:12]}..., rate {recorded.get('rate')})",
                )
            autoencoder, autoencoder_card = None, None
            preprocessing = _card_preprocessing(emulator_card, emulator_file)
            grid = emulator_card.get("grid")
        else:
            autoencoder_file = model_paths(autoencoder_path)[1]
            autoencoder_card = load_model_card(autoencoder_path)
            if space != "latent":
                raise ParameterError(
                    "autoencoder_path",
                    str(autoencoder_file),
                    f"None: {emulator_file} is a {space}-space emulator",
                )
            if autoencoder_card["system"] != system:
                raise ParameterError(
                    "autoencoder_path",
                    f"{autoencoder_file} (system {autoencoder_card['system']})",
                    f"an autoencoder of {system}, the system of {emulator_file}",
                )
            try:
                check_autoencoder_pair(emulator_card, autoencoder_card)
            except DataFormatError as err:
                raise ParameterError(
                    "autoencoder_path",
                    str(autoencoder_file),
                    f"the autoencoder {emulator_file} was trained with ({err.problem})",
                ) from err
            autoencoder, preprocessing, autoencoder_card = load_autoencoder(
                autoencoder_path, system, device
            )
            grid = autoencoder_card["grid"]
        emulator, emulator_card = load_emulator(
            emulator_path, device, system=system, autoencoder=autoencoder_card
        )
        cards = {"emulator": {**emulator_card, "name": emulator_file.stem}}
        if autoencoder_card is not None:
            cards["autoencoder"] = {**autoencoder_card, "name": autoencoder_file.stem}
        return cls(
            get_system(system, grid).spec,
            preprocessing,
            emulator,
            autoencoder,
            device,
            label_spec=LabelSpec.from_dict(emulator_card["label"]),
            frame_stride=emulator_card["frame_stride"],
            cards=cards,
        )

    def _check(self) -> None:
        emulator, spec = self.emulator, self.spec
        kind, space = getattr(emulator, "kind", None), getattr(emulator, "space", None)
        if kind not in EMULATOR_KINDS:
            raise ParameterError("emulator.kind", kind, f"one of {', '.join(EMULATOR_KINDS)}")
        if space not in EMULATOR_SPACES:
            raise ParameterError("emulator.space", space, f"one of {', '.join(EMULATOR_SPACES)}")
        window = getattr(emulator, "window", None)
        check_integer("emulator.window", window, 2)
        if self.preprocessing.channel_names != spec.channel_names:
            raise ParameterError(
                "preprocessing channels",
                list(self.preprocessing.channel_names),
                f"{spec.name}'s channels {list(spec.channel_names)}",
            )
        if space == "pixel" and self.autoencoder is not None:
            raise ParameterError(
                "autoencoder", type(self.autoencoder).__name__, "None for a pixel-space emulator"
            )
        if space == "latent":
            if self.autoencoder is None:
                raise ParameterError(
                    "autoencoder", None, "the autoencoder this latent emulator was trained on"
                )
            config = self.autoencoder.config
            factor = config.spatial_factor
            grid = spec.grid.shape
            channels = len(spec.channel_names)
            if config.in_channels != channels or grid[0] % factor or grid[1] % factor:
                raise ParameterError(
                    "autoencoder",
                    f"{config.in_channels} channels, x{factor} spatial factor",
                    f"{channels} channels and a factor dividing the grid {grid}",
                )

    def _name(self, role: str) -> str:
        """The model's file name (stem) when loaded from files."""
        return str(self.cards.get(role, {}).get("name", "unnamed"))

    def to(self, device: str | torch.device | None) -> Pipeline:
        """Move the models to `device` ("auto", "cpu", "cuda[:N]") in place; returns self."""
        self.device = resolve_device(device)
        self.emulator.to(self.device).eval()
        if self.autoencoder is not None:
            self.autoencoder.to(self.device).eval()
        return self

    # -- description ---------------------------------------------------------------------
    @property
    def kind(self) -> str:
        """Either "diffusion" or "deterministic"."""
        return self.emulator.kind

    @property
    def space(self) -> str:
        """Either "latent" or "pixel"."""
        return self.emulator.space

    @property
    def window(self) -> int:
        """L: frames the emulator sees per call (context + generated)."""
        return self.emulator.window

    @property
    def model_shape(self) -> tuple[int, int, int]:
        """Shape of one model-space frame: (C', h, w) latents or (C, X, Y) pixels."""
        grid = self.spec.grid.shape
        if self.autoencoder is None:
            return (len(self.spec.channel_names), *grid)
        config = self.autoencoder.config
        factor = config.spatial_factor
        return (config.latent_channels, grid[0] // factor, grid[1] // factor)

    @property
    def rate(self) -> float | None:
        """Compression rate (pixel values / latent values per frame); None in pixel space."""
        if self.autoencoder is None:
            return None
        grid = self.spec.grid.shape
        return len(self.spec.channel_names) * grid[0] * grid[1] / float(np.prod(self.model_shape))

    def describe(self) -> dict[str, Any]:
        """Plain metadata for output attributes: system, models, space, rate."""
        rate = self.rate
        return {
            "system": self.spec.name,
            "emulator": self._name("emulator"),
            "emulator_kind": self.kind,
            "emulator_space": self.space,
            "window": self.window,
            "frame_stride": self.frame_stride,
            "autoencoder": self._name("autoencoder") if self.autoencoder is not None else "none",
            "rate": "pixel" if rate is None else (int(rate) if rate.is_integer() else rate),
        }

    # -- transforms ----------------------------------------------------------------------
    @torch.inference_mode()
    def encode(self, frames: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Physical frames (..., C, X, Y) -> model-space frames (..., *model_shape) on device."""
        x = self._as_frames(frames, (len(self.spec.channel_names), *self.spec.grid.shape))
        x = self.preprocessing.forward(x)
        if self.autoencoder is None:
            return x
        return self._chunked(self.autoencoder.encode, x)

    @torch.inference_mode()
    def decode(self, frames: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Model-space frames (..., *model_shape) -> physical frames (..., C, X, Y) on device."""
        z = self._as_frames(frames, self.model_shape)
        if self.autoencoder is not None:
            z = self._chunked(self.autoencoder.decode, z)
        return self.preprocessing.inverse(z)

    @torch.inference_mode()
    def label(self, conditions: Mapping[str, Any] | None) -> torch.Tensor:
        """The emulator's conditioning vector (P,) on device, from validated conditions."""
        label = self.label_spec.encode(resolve_conditions(self.spec, conditions))
        return label.to(self.device, torch.float32)

    def _as_frames(self, frames: torch.Tensor | np.ndarray, shape: tuple[int, ...]) -> torch.Tensor:
        x = torch.as_tensor(frames)
        if x.ndim < 3 or tuple(x.shape[-3:]) != tuple(shape) or x.numel() == 0:
            raise ParameterError(
                "frames shape",
                tuple(x.shape),
                f"(..., {', '.join(map(str, shape))}) with at least one frame",
            )
        return x.to(self.device, torch.float32)

    @staticmethod
    def _chunked(function, x: torch.Tensor) -> torch.Tensor:
        """Apply a (B, C, X, Y) -> (B, C', X', Y') module to (..., C, X, Y) in chunks."""
        lead = x.shape[:-3]
        flat = x.reshape(-1, *x.shape[-3:])
        outputs = [function(chunk) for chunk in flat.split(CHUNK_FRAMES)]
        out = torch.cat(outputs)
        return out.reshape(*lead, *out.shape[1:])


def _card_preprocessing(card: Mapping[str, Any], where: object) -> Preprocessing:
    """A pixel emulator's preprocessing, stored in its card."""
    try:
        return Preprocessing.from_dict(card.get("preprocessing") or {})
    except LatentsimError as err:
        raise DataFormatError(where, f"invalid preprocessing in the card: {err}") from err

"""What every emulator is: a network over windows of L frames that fills in the frames
after c known context frames (docs/dev/EMULATOR_INTERFACE.md).

Shapes: B batch (ensemble members folded in), L window, c context frames (1..L-1),
C channels, (h, w) frame grid in the Well's [x, y] order, P label entries. "Frames" are in
the emulator's model space: latent frames (space "latent") or preprocessed pixel frames
(space "pixel").

Training (masked context, arXiv:2507.02608): every window gets k = (Poisson(1) mod
(L-1)) + 1 leading context frames, so one model serves every context length at rollout.
`forward` *is* the training loss: the trainer's loss function calls `model(batch)`, so
under DDP the whole loss computation runs inside the wrapped forward and DDP sees every
parameter that received a gradient.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import ClassVar

import torch
from torch import Tensor, nn

from engine.diffusion import Sampler, leading_context_mask, sample_context_lengths
from engine.diffusion.noise import Generator
from engine.emulator.config import BackboneConfig
from engine.errors import ParameterError

# The two vocabularies of an emulator. Its kind is how it predicts (a diffusion ensemble or
# one deterministic guess); its space is where it works (an autoencoder's latents or
# preprocessed pixels). Model cards and the zoo manifest store the kind under "method"
# and use "kind" for a model's role (autoencoder or emulator), as they always have.
KINDS = ("diffusion", "deterministic")
SPACES = ("latent", "pixel")


class Emulator(nn.Module, ABC):
    """Base class of the diffusion and deterministic emulators."""

    kind: ClassVar[str]  # "diffusion" | "deterministic"
    # generate() draws all its noise through engine.diffusion.noise.randn (or none), so a
    # StackedGenerator may stand in for the generator: rollouts of several sessions can
    # share one call (engine.rollout.advance_together). Emulators without it run alone.
    stacked_noise: ClassVar[bool] = True

    def __init__(
        self,
        backbone_config: BackboneConfig,
        channels: int,
        grid: tuple[int, int],
        label_dim: int,
        space: str,
    ):
        super().__init__()
        if not isinstance(backbone_config, BackboneConfig):
            raise ParameterError("backbone_config", backbone_config, "a BackboneConfig")
        if space not in SPACES:
            raise ParameterError("space", space, f"one of {', '.join(SPACES)}")
        grid = tuple(grid)  # type: ignore[assignment]
        patch = backbone_config.patch
        if len(grid) != 2 or not all(
            isinstance(n, int) and not isinstance(n, bool) and n >= 1 and n % patch == 0
            for n in grid
        ):
            raise ParameterError("grid", grid, f"two positive multiples of the patch size {patch}")
        self.config = backbone_config
        self.channels, self.grid, self.label_dim, self.space = channels, grid, label_dim, space

    @property
    def window(self) -> int:
        """L: frames per network evaluation (context and generated together)."""
        return self.config.window

    @property
    def max_context(self) -> int:
        """The longest context: at least one frame must be generated."""
        return self.config.window - 1

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # ------------------------------------------------------------------ inference

    @abstractmethod
    def generate(
        self,
        context: Tensor,
        label: Tensor,
        *,
        sampler: Sampler | None = None,
        generator: Generator = None,
    ) -> Tensor:
        """(B, c, C, h, w) clean context and (B, P) labels -> the (B, L-c, C, h, w) frames
        that follow the context. The context frames themselves are not returned."""

    @abstractmethod
    def nfe(self, sampler: Sampler | None = None) -> int:
        """Network evaluations per `generate` call."""

    # ------------------------------------------------------------------ training

    def forward(self, batch: Mapping[str, Tensor]) -> Tensor:
        """The training loss of a batch (see the module docstring for why forward)."""
        return self.loss(batch)

    @abstractmethod
    def loss(
        self, batch: Mapping[str, Tensor], *, generator: torch.Generator | None = None
    ) -> Tensor:
        """Scalar training loss of {"window": (B, L, C, h, w), "label": (B, P)}.

        An optional "context_length" (B,) int entry fixes k per window (validation);
        otherwise k is drawn from `generator` (on the window's device), or from torch's
        global stream, which the trainer seeds and checkpoints.
        """

    # ------------------------------------------------------------------ shared helpers

    def _training_window(
        self, batch: Mapping[str, Tensor], generator: torch.Generator | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """(window, label, mask (B, L, 1, 1, 1) True on the k leading context frames)."""
        if "window" not in batch or "label" not in batch:
            raise ParameterError("batch keys", sorted(batch), "'window' and 'label'")
        window, label = batch["window"], batch["label"]
        self._check_frames("window", window, self.window)
        self._check_label(label, window.shape[0])
        if "context_length" in batch:
            lengths = batch["context_length"].to(window.device)
            if lengths.shape != (window.shape[0],) or lengths.is_floating_point():
                raise ParameterError(
                    "context_length", tuple(lengths.shape), f"({window.shape[0]},) integers"
                )
            if lengths.numel() and (lengths.min() < 1 or lengths.max() > self.max_context):
                raise ParameterError(
                    "context_length",
                    (int(lengths.min()), int(lengths.max())),
                    f"within [1, {self.max_context}]",
                )
        else:
            lengths = sample_context_lengths(
                window.shape[0], generator, max_context=self.max_context, device=window.device
            )
        mask = leading_context_mask(lengths, self.window)[:, :, None, None, None]
        return window, label, mask

    def _context_window(self, context: Tensor, label: Tensor) -> tuple[Tensor, Tensor, int]:
        """Check a generate() call; return (window with the context first and zeros after,
        mask (B, L, 1, 1, 1), c)."""
        self._check_frames("context", context, None)
        length = context.shape[1]
        if not 1 <= length <= self.max_context:
            raise ParameterError(
                "context frames",
                length,
                f"an integer in [1, {self.max_context}] (window "
                f"{self.window}: at least one frame must be generated)",
            )
        self._check_label(label, context.shape[0])
        batch, _, channels, h, w = context.shape
        window = context.new_zeros(batch, self.window, channels, h, w)
        window[:, :length] = context
        lengths = torch.full((batch,), length, device=context.device)
        mask = leading_context_mask(lengths, self.window)[:, :, None, None, None]
        return window, mask, length

    def _check_frames(self, name: str, frames: Tensor, length: int | None) -> None:
        expected = (length if length is not None else "c", self.channels, *self.grid)
        if (
            not isinstance(frames, Tensor)
            or frames.ndim != 5
            or tuple(frames.shape[2:]) != (self.channels, *self.grid)
            or (length is not None and frames.shape[1] != length)
        ):
            shape = tuple(frames.shape) if isinstance(frames, Tensor) else type(frames).__name__
            raise ParameterError(f"{name}.shape", shape, f"(B, {', '.join(map(str, expected))})")
        if not frames.is_floating_point():
            raise ParameterError(f"{name}.dtype", frames.dtype, "a floating-point dtype")

    def _check_label(self, label: Tensor, batch: int) -> None:
        if not isinstance(label, Tensor) or tuple(label.shape) != (batch, self.label_dim):
            shape = tuple(label.shape) if isinstance(label, Tensor) else type(label).__name__
            raise ParameterError("label.shape", shape, f"({batch}, {self.label_dim})")

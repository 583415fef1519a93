"""The optimisers a training run may use, built from its config.

AdamW is the paper's emulator optimiser and the default. PSGD-Kron (Kronecker-factored
preconditioned SGD, from the maintained `heavyball` package) is the preconditioned
optimiser the paper trains its autoencoders with; docs/zoo.md measures it against AdamW
on this project's autoencoders.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from engine.training.config import TrainConfig


def build_optimizer(
    params: Iterable[torch.nn.Parameter], config: TrainConfig
) -> torch.optim.Optimizer:
    """The optimiser `config.optimizer` names, at the config's peak learning rate (the
    trainer overwrites each group's lr every step with the warm-up + cosine schedule)."""
    if config.optimizer == "adamw":
        return torch.optim.AdamW(
            params, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay
        )
    # Imported here: heavyball takes ~1.7 s to import and only PSGD-Kron runs need it.
    import heavyball
    import heavyball.utils

    # heavyball compiles its update with torch.compile's "max-autotune" by default, which
    # fails on CPU-only machines (an InductorError) and costs minutes where it works; the
    # eager update is what this project measured.
    heavyball.utils.compile_mode = None
    return heavyball.PSGDKron(
        params, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay
    )


# Entries of heavyball's state dict that are pickles of code (the preconditioner-update
# schedule), not training state: `build_optimizer` recreates them from the config, and
# heavyball would unpickle them on load, which a checkpoint must never make it do.
_PICKLED_HEAVYBALL_ENTRIES = ("precond_schedule",)


def portable_state_dict(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimizer's state dict without pickled code: what a checkpoint stores."""
    state = optimizer.state_dict()
    if "heavyball" in state:
        state["heavyball"] = {
            key: value
            for key, value in state["heavyball"].items()
            if key not in _PICKLED_HEAVYBALL_ENTRIES
        }
    return state

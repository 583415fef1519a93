"""Sharing: NetCDF downloads of the rollout and the truth, movies, the link, the model card.

Downloads are built when clicked, from the engine's own datasets (CF-annotated, with
the models, sampler, conditions and seed in their attributes), so a file is the same
whether it comes from the app or a notebook. The card shown is the selected model's, so
it can be read before running.
"""

from __future__ import annotations

import io
import json
from typing import Any

import panel as pn
import xarray

from app.compute import COMPUTE
from app.views.base import View
from app.views.movie import MovieDownloads
from engine.errors import LatentsimError

NETCDF_ENGINE = "h5netcdf"  # NetCDF4 (needs h5py, a dependency anyway)


def netcdf_bytes(dataset: xarray.Dataset) -> io.BytesIO:
    """An in-memory NetCDF4 file of `dataset`."""
    return io.BytesIO(bytes(dataset.to_netcdf(engine=NETCDF_ENGINE)))


def card_markdown(
    name: str, description: str, command: tuple[str, ...], card: dict[str, Any]
) -> str:
    """The facts a user checks first, then the card itself."""
    training = card.get("training") or {}
    metrics = training.get("test_metrics") or {}
    facts = {
        "kind": card.get("method") or card.get("kind"),
        "space": card.get("space"),
        "compression rate": card.get("rate"),
        "grid": card.get("grid"),
        "latent shape": card.get("latent_shape"),
        "window / frame stride": (
            f"{card['window']} / {card['frame_stride']}" if card.get("kind") == "emulator" else None
        ),
        "parameters": card.get("parameters"),
        "training steps": training.get("steps"),
        "last training loss": training.get("last_loss"),
        "test VRMSE (mean over fields)": metrics.get("vrmse_mean"),
        "weights SHA-256": str(card.get("weights", {}).get("sha256", ""))[:16] + "…",
    }
    rows = "\n".join(
        f"| {key} | {_plain(value)} |"
        for key, value in facts.items()
        if value not in (None, {}, "")
    )
    return (
        f"### `{name}`\n{description}\n\n| property | value |\n|---|---|\n{rows}\n\n"
        f"Trained with: `latentsim {' '.join(command)}`\n\n"
        f"<details><summary>full model card (JSON)</summary>\n\n```json\n"
        f"{json.dumps(card, indent=1)}\n```\n</details>\n"
    )


def _plain(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_plain(v)}" for k, v in value.items())
    return str(value)


class ShareView(View):
    def __init__(self, **params: Any):
        super().__init__(**params)
        self.download_rollout = pn.widgets.FileDownload(
            callback=self._rollout,
            filename="rollout.nc",
            label="Download rollout (NetCDF)",
            css_classes=["ls-download-rollout"],
            disabled=True,
            width=260,
        )
        self.download_truth = pn.widgets.FileDownload(
            callback=self._truth,
            filename="truth.nc",
            label="Download truth (NetCDF)",
            css_classes=["ls-download-truth"],
            disabled=True,
            width=260,
        )
        self.card = pn.pane.Markdown("", css_classes=["ls-model-card"], sizing_mode="stretch_width")
        self._layout = pn.Column(
            pn.pane.Markdown(
                "### Share\nThe page address reproduces every setting: copy it from the "
                "address bar. Downloads hold the frames computed so far, in physical units, "
                "with the models, sampler, conditions and seed in their attributes."
            ),
            pn.Row(self.download_rollout, self.download_truth),
            MovieDownloads(state=self.state, store=self.store),
            pn.pane.Markdown("### Model card of the selected emulator"),
            self.card,
            css_classes=["ls-share"],
            sizing_mode="stretch_width",
        )
        self.store.param.watch(self._store_changed, ["revision", "running"])
        self.state.param.watch(self._show_card, ["system", "rate", "kind"])
        self._show_card()
        self._store_changed()

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

    def _store_changed(self, *_: Any) -> None:
        store = self.store
        main = store.main
        ready = main is not None and bool(main.blocks)
        self.download_rollout.disabled = not ready
        self.download_truth.disabled = store.truth is None or not store.truth.frames
        if store.request is not None and main is not None:
            base = f"{main.spec.emulator}-seed{store.request.seed}"
            self.download_rollout.filename = f"{base}-rollout.nc"
            self.download_truth.filename = (
                f"{store.request.system}-seed{store.request.seed}-truth.nc"
            )
        source = store.cards.get("main", {}).get("source")
        if source is not None:
            self.card.object = source["description"]

    # The datasets are snapshots taken on the event loop; writing them as NetCDF (hundreds
    # of MB for a long, large ensemble) runs on the compute thread, so one student's
    # download does not freeze every other session of the server.
    async def _rollout(self) -> io.BytesIO | None:
        main = self.store.main
        dataset = main.dataset() if main is not None else None
        return None if dataset is None else await COMPUTE.run(netcdf_bytes, dataset)

    async def _truth(self) -> io.BytesIO | None:
        truth = self.store.truth
        if truth is None or not truth.frames:
            return None
        return await COMPUTE.run(netcdf_bytes, truth.dataset())

    def _show_card(self, *_: Any) -> None:
        state = self.state
        if not state.available:
            self.card.object = "No emulator in the zoo yet."
            return
        try:
            entry = state.emulator
            parts = [
                card_markdown(entry.name, entry.description, entry.command, state.menus.card(entry))
            ]
            if entry.autoencoder:
                autoencoder = state.menus.zoo.get(entry.autoencoder)
                parts.append(
                    card_markdown(
                        autoencoder.name,
                        autoencoder.description,
                        autoencoder.command,
                        state.menus.zoo.card(autoencoder.name),
                    )
                )
        except LatentsimError as err:
            self.card.object = f"The model card cannot be read: {err}"
            return
        self.card.object = "\n\n".join(parts)

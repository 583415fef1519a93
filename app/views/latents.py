"""Latent view: what the emulator actually works on.

The truth frame at the time shown, encoded by the autoencoder, next to the predicted
latents of the member shown (member 0 in mosaic mode), every latent channel tiled into
one image (axes in latent cells). Latents are bounded in (−5, 5) by the autoencoder's
output map, so one symmetric scale serves every channel.
"""

from __future__ import annotations

from typing import Any

import colorcet as cc
import panel as pn

from app.source_runner import WITHOUT_MODEL
from app.store import mosaic
from app.views.base import TabView
from app.views.plotting import ImagePanel, frame_size, mapper

LATENT_BOUND = 5.0


class LatentView(TabView):
    def __init__(self, **params: Any):
        super().__init__(**params)
        self.mapper = mapper(cc.coolwarm, -LATENT_BOUND, LATENT_BOUND)
        self.truth = ImagePanel("Encoded truth", self.mapper, "ls-latent-truth")
        self.prediction = ImagePanel(
            "Predicted latents",
            self.mapper,
            "ls-latent-prediction",
            x_range=self.truth.figure.x_range,
            y_range=self.truth.figure.y_range,
        )
        self.truth.hide_axes()
        self.prediction.hide_axes()
        self.text = pn.pane.Markdown("No rollout yet.", css_classes=["ls-latent-note"])
        self._layout = pn.Column(
            self.text,
            pn.Row(self.truth.pane, self.prediction.pane),
            css_classes=["ls-latents"],
            sizing_mode="stretch_width",
        )
        self._shape: tuple[int, ...] | None = None
        self.state.param.watch(self.refresh, ["time_index", "member", "mosaic"])
        self.store.param.watch(self.refresh, ["revision"])
        self.refresh()  # built lazily, possibly after the job is done: show it now

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

    def redraw(self) -> None:
        store, state = self.store, self.state
        main = store.main
        if store.request is None or main is None:
            return
        if main.space != "latent":
            self.text.object = (
                f"**No latents**: {WITHOUT_MODEL[main.space]}."
                if main.space in WITHOUT_MODEL
                else "This is a **pixel-space** emulator: it works on the "
                "(normalised) fields themselves, so there are no latents."
            )
            self.truth.show(None, (1, 1))
            self.prediction.show(None, (1, 1))
            return
        index = min(state.time_index, store.request.horizon - 1)
        truth = main.truth_latents.get(index)
        predicted = main.latents_at(index)
        member = 0 if state.mosaic or predicted is None else min(state.member, len(predicted) - 1)
        shape = None
        for panel, latents, title in (
            (self.truth, truth, "Encoded truth"),
            (
                self.prediction,
                None if predicted is None else predicted[member],
                f"Predicted latents, member {member}",
            ),
        ):
            if latents is None:
                panel.show(None, (1, 1), f"{title} (lead {index + 1} not computed yet)")
                continue
            tiled, columns = mosaic(latents)
            shape = tiled.shape
            panel.show(tiled, tiled.shape, f"{title} ({len(latents)} channels, {columns} per row)")
        if shape is not None and shape != self._shape:
            self._shape = shape
            self.truth.figure.x_range.update(start=0, end=shape[0])
            self.truth.figure.y_range.update(start=0, end=shape[1])
            for panel in (self.truth, self.prediction):
                panel.resize(*frame_size(shape, 420))
        sample = truth if truth is not None else None if predicted is None else predicted[0]
        grid = (
            ""
            if sample is None
            else (f" {sample.shape[0]} channels of {sample.shape[1]}×{sample.shape[2]} cells")
        )
        self.text.object = (
            f"Compression **×{main.rate:.0f}**: each frame is{grid} in latent space. Left: "
            "the solver's frame encoded; right: what the emulator generated for the same "
            "time. The decoder turns these into the fields you see."
        )

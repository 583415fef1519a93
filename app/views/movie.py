"""Movie downloads for slides: the main rollout's panels over lead time, as MP4 or GIF.

One click renders the field shown on the Fields tab with the chosen panels, through the
engine's `engine.movie` (the same frames `latentsim movie` makes). Rendering and encoding
take seconds, so they run on the shared compute worker (app/compute.py), not on the
event loop: the page and the other sessions stay responsive meanwhile.
"""

from __future__ import annotations

import io
from typing import Any

import panel as pn
import param

from app.compute import COMPUTE
from app.state import ExplorerState
from app.store import RunStore
from engine.errors import LatentsimError
from engine.movie import FORMATS, PANELS, MovieConfig, movie_bytes

PANEL_LABELS = {
    "truth": "truth",
    "mean": "mean",
    "members": "members",
    "std": "std",
    "error": "error",
}
MOVIE_WIDTH = 1280
CSS_CLASSES = {"mp4": "ls-download-movie", "gif": "ls-download-gif"}


class MovieDownloads(pn.viewable.Viewer):
    """Panel choice plus one download button per format."""

    state = param.ClassSelector(class_=ExplorerState)
    store = param.ClassSelector(class_=RunStore)

    def __init__(self, **params: Any):
        super().__init__(**params)
        self.panels = pn.widgets.CheckButtonGroup(
            options={label: key for key, label in PANEL_LABELS.items()},
            value=list(PANELS),
            css_classes=["ls-movie-panels"],
            variant="outline",
        )
        self.downloads = {
            fmt: pn.widgets.FileDownload(
                callback=self._callback(fmt),
                filename=f"movie.{fmt}",
                label=f"Download movie ({fmt.upper()})",
                css_classes=[CSS_CLASSES[fmt]],
                disabled=True,
                width=260,
            )
            for fmt in FORMATS
        }
        self._layout = pn.Column(
            pn.pane.Markdown(
                "### Movie for slides\nThe field shown on the Fields tab, over every lead "
                "computed so far, with the panels chosen here, its colour scale, the lead "
                "time and the model's name. Rendering takes a few seconds."
            ),
            self.panels,
            pn.Row(*self.downloads.values()),
            css_classes=["ls-movie"],
        )
        self.store.param.watch(self._store_changed, ["revision", "running"])
        self.state.param.watch(self._store_changed, ["field"])
        self._store_changed()

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

    def _store_changed(self, *_: Any) -> None:
        store, main = self.store, self.store.main
        ready = main is not None and bool(main.blocks)
        for fmt, button in self.downloads.items():
            button.disabled = not ready
            if ready and store.request is not None:
                button.filename = (
                    f"{main.spec.emulator}-seed{store.request.seed}-{self.state.field}.{fmt}"
                )

    def _callback(self, fmt: str):
        async def render() -> io.BytesIO | None:
            return await self.render(fmt)

        return render

    async def render(self, fmt: str) -> io.BytesIO | None:
        """The movie of what is on screen now; None (and a notification) if it cannot be
        made."""
        store, main = self.store, self.store.main
        rollout = main.dataset() if main is not None else None
        if rollout is None:
            store.notify("warning", "No rollout yet: press Run first.")
            return None
        truth = store.truth.dataset() if store.truth is not None else None
        try:
            config = MovieConfig(
                panels=tuple(self.panels.value), field=self.state.field, width=MOVIE_WIDTH
            )
            data = await COMPUTE.run(lambda: movie_bytes(rollout, fmt, truth=truth, config=config))
        except LatentsimError as err:
            store.notify("error", f"movie: {err}")
            return None
        return io.BytesIO(data)

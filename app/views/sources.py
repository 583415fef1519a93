"""The sidebar's source picker: built-in systems, or a file the server offers.

Shown only when the server was given sources (`latentsim view`, `panel serve app --args`,
`app.explore`). For a file source it replaces the zoo's controls: which split,
trajectory and start frame, a 3-D slice, an emulator registered for the dataset, and
*Open*; a note says what the source holds and which views have nothing to show for it.
"""

from __future__ import annotations

from typing import Any

import panel as pn
import param

from app.sources import DATASETS, SourceState
from app.views.base import View
from engine.sources import RolloutFile


class SourcePicker(View):
    """Source menu, its options, Open, and the job's progress for file sources."""

    sources = param.ClassSelector(class_=SourceState, doc="the selected source")
    on_open = param.Callable(doc="called (on the document's next tick) when Open is clicked")
    on_cancel = param.Callable(doc="called (on the document's next tick) when Cancel is clicked")

    def __init__(self, **params: Any):
        super().__init__(**params)
        sources = self.sources
        self.menu = pn.widgets.Select.from_param(
            sources.param.source, name="Source", css_classes=["ls-source"]
        )
        self.split = pn.widgets.Select.from_param(
            sources.param.split, name="Split", css_classes=["ls-source-split"]
        )
        self.trajectory = pn.widgets.IntSlider.from_param(
            sources.param.trajectory, name="Trajectory", css_classes=["ls-source-trajectory"]
        )
        self.start = pn.widgets.IntSlider.from_param(
            sources.param.start, name="Start frame", css_classes=["ls-source-start"]
        )
        self.axis = pn.widgets.Select.from_param(
            sources.param.axis, name="Slice across", css_classes=["ls-source-axis"]
        )
        self.index = pn.widgets.IntSlider.from_param(
            sources.param.index, name="Slice index", css_classes=["ls-source-index"]
        )
        self.emulator = pn.widgets.Select.from_param(
            sources.param.emulator, name="Emulator", css_classes=["ls-source-emulator"]
        )
        self.members = pn.widgets.IntSlider.from_param(
            sources.param.members, name="Members", css_classes=["ls-source-members"]
        )
        self.open = pn.widgets.Button(
            label="Open",
            color="primary",
            css_classes=["ls-source-open"],
            sizing_mode="stretch_width",
        )
        self.open.on_click(lambda _: pn.state.execute(self._open, schedule=True))
        self.cancel = pn.widgets.Button(
            label="Cancel",
            disabled=True,
            css_classes=["ls-source-cancel"],
            sizing_mode="stretch_width",
        )
        self.cancel.on_click(lambda _: pn.state.execute(self._cancel, schedule=True))
        self.note = pn.pane.Markdown("", css_classes=["ls-source-note"], margin=(0, 10))
        self.progress = pn.indicators.Progress(
            value=0, max=1000, css_classes=["ls-source-progress"], sizing_mode="stretch_width"
        )
        self.status = pn.pane.Markdown("", css_classes=["ls-source-status"], margin=(0, 10))
        self.options = pn.Column(
            self.split,
            self.trajectory,
            self.start,
            self.axis,
            self.index,
            self.emulator,
            self.members,
            pn.Row(self.open, self.cancel, sizing_mode="stretch_width"),
            self.progress,
            self.status,
            sizing_mode="stretch_width",
        )
        self._layout = pn.Column(
            self.menu,
            self.note,
            self.options,
            css_classes=["ls-sources"],
            sizing_mode="stretch_width",
        )
        sources.param.watch(self._show, ["source", "split", "trajectory", "emulator", "problem"])
        self.store.param.watch(self._progress, ["running", "progress", "status"])
        self._show()
        self._progress()

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

    def _open(self) -> None:
        if self.on_open is not None:
            self.on_open()

    def _cancel(self) -> None:
        if self.on_cancel is not None:
            self.on_cancel()

    def _show(self, *_: Any) -> None:
        sources = self.sources
        opened = sources.opened
        dataset = isinstance(opened, DATASETS)
        self.options.visible = not sources.builtin
        self.open.disabled = bool(sources.problem) or opened is None
        for widget in (self.split, self.trajectory, self.start, self.emulator):
            widget.visible = dataset
        three_d = dataset and len(opened.spatial_dims) == 3
        self.axis.visible = self.index.visible = three_d
        self.members.visible = dataset and sources.emulator_ensemble
        self.note.object = sources.describe() if not sources.builtin else ""
        self.note.css_classes = ["ls-source-note"] + (
            ["ls-source-problem"] if sources.problem else []
        )
        if isinstance(opened, RolloutFile):
            self.open.label = "Show rollout"
        else:
            self.open.label = "Open"

    def _progress(self, *_: Any) -> None:
        store = self.store
        self.progress.value = round(store.progress * 1000)
        self.progress.bar_color = "primary" if store.running else "success"
        self.status.object = store.status
        self.cancel.disabled = not store.running

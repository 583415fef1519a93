"""Field views: truth, AE reconstruction, ensemble mean, members, spread and error.

Six images at the time shown, built once and updated in place. Truth, reconstruction,
mean and members share one colour scale per field (from the truth's percentiles, so a
member that drifts off-scale shows it); spread and error have their own scales, fixed
fractions of the field's range so they compare across time. Zoom is linked across the
panels (the member mosaic has its own axes).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import panel as pn
import param

from app.source_runner import WITHOUT_MODEL
from app.store import ensemble_stats, mosaic
from app.views.base import TabView
from app.views.plotting import (
    ERROR_PALETTE,
    FIELD_PALETTE,
    STD_PALETTE,
    ImagePanel,
    frame_size,
    mapper,
    shared_ranges,
)
from engine.movie.panels import ERROR_FRACTION, STD_FRACTION, mosaic_cells
from engine.systems.base import SystemSpec

PLAYER_INTERVAL_MS = 300
WAITING = {
    "mean": "Ensemble mean",
    "member": "Member",
    "mosaic": "Members",
    "std": "Ensemble std",
    "error": "Error of the mean",
}


def units_of(spec: SystemSpec, channel: str) -> str:
    for spec_field in spec.fields:
        if channel in spec_field.channel_names:
            return spec_field.units
    return "1"


class FieldViews(TabView):
    """The main panel: images of the selected field at the selected lead."""

    defer_images = param.Boolean(
        default=False,
        doc="""
        Leave the image grid empty until `build_images` is called. The seven image
        figures are most of a page's Bokeh models (most of the time a new session takes
        to build, serialise and render), so a served session builds them once its page,
        with the controls, is on screen.""",
    )

    def __init__(self, **params: Any):
        super().__init__(**params)
        self.x_range, self.y_range = shared_ranges()
        self.field_mapper = mapper(FIELD_PALETTE)
        self.std_mapper = mapper(STD_PALETTE)
        self.error_mapper = mapper(ERROR_PALETTE, -1.0, 1.0)
        self.panels: dict[str, ImagePanel] = {}
        self.slots: dict[str, pn.Column] = {}
        self.caption = pn.pane.Markdown(
            "No rollout yet.", css_classes=["ls-time-caption"], margin=(0, 10)
        )
        state = self.state
        self.field_select = pn.widgets.RadioButtonGroup.from_param(
            state.param.field, label="Field", css_classes=["ls-field"], variant="outline"
        )
        self.mosaic_toggle = pn.widgets.Checkbox.from_param(
            state.param.mosaic, label="all members (mosaic)", css_classes=["ls-mosaic"]
        )
        self.member_slider = pn.widgets.IntSlider.from_param(
            state.param.member, label="Member", css_classes=["ls-member"], width=180
        )
        self.player = pn.widgets.Player.from_param(
            state.param.time_index,
            label="Lead",
            interval=PLAYER_INTERVAL_MS,
            loop_policy="once",
            show_loop_controls=False,
            css_classes=["ls-player"],
            sizing_mode="stretch_width",
            max_width=520,
            value_align="start",
        )
        self.follow = pn.widgets.Checkbox.from_param(
            state.param.follow, label="follow the newest frame", css_classes=["ls-follow"]
        )
        self.grid = pn.GridBox(ncols=3, css_classes=["ls-field-grid"])
        self._layout = pn.Column(
            pn.Row(self.field_select, self.mosaic_toggle, self.member_slider),
            pn.Row(self.player, self.follow),
            self.caption,
            self.grid,
            css_classes=["ls-field-view"],
            sizing_mode="stretch_width",
        )
        self._geometry: tuple[tuple[float, float], tuple[int, int]] | None = None
        self._mosaic_size: tuple[float, float] | None = None
        self._shown: tuple[Any, ...] | None = None  # what the images show (see redraw)
        state.param.watch(self.refresh, ["field", "time_index", "member", "mosaic"])
        self.store.param.watch(self._store_changed, ["revision"])
        if not self.defer_images:
            self.build_images()

    def build_images(self) -> None:
        """Build the image figures (once) and show what there is to show."""
        if self.panels:
            return
        linked = {"x_range": self.x_range, "y_range": self.y_range}
        self.panels = {
            "truth": ImagePanel(
                "Ground truth (solver)", self.field_mapper, "ls-view-truth", **linked
            ),
            "recon": ImagePanel(
                "AE reconstruction (floor)", self.field_mapper, "ls-view-recon", **linked
            ),
            "mean": ImagePanel("Ensemble mean", self.field_mapper, "ls-view-mean", **linked),
            "member": ImagePanel("Member", self.field_mapper, "ls-view-member", **linked),
            "mosaic": ImagePanel("Members", self.field_mapper, "ls-view-mosaic"),
            "std": ImagePanel(
                "Ensemble std (uncertainty)", self.std_mapper, "ls-view-std", **linked
            ),
            "error": ImagePanel(
                "Error of the mean (mean − truth)", self.error_mapper, "ls-view-error", **linked
            ),
        }
        # Member and mosaic share one grid cell; their wrappers are shown or hidden (a
        # served pn.pane.Bokeh must not have its own layout parameters changed).
        self.panels["mosaic"].hide_axes()
        self.slots = {
            key: pn.Column(self.panels[key].pane, margin=0) for key in ("member", "mosaic")
        }
        members_cell = pn.Column(self.slots["member"], self.slots["mosaic"], margin=0)
        self._geometry = self._mosaic_size = self._shown = None
        spec = self.store.spec or (self.state.spec if self.state.available else None)
        if spec is not None:  # sized before they join the page: see _apply_geometry
            self._apply_geometry(spec)
        self._show_mosaic_slot(self.state.members)
        self.grid.objects = [
            members_cell if key == "member" else p.pane
            for key, p in self._cells()
            if key != "mosaic"
        ]
        self.refresh()

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

    def _cells(self) -> list[tuple[str, ImagePanel]]:
        order = ("truth", "recon", "mean", "member", "mosaic", "std", "error")
        return [(key, self.panels[key]) for key in order if key in self.panels]

    def _store_changed(self, *_: Any) -> None:
        main = self.store.main
        if self.state.follow and self.store.running and main is not None and main.ready:
            newest = main.ready - 1
            if newest != self.state.time_index:
                self.state.time_index = newest  # refreshes through the watcher
                return
        self.refresh()

    # -- updates --------------------------------------------------------------------------
    def _apply_geometry(self, spec: SystemSpec) -> None:
        """Size the figures for `spec`'s grid, the mosaic for the selected member count.

        A figure whose size changes on the page makes the browser lay out the whole page
        again, once per property (0.2-0.5 s each on the 2-core machine: fourteen of them
        were most of a new session's browser time, docs/app.md), so the figures are sized
        before they join the page and again only when the grid changes."""
        extent = spec.grid.extent
        wide = extent[0] >= 2 * extent[1]
        width, height = frame_size(extent, 400 if wide else 250)
        for key, panel in self._cells():
            if key != "mosaic":
                panel.resize(width, height)
        self.x_range.update(start=0.0, end=float(extent[0]))
        self.y_range.update(start=0.0, end=float(extent[1]))
        self.grid.ncols = 2 if wide else 3
        self._geometry = (extent, spec.grid.shape)
        self._size_mosaic(self.state.members, spec.grid.shape, extent)

    def _show_mosaic_slot(self, count: int) -> None:
        """Show the mosaic or the single member, decided by the selection and the member
        count (the run's, else the selected one) so that it does not flip while a run
        starts: each flip lays out the page again."""
        mosaic_mode = self.state.mosaic and count > 1
        self.slots["mosaic"].visible = mosaic_mode
        self.slots["member"].visible = not mosaic_mode

    def _size_mosaic(self, count: int, shape: tuple[int, int], extent: tuple[float, float]) -> None:
        """Fit the mosaic figure to `count` tiles of `shape` cells (keeping the user's zoom
        unless the tiling changed)."""
        cells = mosaic_cells(count, *shape)
        size = (cells[0] * extent[0] / shape[0], cells[1] * extent[1] / shape[1])
        if size == self._mosaic_size or not self.panels:
            return
        figure = self.panels["mosaic"].figure
        figure.x_range.update(start=0.0, end=size[0])
        figure.y_range.update(start=0.0, end=size[1])
        self.panels["mosaic"].resize(*frame_size(size, self.panels["truth"].figure.frame_width))
        self._mosaic_size = size

    def refresh(self, *_: Any) -> None:
        # Ranges and colour scales are shared with the comparison rows: keep them current
        # even while this tab is hidden (cheap: a few numbers).
        spec = self.store.spec
        if spec is not None:
            if (spec.grid.extent, spec.grid.shape) != self._geometry:
                self._apply_geometry(spec)
            self._scales(self._field(spec))
        super().refresh()

    def _field(self, spec: SystemSpec) -> str:
        field = self.state.field
        return field if field in spec.channel_names else spec.channel_names[0]

    def redraw(self) -> None:
        store, state = self.store, self.state
        spec = store.spec
        if spec is None or not self.panels:
            return
        name = self._field(spec)
        index = min(state.time_index, store.request.horizon - 1)
        frame, truth = store.truth_frame_for(index)
        main = store.main
        members = main.members_at(index) if main is not None else None
        recon = main.recon.get(index) if main is not None else None
        # The images change only when what they show does: not for blocks of another
        # series or of later leads (each image update repaints a canvas in the browser).
        shown = (
            store.generation,
            name,
            index,
            frame,
            truth is not None,
            None if members is None else len(members),
            recon is not None,
            state.member,
            state.mosaic,
        )
        if shown != self._shown:
            self._show_images(spec.channel_names.index(name), index, frame, truth, members)
            self._shown = shown
        units = units_of(spec, name)
        frame_dt = spec.frame_dt * int(
            store.cards.get("main", {}).get("emulator", {}).get("frame_stride", 1)
        )
        ready = main.ready if main is not None else 0
        self.caption.object = (
            f"**{name}** [{units}] · lead **{index + 1}** of {store.request.horizon} "
            f"(t = {(index + 1) * frame_dt:.3g} after the last context frame, truth frame "
            f"{frame}) · predicted so far: {ready}"
        )

    def _show_images(
        self,
        c: int,
        index: int,
        frame: int,
        truth: np.ndarray | None,
        members: np.ndarray | None,
    ) -> None:
        store, p = self.store, self.panels
        extent = store.spec.grid.extent
        main = store.main
        origin = "file" if main is not None and main.space in WITHOUT_MODEL else "solver"
        p["truth"].show(
            None if truth is None else truth[c], extent, f"Ground truth ({origin}), frame {frame}"
        )
        self._show_recon(main, index, c, extent)
        self._show_mosaic_slot(len(members) if members is not None else self.state.members)
        if members is None:
            for key in ("mean", "member", "mosaic", "std", "error"):
                p[key].show(None, extent, f"{WAITING[key]} (lead {index + 1} not computed yet)")
        else:
            self._show_members(members[:, c], truth, c, extent)

    def _scales(self, name: str) -> None:
        clim = self.store.clim(name)
        if clim is None:
            return
        low, high = clim
        span = high - low
        self.field_mapper.update(low=low, high=high)
        self.std_mapper.update(low=0.0, high=STD_FRACTION * span)
        self.error_mapper.update(low=-ERROR_FRACTION * span, high=ERROR_FRACTION * span)

    def _show_recon(self, main: Any, index: int, c: int, extent: tuple[float, float]) -> None:
        panel = self.panels["recon"]
        if main is None or main.space == "pixel":
            panel.show(None, extent, "AE reconstruction: none (pixel-space emulator)")
            return
        if main.space in WITHOUT_MODEL:
            panel.show(None, extent, f"AE reconstruction: none ({WITHOUT_MODEL[main.space]})")
            return
        recon = main.recon.get(index)
        rate = f"×{main.rate:.0f}" if main.rate else ""
        panel.show(
            None if recon is None else recon[c],
            extent,
            f"AE reconstruction {rate} (best this rate can do)",
        )

    def _show_members(
        self, members: np.ndarray, truth: np.ndarray | None, c: int, extent: tuple[float, float]
    ) -> None:
        p, state = self.panels, self.state
        count = len(members)
        mean, std = ensemble_stats(members)
        p["mean"].show(mean, extent, f"Ensemble mean ({count} member{'s' * (count > 1)})")
        p["std"].show(
            std,
            extent,
            "Ensemble std (uncertainty)" if count > 1 else "Ensemble std: 0 (one member)",
        )
        p["error"].show(
            None if truth is None else mean - truth[c], extent, "Error of the mean (mean − truth)"
        )
        member = min(state.member, count - 1)
        p["member"].show(members[member], extent, f"Member {member}")
        if count > 1:
            self._size_mosaic(count, members.shape[1:], extent)
            tiled, columns = mosaic(members)
            p["mosaic"].show(tiled, self._mosaic_size, f"All {count} members ({columns} per row)")

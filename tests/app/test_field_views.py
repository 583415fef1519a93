"""The field views' cost in the browser: figures sized before they join the page, images
sent only when what they show changes.

Each size change of a figure on the page makes Bokeh lay out the whole page again (0.2-0.5 s
of a browser's CPU on the 2-core machine), and each image update repaints a canvas; a
classroom's browsers on one machine spend most of its CPU there (docs/app.md)."""

from __future__ import annotations

import numpy as np
import pytest
from headless import explorer, run_app

from app.views.plotting import frame_size
from engine.movie.panels import mosaic, mosaic_cells


@pytest.fixture
def app(tiny_zoo):
    """A served session's page before it loads: the images are built on page load."""
    return explorer(tiny_zoo, defer_images=True)


def watch(models: dict[str, object], attributes: list[str]) -> list[tuple[str, str]]:
    """Changes of `attributes` on the Bokeh `models`, as (name, attribute), in order."""
    changes: list[tuple[str, str]] = []
    for name, model in models.items():
        for attribute in attributes:
            model.on_change(
                attribute, lambda attr, old, new, name=name: changes.append((name, attr))
            )
    return changes


def test_figures_are_sized_for_the_selected_system_before_they_join_the_page(app):
    fields = app.fields
    assert not fields.panels and not fields.grid.objects
    fields.build_images()
    spec = app.state.spec
    width, height = frame_size(spec.grid.extent, 400)  # Rayleigh-Benard is wide
    for key, panel in fields.panels.items():
        if key != "mosaic":
            assert (panel.figure.frame_width, panel.figure.frame_height) == (width, height), key
    nx, ny = spec.grid.shape
    cells = mosaic_cells(3, nx, ny)
    assert cells == mosaic(np.zeros((3, nx, ny), np.float32))[0].shape
    extent = spec.grid.extent
    mosaic_figure = fields.panels["mosaic"].figure
    assert mosaic_figure.x_range.end == pytest.approx(cells[0] * extent[0] / nx)
    assert mosaic_figure.y_range.end == pytest.approx(cells[1] * extent[1] / ny)
    assert fields.slots["mosaic"].visible and not fields.slots["member"].visible

    # a whole run (3 blocks of the main series, 3 of the other kind) flips no slot
    figures = {key: panel.figure for key, panel in fields.panels.items()}
    changes = watch(figures, ["frame_width", "frame_height"])
    for name, slot in fields.slots.items():
        slot.param.watch(lambda event, name=name: changes.append((name, "visible")), "visible")
    run_app(app)
    assert app.store.main.ready == 6
    # The images' size follows the extent alone; the mosaic's the grid too, and the tiny
    # zoo's models run on coarser grids than the systems' defaults (the shipped zoo's do
    # not): one resize, and none on the next run.
    assert app.store.spec.grid.shape != app.state.spec.grid.shape
    assert changes == [("mosaic", "frame_height")]
    changes.clear()
    run_app(app)
    assert changes == []


def test_images_change_only_when_what_they_show_changes(app):
    fields = app.fields
    fields.build_images()
    run_app(app)
    sources = {key: panel.source for key, panel in fields.panels.items()}
    changes = watch(sources, ["data"])

    app.store.bump()  # what a block of another series or of a later lead does
    assert changes == []
    assert "predicted so far: 6" in fields.caption.object

    app.state.member = 1  # a new selection redraws the images
    assert ("member", "data") in changes
    members = app.store.main.members_at(app.state.time_index)
    c = app.store.spec.channel_names.index(app.state.field)
    shown = sources["member"].data["image"][0]
    np.testing.assert_array_equal(shown, members[1, c].T)

    changes.clear()
    app.state.time_index = 2  # another lead: every image
    assert {name for name, _ in changes} == set(sources)
    members = app.store.main.members_at(2)
    np.testing.assert_allclose(sources["mean"].data["image"][0], members[:, c].mean(0).T)

    changes.clear()
    run_app(app)  # the same request again: a new run, whose frames are drawn afresh
    assert {name for name, _ in changes} >= {"truth", "mean", "mosaic", "std", "error"}

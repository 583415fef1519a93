"""The app built without a server: components, test hooks, a headless run, URL sync."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import numpy as np
import panel as pn
import pytest
import xarray
from bokeh.document import Document
from bokeh.models import Button, GlyphRenderer, Image
from headless import explorer, run_app
from panel.io.location import Location
from pyviz_comms import Comm

from app.shell import VIEW_TABS, ExplorerApp
from engine.zoo import load_zoo

HOOKS_DOC = Path(__file__).resolve().parents[2] / "app" / "README_TESTING.md"


def css_classes(*roots) -> set[str]:
    """The classes that reach the page: on Panel components and, for Bokeh panes, on
    the figure (the pane itself renders as the figure, without classes of its own)."""
    found = set()
    for root in roots:
        panel = pn.panel(root)
        for obj in [panel, *panel.select()]:
            if isinstance(obj, pn.pane.Bokeh):
                assert not obj.css_classes, "classes on a Bokeh pane never reach the page"
                found.update(obj.object.css_classes)
            else:
                found.update(getattr(obj, "css_classes", None) or [])
    return found


@pytest.fixture
def app(tiny_zoo):
    return explorer(tiny_zoo)


def test_the_page_has_one_template_with_the_explorer(app):
    assert isinstance(app.__panel__(), pn.template.BootstrapTemplate)
    assert app.template.title == "latentsim"
    assert [name for name in app.tabs._names] == [
        "Fields",
        "Diagnostics",
        "Compare",
        "Latents",
        "Share",
        "Lessons",
        "Systems & models",
    ]
    # menus from the zoo; the unusable model is listed with its reason
    assert app.controls.rate.options == {"latent ×8": 8, "latent ×16": 16, "pixel space": "pixel"}
    assert "`rayleigh_benard-diffusion-ae99`: card file" in app.zoo_pane.object


def test_every_documented_hook_exists(app):
    documented = set(re.findall(r"`(ls-[a-z-]+)", HOOKS_DOC.read_text()))
    documented -= {"ls-condition-", "ls-no-emulator"}  # a prefix; the empty-zoo page
    app.state.compare = "rates"
    run_app(app)  # comparison rows exist after a run
    for name in VIEW_TABS:  # tabs are built when first shown
        app.view(name)
    present = css_classes(app.controls, app.alert, app.tabs, *app.template.main)
    assert "ls-condition-Rayleigh" in present and "ls-condition-Prandtl" in present
    assert documented <= present, sorted(documented - present)


def test_bokeh_models_render_without_a_server(app):
    root = app.tabs.get_root(Document(), comm=Comm())
    images = [r.glyph for r in root.select({"type": GlyphRenderer}) if isinstance(r.glyph, Image)]
    # Tabs render lazily: the Fields tab's 7 images; one colour scale each for the field
    # (truth, reconstruction, mean, member, mosaic), the spread and the error.
    assert len(images) == 7
    assert len({id(image.color_mapper) for image in images}) == 3
    sidebar = app.controls.__panel__().get_root(Document(), comm=Comm())
    assert any("ls-run" in (m.css_classes or []) for m in sidebar.select({"type": Button}))


def test_a_headless_run_fills_every_view(app):
    run_app(app)
    spec = app.store.spec
    nx, ny = spec.grid.shape
    for key in ("truth", "recon", "mean", "std", "error"):
        image = app.fields.panels[key].source.data["image"][0]
        assert image.shape == (ny, nx) and np.isfinite(image).all(), key
    mosaic = app.fields.panels["mosaic"]
    assert app.fields.slots["mosaic"].visible and not app.fields.slots["member"].visible
    assert mosaic.source.data["image"][0].shape == (2 * ny + 1, 2 * nx + 1)  # 3 members, 2x2
    # one colour scale: the truth's percentiles
    low, high = app.store.clim("buoyancy")
    assert (app.fields.field_mapper.low, app.fields.field_mapper.high) == (low, high)
    assert app.state.time_index == 5  # followed the stream to the last frame
    assert "lead **6** of 6" in app.fields.caption.object
    vrmse = app.diagnostics.plots["vrmse"]
    assert len(vrmse.sources["main"].data["y"]) == 0  # hidden tabs do not redraw...
    app.tabs.active = 1
    assert len(vrmse.sources["main"].data["y"]) == 6 and vrmse.renderers["floor"].visible
    assert not app.fields.active  # ...until shown
    assert len(app.diagnostics.rank_source.data["top"]) == 4  # K + 1 bins
    assert app.controls.status.object.startswith("done") and app.controls.cancel.disabled
    assert app.controls.progress.value == 1000


def test_downloads_are_netcdf_of_the_engine_datasets(app):
    assert app.share.download_rollout.disabled
    run_app(app)
    assert not app.share.download_rollout.disabled
    rollout = xarray.open_dataset(asyncio.run(app.share._rollout()), engine="h5netcdf")
    assert dict(rollout.sizes) == {"member": 3, "time": 6, "x": 32, "y": 16}
    assert rollout.attrs["emulator"] == "rayleigh_benard-diffusion-ae8"
    truth = xarray.open_dataset(asyncio.run(app.share._truth()), engine="h5netcdf")
    assert truth.sizes["time"] == 7 and truth.attrs["seed"] == 0
    np.testing.assert_array_equal(
        truth["buoyancy"].values, app.store.truth.dataset()["buoyancy"].values
    )
    assert app.share.download_rollout.filename == "rayleigh_benard-diffusion-ae8-seed0-rollout.nc"


def test_model_card_follows_the_selection(app):
    assert "rayleigh_benard-diffusion-ae8" in app.share.card.object
    assert "rayleigh_benard-ae8" in app.share.card.object  # its autoencoder too
    app.state.rate = "pixel"
    assert "rayleigh_benard-deterministic-pixel" in app.share.card.object


def test_url_is_applied_validated_and_kept_in_sync(app):
    location = Location(search="?rate=16&members=999&Rayleigh=2e6&field=pressure")
    app.apply_url(location)
    app.sync_url(location)
    assert (app.state.rate, app.state.members, app.state.field) == (16, 3, "pressure")
    assert app.state.conditions["Rayleigh"] == 2e6
    assert app.alert.visible and "members=999" in app.alert.object  # bad value reported
    query = location.query_params
    assert (query["rate"], query["members"], query["Rayleigh"]) == (16, 3, 2e6)  # sanitised
    app.state.members = 5
    assert location.query_params["members"] == 5  # state -> URL
    app.state.set_condition("Prandtl", 3.0)
    assert location.query_params["Prandtl"] == 3
    location.search = location.search.replace("members=5", "members=4")
    assert app.state.members == 4  # URL -> state


def test_without_emulators_the_page_explains_and_lists_the_systems(tmp_path):
    explorer = ExplorerApp(zoo=load_zoo(tmp_path))
    classes = css_classes(*explorer.template.main)
    assert {"ls-no-emulator", "ls-systems", "ls-help"} <= classes
    explorer.run()  # nothing to run: no error, no job
    assert explorer.runner.task is None


def test_comparison_rows_share_scales_and_zoom_with_the_field_views(app):
    app.state.compare = "rates"
    run_app(app)
    assert app.tabs._names[app.tabs.active] == "Compare" and not app.fields.active
    rows = app.comparison._rows
    assert [row.key for row in rows] == ["main", "rate:16"]
    spec = app.store.spec
    low, high = app.store.clim("buoyancy")
    for row in rows:
        figure = row.mean.figure
        assert figure.x_range is app.fields.x_range and figure.x_range.end == spec.grid.extent[0]
        mapper = figure.renderers[0].glyph.color_mapper
        assert mapper is app.fields.field_mapper and (mapper.low, mapper.high) == (low, high)
        assert row.mean.source.data["image"][0].shape == spec.grid.shape[::-1]
    assert "6/6 frames, done" in rows[1].text.object

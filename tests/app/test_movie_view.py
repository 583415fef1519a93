"""The Share tab's movie downloads, headless: what one click returns, and the colour
rules the movie shares with the Fields tab."""

from __future__ import annotations

import asyncio

import imageio.v3 as iio
import pytest

import app.store
import app.views.fields
from app.runner import Runner
from app.state import ExplorerState, ZooMenus
from app.store import RunStore
from app.views.movie import MovieDownloads
from engine.movie import panels


def test_movies_use_the_colour_rules_of_the_fields_tab():
    assert app.store.CLIM_PERCENTILES == panels.CLIM_PERCENTILES
    assert app.views.fields.STD_FRACTION == panels.STD_FRACTION
    assert app.views.fields.ERROR_FRACTION == panels.ERROR_FRACTION


@pytest.fixture
def finished(tiny_zoo):
    state = ExplorerState(ZooMenus(tiny_zoo))
    state.param.update(members=3, steps=2, sampler="euler", horizon=4, reference=False)
    store = RunStore()
    asyncio.run(Runner(store, zoo=lambda: tiny_zoo).run(state.request()[0]))
    return state, store


def test_a_click_returns_a_movie_of_every_predicted_lead(finished, tmp_path):
    state, store = finished
    view = MovieDownloads(state=state, store=store)
    button = view.downloads["mp4"]
    assert not button.disabled
    assert button.filename == f"rayleigh_benard-diffusion-ae8-seed0-{state.field}.mp4"
    view.panels.value = ["truth", "mean", "error"]
    movie = asyncio.run(view.render("mp4"))
    (tmp_path / "movie.mp4").write_bytes(movie.getvalue())
    frames = iio.imread(tmp_path / "movie.mp4", index=None, plugin="FFMPEG")
    assert frames.shape[0] == 4 and frames.shape[2] == 1280


def test_no_panel_chosen_is_a_notification_not_a_crash(finished):
    state, store = finished
    view = MovieDownloads(state=state, store=store)
    view.panels.value = []
    assert asyncio.run(view.render("gif")) is None
    level, message = store.notice
    assert level == "error" and "panels" in message

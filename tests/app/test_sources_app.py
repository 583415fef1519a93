"""File sources in the explorer, headless: the catalog and its URL checks, a rollout
written by latentsim, a registered emulator run through the store, bad emulators, and
`app.explore` on datasets in memory."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
import torch

import app
from app.cluster import (
    SCHEDULER_VARIABLE,
    WORKERS_VARIABLE,
    ComputeSettings,
    model_compute,
    start_model_compute,
    stop_model_compute,
)
from app.compute import InProcessCompute
from app.lessons import LESSONS
from app.shell import ExplorerApp
from app.sources import BUILTIN, NO_EMULATOR, SourceCatalog, SourceState
from engine.data.well_reader import open_well
from engine.rollout import RolloutConfig, rollout, truth_dataset
from engine.sources import AllowedRoots, SolverSource, open_source, register_emulator
from engine.zoo import load_zoo
from tests.sources.files import rollout_of_dummy, the_wells_dummy


@pytest.fixture
def data(tmp_path: Path) -> Path:
    well = the_wells_dummy(tmp_path / "dummy.hdf5")
    rollout_of_dummy(tmp_path / "roll.nc", well)
    (tmp_path / "junk.nc").write_text("not a netcdf")
    return tmp_path


pytestmark = pytest.mark.usefixtures("isolated_emulator_registry")


def show(explorer: ExplorerApp, source: str | None = None) -> None:
    if source is not None:
        explorer.sources.source = source
    asyncio.run(_wait(explorer))


async def _wait(explorer: ExplorerApp) -> None:
    explorer.run()  # inside the loop: the source runner needs a running loop
    await explorer.source_runner.task


def test_catalog_lists_the_roots_and_refuses_anything_else(data: Path) -> None:
    catalog = SourceCatalog(AllowedRoots([data]), (data / "roll.nc",))
    assert catalog.initial == str((data / "roll.nc").resolve())
    assert {Path(k).name for k in catalog.entries} == {"roll.nc", "dummy.hdf5", "junk.nc"}
    state = SourceState(catalog)
    warnings = state.apply_query({"source": "/etc/passwd", "trajectory": "x"})
    assert any("ignored source='/etc/passwd'" in w for w in warnings)
    assert state.source == catalog.initial  # kept
    state.source = str((data / "junk.nc").resolve())
    assert "junk.nc: not an HDF5, NetCDF or Zarr file" in state.problem
    assert "Cannot show" in state.describe()
    with pytest.raises(ValueError):
        state.source = "/etc/passwd"


def test_a_rollout_file_fills_the_views_and_a_bad_file_leaves_the_app_working(
    tiny_zoo, data: Path
) -> None:
    catalog = SourceCatalog(AllowedRoots([data]), (data / "roll.nc",))
    explorer = ExplorerApp(tiny_zoo, catalog=catalog)
    asyncio.run(_wait(explorer))
    store = explorer.store
    assert store.status == "done: 8 frames of roll.nc"
    assert store.main.members == 4 and store.main.ready == 8
    assert np.isfinite(store.main.scores["vrmse"]).all()
    assert store.rank_counts("main", store.spec.channel_names[0]) is not None
    explorer.share  # noqa: B018  (built: the download is the rollout in our schema)
    assert store.main.dataset().sizes["member"] == 4
    explorer.sources.source = str((data / "junk.nc").resolve())
    explorer.run()
    assert store.notice[0] == "error" and "junk.nc" in store.notice[1]
    explorer.sources.source = BUILTIN  # the zoo again: its menus and a normal job
    assert explorer.state.field in explorer.state.spec.channel_names


def test_the_zoo_view_comes_back_as_it_was_after_a_file(tiny_zoo, data: Path) -> None:
    """A file sets the leads and members to its own; the zoo's come back with it."""
    catalog = SourceCatalog(AllowedRoots([data]), (data / "roll.nc",))
    explorer = ExplorerApp(tiny_zoo, catalog=catalog)
    state = explorer.state
    explorer.sources.source = BUILTIN
    parameter = state.spec.parameters[0]
    state.param.update(horizon=20, member=5, field=state.spec.channel_names[-1])
    assert state.set_condition(parameter.name, sum(parameter.train_range) / 2) is None
    before = {n: getattr(state, n) for n in ("horizon", "member", "field", "conditions")}
    show(explorer, catalog.initial)  # 8 leads, 4 members
    assert (state.horizon, state.param.member.bounds) == (8, (0, 3))
    explorer.sources.source = BUILTIN
    assert {n: getattr(state, n) for n in before} == before
    assert state.param.member.bounds == (0, state.members - 1)
    assert state.param.horizon.bounds[1] >= 20


def test_a_lesson_in_a_file_session_runs_on_the_zoo(data: Path, monkeypatch) -> None:
    catalog = SourceCatalog(AllowedRoots([data]), (data / "roll.nc",))
    explorer = ExplorerApp(load_zoo(), catalog=catalog)  # the lessons' models
    started = []
    monkeypatch.setattr(explorer.runner, "start", started.append)
    explorer.start_lesson(LESSONS[0])
    assert explorer.sources.source == BUILTIN and explorer._controls_slot.visible
    (request,) = started
    assert request.system == explorer.state.system


class HeldCompute:
    """The compute queue, holding every call after the first (the job's opening) until
    the test lets it go: the job is then surely mid-way when it is stopped."""

    def __init__(self, inner) -> None:
        self.inner, self.calls = inner, 0

    async def run(self, fn, *args):
        self.calls += 1
        if self.calls > 1:
            await asyncio.Event().wait()  # held until cancelled
        return await self.inner.run(fn, *args)


def test_a_file_job_can_be_cancelled_and_stops_when_the_session_closes(
    tiny_zoo, data: Path
) -> None:
    """Cancel (the picker's button) stops the job and says so; a closed session's job
    stops without touching the page."""
    catalog = SourceCatalog(AllowedRoots([data]), (data / "roll.nc",))
    explorer = ExplorerApp(tiny_zoo, catalog=catalog)
    store, picker, runner = explorer.store, explorer.picker, explorer.source_runner
    compute = runner._compute

    async def stopped_mid_way(stop) -> None:
        runner._compute = HeldCompute(compute)
        explorer.run()
        while runner._compute.calls < 2:  # opened, now held at its first block
            await asyncio.sleep(0.01)
        assert store.running and not picker.cancel.disabled
        stop()
        with pytest.raises(asyncio.CancelledError):
            await runner.task

    asyncio.run(stopped_mid_way(picker._cancel))
    assert (store.running, store.status, picker.cancel.disabled) == (False, "cancelled", True)
    asyncio.run(stopped_mid_way(runner.close))
    assert store.running and store.main.ready == 0  # the page was left as it was


def test_latentsims_own_rollout_gets_its_truth_from_the_solver(tiny_zoo, tmp_path) -> None:
    pipeline = tiny_zoo.pipeline("rayleigh_benard-deterministic-ae8", device="cpu")
    spec = pipeline.spec
    truth = truth_dataset(spec.name, seed=3, n_frames=4, grid=spec.grid.shape)
    written = rollout(pipeline, truth.isel(time=[0]), config=RolloutConfig(horizon=3, seed=3))
    written.to_netcdf(tmp_path / "ours.nc", engine="h5netcdf")
    explorer = ExplorerApp(tiny_zoo, catalog=SourceCatalog(AllowedRoots([tmp_path])))
    show(explorer, str((tmp_path / "ours.nc").resolve()))
    store = explorer.store
    assert store.main.ready == 3
    np.testing.assert_allclose(store.truth_frame_for(0)[1], truth.isel(time=1).to_array().values)
    assert np.isfinite(store.main.scores["vrmse"]).all()


def test_a_registered_emulator_runs_on_a_well_trajectory(tiny_zoo, data: Path, tmp_path) -> None:
    def nudge(context, conditions, members):
        return context[:, -1:] + 0.01 * torch.randn(members, 2, *context.shape[2:])

    register_emulator("nudge", nudge, target="dummy_dataset", ensemble=True)
    register_emulator("other-dataset", nudge, target="kolmogorov")
    explorer = ExplorerApp(tiny_zoo, catalog=SourceCatalog(AllowedRoots([data])))
    sources = explorer.sources
    sources.source = str((data / "dummy.hdf5").resolve())
    assert sources.param.emulator.objects == [NO_EMULATOR, "nudge"]
    sources.param.update(emulator="nudge", members=3, trajectory=1, start=2)
    show(explorer)
    store = explorer.store
    assert store.main.ready == 7 and store.main.members == 3  # 10 frames - start 2 - context 1
    assert store.main.frame_index(0) == 3
    assert np.isfinite(store.main.scores["crps"]).all()
    downloaded = tmp_path / "nudge.nc"  # the download opens again as a rollout file
    store.main.dataset().to_netcdf(downloaded, engine="h5netcdf")
    again = open_source(downloaded)
    assert again.members.shape[:2] == (3, 7)
    np.testing.assert_array_equal(again.frame_index, np.arange(3, 10))
    np.testing.assert_array_equal(again.truth.values, store.truth.source.values)


def test_an_emulator_with_nan_or_a_wrong_shape_is_reported(tiny_zoo, data: Path) -> None:
    register_emulator("nan", lambda c, k, m: c * np.nan, target="*")
    register_emulator("shape", lambda c, k, m: c[..., :3], target="*")
    explorer = ExplorerApp(tiny_zoo, catalog=SourceCatalog(AllowedRoots([data])))
    explorer.sources.source = str((data / "dummy.hdf5").resolve())
    for name, message in (("nan", "returned NaN"), ("shape", "returned shape (1, 1, 3, 32, 3)")):
        explorer.sources.emulator = name
        show(explorer)
        assert explorer.store.status.startswith("failed:")
        assert f"emulator '{name}': {message}" in explorer.store.notice[1]
    explorer.sources.emulator = NO_EMULATOR
    show(explorer)
    assert explorer.store.status.startswith("done: truth of")


def test_a_notebook_runs_the_zoo_in_the_kernel(tiny_zoo, tmp_path: Path, monkeypatch) -> None:
    """`app.explore` starts no Dask cluster unless the environment asks for one."""
    stop_model_compute()
    monkeypatch.delenv(WORKERS_VARIABLE, raising=False)
    monkeypatch.delenv(SCHEDULER_VARIABLE, raising=False)
    try:
        app.explore(open_well(the_wells_dummy(tmp_path / "dummy.hdf5")), zoo=tiny_zoo)
        assert isinstance(model_compute(), InProcessCompute)
    finally:
        stop_model_compute()
        start_model_compute(ComputeSettings(workers=0))


def test_explore_in_memory_well_and_rollout(tiny_zoo, tmp_path: Path) -> None:
    well = open_well(the_wells_dummy(tmp_path / "dummy.hdf5"))
    predicted = rollout_of_dummy(tmp_path / "r.nc", tmp_path / "dummy.hdf5")
    predicted = predicted.assign(
        {f"{n}_truth": predicted[n].isel(member=0) for n in ("field_x", "field_y")}
    ).drop_vars("constant_field")
    del predicted.attrs["truth_file"]
    explorer = app.explore(well, zoo=tiny_zoo, mine=predicted)
    assert list(explorer.sources.catalog.entries.values()) == ["data0", "mine"]
    asyncio.run(_wait(explorer))
    assert explorer.store.status.startswith("done: truth of data0")
    assert explorer.store.spec.channel_names == ("constant_field", "field_x", "field_y")
    show(explorer, "memory:mine")
    assert explorer.store.main.ready == 8
    rmse = explorer.store.main.scores["rmse"][:, 0]  # the file's noise grows with the lead
    assert np.isfinite(rmse).all() and (np.diff(rmse) > 0).all()
    with pytest.raises(TypeError, match=r"not an xarray\.Dataset"):
        app.explore(np.zeros(3))


def test_panel_serve_args_and_latentsim_view_environment(data: Path, monkeypatch) -> None:
    monkeypatch.delenv("LATENTSIM_VIEW_PATHS", raising=False)
    monkeypatch.delenv("LATENTSIM_VIEW_ROOTS", raising=False)
    assert SourceCatalog.from_environment(()) is None  # plain `panel serve app`: the zoo only
    catalog = SourceCatalog.from_environment((str(data / "roll.nc"),))  # --args roll.nc
    assert catalog.initial == str((data / "roll.nc").resolve())
    assert catalog.roots.roots == (data.resolve(),)
    monkeypatch.setenv("LATENTSIM_VIEW_PATHS", str(data / "dummy.hdf5"))
    monkeypatch.setenv("LATENTSIM_VIEW_ROOTS", str(data))
    catalog = SourceCatalog.from_environment(())
    assert catalog.initial == str((data / "dummy.hdf5").resolve())


def test_an_emulator_registered_for_a_system_runs_against_its_solver(tiny_zoo) -> None:
    seen = {}

    def persistence(context, conditions, members):
        seen.update(conditions)
        return context[:, -1:]

    register_emulator("persist-kolmogorov", persistence, target="kolmogorov")
    catalog = SourceCatalog(AllowedRoots([]))
    assert catalog.entries == {"system:kolmogorov": "kolmogorov (solver, your emulators)"}
    explorer = ExplorerApp(tiny_zoo, catalog=catalog)
    sources = explorer.sources
    sources.source = "system:kolmogorov"
    assert sources.param.emulator.objects == [NO_EMULATOR, "persist-kolmogorov"]
    sources.param.update(emulator="persist-kolmogorov", trajectory=5, start=90)
    show(explorer)
    store = explorer.store
    assert store.status.startswith("done: 10 frames of persist-kolmogorov")
    assert seen == SolverSource("kolmogorov").parameters("solver", 5)  # the seed's conditions
    assert np.isfinite(store.main.scores["vrmse"]).all()

"""Every model the repository ships loads through the manifest and runs on CPU."""

from __future__ import annotations

import pytest
import torch

from engine.model_files import load_autoencoder
from engine.rollout import RolloutConfig, rollout, truth_dataset
from engine.zoo import load_zoo, zoo_plan

ZOO = load_zoo()
PLAN = {model.name: model for model in zoo_plan()}


def test_the_manifest_lists_only_planned_and_intact_models():
    assert ZOO.entries, "assets/manifest.json lists no models"
    assert ZOO.problems == {}
    for name, entry in ZOO.entries.items():
        assert name in PLAN
        assert list(entry.command) == PLAN[name].command(), f"{name} was trained otherwise"


def test_every_planned_model_is_shipped():
    missing = sorted(set(PLAN) - set(ZOO.entries))
    assert not missing, f"planned but not in assets/ (latentsim zoo train): {missing}"


@pytest.mark.parametrize("name", sorted(e.name for e in ZOO.available(kind="autoencoder")))
def test_autoencoder_loads_and_round_trips(name):
    entry = ZOO.get(name)
    model, preprocessing, card = load_autoencoder(entry.path, entry.system, device="cpu")
    assert card["rate"] == entry.rate
    x = torch.randn(1, len(preprocessing.channel_names), *card["grid"])
    with torch.inference_mode():
        assert model.decode(model.encode(x)).shape == x.shape


@pytest.mark.parametrize("name", sorted(e.name for e in ZOO.available(kind="emulator")))
def test_emulator_runs_a_short_rollout_on_cpu(name):
    pipeline = ZOO.pipeline(name, device="cpu")
    spec = pipeline.spec
    conditions = {p.name: p.default for p in spec.parameters}
    truth = truth_dataset(spec.name, conditions, seed=2_000_000, n_frames=1)
    config = RolloutConfig(members=2, horizon=4, sampler="euler", steps=2)
    ds = rollout(pipeline, truth.isel(time=[0]), conditions, config)
    assert dict(ds.sizes) == {
        "member": 2 if pipeline.kind == "diffusion" else 1,
        "time": 4,
        **dict(zip(("x", "y"), spec.grid.shape, strict=True)),
    }
    assert all(bool(ds[field].notnull().all()) for field in spec.channel_names)
